"""Sign-in and sign-out."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse
from psycopg import Connection

from bonebase.db.users import authenticate, end_session, start_session
from web import throttle
from web.auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    csrf_protect,
    current_user,
    get_conn,
    new_csrf_seed,
)
from web.render import render, t

router = APIRouter()


def _safe_next(value: str | None) -> str:
    # Only paths on this site: "//host" or "https://…" would make sign-in an open redirect.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/cases"


@router.get("/login")
def login_page(request: Request, next: str = "/cases", user=Depends(current_user)):
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login", dependencies=[Depends(csrf_protect)])
def login(request: Request, username: str = Form(""), password: str = Form(""),
          next: str = Form("/cases"), conn: Connection = Depends(get_conn, scope="function")):
    name = username.strip().lower()
    request.state.user = None
    # Checked before the password: during a lockout the right password is refused too.
    refusal = throttle.refusal(conn, request, name)
    if refusal is not None:
        throttle.refused(conn, request, name, refusal)
        page = render(request, "login.html", status=429, next=_safe_next(next),
                      error=refusal.message)
        page.headers["Retry-After"] = str(refusal.retry_after)
        return page
    user = authenticate(conn, name, password)
    if user is None:
        throttle.failed(conn, request, name)
        return render(request, "login.html", status=401, next=_safe_next(next),
                      error=t(request, "wrong user name or password"))
    web = request.app.state.web
    token = start_session(conn, user, hours=web.session_hours)
    throttle.succeeded(conn, request, user.username)
    target = _safe_next(next)
    if user.is_reader and not target.startswith("/read"):
        target = "/read"  # the default /cases would only answer 403 to a reader
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax",
                        secure=web.cookie_secure, max_age=int(web.session_hours * 3600))
    # A new CSRF seed at sign-in: a value planted before it does not carry over.
    response.set_cookie(CSRF_COOKIE, new_csrf_seed(), httponly=True, samesite="strict",
                        secure=web.cookie_secure)
    return response


@router.post("/logout", dependencies=[Depends(csrf_protect)])
def logout(request: Request, conn: Connection = Depends(get_conn, scope="function")):
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        end_session(conn, token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


@router.get("/")
def home(user=Depends(current_user)):
    # A reader has no case list: their start page is the reading list (#22).
    return RedirectResponse("/read" if user and user.is_reader else "/cases", status_code=303)
