"""Template rendering with what every page needs (user, CSRF token, open-data flag).

Two rules hold for every page: a missing value (``None``) renders as nothing, never as the word
"None"; and Markdown (receipts) is rendered with raw HTML disabled, so a value inside a receipt
is text and cannot inject markup.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from web.auth import CSRF_FIELD, csrf_token

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.globals["urlencode"] = urlencode
templates.env.finalize = lambda value: "" if value is None else value

# CommonMark with tables; html=False escapes any tag a receipt's value may hold, and
# markdown-it's link check refuses javascript:/data: links.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown(text: str | None) -> Markup:
    """``text`` (Markdown) as HTML that holds no markup of its own."""
    return Markup(_MARKDOWN.render(text or ""))


templates.env.filters["markdown"] = markdown


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
