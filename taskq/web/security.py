"""Who may talk to the dashboard. Pure functions and one ASGI middleware; no Starlette routing here.

The rules: without a token the dashboard serves loopback only (the bind address and the Host header are
both checked, so a DNS-rebinding page cannot reach it); with `dashboard.token` every request carries the
token; every POST carries the `X-Taskq` header, which a cross-site form or a no-CORS fetch cannot send.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from taskq.model import TaskqError
from taskq.settings import DASHBOARD, Settings, SettingValueError

TOKEN_COOKIE = "taskq_token"
TOKEN_QUERY = "token"
CSRF_HEADER = "x-taskq"  # any value; its presence proves the request came from a page allowed to set it
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PATH_SAFE = "/-._~!$&'()*+,;=:@"  # RFC 3986 pchar and "/": left as they are in a redirect's path


class DashboardConfigError(TaskqError):
    pass


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the name localhost; any other name counts as reachable from outside."""
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dashboard_token(settings: Settings) -> str | None:
    """The `dashboard.token` setting, validated (again: `settings` may have been made in code); None when absent."""
    try:
        token = DASHBOARD.parse(settings.dashboard).get("token")
    except ValueError as error:
        path = error.path if isinstance(error, SettingValueError) else ()
        raise DashboardConfigError(settings.error_text((DASHBOARD.key, *path), str(error))) from None
    return None if token is None else token.strip()


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback unless a token guards the dashboard."""
    if token is None and not is_loopback(host):
        raise DashboardConfigError(
            f"refusing to serve the dashboard on {host}: it is not a loopback address and settings has no"
            " dashboard.token (set one, or bind to 127.0.0.1)"
        )


def _host_name(host_header: str) -> str:
    """The name part of a Host header: 'localhost:8080' -> 'localhost', '[::1]:8080' -> '::1'."""
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def _same_origin(origin: str, host_header: str) -> bool:
    scheme_sep = origin.find("://")
    return scheme_sep != -1 and origin[scheme_sep + 3 :] == host_header


class DashboardGuard:
    """ASGI middleware enforcing the rules in the module docstring before any route runs."""

    def __init__(self, app: Any, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1").lower(): value.decode("latin-1") for key, value in scope["headers"]}
        path: str = scope["path"]
        method: str = scope["method"]
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        host_header = headers.get("host", "")

        if self.token is None and not is_loopback(_host_name(host_header)):
            await _deny(send, 403, f"host {host_header!r} is not a loopback name; set dashboard.token to serve it")
            return
        if self.token is not None:
            given = _presented_token(headers, query)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                await _deny(send, 401, "missing or wrong token (send Authorization: Bearer <token> or ?token=)")
                return
            if TOKEN_QUERY in query and method == "GET" and not path.startswith("/api/"):
                await _redirect_with_cookie(send, path, query, self.token)
                return
        if method not in SAFE_METHODS:
            problem = _cross_site_problem(headers, host_header)
            if problem:
                await _deny(send, 403, problem)
                return
        await self.app(scope, receive, send)


def _presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    if TOKEN_QUERY in query:
        return query[TOKEN_QUERY]
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except CookieError:  # a malformed Cookie header is the client's problem, not a 500
        return None
    morsel = cookie.get(TOKEN_COOKIE)
    return None if morsel is None else morsel.value


def _cross_site_problem(headers: Mapping[str, str], host_header: str) -> str | None:
    if CSRF_HEADER not in headers:
        return "cross-site request refused: POST requests need the X-Taskq header"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is not None and origin != "null" and not _same_origin(origin, host_header):
        return f"cross-site request refused (Origin {origin} is not this dashboard)"
    return None


async def _deny(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def same_origin_path(path: str) -> str:
    """`path` as a Location that can only stay on this site. A request for `//evil.example/?token=...`
    must not send the browser (token cookie set) to evil.example: browsers read `//host`, `/\\host` and
    `/<tab>/host` as another host, so the path gets one leading slash and every character outside a
    path's plain set (backslash, controls, spaces, ...) percent-encoded."""
    return "/" + quote(path.lstrip("/\\"), safe=_PATH_SAFE)


async def _redirect_with_cookie(send: Any, path: str, query: Mapping[str, str], token: str) -> None:
    """Trade ?token= for an HttpOnly cookie and drop it from the address bar (and so from history)."""
    rest = urlencode({key: value for key, value in query.items() if key != TOKEN_QUERY})
    location = same_origin_path(path) + (f"?{rest}" if rest else "")
    cookie = SimpleCookie()
    cookie[TOKEN_COOKIE] = token
    cookie[TOKEN_COOKIE].update({"path": "/", "httponly": "true", "samesite": "Strict"})
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", cookie.output(header="").strip().encode("latin-1")),
                (b"content-length", b"0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
