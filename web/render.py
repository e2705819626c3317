"""Template rendering with what every page needs (user, CSRF token, open-data flag, language).

Two rules hold for every page: a missing value (``None``) renders as nothing, never as the word
"None"; and Markdown (receipts) is rendered with raw HTML disabled, so a value inside a receipt
is text and cannot inject markup.

Languages (#25): the templates use Jinja2's i18n extension (``{% trans %}``, ``_()``) over the
``web`` gettext domain of :mod:`bonebase.i18n`. A page's language is the signed-in user's setting,
else the language cookie the switch sets (before sign-in), else the browser's Accept-Language,
else English (:func:`request_language`); it is made current while the page renders.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from bonebase import i18n
from bonebase.i18n import N_
from web.auth import CSRF_FIELD, SESSION_COOKIE, csrf_token
from web.terms import term

LANG_COOKIE = "bb_lang"
DOMAIN = "web"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
templates.env.add_extension("jinja2.ext.i18n")
templates.env.globals["urlencode"] = urlencode
templates.env.finalize = lambda value: "" if value is None else value


def _gettext(message: str) -> str:
    return i18n.translations(i18n.current(), DOMAIN).gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return i18n.translations(i18n.current(), DOMAIN).ngettext(singular, plural, n)


# newstyle: {% trans %} and _() escape their values and fill %(name)s placeholders themselves.
templates.env.install_gettext_callables(_gettext, _ngettext, newstyle=True)

# CommonMark with tables; html=False escapes any tag a receipt's value may hold, and
# markdown-it's link check refuses javascript:/data: links.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown(text: str | None) -> Markup:
    """``text`` (Markdown) as HTML that holds no markup of its own."""
    return Markup(_MARKDOWN.render(text or ""))


templates.env.filters["markdown"] = markdown
templates.env.filters["term"] = lambda value, kind="diagnosis": term(value, kind, i18n.current())


def reason_message(message: str | None, reason: str | None) -> str | None:
    """A quarantined item's message in the page's language (bonebase domain: the validation
    template it was written from, translated, with the same values; else as written)."""
    from bonebase.ingest.receipt_text import message_text

    return message_text(reason, message, i18n.current()) if message and reason else message


def reason_fix(reason: str | None) -> str:
    """What a site does about a quarantine reason, in the page's language."""
    from bonebase.ingest.receipt_text import fix_text

    return fix_text(reason, i18n.current()) if reason else ""


templates.env.filters["reason_message"] = reason_message
templates.env.filters["reason_fix"] = reason_fix



#: Words that reach the templates as values and are translated there: the error pages' titles
#: (web/app.py), roles, and the statuses of submissions, quarantined items and models.
SHOWN_VALUES = (
    N_("Bad request"), N_("Not allowed"), N_("Not found"), N_("Method not allowed"),
    N_("Too many attempts"), N_("Error"), N_("Cannot do that"), N_("A service did not answer"),
    N_("viewer"), N_("researcher"), N_("steward"), N_("admin"), N_("reader"),
    N_("running"), N_("done"), N_("failed"),
    N_("open"), N_("released"), N_("discarded"), N_("all"),
    # models (migration 0003): status, approvals' decisions, deployments' actions
    N_("candidate"), N_("approved"), N_("rejected"), N_("deployed"), N_("retired"),
    N_("deploy"), N_("rollback"),
)

_UNSET = object()


def _session_language(request: Request) -> str | None:
    """The signed-in user's language when no route dependency loaded the user (an error page
    answered before, or a path that does not exist)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    known = getattr(request.state, "session_language", _UNSET)
    if known is not _UNSET:
        return known
    from bonebase.db.users import session_user

    language = None
    try:
        # Reached from async handlers too (error pages, the CSRF check): a short wait for a
        # connection, so a busy pool or a database that does not answer cannot stall the
        # event loop for the pool's 30 s; the page then follows the cookie or the browser.
        with request.app.state.pool.connection(timeout=1.0) as conn:
            user = session_user(conn, token)
        language = user.language if user else None
    except Exception:  # an error page must render even when the database does not answer
        pass
    request.state.session_language = language
    return language


def request_language(request: Request) -> str:
    """The language of this request's page: user setting, cookie, Accept-Language, English."""
    user = getattr(request.state, "user", _UNSET)
    chosen = _session_language(request) if user is _UNSET else getattr(user, "language", None)
    return (i18n.normalise(chosen)
            or i18n.normalise(request.cookies.get(LANG_COOKIE))
            or i18n.negotiate(request.headers.get("accept-language"))
            or i18n.DEFAULT)


def gettext_for(request: Request) -> Callable[[str], str]:
    """The translation of a ``web`` msgid into this request's language, placeholders unfilled
    (for code that fills them itself); mark the msgids with ``N_``."""
    return i18n.translations(request_language(request), DOMAIN).gettext


def t(request: Request, message: str, **values) -> str:
    """``message`` (a ``web`` msgid) in this request's language, its ``%(name)s`` placeholders
    filled from ``values`` (a literal per cent sign is ``%%``, as in the templates)."""
    return gettext_for(request)(message) % values


def render(request: Request, name: str, *, status: int = 200, **context):
    user = getattr(request.state, "user", None)
    lang = request_language(request)
    with i18n.language(lang):  # TemplateResponse renders here: the language is current
        return templates.TemplateResponse(
            request, name, {
                "user": user,
                "csrf_field": CSRF_FIELD,
                "csrf_token": csrf_token(request),
                "open_data": request.app.state.web.open_data,
                "lang": lang,
                "languages": i18n.NATIVE_NAMES,
                **context,
            },
            status_code=status,
        )
