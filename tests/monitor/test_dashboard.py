from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lockgate.errors import NotFound
from lockgate.monitor.dashboard import RecentEvents, dashboard_authorization, dashboard_data, dashboard_page


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


class _History:
    """The one method of the deployment manager that RecentEvents calls."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.asked: list[int] = []

    async def history(self, name: str, *, after_id: int = 0) -> list[dict[str, Any]]:
        self.asked.append(after_id)
        return [e for e in self.events if e["id"] > after_id]


def test_recent_events_are_read_after_the_last_one_seen_and_capped() -> None:
    manager = _History()
    recent = RecentEvents(keep=3)
    manager.events = [{"id": i, "action": "advance"} for i in range(1, 6)]
    seen = asyncio.run(recent.of(manager, "churn"))  # type: ignore[arg-type]
    assert [e["id"] for e in seen] == [3, 4, 5]
    manager.events.append({"id": 6, "action": "rollback"})
    seen = asyncio.run(recent.of(manager, "churn"))  # type: ignore[arg-type]
    assert [e["id"] for e in seen] == [4, 5, 6]
    assert manager.asked == [0, 5]
