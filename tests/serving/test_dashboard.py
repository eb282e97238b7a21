"""The dashboard on a real server: its token, its data, and the page in a real headless Chromium.

Chromium is the Debian package, installed by ``scripts/install-chromium`` when missing (the test
skips only when it cannot be installed: not root, or no apt-get). The page records its own
errors (``window.onerror``, failed fetches) into ``#console-errors``, which the test reads from
Chromium's ``--dump-dom``. The screenshot is kept under the test's tmp_path and in
``build/dashboard.png``.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lockgate.rollout.sqlstore import SqlStore
from lockgate.serving.app import ServingApp
from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread
from tests.support import AUTH, TOKEN

pytestmark = [
    pytest.mark.integration,
    # the session's model fixtures include a pyfunc MLflow warns about on its first predict
    pytest.mark.filterwarnings("ignore:.*Add type hints to the `predict` method:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gateway(tmp_path: Path, logged_model: Any) -> Iterator[Any]:
    """A server with the admin API, a fast controller and live drift against the training data."""
    import pandas as pd

    from lockgate.monitor.reference import reference_from_frame

    config = ServeConfig("", admin_token=TOKEN, tick_s=0.05, follow_registry=False, allow_unverified=True)
    store = SqlStore(f"sqlite:///{tmp_path / 'rollouts.db'}")
    manager = build_deployments(config, store)
    train = pd.DataFrame(logged_model.features, columns=logged_model.columns)
    manager.drift_reference = reference_from_frame(train, dataset="cancer-train@1", digest="d1")
    manager.drift_sample_every = 1
    handle = run_server_in_thread(build_app(config=config, deployments=manager))
    yield handle
    handle.stop()
    store.close()


def _canary(url: str, models: dict[str, Path], logged_model: Any, n: int) -> dict[str, Any]:
    """Deploy a 50% canary that never finishes on its own, start it, send ``n`` requests."""
    spec = {
        "name": "churn",
        "variants": {"stable": str(models["good"]), "next": str(models["weak"])},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
        "analysis": {
            "policy": "sequential",
            "guardrails": {"latency": None},
        },  # latency noise must not decide
    }
    created = httpx.put(f"{url}/admin/deployments/churn", json=spec, headers=AUTH, timeout=60)
    assert created.status_code == 201, created.text
    started = httpx.post(f"{url}/admin/deployments/churn/start", json={"actor": "alice"}, headers=AUTH)
    assert started.status_code == 200, started.text
    with httpx.Client(timeout=30) as client:
        for i in range(n):
            rows = logged_model.features[(5 * i) % 560 : (5 * i) % 560 + 5].tolist()
            row = {"dataframe_split": {"columns": logged_model.columns, "data": rows}}
            answer = client.post(f"{url}/invocations", json=row, headers={"x-routing-key": f"user-{i}"})
            assert answer.status_code == 200, answer.text
    status: dict[str, Any] = httpx.get(f"{url}/admin/deployments/churn", headers=AUTH).json()
    assert sum(v["requests"] for v in status["variants"].values()) == n
    return status


def test_the_dashboard_is_off_without_an_admin_token() -> None:
    handle = run_server_in_thread(ServingApp())
    try:
        answer = httpx.get(f"{handle.url}/dashboard?token=anything")
        assert answer.status_code == 404
        assert "dashboard is off" in answer.json()["detail"]
        assert "LOCKGATE_ADMIN_TOKEN" in answer.json()["detail"]
    finally:
        handle.stop()


def test_the_dashboard_needs_the_admin_token(gateway: Any) -> None:
    url = gateway.url
    # a browser without the token gets a page that asks for it, not JSON (issue 20)
    for query, status, problem in (("", 401, "needs a bearer token"), ("?token=wrong", 403, "not valid")):
        asked = httpx.get(f"{url}/dashboard{query}")
        assert asked.status_code == status
        assert asked.headers["content-type"].startswith("text/html")
        assert problem in asked.text and '<form method="get" action="/dashboard">' in asked.text
        assert (
            'name="token"' in asked.text and "form-action 'self'" in asked.headers["content-security-policy"]
        )
        assert "wrong" not in asked.text  # the token tried is not echoed
    assert httpx.get(f"{url}/dashboard/data").json()["error"]  # the data stays JSON
    assert httpx.get(f"{url}/dashboard/data", headers={"authorization": "Bearer wrong"}).status_code == 403
    page = httpx.get(f"{url}/dashboard?token={TOKEN}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy  # nothing from elsewhere
    assert page.headers["referrer-policy"] == "no-referrer"
    assert httpx.get(f"{url}/dashboard", headers=AUTH).status_code == 200
    assert httpx.post(f"{url}/dashboard", headers=AUTH).status_code == 405
    assert httpx.get(f"{url}/dashboard/nope", headers=AUTH).status_code == 404


def test_the_openapi_document_describes_the_dashboard() -> None:
    from openapi_spec_validator import validate

    from lockgate.serving.openapi import openapi_document

    doc = openapi_document()
    validate(doc)
    for path in ("/dashboard", "/dashboard/data"):
        assert doc["paths"][path]["get"]["security"] == [{"adminToken": []}]


def test_the_data_has_the_status_the_events_and_the_weights_over_time(
    gateway: Any, models: dict[str, Path], logged_model: Any
) -> None:
    status = _canary(gateway.url, models, logged_model, 20)
    data = httpx.get(f"{gateway.url}/dashboard/data", headers=AUTH).json()
    [churn] = data["deployments"]
    assert churn["status"]["name"] == "churn" and churn["status"]["phase"] == status["phase"]
    assert churn["status"]["variants"]["stable"]["requests"] == status["variants"]["stable"]["requests"]
    assert [e["action"] for e in churn["events"]][:2] == ["deploy", "start"]
    weights = [point["weights_percent"] for point in churn["timeline"]]
    assert weights[0] == {"stable": 100.0, "next": 0.0}
    assert weights[-1] == {"stable": 50.0, "next": 50.0}
    drift = churn["status"]["drift"]
    assert drift["reference"]["dataset"] == "cancer-train@1"
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'lockgate_rollout_weight_ratio{deployment="churn",variant="next"} 0.5' in metrics
    if drift["sampled"]:  # the controller folds the samples a tick after the requests
        assert 'lockgate_drift_psi{deployment="churn",feature="mean radius",variant="stable"}' in metrics
        assert 'lockgate_drift_sampled{deployment="churn"}' in metrics


def _chromium() -> str:
    found = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install-chromium")], capture_output=True, text=True, timeout=600
    )
    if found.returncode == 3:
        pytest.skip(f"no headless Chromium: {found.stderr.strip()}")
    assert found.returncode == 0, found.stderr
    return found.stdout.strip().splitlines()[-1]


def _browse(browser: str, profile: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--window-size=1280,900",
            "--virtual-time-budget=4000",
            *extra,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_the_page_shows_the_live_numbers_in_a_real_browser(
    gateway: Any, models: dict[str, Path], logged_model: Any, tmp_path: Path
) -> None:
    browser = _chromium()
    status = _canary(gateway.url, models, logged_model, 60)
    # four more events within a second of deploy and start: their timeline labels must not overlap
    for command in ("pause", "resume", "pause", "resume"):
        moved = httpx.post(
            f"{gateway.url}/admin/deployments/churn/{command}", json={"actor": "bob"}, headers=AUTH
        )
        assert moved.status_code == 200, moved.text
    page = f"{gateway.url}/dashboard?token={TOKEN}"
    dumped = _browse(browser, tmp_path / "profile-dom", page, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert 'id="deployment-churn"' in dom, dom[-3000:]
    shown = dict(re.findall(r'data-requests="(\d+)" data-variant="(\w+)"', dom))
    served = {name: str(v["requests"]) for name, v in status["variants"].items()}
    assert {variant: count for count, variant in shown.items()} == served
    assert all(int(count) > 0 for count in served.values())
    assert f'data-field="phase">{status["phase"]}<' in dom
    assert 'data-field="drift"' in dom and "Input drift vs cancer-train@1" in dom
    # the A/B statistics with their intervals: the error-rate difference, candidate minus baseline
    numbers = httpx.get(f"{gateway.url}/admin/deployments/churn", headers=AUTH).json()["verdict"]["numbers"]
    assert "errors_worse_ci_low" in numbers and "always-valid" in dom
    interval = re.search(
        r'data-interval="error rate, candidate − baseline">\[([-+]\d+\.\d+) pp, ([-+]\d+\.\d+) pp\]<', dom
    )
    assert interval is not None, dom[dom.find('data-field="intervals"') :][:2000]
    assert float(interval.group(1)) <= 0 <= float(interval.group(2))  # no errors in either arm yet
    assert 'data-field="prediction-drift"' in dom
    # the verdict's numbers under plain headings, raw keys only in the hover title
    verdict = dom[dom.find('data-field="verdict-numbers"') :]
    verdict = verdict[: verdict.find("</div>")]
    headings = re.findall(r'<h4 data-group="([^"]+)">', verdict)
    assert {"Errors", "Traffic split (sample ratio)"} <= set(headings), verdict[:2000]
    keys = re.findall(r'<tr data-key="(\w+)" title="\w+"><td>([^<]+)</td>', verdict)
    assert len(keys) == len(numbers) and {key for key, _ in keys} == set(numbers)
    assert not [label for key, label in keys if "_" in label], keys  # no raw key as a label
    errors_group = verdict[
        verdict.find('data-group="Errors"') : verdict.find("</table>", verdict.find('data-group="Errors"'))
    ]
    assert 'data-key="errors_worse_ci_low"' in errors_group
    # every event's label on a row where no other label overlaps it (boxes measured by the browser)
    chart = re.search(r'<svg class="timeline"[^>]*>', dom)
    assert chart is not None
    assert 'data-label-overlaps="0"' in chart.group(0), chart.group(0)
    # the events came close together: on one row, some labels would cover their neighbours
    placed = sorted(
        (float(x), name) for x, name in re.findall(r'<text x="([\d.]+)" y="[\d.]+" data-event="(\w+)"', dom)
    )
    assert any(b[0] - a[0] < 6 * len(a[1]) for a, b in itertools.pairwise(placed)), placed
    rows = re.search(r'data-label-rows="(\d+)"', chart.group(0))
    assert rows is not None and int(rows.group(1)) >= 2
    labels = re.findall(r'data-event="(\w+)"', dom)
    assert labels.count("pause") == 2 and labels.count("resume") == 2
    errors = re.search(r'<pre id="console-errors">(.*?)</pre>', dom, re.S)
    assert errors is not None and errors.group(1).strip() == "", errors.group(1) if errors else dom
    assert "Uncaught" not in dumped.stderr

    screenshot = tmp_path / "dashboard.png"
    shot = _browse(browser, tmp_path / "profile-shot", page, f"--screenshot={screenshot}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    kept = ROOT / "build" / "dashboard.png"
    kept.parent.mkdir(exist_ok=True)
    shutil.copyfile(screenshot, kept)
    print(f"dashboard screenshot: {screenshot} (a copy in {kept})")
