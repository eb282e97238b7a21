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
EXPERIMENT = "quickstart-llm"


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


LLM_STAGES: list[tuple[str, Stage]] = [
    ("train and register a tiny language model", stage_build),
    ("serve it with OpenAI-compatible endpoints and traces", stage_serve),
]
