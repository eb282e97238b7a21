// The lockgate dashboard: polls /dashboard/data and draws each deployment. No libraries.
"use strict";
(function () {
  const POLL_MS = 1000;
  const COLORS = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#db2777", "#0891b2"];
  const errors = [];

  // Errors go into the page itself, so a headless browser's DOM dump shows them.
  function reportError(message) {
    errors.push(new Date().toISOString() + " " + message);
    const box = document.getElementById("console-errors");
    box.textContent = errors.slice(-20).join("\n");
    document.getElementById("problems").hidden = false;
  }
  window.addEventListener("error", (e) => reportError("error: " + e.message));
  window.addEventListener("unhandledrejection", (e) => reportError("unhandled: " + e.reason));
  document.addEventListener("securitypolicyviolation", (e) => reportError("blocked by CSP: " + e.blockedURI));

  // The token comes once in ?token=; it is kept for this tab and taken out of the address bar.
  const params = new URLSearchParams(window.location.search);
  let token = params.get("token");
  if (token) {
    try { sessionStorage.setItem("lockgate-token", token); } catch (e) { /* storage may be off */ }
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  } else {
    try { token = sessionStorage.getItem("lockgate-token"); } catch (e) { token = null; }
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value; else node.setAttribute(key, value);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }
  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return node;
  }
  function fmt(value, digits) {
    if (value === null || value === undefined) return "–";
    if (typeof value !== "number") return String(value);
    if (Number.isInteger(value)) return value.toLocaleString("en-US");
    return value.toFixed(digits === undefined ? 3 : digits);
  }
  function time(at) { return new Date(at * 1000).toLocaleTimeString("en-GB"); }
  function table(headers, rows, attrs) {
    return el("table", attrs || {}, [
      el("thead", {}, [el("tr", {}, headers.map((h) => el("th", { text: h })))]),
      el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", { text: c }))))),
    ]);
  }

  // Event labels go in a band under the plot, in as many rows as it takes for none to overlap: each
  // label takes the first row where it fits after the labels already there (widths estimated from the
  // text, then measured by the browser in markLabelOverlaps).
  const LABEL_ROW = 12, LABEL_CHAR = 6, LABEL_GAP = 6;
  function labelRows(events, x, right) {
    const ends = [];
    return events.map((event) => {
      const width = event.action.length * LABEL_CHAR;
      const atEnd = x(event.at) + 2 + width > right;
      const left = atEnd ? x(event.at) - 2 - width : x(event.at) + 2;
      let row = ends.findIndex((end) => left >= end + LABEL_GAP);
      if (row < 0) { row = ends.length; ends.push(0); }
      ends[row] = left + width;
      return { row: row, atEnd: atEnd };
    });
  }

  function timelineChart(timeline, events, names, now) {
    const width = 800, plotHeight = 150, left = 34, right = 10, top = 10;
    const times = timeline.map((p) => p.at).concat(events.map((e) => e.at));
    const start = times.length ? Math.min(...times) : now - 60;
    const span = Math.max(now - start, 1);
    const x = (at) => left + ((at - start) / span) * (width - left - right);
    const y = (percent) => top + (1 - percent / 100) * (plotHeight - top);
    const placed = labelRows(events, x, width - right);
    const rows = Math.max(1, ...placed.map((p) => p.row + 1));
    const height = plotHeight + 6 + rows * LABEL_ROW;
    const chart = svg("svg", { class: "timeline", viewBox: `0 0 ${width} ${height}`, "data-label-rows": rows });
    for (const level of [0, 50, 100]) {
      chart.appendChild(svg("line", { x1: left, x2: width - right, y1: y(level), y2: y(level), stroke: "#e5e7eb" }));
      const label = svg("text", { x: 4, y: y(level) + 3 }); label.textContent = level + "%"; chart.appendChild(label);
    }
    events.forEach((event, i) => {
      const ex = x(event.at);
      const labelY = plotHeight + 6 + placed[i].row * LABEL_ROW + 9;
      chart.appendChild(svg("line", { x1: ex, x2: ex, y1: top, y2: labelY - 9, stroke: "#9ca3af", "stroke-dasharray": "3 3" }));
      const label = svg("text", { x: placed[i].atEnd ? ex - 2 : ex + 2, y: labelY, "data-event": event.action,
                                  "text-anchor": placed[i].atEnd ? "end" : "start", class: "event-label" });
      label.textContent = event.action;
      chart.appendChild(label);
    });
    names.forEach((name, i) => {
      let d = "";
      timeline.forEach((point, j) => {
        const weight = point.weights_percent[name] || 0;
        const next = j + 1 < timeline.length ? timeline[j + 1].at : now;
        d += (j === 0 ? "M" : "L") + x(point.at).toFixed(1) + "," + y(weight).toFixed(1);
        d += "L" + x(next).toFixed(1) + "," + y(weight).toFixed(1);
      });
      if (d) chart.appendChild(svg("path", { d: d, fill: "none", stroke: COLORS[i % COLORS.length], "stroke-width": 2 }));
    });
    return chart;
  }

  // Once on the page, the browser measures the labels: how many pairs overlap goes in an attribute.
  function markLabelOverlaps(chart) {
    const boxes = Array.from(chart.querySelectorAll("text.event-label")).map((t) => t.getBBox());
    let overlaps = 0;
    boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
      if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) overlaps += 1;
    }));
    chart.setAttribute("data-label-overlaps", String(overlaps));
  }

  // Live drift: per variant, the features with the highest PSI first (the drifted ones flagged).
  function driftSection(drift) {
    const box = el("div", { "data-field": "drift" });
    box.appendChild(el("h3", { text: `Input drift vs ${drift.reference.dataset || "reference"}` }));
    box.appendChild(el("div", { class: "muted", text:
      `one request in ${drift.sample_every} sketched · ${fmt(drift.sampled)} sampled · ${fmt(drift.dropped)} dropped` }));
    for (const [variant, report] of Object.entries(drift.variants)) {
      const features = Object.entries(report.features)
        .filter(([, f]) => f.live_count > 0)
        .sort((a, b) => (b[1].psi || 0) - (a[1].psi || 0))
        .slice(0, 8);
      box.appendChild(el("div", { text: `${variant}: ` + (report.drifted.length ? "drift in " + report.drifted.join(", ") : "no drift"),
                                  class: report.drifted.length ? "decision-rollback" : "decision-continue",
                                  "data-drift-variant": variant, "data-drifted": String(report.drifted.length) }));
      box.appendChild(table(["feature", "PSI", "KS", "JS", "n", "status"], features.map(([name, f]) =>
        [name, fmt(f.psi, 3), fmt(f.ks, 3), fmt(f.js, 3), fmt(f.live_count), f.status])));
    }
    return box;
  }

  // Predictions against the baseline's predictions on the training rows (labels, numbers or embeddings).
  function predictionsSection(p) {
    const box = el("div", { "data-field": "prediction-drift" });
    box.appendChild(el("h3", { text: "Prediction drift" }));
    if (p.state !== "ready") {
      box.appendChild(el("div", { class: "muted", text: p.state === "computing"
        ? "computing the reference of predictions…" : "not measured: " + (p.error || "no reference") }));
      return box;
    }
    box.appendChild(el("div", { class: "muted", text: `${p.output} (${p.kind}) against ${p.source}` }));
    const rows = Object.entries(p.variants).map(([variant, o]) => [variant, fmt(o.live_count),
      fmt(o.psi, 3), fmt(o.js, 3), fmt(o.cosine_distance, 3), fmt(o.mean_cosine, 3), o.status]);
    box.appendChild(table(["variant", "n", "PSI", "JS", "centroid dist.", "mean cos", "status"], rows));
    return box;
  }

  // Each guardrail's difference, candidate minus baseline in the harmful direction, with its
  // interval and margin: always-valid at the guardrail's level for the sequential policy (a stage
  // advances once the interval's upper end is inside the margin), a one-look 95% interval for
  // thresholds.
  function intervalsTable(numbers) {
    const sequential = numbers.alpha_per_guardrail !== undefined;
    const level = sequential ? `always-valid ${fmt((1 - numbers.alpha_per_guardrail) * 100, 1)}%` : "fixed-horizon 95%";
    const pp = (v) => (v >= 0 ? "+" : "") + (v * 100).toFixed(2) + " pp";
    const plain = (v) => fmt(v, 3);
    const rows = [];
    const add = (name, key, low, high, margin, show) => {
      if (numbers[key] === undefined || numbers[low] === undefined) return;
      rows.push([name, show(numbers[key]), `[${show(numbers[low])}, ${show(numbers[high])}]`,
                 margin !== null && numbers[margin] !== undefined ? show(numbers[margin]) : "–"]);
    };
    add("error rate, candidate − baseline", "errors_worse_by", "errors_worse_ci_low", "errors_worse_ci_high", "errors_margin", pp);
    add("latency, candidate ÷ baseline", "latency_worse_by", "latency_worse_ci_low", "latency_worse_ci_high", "latency_margin", plain);
    add("primary metric, how much worse", "primary_worse_by", "primary_worse_ci_low", "primary_worse_ci_high", "primary_margin", plain);
    add("error rate, candidate − baseline", "error_rate_diff", "error_rate_diff_ci_low", "error_rate_diff_ci_high", null, pp);
    const box = el("div", { "data-field": "intervals" });
    if (!rows.length) return box;
    box.appendChild(table(["guardrail", "estimate", level + " interval", "margin"], rows));
    const cells = box.querySelectorAll("tbody tr");
    cells.forEach((tr) => tr.cells[2].setAttribute("data-interval", tr.cells[0].textContent));
    return box;
  }

  // The verdict's numbers under plain headings, grouped by the words in their keys (the keys change
  // as policies gain checks; a key no group knows still shows, under "Other numbers").
  const GROUPS = [
    ["Errors", /(^|_)errors?(_|$)/],
    ["Latency", /(^|_)(latency|p50|p95|p99|slow)(_|$)|_ms$/],
    ["Primary metric", /(^|_)(primary|conversions?|outcome|outcomes|lift)(_|$)/],
    ["Traffic split (sample ratio)", /(^|_)(srm|split|share|n)(_|$)/],
    ["Test settings", /(^|_)(alpha|beta|mixture|mde)(_|$)/],
  ];
  const WORDS = { diff: "difference", ci: "interval", p: "p-value", n: "requests", ms: "(ms)", rate: "rate",
                  srm: "", primary: "", error: "", errors: "", latency: "" };
  function plainName(key) {
    const words = key.split("_").map((w) => (w in WORDS ? WORDS[w] : w)).filter((w) => w);
    return words.join(" ") || key;
  }
  function verdictNumbers(numbers) {
    const box = el("div", { "data-field": "verdict-numbers" });
    const grouped = new Map(GROUPS.map(([heading]) => [heading, []]).concat([["Other numbers", []]]));
    for (const [key, value] of Object.entries(numbers)) {
      const group = GROUPS.find(([, pattern]) => pattern.test(key));
      grouped.get(group ? group[0] : "Other numbers").push([key, value]);
    }
    for (const [heading, entries] of grouped) {
      if (!entries.length) continue;
      box.appendChild(el("h4", { text: heading, "data-group": heading }));
      box.appendChild(el("table", { class: "numbers" }, [el("tbody", {}, entries.map(([key, value]) =>
        el("tr", { "data-key": key, title: key }, [el("td", { text: plainName(key) }), el("td", { text: fmt(value, 4) })])))]));
    }
    return box;
  }

  function deploymentCard(item, now) {
    const s = item.status;
    const names = Object.keys(s.variants);
    const card = el("section", { class: "card", id: "deployment-" + s.name, "data-name": s.name });
    card.appendChild(el("h2", {}, [
      document.createTextNode(s.name + " "),
      el("span", { class: "phase " + s.phase, "data-field": "phase", text: s.phase }),
    ]));
    card.appendChild(el("div", { class: "muted", text:
      `${s.strategy} · baseline ${s.baseline} → candidate ${s.candidate} · stage ${s.stage}` +
      (s.reason ? ` · ${s.reason}` : "") }));

    const left = el("div"), right = el("div");
    left.appendChild(el("h3", { text: "Rollout timeline (weight %)" }));
    left.appendChild(timelineChart(item.timeline, item.events, names, now));
    left.appendChild(el("div", { class: "legend" }, names.map((n, i) =>
      el("span", {}, [el("i", { style: "background:" + COLORS[i % COLORS.length] }), document.createTextNode(n)]))));
    left.appendChild(el("h3", { text: "Variants" }));
    const rows = names.map((n) => {
      const v = s.variants[n];
      return [n, `${v.model_name} v${v.model_version}`, fmt(v.weight_percent, 2), fmt(v.requests), fmt(v.errors),
              fmt(v.error_rate * 100, 2), fmt(v.p50_ms, 2), fmt(v.p99_ms, 2), fmt(v.outcomes.n)];
    });
    const variants = table(["variant", "model", "weight %", "requests", "errors", "error %", "p50 ms", "p99 ms", "outcomes"], rows,
                           { "data-field": "variants" });
    names.forEach((n, i) => {
      const cells = variants.tBodies[0].rows[i].cells;
      cells[3].setAttribute("data-requests", String(s.variants[n].requests));
      cells[3].setAttribute("data-variant", n);
    });
    left.appendChild(variants);
    const generative = names.filter((n) => s.variants[n].llm);
    if (generative.length) {
      // a generative variant's LLM metrics, by their guardrail names
      left.appendChild(el("h3", { text: "LLM" }));
      const llmRows = generative.map((n) => {
        const m = s.variants[n].llm;
        const pct = (x) => fmt(x === undefined ? x : x * 100, 2);
        return [n, fmt(m.ttft_ms, 1), fmt(m.ttft_p99_ms, 1), fmt(m.inter_token_ms, 1), fmt(m.output_tokens_per_s, 1),
                fmt(m.tokens_per_request, 1), fmt(m.cost_per_1k_tokens, 4), pct(m.empty_answer_rate),
                pct(m.timeout_rate), pct(m.error_rate)];
      });
      left.appendChild(table(["variant", "ttft p50 ms", "ttft p99 ms", "inter-token ms", "tokens/s", "tokens/req",
                              "cost/1k tok", "empty %", "timeout %", "error %"], llmRows, { "data-field": "llm" }));
    }

    right.appendChild(el("h3", { text: "Verdict" }));
    if (s.verdict) {
      // a finished rollout's last verdict is history (a hand rollback may follow a "promote")
      const ended = ["promoted", "completed", "rolled_back", "halted"].includes(s.phase);
      const said = ended ? `last verdict before it was ${s.phase.replace("_", " ")}: ${s.verdict.decision}` : s.verdict.decision;
      right.appendChild(el("div", { class: ended ? "muted" : "decision-" + s.verdict.decision, "data-field": "verdict", text: said }));
      if (s.verdict.reasons.length) right.appendChild(el("div", { class: "muted", text: s.verdict.reasons.join("; ") }));
      right.appendChild(intervalsTable(s.verdict.numbers));
      right.appendChild(verdictNumbers(s.verdict.numbers));
    } else {
      right.appendChild(el("div", { class: "muted", "data-field": "verdict", text: "no verdict yet" }));
    }
    right.appendChild(el("h3", { text: "Shadow" }));
    const shadow = Object.entries(s.shadow).filter(([, v]) => v !== null);
    right.appendChild(table(["", "value"], shadow.map(([k, v]) => [k, fmt(v, 4)]), { "data-field": "shadow" }));
    if (s.drift) left.appendChild(driftSection(s.drift));
    if (s.drift && s.drift.predictions) left.appendChild(predictionsSection(s.drift.predictions));
    right.appendChild(el("h3", { text: "Audit log" }));
    right.appendChild(el("ol", { class: "events", "data-field": "events" }, item.events.slice().reverse().map((e) =>
      el("li", { text: `${time(e.at)} ${e.action} by ${e.actor}${e.reason ? ": " + e.reason : ""}` }))));

    card.appendChild(el("div", { class: "grid" }, [left, right]));
    return card;
  }

  function render(data) {
    const main = document.getElementById("deployments");
    main.replaceChildren(...(data.deployments.length
      ? data.deployments.map((item) => deploymentCard(item, data.now))
      : [el("p", { class: "muted", text: "No deployments are served here yet." })]));
    main.querySelectorAll("svg.timeline").forEach(markLabelOverlaps);
    const updated = document.getElementById("updated");
    updated.textContent = "updated " + time(data.now);
    updated.setAttribute("data-now", String(data.now));
  }

  async function poll() {
    try {
      const response = await fetch("/dashboard/data", {
        headers: token ? { Authorization: "Bearer " + token } : {},
        cache: "no-store",
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        reportError(`GET /dashboard/data: ${response.status} ${body.detail || ""}`.trim());
      } else {
        render(await response.json());
      }
    } catch (e) {
      reportError("GET /dashboard/data failed: " + e);
    }
    window.setTimeout(poll, POLL_MS);
  }
  poll();
})();
