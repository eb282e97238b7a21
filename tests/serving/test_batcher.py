"""The micro-batcher: requests share model calls and each gets its own rows back."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np
import pytest

from lockgate.errors import ServiceUnavailable
from lockgate.serving.batcher import Batcher, BatchPolicy, split_outputs


class _SlowDouble:
    """Doubles its input; blocks until released so requests pile up behind it."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = threading.Event()

    def __call__(self, inputs: Any) -> dict[str, np.ndarray]:
        self.release.wait(5)
        self.calls.append(int(inputs.shape[0]))
        if np.any(inputs < 0):
            raise ValueError("negative input")
        return {"predictions": inputs[:, 0] * 2}


@pytest.mark.parametrize("is_inline", [False, True])
def test_concurrent_requests_are_batched_and_answered_in_order(is_inline: bool) -> None:
    model = _SlowDouble()

    async def main() -> list[np.ndarray]:
        batcher = Batcher(model, BatchPolicy(max_batch_size=8, is_inline=is_inline))
        batcher.start()
        first = asyncio.ensure_future(batcher.submit(np.array([[100.0]]), 1))
        await asyncio.sleep(0.01)  # the first request is in the model; 10 more queue behind it
        rest = [batcher.submit(np.array([[float(i)], [float(i) + 0.5]]), 2) for i in range(10)]
        tasks = [asyncio.ensure_future(r) for r in rest]
        await asyncio.sleep(0.01)
        model.release.set()
        results = await asyncio.gather(first, *tasks)
        await batcher.stop()
        return [r["predictions"] for r in results]

    if is_inline:
        model.release.set()  # inline calls block the loop: nothing can queue behind them
    results = asyncio.run(main())
    assert results[0].tolist() == [200.0]
    for i, result in enumerate(results[1:]):
        assert result.tolist() == [2.0 * i, 2.0 * i + 1.0]
    assert sum(model.calls) == 21
    if not is_inline:
        assert model.calls[:3] == [1, 16, 4]  # 8 requests of 2 rows, then the last 2


def test_a_failing_request_fails_alone() -> None:
    model = _SlowDouble()
    model.release.set()

    async def main() -> list[Any]:
        batcher = Batcher(model, BatchPolicy(max_batch_size=8))
        batcher.start()
        inputs = [np.array([[1.0]]), np.array([[-1.0]]), np.array([[3.0]])]
        results = await asyncio.gather(*(batcher.submit(x, 1) for x in inputs), return_exceptions=True)
        await batcher.stop()
        return results

    ok, failed, also_ok = asyncio.run(main())
    assert ok["predictions"].tolist() == [2.0]
    assert isinstance(failed, ValueError)
    assert also_ok["predictions"].tolist() == [6.0]


def test_full_queue_is_503_with_retry_after() -> None:
    model = _SlowDouble()

    async def main() -> None:
        batcher = Batcher(model, BatchPolicy(max_batch_size=1, max_queue=2))
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(np.array([[1.0]]), 1))
        await asyncio.sleep(0.01)
        queued = [asyncio.ensure_future(batcher.submit(np.array([[1.0]]), 1)) for _ in range(2)]
        await asyncio.sleep(0)
        with pytest.raises(ServiceUnavailable) as caught:
            await batcher.submit(np.array([[1.0]]), 1)
        assert caught.value.http_status == 503
        assert caught.value.retry_after_s >= 1
        model.release.set()
        await asyncio.gather(running, *queued)
        await batcher.stop()

    asyncio.run(main())


def test_max_wait_collects_a_bigger_batch() -> None:
    model = _SlowDouble()
    model.release.set()

    async def main() -> None:
        batcher = Batcher(model, BatchPolicy(max_batch_size=4, max_wait_ms=200))
        batcher.start()
        tasks = []
        for _ in range(4):
            tasks.append(asyncio.ensure_future(batcher.submit(np.array([[1.0]]), 1)))
            await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)
        await batcher.stop()

    asyncio.run(main())
    assert model.calls == [4]


def test_split_outputs_checks_row_counts() -> None:
    parts = split_outputs({"y": np.arange(5)}, [2, 3])
    assert [p["y"].tolist() for p in parts] == [[0, 1], [2, 3, 4]]
    with pytest.raises(Exception, match="one output row per input row"):
        split_outputs({"y": np.arange(4)}, [2, 3])


def test_policy_validates_on_construction() -> None:
    with pytest.raises(Exception, match="max_batch_size"):
        BatchPolicy(max_batch_size=0)
