"""Generation throughput of `lockgate serve` on the project's tiny causal LM, against the same server
answering one request at a time and against the model's own batched `generate` in this process.

Workload: 16 prompts (lines of lockgate/llm/corpus.txt), `max_tokens` 64, sampling at
temperature 1 with a seed per request. Served: 16 concurrent streaming clients
(`/v1/completions`, `stream: true`, `stream_options.include_usage`) on keep-alive connections,
each sending --requests requests one after another; TTFT is the time from sending a request to
its first text chunk.
Sequential: one client, the same requests one after another. In-process: `model.generate` on the
16 prompts at once (left-padded, the same 64 new tokens, no server). Tokens are the completion
tokens the server's `usage` reports (and, in process, the tokens before each row's end). The three
take turns --rounds times (3 by default) and each figure is the median of its rounds, so that they
share the machine's load. Gateway overhead: a second `lockgate serve --deployment` whose variants
are `upstream:` the first server, against the first server directly, one request at a time
alternating (:func:`lockgate.llm.overhead.measure_gateway_overhead`, one token per answer),
median difference. Prompt A/B: :func:`lockgate.rollout.prompt_ab.prompt_ab`, 400 simulated A/B
tests where users give prompt B a thumbs up 10% more often (0.55 vs 0.50) through the real router,
controller and policy, and 400 A/A tests. Targets (issue 21): served >= 3 x sequential, served >=
0.8 x in-process, gateway overhead p50 <= 1 ms, prompt_ab.correct >= 0.95, aa_false_winner <= 0.05.
Writes benchmarks/results/llm.json. Usage:
    python benchmarks/bench_llm.py [--rounds 3] [--requests 4] [--model FOLDER] [--ab-runs 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from lockgate.optimize.cpu import cpu_info

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "llm.json"
CLIENTS = 16
MAX_TOKENS = 64
SERVER_OPTIONS: list[str] = []
TARGETS = {"served_over_sequential": 3.0, "served_over_inprocess": 0.8}


def prompts() -> list[str]:
    from lockgate.llm.tiny import CORPUS

    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [lines[i % len(lines)][:60] for i in range(CLIENTS)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(arguments: list[str], port: int) -> subprocess.Popen[bytes]:
    script = Path(sys.executable).parent / "lockgate"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "lockgate.cli.main"]
    command += ["serve", *arguments, "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise SystemExit(f"lockgate serve exited {proc.returncode}: {proc.stderr.read().decode()[-800:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("lockgate serve did not become ready in 120 s")


class Connection:
    """One keep-alive HTTP/1.1 connection that reads a streamed answer with as little work as a
    client can do (no JSON per event): on 2 cores a heavy client would take CPU from the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def complete(self, prompt: str, seed: int) -> tuple[int, float]:
        """Stream one completion; its completion tokens and its time to first token (s)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        body = json.dumps(
            {
                "model": "tiny",
                "prompt": prompt,
                "max_tokens": MAX_TOKENS,
                "temperature": 1.0,
                "seed": seed,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        ).encode()
        head = (
            f"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sent = time.perf_counter()
        self.writer.write(head + body)
        status = await self.reader.readuntil(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"the server answered {status[:200]!r}")
        first: float | None = None
        received = bytearray()
        while True:  # chunked transfer encoding
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            data = await self.reader.readexactly(size + 2)
            if size == 0:
                break
            if first is None:
                first = time.perf_counter() - sent
            received += data[:-2]
        events = bytes(received).split(b"\n\n")
        usage = next(json.loads(e[6:])["usage"] for e in reversed(events) if b'"usage"' in e)
        return int(usage["completion_tokens"]), first if first is not None else time.perf_counter() - sent

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def served(
    port: int, texts: list[str], requests: int, *, concurrent: bool
) -> tuple[float, list[float]]:
    """Tokens per second over all requests, and every request's TTFT (s)."""
    connections = [Connection(port) for _ in range(CLIENTS)]

    async def one_client(index: int) -> list[tuple[int, float]]:
        return [await connections[index].complete(texts[index], 1000 * r + index) for r in range(requests)]

    started = time.perf_counter()
    try:
        if concurrent:
            results = [
                item for part in await asyncio.gather(*map(one_client, range(CLIENTS))) for item in part
            ]
        else:
            results = [item for index in range(CLIENTS) for item in await one_client(index)]
    finally:
        for connection in connections:
            connection.close()
    elapsed = time.perf_counter() - started
    return sum(tokens for tokens, _ in results) / elapsed, [ttft for _, ttft in results]


def inprocess(model_dir: Path, texts: list[str], requests: int) -> float:
    """The model's own batched generate on the same prompts: tokens per second."""
    import torch

    from lockgate.llm.kv_batch import left_padded
    from lockgate.llm.model import CausalModel

    model = CausalModel(model_dir)
    model.load()
    encoded = [model.encode(text) for text in texts]
    pad = model.eos_token_id or 0
    input_ids, mask = left_padded(encoded, pad)
    longest = input_ids.shape[1]
    tokens, started = 0, time.perf_counter()
    for r in range(requests):
        torch.manual_seed(r)
        with torch.inference_mode():
            out = model.model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=MAX_TOKENS,
                do_sample=True,
                temperature=1.0,
                top_p=1.0,
                top_k=0,
                pad_token_id=pad,
            )
        for row in out[:, longest:].tolist():
            tokens += row.index(pad) + 1 if pad in row else len(row)
    return tokens / (time.perf_counter() - started)


