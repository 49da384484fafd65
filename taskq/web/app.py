"""Assemble the dashboard: API and page routes, static files, error mapping and the access guard."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from taskq import registry
from taskq.model import InvalidTaskArguments, InvalidTransition, TaskNotFound
from taskq.registry import UnknownTask
from taskq.settings import Settings
from taskq.store import Store
from taskq.web import api, metrics, pages
from taskq.web.api import RollupTicker, UnsupportedMediaType
from taskq.web.security import DashboardGuard, dashboard_token

STATIC_DIR = Path(__file__).parent / "static"

# Most specific first: the first matching entry gives the status code.
_ERROR_STATUS: dict[type[Exception], int] = {
    UnsupportedMediaType: 415,
    InvalidTaskArguments: 400,
    UnknownTask: 400,
    TaskNotFound: 404,
    InvalidTransition: 409,
}


async def _taskq_error(_request: Request, error: Exception) -> Response:
    status = next(code for kind, code in _ERROR_STATUS.items() if isinstance(error, kind))
    return JSONResponse({"error": str(error)}, status_code=status)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if request.url.path.startswith("/api/") or error.status_code != 404:
        return JSONResponse({"error": error.detail}, status_code=error.status_code, headers=error.headers)
    return pages.not_found()


async def _database_error(_request: Request, error: Exception) -> Response:
    first_line = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
    return JSONResponse({"error": f"database error: {first_line}"}, status_code=503)


def create_app(store: Store, settings: Settings) -> Starlette:
    """The dashboard over `store`; `settings` supplies the task modules to import and dashboard.token."""
    registry.import_task_modules(settings.imports)
    handlers = {kind: _taskq_error for kind in _ERROR_STATUS}
    app = Starlette(
        routes=[
            *api.routes,
            *metrics.routes,
            *pages.routes,
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ],
        middleware=[Middleware(DashboardGuard, token=dashboard_token(settings))],
        exception_handlers={**handlers, HTTPException: _http_error, SQLAlchemyError: _database_error},
    )
    app.state.store = store
    app.state.settings = settings
    app.state.rollup = RollupTicker(store)
    return app
