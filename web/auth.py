"""Who is asking: session cookies, role checks and CSRF tokens.

CSRF tokens are HMACs bound to the session (OWASP's signed double-submit): a signed-in
browser's forms carry HMAC(key, session token), so a token is good with that session only and a
planted cookie is worth nothing. Before sign-in, forms carry HMAC(key, ``bb_csrf``), a random
pre-session cookie; it is renewed at sign-in so that a planted value does not carry over.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterator

from fastapi import Depends, HTTPException, Request
from psycopg import Connection

from bonebase.db.users import User, session_user

SESSION_COOKIE = "bb_session"
CSRF_COOKIE = "bb_csrf"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """Raised by a dependency when the page needs a signed-in user; answered with a redirect."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


def get_conn(request: Request) -> Iterator[Connection]:
    """A pooled connection for one request, committed when the request's work is done.

    Always used as ``Depends(get_conn, scope="function")``: with FastAPI's default ("request")
    scope the commit runs after the response is sent, so the browser following a 303 after a
    sign-in or an answer stored could read the database before the write was committed."""
    with request.app.state.pool.connection() as conn:
        yield conn


def current_user(request: Request, conn: Connection = Depends(get_conn, scope="function")) -> User | None:
    token = request.cookies.get(SESSION_COOKIE)
    user = session_user(conn, token) if token else None
    request.state.user = user
    return user


def _next(request: Request) -> str:
    query = f"?{request.url.query}" if request.url.query else ""
    return request.url.path + query


def browse(request: Request, user: User | None = Depends(current_user)) -> User | None:
    """Pages of de-identified cases: anyone signed in, and anonymous visitors in open-data mode."""
    if user is None and not request.app.state.web.open_data:
        raise LoginRequired(_next(request))
    if user is not None and user.is_reader:
        # Blinded readers must not browse diagnoses, sites or other readers' cases (#22).
        from web.render import t  # web.render imports this module

        raise HTTPException(403, t(request, "a reader sees only the cases of their reader "
                                            "studies: open /read for your reading list"))
    return user


def require(role: str) -> Callable[..., User]:
    """A dependency that admits users with ``role`` or a higher one; others get the 403 page."""

    def check(request: Request, user: User | None = Depends(current_user)) -> User:
        if user is None:
            raise LoginRequired(_next(request))
        if not user.can(role):
            from web.render import t

            raise HTTPException(403, t(request, "this page needs the %(role)s role; you are "
                                                "%(yours)s", role=t(request, role),
                                       yours=t(request, user.role)))
        return user

    return check


def new_csrf_seed() -> str:
    return secrets.token_urlsafe(24)


def csrf_seed(request: Request) -> str:
    """This browser's CSRF seed (made by the middleware when the cookie was missing)."""
    return getattr(request.state, "csrf_seed", None) or request.cookies.get(CSRF_COOKIE, "")


def csrf_token(request: Request) -> str:
    """The token this browser's forms carry: bound to its session, else to its pre-session cookie."""
    key: bytes = request.app.state.csrf_key
    session = request.cookies.get(SESSION_COOKIE)
    # Tagged so that a session token can never pass for a pre-session seed or the reverse.
    bound = f"session:{session}" if session else f"browser:{csrf_seed(request)}"
    return hmac.new(key, bound.encode(), hashlib.sha256).hexdigest()


async def csrf_protect(request: Request) -> None:
    """Refuse a form POST whose token does not match this browser's session (or, signed out,
    its pre-session cookie)."""
    form = await request.form()
    sent = str(form.get(CSRF_FIELD, ""))
    bound = request.cookies.get(SESSION_COOKIE) or request.cookies.get(CSRF_COOKIE)
    # Bytes: compare_digest refuses str with non-ASCII characters (a 500 on a forged token).
    if not bound or not hmac.compare_digest(sent.encode(), csrf_token(request).encode()):
        from web.render import t

        raise HTTPException(403, t(request, "the form's security token is missing or stale: "
                                            "reload the page and submit again (cookies must be "
                                            "enabled)"))


def csrf_key(secret: bytes) -> bytes:
    """The HMAC key for CSRF tokens, derived so that the consortium key itself is never used."""
    return hmac.new(secret, b"bonebase-web-csrf-v1", hashlib.sha256).digest()
