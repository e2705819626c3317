"""The FastAPI application of the web database: ``create_app(...)`` builds one.

Server-rendered pages (Jinja2) over a psycopg pool; images come from the object store through
the model's pixel pipeline; diagnoses go to the served model over HTTP like any other client.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from bonebase.errors import BonebaseError, InputError, NotFoundError
from web.auth import CSRF_COOKIE, LoginRequired, csrf_key, new_csrf_seed
from web.guard import refuse_bad_characters
from web.render import render
from web.settings import WebSettings
from web.throttle import signin_key

STATIC = Path(__file__).parent / "static"


def create_app(*, db_url: str, store, secret: bytes, web: WebSettings | None = None,
               pool_size: int = 8) -> FastAPI:
    """The app over the database at ``db_url`` and an object store (``bonebase.storage``)."""
    from bonebase.db.engine import make_pool

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.pool = make_pool(db_url, min_size=1, max_size=pool_size)
        try:
            yield
        finally:
            app.state.pool.close()

    app = FastAPI(title="bonebase", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.web = web or WebSettings()
    app.state.store = store
    app.state.csrf_key = csrf_key(secret)
    app.state.signin_key = signin_key(secret)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def csrf_cookie(request: Request, call_next):
        fresh = None
        if not request.cookies.get(CSRF_COOKIE):
            fresh = request.state.csrf_seed = new_csrf_seed()
        response = await call_next(request)
        if fresh:
            response.set_cookie(CSRF_COOKIE, fresh, httponly=True, samesite="strict",
                                secure=app.state.web.cookie_secure)
        # Pages show clinical data: never cache them in shared caches; no framing (clickjacking).
        response.headers.setdefault("Cache-Control", "private, no-store")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    _handlers(app)
    from web.routes import (
        auth,
        cases,
        diagnosis,
        language,
        models,
        monitor,
        quarantine,
        reader,
        steward,
    )

    for module in (auth, cases, diagnosis, steward, quarantine, models, monitor, reader, language):
        # First of every route's dependencies: a NUL is refused before it can reach SQL.
        app.include_router(module.router, dependencies=[Depends(refuse_bad_characters)])
    return app


def _error(request: Request, status: int, title: str, message: str):
    return render(request, "error.html", status=status, title=title, message=message)


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        from urllib.parse import urlencode

        return RedirectResponse(f"/login?{urlencode({'next': exc.next_url})}", status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: HTTPException):
        titles = {400: "Bad request", 403: "Not allowed", 404: "Not found",
                  405: "Method not allowed", 429: "Too many attempts"}
        return _error(request, exc.status_code, titles.get(exc.status_code, "Error"),
                      str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        parts = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("path", "query", "body"))
            parts.append(f"{where}: {e.get('msg')}")
        return _error(request, 400, "Bad request", "; ".join(parts) or "the request is invalid")

    @app.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError):
        return _error(request, 404, "Not found", str(exc))

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError):
        return _error(request, 400, "Cannot do that", str(exc))

    @app.exception_handler(BonebaseError)
    async def failed(request: Request, exc: BonebaseError):
        return _error(request, 502, "A service did not answer", str(exc))


def app_from_settings() -> FastAPI:
    """The app for ``bonebase web`` / ``uvicorn --factory web.app:app_from_settings``."""
    from bonebase.cli_common import db_url
    from bonebase.config import get_settings
    from bonebase.storage import open_store

    settings = get_settings()
    return create_app(
        db_url=db_url(),
        store=open_store(settings.object_store_url, endpoint_url=settings.s3_endpoint_url,
                         region=settings.s3_region),
        secret=settings.consortium_secret(),
    )