def gateway_overhead(port: int, work: Path) -> dict[str, float]:
    """A lockgate gateway (deployment ``gw``, both variants ``upstream:tiny``) in front of the server
    on ``port``, against that server directly."""
    import yaml

    from lockgate.llm.overhead import measure_gateway_overhead

    spec = {
        "name": "gw",
        "variants": {"stable": "upstream:tiny", "next": "upstream:tiny"},
        "baseline": "stable",
        "candidate": "next",
        "strategy": {"type": "canary", "steps": [{"weight_percent": 50, "min_requests": 1_000_000}]},
        "upstreams": {
            "allowed_hosts": [f"127.0.0.1:{port}"],
            "endpoints": {"tiny": {"url": f"http://127.0.0.1:{port}/v1", "model": "tiny"}},
        },
    }
    path = work / "gateway.yaml"
    path.write_text(yaml.safe_dump(spec))
    gateway_port = free_port()
    store = f"sqlite:///{work / 'rollouts.db'}"
    gateway = start_server(["--deployment", str(path), "--store", store], gateway_port)
    try:
        result = measure_gateway_overhead(
            f"http://127.0.0.1:{port}",
            "tiny",
            f"http://127.0.0.1:{gateway_port}",
            "gw",
            requests=300,
            warmup=30,
        )
    finally:
        gateway.terminate()
        gateway.wait(30)
    return {key: round(float(value), 3) for key, value in result.to_dict().items()}


def prompt_ab_rates(runs: int) -> dict[str, Any]:
    from lockgate.rollout.prompt_ab import prompt_ab

    started = time.perf_counter()
    result = prompt_ab(runs=runs, workers=max(1, min(2, os.cpu_count() or 1)))
    return {
        "correct": result.correct,
        "aa_false_winner": result.aa_false_winner,
        "runs": result.runs,
        "rate_a": result.rate_a,
        "rate_b": result.rate_b,
        "median_decision_s": result.median_decision_s,
        "seconds": round(time.perf_counter() - started, 1),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=4, help="requests per client per round")
    parser.add_argument("--model", type=Path, default=None, help="a save_pretrained folder (default: build)")
    parser.add_argument("--ab-runs", type=int, default=400, help="simulated A/B tests (and as many A/A)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = args.model
    if model is None:
        from lockgate.llm.tiny import build_tiny_model

        print("building the tiny model (a few seconds)")
        model = build_tiny_model(Path(tempfile.mkdtemp(prefix="lockgate-bench-llm-")) / "tiny")
    texts = prompts()
    port = free_port()
    proc = start_server([str(model), "--name", "tiny", *SERVER_OPTIONS], port)
    rates: dict[str, list[float]] = {"served": [], "sequential": [], "inprocess": []}
    ttfts: list[float] = []
    try:
        asyncio.run(served(port, texts, 1, concurrent=True))  # warm-up: first batches, allocator
        inprocess(model, texts, 1)
        for round_ in range(args.rounds):
            rate, ttft = asyncio.run(served(port, texts, args.requests, concurrent=True))
            rates["served"].append(rate)
            ttfts += ttft
            rates["sequential"].append(asyncio.run(served(port, texts, 1, concurrent=False))[0])
            rates["inprocess"].append(inprocess(model, texts, args.requests))
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} tok/s" for k, v in rates.items()))
        print("gateway overhead: lockgate in front of the server against the server directly")
        overhead = gateway_overhead(port, Path(tempfile.mkdtemp(prefix="lockgate-bench-gw-")))
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"prompt A/B: {args.ab_runs} simulated tests each way")
    ab = prompt_ab_rates(args.ab_runs)
    medians = {key: statistics.median(values) for key, values in rates.items()}
    result: dict[str, Any] = {
        "served_tokens_per_s": round(medians["served"], 1),
        "sequential_tokens_per_s": round(medians["sequential"], 1),
        "inprocess_tokens_per_s": round(medians["inprocess"], 1),
        "served_over_sequential": round(medians["served"] / medians["sequential"], 3),
        "served_over_inprocess": round(medians["served"] / medians["inprocess"], 3),
        "ttft_p50_ms": round(1000 * percentile(ttfts, 0.5), 2),
        "ttft_p99_ms": round(1000 * percentile(ttfts, 0.99), 2),
        "gateway_overhead_ms_p50": overhead["overhead_ms_p50"],
        "gateway": overhead,
        "prompt_ab": ab,
        "rounds": args.rounds,
        "runs": {key: [round(v, 1) for v in values] for key, values in rates.items()},
        "clients": CLIENTS,
        "max_tokens": MAX_TOKENS,
        "requests_per_client": args.requests,
        "cpu": cpu_info().to_dict(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }
    result["targets"] = {
        key: {"target": target, "value": result[key], "met": result[key] >= target}
        for key, target in TARGETS.items()
    }
    for key, value, limit in (
        ("gateway_overhead_ms_p50", overhead["overhead_ms_p50"], 1.0),
        ("prompt_ab.aa_false_winner", ab["aa_false_winner"], 0.05),
    ):
        result["targets"][key] = {"target": f"<= {limit}", "value": value, "met": value <= limit}
    correct = ab["correct"]
    result["targets"]["prompt_ab.correct"] = {"target": 0.95, "value": correct, "met": correct >= 0.95}
    print(f"{'measure':<28}{'value':>14}")
    for key in (
        "served_tokens_per_s",
        "sequential_tokens_per_s",
        "inprocess_tokens_per_s",
        "ttft_p50_ms",
        "ttft_p99_ms",
    ):
        print(f"{key:<28}{result[key]:>14,.1f}")
    for key, target in result["targets"].items():
        verdict = "met" if target["met"] else "MISSED"
        bound = target["target"] if isinstance(target["target"], str) else f">= {target['target']}"
        print(f"{key:<28}{target['value']:>14.3f}  target {bound}  {verdict}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
