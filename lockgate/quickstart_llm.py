"""``lockgate quickstart --llm``: the LLM half of the lifecycle on the project's own tiny model.

The same :class:`~lockgate.quickstart.Context` and stage functions as the classic quickstart: build
and register a small causal language model (trained for a few seconds on text lockgate ships, no
hub), serve it with OpenAI-compatible endpoints and traces, version two prompts, gate the new
prompt offline against the champion, and decide an A/B between the two prompt versions on live
traffic from users' feedback.
"""

from __future__ import annotations

import time
from typing import Any

from lockgate.quickstart import Context, Stage

__all__ = ["LLM_STAGES", "MODEL_NAME"]

MODEL_NAME = "support-lm"
PROMPT_NAME = "support-answer"
EXPERIMENT = "quickstart-llm"

# The same files as examples/llm/ (a test keeps them equal): the quickstart runs from an installed
# package, where the repository's examples folder is not.
PROMPT_V1 = "Answer: {{input}}"
PROMPT_V2 = "You are {{product}} support. Answer in one line: {{input}}"
QUESTIONS = {
    "What is a canary?": "A canary is a new model version that answers a small share of live traffic first.",
    "How does a rollout end?": (
        "It is promoted when the evidence is strong enough, or rolled back when a guardrail fails."
    ),
    "What does the gate check?": (
        "The gate compares the candidate with the champion on held-out data, with paired tests."
    ),
    "Where are models stored?": (
        "Models are registered in MLflow, with a checksum that the server verifies before loading."
    ),
    "What decides the A/B test between two prompts?": (
        "Feedback from users joins the request that earned it, and decides the A/B test between two prompts."
    ),
    "How are prompts versioned?": (
        "Prompts are versioned like models, and a prompt version can be rolled out like a model version."
    ),
}
GATE_POLICY = """\
version: 1
against: champion
seed: 0
checks:
  generation:
    eval_set: eval.jsonl
    model: support-lm@champion
    max_tokens: 24
    stop: ["\\n"]
    chat: true
    metrics: [exact_match, rouge_l]
    thresholds: {rouge_l: 0.05}
    margin: 0.1
"""


def eval_lines() -> list[str]:
    """The evaluation set as JSON lines (examples/llm/eval.jsonl)."""
    import json

    return [
        json.dumps({"variables": {"input": question, "product": "lockgate"}, "reference": reference})
        for question, reference in QUESTIONS.items()
    ]


def stage_build(ctx: Context) -> None:
    """Train the tiny GPT-2 (a few seconds), log it to MLflow and register it as champion."""
    import mlflow

    from lockgate.llm.tiny import build_tiny_model
    from lockgate.tracking.connection import connect
    from lockgate.tracking.registry import register

    _quiet_libraries()
    folder = build_tiny_model(ctx.settings.home / "llm" / "tiny-gpt2", seed=ctx.seed)
    ctx.extras["llm_folder"] = folder
    connection = connect(ctx.settings)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    with mlflow.start_run(experiment_id=connection.experiment_id(EXPERIMENT), run_name="tiny-gpt2") as run:
        mlflow.log_params({"layers": 2, "width": 64, "steps": 150, "seed": ctx.seed})
        mlflow.transformers.log_model(
            {"model": model, "tokenizer": tokenizer},
            name="model",
            task="text-generation",
            pip_requirements=["transformers", "torch"],
        )
    version = register(
        connection, run.info.run_id, MODEL_NAME, alias="champion", description="quickstart --llm"
    )
    ctx.extras["llm_version"] = version
    ctx.console.print(
        f"  trained a 2-layer GPT-2 on lockgate/llm/corpus.txt; registered [bold]{version.ref}[/] as "
        f"[green]champion[/], sha256 {str(version.artifact_sha256)[:12]}"
    )


def _quiet_libraries() -> None:
    """No progress bars or hub warnings from transformers and MLflow in the walk-through's output."""
    import logging

    import transformers

    transformers.utils.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    logging.getLogger("mlflow.transformers").setLevel(logging.ERROR)


