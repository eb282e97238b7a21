"""The retry budget: a burst of failures is retried, a dead upstream is not hammered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from lockgate.llm.retries import RETRYABLE_STATUSES, RetryBudget


def _calls_to_a_dead_upstream(budget: RetryBudget, requests: int, retries: int) -> int:
    calls = 0
    for _ in range(requests):
        budget.deposit()
        calls += 1
        for _ in range(retries):
            if not budget.withdraw():
                break
            calls += 1
    return calls


def test_a_dead_upstream_sees_about_one_call_per_request() -> None:
    calls = _calls_to_a_dead_upstream(RetryBudget(0.1), requests=1000, retries=2)
    # the reserve (10) plus a tenth of the requests, instead of 3000 calls
    assert calls <= 1000 + 10 + 100 + 1


@given(
    ratio=st.floats(min_value=0.0, max_value=1.0),
    requests=st.integers(min_value=0, max_value=500),
    retries=st.integers(min_value=0, max_value=5),
)
def test_retries_never_exceed_the_reserve_plus_the_ratio(ratio: float, requests: int, retries: int) -> None:
    budget = RetryBudget(ratio)
    extra = _calls_to_a_dead_upstream(budget, requests, retries) - requests
    assert extra <= (budget.reserve if ratio > 0 else 0) + ratio * requests + 1e-9


def test_a_single_failure_is_retried_and_no_budget_means_no_retry() -> None:
    budget = RetryBudget(0.1)
    budget.deposit()
    assert budget.withdraw()
    none = RetryBudget(0.0)
    none.deposit()
    assert not none.withdraw()
    assert {502, 503, 504} == RETRYABLE_STATUSES
