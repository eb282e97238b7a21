"""Schemathesis against a running server's ``/openapi.json``: every operation, generated requests.

Shared by ``test_openapi_fuzz.py`` and ``benchmarks/bench_reliability.py``. Each operation gets
``max_examples`` valid and ``max_examples`` invalid requests (schemathesis' positive and negative
modes), once with generated path parameters and once with the names of a real model and
deployment; each answer is checked: no 5xx, a status the document lists, its content type, and a
body that matches the document's schema. Failures are collected (not shrunk), so one run reports
every finding in bounded time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FuzzReport", "fuzz_openapi"]


@dataclass
class FuzzReport:
    """How many requests were sent, how many answered 5xx, and every distinct failure."""

    cases: int = 0
    server_errors: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # "METHOD path: check" -> one message
    operations: list[str] = field(default_factory=list)


def fuzz_openapi(
    base_url: str,
    token: str,
    *,
    max_examples: int = 10,
    path_names: dict[str, str] | None = None,
    extra_checks: tuple[str, ...] = (),
) -> FuzzReport:
    """Fuzz every operation of the server at ``base_url`` (admin ones with ``token``)."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, given
    from schemathesis import GenerationMode
    from schemathesis.checks import CHECKS, load_all_checks

    load_all_checks()
    checks = [
        CHECKS.get_one(name)
        for name in (
            "not_a_server_error",
            "status_code_conformance",
            "content_type_conformance",
            "response_schema_conformance",
            *extra_checks,
        )
    ]
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    report = FuzzReport()
    headers = {"authorization": f"Bearer {token}"}
    settings = hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        report.operations.append(label)
        wanted = {p.name for p in operation.path_parameters}
        named = {k: v for k, v in (path_names or {}).items() if k in wanted}
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in [None, named] if named else [None]:
                strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

                @settings
                @given(case=strategy)
                def run(case: Any) -> None:
                    report.cases += 1
                    try:
                        response = case.call_and_validate(
                            base_url=base_url, headers=headers, checks=checks, timeout=30
                        )
                    # a FailureGroup of check failures, or a transport error (the server went away)
                    except (Exception, BaseExceptionGroup) as exc:
                        response = None
                        for failure in getattr(exc, "exceptions", [exc]):
                            title = getattr(failure, "title", type(failure).__name__)
                            key = f"{case.operation.method.upper()} {case.operation.path}: {title}"
                            report.failures.setdefault(key, f"{failure}"[:2000])
                            if "server error" in str(title).lower():
                                report.server_errors += 1
                    if response is not None and response.status_code >= 500:
                        report.server_errors += 1

                try:
                    run()
                except hypothesis.errors.Unsatisfiable:
                    continue
    return report
