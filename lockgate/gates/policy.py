"""``lockgate.yaml``: the gate's policy, parsed once into typed objects.

Every mistake is reported with the file, the line and the key, e.g.
``lockgate.yaml line 12: checks.metrics[0].min_delta: is not a known key (known: metric, threshold, ...)``,
as a :class:`~lockgate.errors.ValidationError` (exit code 2), by the one loader :mod:`lockgate.config`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from lockgate.config import Document, Loc, Problems, did_you_mean, load, parse_yaml, read_yaml
from lockgate.errors import UserError
from lockgate.gates.kinds import CHECK_KINDS, Check, Need
from lockgate.gates.metrics import METRICS
from lockgate.gates.specs import Spec
from lockgate.tracking.refs import parse_ref

__all__ = ["HoldoutSpec", "Policy", "PolicyFile", "load_policy", "parse_policy"]

_DOCS = "docs/ci-cd.md"
_EXAMPLE = "examples/breast_cancer/lockgate.yaml"


class HoldoutSpec(Spec):
    """The dataset version the models are scored on, and the column holding the truth."""

    dataset: str
    target: str
    file: str | None = None


class PolicyFile(Spec):
    """The top level of ``lockgate.yaml``; ``checks`` is validated kind by kind."""

    version: Literal[1] = 1
    holdout: HoldoutSpec | None = None
    reference: str | None = None
    against: str | None = "champion"
    task: Literal["classification", "regression"] = "classification"
    decision_threshold: float = Field(default=0.5, ge=0, le=1)
    seed: int = 0
    checks: dict[str, Any]


@dataclass(frozen=True)
class Policy:
    """A validated policy: the settings, each enabled check kind with its settings, and the file's digest."""

    settings: PolicyFile
    checks: tuple[tuple[Check, Any], ...]
    sha256: str
    source: str = "lockgate.yaml"

    @property
    def needs(self) -> frozenset[Need]:
        out: set[Need] = set()
        for kind, _ in self.checks:
            out |= kind.needs
        return frozenset(out)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(kind.name for kind, _ in self.checks)


# -- parsing --------------------------------------------------------------------------------------
def _check_settings(kind: Check, value: Any, loc: Loc, problems: Problems) -> Any:
    """Validate one ``checks:`` entry; None when it is switched off or invalid."""
    if value is False:
        return None
    if kind.is_list:
        items = value if isinstance(value, list) else [value]
        if not items:
            problems.add(loc, "must list at least one entry (or be removed)")
            return None
        parsed = [
            problems.validate(
                kind.spec,
                {} if item is None or item is True else item,
                at=(*loc, index) if isinstance(value, list) else loc,
            )
            for index, item in enumerate(items)
        ]
        return parsed if all(item is not None for item in parsed) else None
    if isinstance(value, list):
        problems.add(loc, "must be a mapping of settings, not a list", "write `key: value` settings")
        return None
    return problems.validate(kind.spec, {} if value is None or value is True else value, at=loc)


def _check_ref(text: str | None, loc: Loc, problems: Problems) -> None:
    if text is None:
        return
    try:
        parse_ref(text, "dataset name", allow_alias=False)
    except UserError as exc:
        problems.add(loc, f"{exc.message} (write NAME@VERSION, e.g. breast-cancer@1)", "name a version")


def _semantic(settings: PolicyFile, checks: Sequence[tuple[Check, Any]], problems: Problems) -> None:
    _check_ref(settings.holdout.dataset if settings.holdout else None, ("holdout", "dataset"), problems)
    _check_ref(settings.reference, ("reference",), problems)
    for kind, spec in checks:
        if "holdout" in kind.needs and settings.holdout is None:
            problems.add(
                ("checks", kind.name),
                "needs a holdout; add `holdout: {dataset: NAME@VERSION, target: COLUMN}`",
                "add the holdout section at the top",
            )
        for index, item in enumerate(spec if isinstance(spec, list) else [spec]):
            metric = getattr(item, "metric", None)
            if isinstance(metric, str) and METRICS[metric].task != settings.task:
                loc: Loc = ("checks", kind.name, index, "metric") if kind.is_list else ("checks", kind.name)
                problems.add(
                    loc,
                    f"metric '{metric}' is for {METRICS[metric].task}, and the policy's task is "
                    f"{settings.task} (set `task:` at the top)",
                    f"use a {settings.task} metric or set `task: {METRICS[metric].task}`",
                )


def parse_policy(text: str, source: str = "lockgate.yaml") -> Policy:
    """Parse and validate a policy; every problem is reported with its line and key."""
    return _policy(parse_yaml(text, source))


def _policy(document: Document) -> Policy:
    settings = load(PolicyFile, document, docs=_DOCS, example=_EXAMPLE)
    problems = Problems(document, docs=_DOCS)
    checks: list[tuple[Check, Any]] = []
    if not settings.checks:
        known = ", ".join(sorted(CHECK_KINDS))
        problems.add(("checks",), f"must name at least one check kind ({known})", f"start from {_EXAMPLE}")
    for name, value in settings.checks.items():
        kind = CHECK_KINDS.get(str(name))
        if kind is None:
            problems.add(
                ("checks", str(name)),
                f"is not a known check kind (known: {', '.join(sorted(CHECK_KINDS))})",
                f"remove it or use a known kind{did_you_mean(str(name), CHECK_KINDS)}",
            )
            continue
        parsed = _check_settings(kind, value, ("checks", str(name)), problems)
        if parsed is not None:
            checks.append((kind, parsed))
    if not problems.items:
        _semantic(settings, checks, problems)
    problems.raise_if_any()
    sha = hashlib.sha256(document.text.encode()).hexdigest()
    return Policy(settings=settings, checks=tuple(checks), sha256=sha, source=str(document.source))


def load_policy(path: Path) -> Policy:
    """Read and parse the policy file at ``path``."""
    hint = f"write one (see {_EXAMPLE}) or pass --policy PATH"
    return _policy(read_yaml(path, what="policy file", hint=hint))
