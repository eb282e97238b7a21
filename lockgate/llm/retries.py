"""When a failed upstream call is tried again: only what cannot have reached the model, and only
while retries stay a small fraction of requests.

A retry is safe when the upstream cannot have started answering: the connection failed, or it
answered 502, 503 or 504 (a proxy or a server that is not ready) before any byte of an answer.
A timeout while waiting for the answer is not retried (the upstream may still be generating),
nor is a stream that stopped after it began.

:class:`RetryBudget` keeps retries to a fraction of requests, like Finagle's retry budget: each
request adds ``ratio`` of a retry to the balance (up to ``reserve`` retries' worth, which is also
what it starts with), each retry spends one. A dead upstream then sees about ``1 + ratio`` calls a
request instead of ``1 + retries``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RETRYABLE_STATUSES", "RetryBudget"]

RETRYABLE_STATUSES = frozenset({502, 503, 504})


@dataclass
class RetryBudget:
    """Retries allowed as a fraction ``ratio`` of requests, with a ``reserve`` for a burst."""

    ratio: float
    reserve: float = 10.0
    balance: float = field(init=False)

    def __post_init__(self) -> None:
        self.balance = self.reserve if self.ratio > 0 else 0.0

    def deposit(self) -> None:
        """One request was made."""
        self.balance = min(self.reserve, self.balance + self.ratio)

    def withdraw(self) -> bool:
        """Take one retry from the budget: False when there is none left."""
        if self.balance >= 1.0:
            self.balance -= 1.0
            return True
        return False
