"""The quarantine's pages: held files and rows of a steward's site, released or discarded."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from psycopg import Connection

from bonebase.db import quarantine
from bonebase.db.users import User
from web.auth import csrf_protect, get_conn, require
from web.render import render
from web.routes.steward import _own, _scope

router = APIRouter()
steward = require("steward")


@router.get("/quarantine")
def quarantine_list(request: Request, status: str = "open", site: str | None = None,
                    conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    if status not in ("open", "released", "discarded", "all"):
        raise HTTPException(400, f"status={status!r}; use open, released, discarded or all")
    items = quarantine.list_items(conn, site=_scope(user, site),
                                  status=None if status == "all" else status)
    return render(request, "quarantine.html", items=items, showing=status,
                  done=request.query_params.get("done"))


def _resolve(request: Request, item_id: int, status: str, reason: str, conn: Connection,
             user: User):
    item = quarantine.get_item(conn, item_id)
    site = conn.execute("SELECT code FROM sites WHERE id = %s", (item["site_id"],)).fetchone()
    _own(user, site["code"])
    quarantine.resolve(conn, item_id, status=status, reason=reason, actor=user.username)
    return RedirectResponse(f"/quarantine?done={item_id}", status_code=303)


@router.post("/quarantine/{item_id}/release", dependencies=[Depends(csrf_protect)])
def release(request: Request, item_id: int, reason: str = Form(""),
            conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    return _resolve(request, item_id, "released", reason, conn, user)


@router.post("/quarantine/{item_id}/discard", dependencies=[Depends(csrf_protect)])
def discard(request: Request, item_id: int, reason: str = Form(""),
            conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    return _resolve(request, item_id, "discarded", reason, conn, user)
