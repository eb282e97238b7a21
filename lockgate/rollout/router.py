"""Which variant serves a request: a stable hash picks a bucket, buckets map to variants by weight.

Pure and on the request path. A routing key hashes with the deployment's salt to a bucket in
``[0, 10000)``; a :class:`RoutingTable` maps buckets to variants by cumulative weight (basis points)
in the order given, the baseline first and the candidate last, so the candidate's range grows down
from the top: growing a canary never moves a user from the candidate back to the baseline. A table
is immutable; the serving shell swaps the whole table, so a request sees the old weights or the new.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lockgate.errors import ValidationError
from lockgate.stats.units import UNITS

__all__ = [
    "BUCKETS",
    "RoutingTable",
    "assign",
    "assign_many",
    "bucket",
    "bucket_and_unit",
    "random_bucket",
    "should_shadow",
]

BUCKETS = 10_000
"""Buckets per deployment: one basis point of traffic each."""


def _digest(salt: str, key: str) -> int:
    # The salt's length goes in first so that ("ab", "c") and ("a", "bc") hash apart.
    data = f"{len(salt)}:{salt}{key}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def bucket(salt: str, key: str) -> int:
    """The bucket in ``[0, 10000)`` for ``key``: the same on every process, machine and restart."""
    return _digest(salt, key) % BUCKETS


def bucket_and_unit(salt: str, key: str) -> tuple[int, int]:
    """The routing bucket of ``key`` and its analysis unit (:mod:`lockgate.stats.units`).

    Both come from one 64-bit hash: the bucket from its remainder by 10,000, the unit from the
    digits above it, so which unit a key falls in says nothing about which variant serves it.
    """
    value = _digest(salt, key)
    return value % BUCKETS, (value // BUCKETS) % UNITS


def random_bucket(draw: float) -> int:
    """The bucket for a request with no routing key, from the caller's uniform draw in [0, 1)."""
    if not 0.0 <= draw < 1.0:
        raise ValidationError(
            f"random draw {draw} is outside [0, 1)", hint="pass random.random() or rng.random()"
        )
    return int(draw * BUCKETS)


@dataclass(frozen=True)
class RoutingTable:
    """Variants with their weights in basis points (summing to 10,000), plus an optional shadow.

    Build it with :meth:`from_weights`, which validates; ``upper_bounds`` is the precomputed
    cumulative tuple that :func:`assign` bisects.
    """

    variants: tuple[str, ...]
    weights_bp: tuple[int, ...]
    upper_bounds: tuple[int, ...]
    shadow_variant: str | None = None
    shadow_bp: int = 0

    @classmethod
    def from_weights(
        cls,
        weights_bp: Mapping[str, int] | Iterable[tuple[str, int]],
        *,
        shadow_variant: str | None = None,
        shadow_fraction: float = 0.0,
    ) -> RoutingTable:
        """Validate and build a table; the order of ``weights_bp`` is the order of the ranges."""
        pairs = list(weights_bp.items() if isinstance(weights_bp, Mapping) else weights_bp)
        if not pairs:
            raise ValidationError("a routing table needs at least one variant", hint="add one")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            raise ValidationError(f"variants {names} appear more than once", hint="list each variant once")
        for name, weight in pairs:
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
                raise ValidationError(
                    f"weight of '{name}' is {weight!r}",
                    hint="give each weight as a whole number of basis points >= 0",
                )
        total = sum(weight for _, weight in pairs)
        if total != BUCKETS:
            raise ValidationError(
                f"weights sum to {total} basis points, not {BUCKETS}",
                hint="make the weights add up to 10000 (100%)",
            )
        if not 0.0 <= shadow_fraction <= 1.0:
            raise ValidationError(
                f"shadow fraction {shadow_fraction} is outside [0, 1]", hint="e.g. 0.1 for 10%"
            )
        if shadow_variant is None and shadow_fraction > 0.0:
            raise ValidationError(
                "a shadow fraction was given without a shadow variant",
                hint="name the variant that receives the mirrored requests",
            )
        upper: list[int] = []
        running = 0
        for _, weight in pairs:
            running += weight
            upper.append(running)
        return cls(
            variants=tuple(names),
            weights_bp=tuple(weight for _, weight in pairs),
            upper_bounds=tuple(upper),
            shadow_variant=shadow_variant,
            shadow_bp=round(shadow_fraction * BUCKETS) if shadow_variant else 0,
        )

    @classmethod
    def single(cls, variant: str) -> RoutingTable:
        """All traffic to one variant."""
        return cls.from_weights({variant: BUCKETS})

    def weight_of(self, variant: str) -> int:
        """The variant's weight in basis points (0 for a variant not in the table)."""
        for name, weight in zip(self.variants, self.weights_bp, strict=True):
            if name == variant:
                return weight
        return 0

    @property
    def shadow_fraction(self) -> float:
        return self.shadow_bp / BUCKETS

    def to_dict(self) -> dict[str, Any]:
        return {
            "weights_bp": dict(zip(self.variants, self.weights_bp, strict=True)),
            "shadow_variant": self.shadow_variant,
            "shadow_fraction": self.shadow_fraction,
        }


def assign(table: RoutingTable, bucket_index: int) -> str:
    """The variant that serves ``bucket_index``: the first whose cumulative weight exceeds it."""
    return table.variants[bisect_right(table.upper_bounds, bucket_index)]


def assign_many(table: RoutingTable, buckets: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Vectorised :func:`assign`: the index into ``table.variants`` for each bucket."""
    out: npt.NDArray[np.int64] = np.searchsorted(
        np.asarray(table.upper_bounds), np.asarray(buckets, dtype=np.int64), side="right"
    ).astype(np.int64)
    return out


def should_shadow(table: RoutingTable, bucket_index: int) -> bool:
    """Whether to mirror this request to the shadow variant.

    The top ``shadow_bp`` buckets are mirrored, the same buckets a canary reaches first, so the
    users whose requests were compared in shadow are the ones who meet the candidate first.
    """
    return bucket_index >= BUCKETS - table.shadow_bp
