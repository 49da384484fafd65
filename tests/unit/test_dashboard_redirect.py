"""With dashboard.token, `GET <path>?token=...` trades the token for a cookie and redirects to <path>: the
redirect must stay on the dashboard whatever the path. Driven through the ASGI guard itself, with raw
paths no HTTP client would send as they are (that is what an attacker's link does)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urljoin

import pytest

from taskq.web.security import DashboardGuard

TOKEN = "a-token-long-enough-for-the-dashboard"
ORIGIN = "http://dashboard.example:8080"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    raise AssertionError("a ?token= request is redirected before any route runs")


def redirect_location(path: str, query: str = f"token={TOKEN}") -> str:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query.encode(),
        "headers": [(b"host", b"dashboard.example:8080")],
    }
    asyncio.run(DashboardGuard(_app, token=TOKEN)(scope, receive, send))
    start = sent[0]
    assert start["status"] == 303
    return dict(start["headers"])[b"location"].decode("latin-1")


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/",
        "//evil.example",
        "///evil.example/",
        "/\\evil.example/",
        "/\\\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "https:evil.example",
        "https://evil.example/",
        "//evil.example@dashboard.example/",
    ],
)
def test_the_token_redirect_stays_on_the_dashboard(path: str) -> None:
    location = redirect_location(path)
    # How a browser resolves it against the page's address (after dropping tabs and newlines, as browsers do).
    resolved = urljoin(f"{ORIGIN}/", location.replace("\t", "").replace("\n", "").replace("\\", "/"))
    assert resolved.startswith(f"{ORIGIN}/"), (path, location, resolved)
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert all(32 < ord(char) < 127 for char in location), location


def test_an_ordinary_path_and_its_other_parameters_are_kept() -> None:
    assert redirect_location("/tasks/12", f"status=failed&token={TOKEN}") == "/tasks/12?status=failed"
    assert redirect_location("/") == "/"
