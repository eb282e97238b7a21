"""Schemathesis against ``/openapi.json`` of a real server: every operation, the admin ones with
the token, a real model and a deployment behind them. No 5xx, every answer as documented, and the
server still answers correctly afterwards (issue 12, item 6)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.reliability.conftest import TOKEN
from tests.reliability.openapi_fuzz import fuzz_openapi

pytestmark = [
    pytest.mark.integration,
    # generated bodies may name any header or value; requests' own warnings about them are noise here
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

EXAMPLES = 25  # per operation and mode: about 1,000 requests, ten seconds or so


def test_every_operation_answers_as_documented(gateway: Any, reliability_report: dict[str, Any]) -> None:
    report = fuzz_openapi(
        gateway.url, TOKEN, max_examples=EXAMPLES, path_names={"name": "served", "deployment": "served"}
    )
    reliability_report["fuzz_cases"] += report.cases
    reliability_report["fuzz_5xx"] += report.server_errors
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    documented = {
        f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item if m != "parameters"
    }
    # schemathesis leaves out the document's own operation; it was just fetched above
    assert set(report.operations) == documented - {"GET /openapi.json"}
    assert report.cases >= len(report.operations) * 2
    assert report.failures == {}, "\n\n".join(f"{k}\n{v}" for k, v in report.failures.items())
    assert report.server_errors == 0
    assert httpx.get(f"{gateway.url}/v2/health/ready").status_code == 200
    row = {"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [1.0] * 30}]}
    answer = httpx.post(f"{gateway.url}/v2/models/served/infer", json=row)
    assert answer.status_code == 200, answer.text
