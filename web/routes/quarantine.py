"""The quarantine's pages: held files and rows of a steward's site, looked at, released or discarded.

A held item's page shows its original (identified: the hospital's own data) to the steward of
its site and to admins only, and every look is recorded in the audit log.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from psycopg import Connection

from bonebase.db import quarantine
from bonebase.db.users import User
from bonebase.ingest import quarantine_view
from web.auth import csrf_protect, get_conn, require
from web.render import render, t
from web.routes.steward import _own, _scope

router = APIRouter()
steward = require("steward")


@router.get("/quarantine")
def quarantine_list(request: Request, status: str = "open", site: str | None = None,
                    conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    if status not in ("open", "released", "discarded", "all"):
        raise HTTPException(400, t(request, "status=%(status)s; use open, released, discarded or all",
                                    status=repr(status)))
    items = quarantine.list_items(conn, site=_scope(user, site),
                                  status=None if status == "all" else status)
    return render(request, "quarantine.html", items=items, showing=status,
                  done=request.query_params.get("done"))


def _owned(conn: Connection, item_id: int, user: User) -> dict:
    """The item, when ``user`` may see its site's data (403 otherwise)."""
    item = quarantine.get_item(conn, item_id)
    _own(user, item["site"])
    return item


@router.get("/quarantine/{item_id}")
def item_page(request: Request, item_id: int,
              conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    item = _owned(conn, item_id, user)
    quarantine.record_view(conn, item_id, actor=user.username, part="page")
    view = quarantine_view.inspect(request.app.state.store, item)
    return render(request, "quarantine_item.html", view=view, q=item)


@router.get("/quarantine/{item_id}/image.png")
def item_image(request: Request, item_id: int,
               conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    item = _owned(conn, item_id, user)
    quarantine.record_view(conn, item_id, actor=user.username, part="image")
    return Response(quarantine_view.preview_png(request.app.state.store, item),
                    media_type="image/png")


def _resolve(request: Request, item_id: int, status: str, reason: str, conn: Connection,
             user: User):
    _owned(conn, item_id, user)
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
