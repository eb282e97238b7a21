from __future__ import annotations

import asyncio

import pytest

from lockgate.errors import NotFound
from lockgate.monitor.dashboard import dashboard_authorization, dashboard_data, dashboard_page


def test_the_page_inlines_its_stylesheet_and_script_and_loads_nothing_from_elsewhere() -> None:
    page = dashboard_page().decode()
    assert "/*{{CSS}}*/" not in page and "//{{JS}}" not in page
    assert "svg.timeline" in page and "/dashboard/data" in page
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "<link" not in page and "src=" not in page


def test_the_token_comes_from_the_header_or_the_query() -> None:
    assert dashboard_authorization(b"Bearer abc", b"token=zzz", "abc") == b"Bearer abc"
    assert dashboard_authorization(None, b"token=abc", "abc") == b"Bearer abc"
    assert dashboard_authorization(None, b"", "abc") is None
    assert dashboard_authorization(None, b"token=", "abc") is None


def test_the_dashboard_is_off_without_an_admin_token() -> None:
    with pytest.raises(NotFound, match="dashboard is off") as raised:
        dashboard_authorization(None, b"token=abc", None)
    assert "LOCKGATE_ADMIN_TOKEN" in (raised.value.hint or "")


def test_the_data_of_a_server_without_deployments_is_empty() -> None:
    assert asyncio.run(dashboard_data(None, now=5.0)) == {"now": 5.0, "deployments": []}