def stage_serve(ctx: Context) -> None:
    """Serve the champion with OpenAI-compatible endpoints; ask it with the ``openai`` client when it
    is installed (plain HTTP otherwise), streamed and not; every generation traced to MLflow."""
    from lockgate.llm.traces import list_traces
    from lockgate.serving import build_app, resolve_source, run_server_in_thread
    from lockgate.serving.server import ServeConfig
    from lockgate.tracking.connection import connect

    uri = f"models:/{MODEL_NAME}@champion"
    config = ServeConfig(uri, trace_sample=1.0)
    question = "What is a canary?"
    with run_server_in_thread(build_app(resolve_source(uri, name=MODEL_NAME), config=config)) as handle:
        started = time.perf_counter()
        answer, streamed = _ask(handle.url, question)
        elapsed = time.perf_counter() - started
    ctx.console.print(f"  served {uri} (sha256 verified) at {handle.url}/v1: POST /v1/chat/completions")
    ctx.console.print(f"  asked {question!r}: {answer.strip()[:70]!r}")
    ctx.console.print(f"  streamed the same question in {streamed} chunks; both answers in {elapsed:.2f} s")
    rows = list_traces(connect(ctx.settings), MODEL_NAME, limit=5)
    ctx.extras["llm_traces"] = len(rows)
    if rows:
        a = rows[0].attributes
        ctx.console.print(
            f"  {len(rows)} generations recorded as MLflow traces (newest: {a.get('prompt_tokens')} "
            f"tokens in, {a.get('completion_tokens')} out, first token after {a.get('ttft_ms')} ms); "
            f"`lockgate traces {MODEL_NAME}` lists them"
        )


def _ask(url: str, question: str) -> tuple[str, int]:
    """One chat completion and one streamed one: the first answer, and the stream's chunk count."""
    messages = [{"role": "user", "content": question}]
    try:
        import openai
    except ImportError:
        return _ask_http(url, messages)
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused")
    reply = client.chat.completions.create(model=MODEL_NAME, messages=messages, max_tokens=24, temperature=0)  # type: ignore[arg-type]
    chunks = client.chat.completions.create(
        model=MODEL_NAME,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=24,
        temperature=0,
        stream=True,
    )
    return reply.choices[0].message.content or "", sum(1 for _ in chunks)


def _ask_http(url: str, messages: list[dict[str, str]]) -> tuple[str, int]:
    import httpx

    body: dict[str, Any] = {"model": MODEL_NAME, "messages": messages, "max_tokens": 24, "temperature": 0}
    reply = httpx.post(url + "/v1/chat/completions", json=body, timeout=60).raise_for_status().json()
    streamed = httpx.post(url + "/v1/chat/completions", json={**body, "stream": True}, timeout=60)
    chunks = [line for line in streamed.text.splitlines() if line.startswith("data: {")]
    return str(reply["choices"][0]["message"]["content"]), len(chunks)


def stage_prompts(ctx: Context) -> None:
    """Register two prompt versions and gate the new one offline against the champion prompt."""
    from lockgate.cli.validate import report_table
    from lockgate.gates.policy import parse_policy
    from lockgate.llm.gate import validate_generation
    from lockgate.prompts.gate import record_prompt_report
    from lockgate.prompts.registry import register_prompt
    from lockgate.tracking.connection import connect

    connection = connect(ctx.settings)
    first = register_prompt(connection, PROMPT_NAME, PROMPT_V1, message="plain", alias="champion")
    second = register_prompt(connection, PROMPT_NAME, PROMPT_V2, message="names the product, one line")
    folder = ctx.settings.home / "llm"
    (folder / "eval.jsonl").write_text("\n".join(eval_lines()) + "\n", encoding="utf-8")
    ctx.console.print(
        f"  registered prompts {first.ref} (champion) and {second.ref}; {len(QUESTIONS)} eval examples"
    )
    policy = parse_policy(GATE_POLICY, source="quickstart --llm policy")
    report = validate_generation(
        connection, f"prompts:/{PROMPT_NAME}/{second.version}", policy, base_dir=folder
    )
    record_prompt_report(connection, report)
    ctx.console.print(report_table(report))
    word = "[bold green]passes[/]" if report.passed else "[bold red]fails[/]"
    ctx.console.print(f"  {second.ref} {word} the generation gate against the champion prompt {first.ref}")
    ctx.extras["llm_gate_passed"] = report.passed


