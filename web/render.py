"""Template rendering with what every page needs (user, CSRF token, open-data flag)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates

from web.auth import CSRF_FIELD, csrf_token

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["urlencode"] = urlencode


def render(request: Request, name: str, *, status: int = 200, **context):
    user = getattr(request.state, "user", None)
    return templates.TemplateResponse(
        request, name, {
            "user": user,
            "csrf_field": CSRF_FIELD,
            "csrf_token": csrf_token(request),
            "open_data": request.app.state.web.open_data,
            **context,
        },
        status_code=status,
    )
