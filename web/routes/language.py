"""The language switch (#25): a signed-in user's setting, or a cookie before signing in."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from psycopg import Connection

from bonebase.db.users import set_language
from bonebase.i18n import LANGUAGES
from web.auth import csrf_protect, current_user, get_conn
from web.render import LANG_COOKIE, t
from web.routes.auth import _safe_next

router = APIRouter()
AUTO = "auto"  # the switch's "follow the browser" choice


@router.post("/language", dependencies=[Depends(csrf_protect)])
def switch(request: Request, language: str = Form(""), next: str = Form("/cases"),
           conn: Connection = Depends(get_conn, scope="function"), user=Depends(current_user)):
    """Show the pages in ``language`` (a tag of bonebase.i18n.LANGUAGES, or ``auto``: follow the
    browser's Accept-Language). A signed-in user's choice is stored with the user; before
    sign-in, and for the error pages, a cookie carries it."""
    if language != AUTO and language not in LANGUAGES:
        raise HTTPException(400, t(request, "language %(value)s is not offered: choose one of "
                                            "%(choices)s", value=repr(language),
                                   choices=", ".join((*LANGUAGES, AUTO))))
    if user is not None:
        set_language(conn, user.username, None if language == AUTO else language,
                     actor=user.username)
    response = RedirectResponse(_safe_next(next), status_code=303)
    web = request.app.state.web
    if language == AUTO:
        response.delete_cookie(LANG_COOKIE)
    else:
        response.set_cookie(LANG_COOKIE, language, max_age=365 * 86400, httponly=True,
                            samesite="lax", secure=web.cookie_secure)
    return response