def stage_ab(ctx: Context, max_requests: int = 4000) -> None:
    """A/B the two prompt versions on live traffic: simulated users give prompt B's answers a thumbs
    up more often (0.7 against 0.3); the sequential test on /feedback decides."""
    import random
    import secrets

    import httpx

    from lockgate.rollout.sqlstore import SqlStore
    from lockgate.serving.client import AdminClient
    from lockgate.serving.server import ServeConfig, build_app, build_deployments, run_server_in_thread

    model = f"models:/{MODEL_NAME}@champion"
    price = {"price_per_1k_tokens": 0.002}
    spec = {
        "name": "support",
        "variants": {"prompt-a": model, "prompt-b": model},
        "baseline": "prompt-a",
        "candidate": "prompt-b",
        "llm": {
            "prompt-a": {"prompt": f"{PROMPT_NAME}@1", **price},
            "prompt-b": {"prompt": f"{PROMPT_NAME}@2", "variables": {"product": "lockgate"}, **price},
        },
        "strategy": {"type": "ab", "split_percent": 50, "min_requests": 100, "max_duration_s": 600},
        # A demo's scale: judged from 40 thumbs per arm, on thumbs only (a shared laptop's latency
        # noise must not decide), with a guardrail on empty answers
        "analysis": {
            "policy": "sequential",
            "min_samples": 40,
            "guardrails": {"latency": None, "errors": None},
            "primary": {"metric": "conversions", "direction": "increase", "scale": 0.2},
            "metrics": [{"name": "empty_answer_rate", "max": 0.5}],
        },
    }
    token = secrets.token_hex(16)
    store = SqlStore(f"sqlite:///{ctx.settings.home / 'llm' / 'rollouts.db'}")
    config = ServeConfig("", admin_token=token, tick_s=0.05, follow_registry=False, trace_sample=0.1)
    rng = random.Random(ctx.seed)  # noqa: S311 (simulated users, not secrets)
    questions = list(QUESTIONS)
    sent = 0
    app = build_app(config=config, deployments=build_deployments(config, store))
    with (
        run_server_in_thread(app) as handle,
        AdminClient(handle.url, token=token) as admin,
        httpx.Client(base_url=handle.url, timeout=60) as client,
    ):
        admin.deploy(spec, actor="quickstart")
        status = admin.command("support", "start", actor="quickstart", reason="quickstart --llm A/B")
        ctx.console.print(
            f"  A/B of {PROMPT_NAME}@1 against @2 on {model} at {handle.url}: 50/50 by routing key, "
            "decided by thumbs up/down sent to /v2/models/support/feedback"
        )
        while status["phase"] == "experimenting" and sent < max_requests:
            body = {
                "model": "support",
                "messages": [{"role": "user", "content": rng.choice(questions)}],
                "max_tokens": 8,
                "temperature": 0,
            }
            headers = {"x-routing-key": f"user-{rng.randrange(500)}"}
            answer = client.post("/v1/chat/completions", json=body, headers=headers).raise_for_status()
            sent += 1
            liked = rng.random() < (0.7 if answer.headers["x-lockgate-variant"] == "prompt-b" else 0.3)
            thumbs = {"request_id": answer.headers["x-request-id"], "label": int(liked)}
            client.post("/v2/models/support/feedback", json=thumbs).raise_for_status()
            if sent % 50 == 0:
                status = admin.status("support")
        status = admin.status("support")
    store.close()
    variants = status["variants"]
    rates = {name: variants[name]["conversions"]["rate"] for name in ("prompt-a", "prompt-b")}
    ctx.extras["llm_ab_phase"] = status["phase"]
    ctx.console.print(
        f"  {sent} chats from 500 sticky users; thumbs-up rate prompt-a {rates['prompt-a']:.2f}, "
        f"prompt-b {rates['prompt-b']:.2f}"
    )
    llm = variants["prompt-b"].get("llm", {})
    ctx.console.print(
        f"  prompt-b: first token after {llm.get('ttft_ms', 0):.1f} ms (median), "
        f"{llm.get('completion_tokens', 0):.1f} tokens an answer, "
        f"{llm.get('cost_per_1k_tokens', 0):.4g} per 1,000 tokens at the spec's price"
    )
    ctx.console.print(f"  [bold]{status['phase']}[/]: {status.get('reason', '')}")


LLM_STAGES: list[tuple[str, Stage]] = [
    ("train and register a tiny language model", stage_build),
    ("serve it with OpenAI-compatible endpoints and traces", stage_serve),
    ("version two prompts and gate the new one offline", stage_prompts),
    ("A/B the prompt versions on live feedback", stage_ab),
]
