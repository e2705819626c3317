"""Stewards' pages: sites, submissions with receipts and Data Docs, the quarantine and its actions.

A steward sees and acts on their own site only; an admin sees every site.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse
from psycopg import Connection

from bonebase.db import quarantine, submissions
from bonebase.db.quality import site_quality
from bonebase.db.users import User
from web.auth import csrf_protect, get_conn, require
from web.render import render

router = APIRouter()
steward = require("steward")


def _scope(user: User, site: str | None = None) -> str | None:
    """The site a user may look at: a steward's own, or for an admin the one asked for."""
    return (site or None) if user.role == "admin" else user.site


def _own(user: User, site: str) -> None:
    if user.role != "admin" and site != user.site:
        raise HTTPException(403, f"this belongs to site {site}; you are the steward of {user.site}")


@router.get("/sites")
def sites(request: Request, conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    return render(request, "sites.html", cards=site_quality(conn, site=_scope(user)))


@router.get("/submissions")
def submission_list(request: Request, site: str | None = None,
                    conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    rows = submissions.list_(conn, site=_scope(user, site), limit=200)
    return render(request, "submissions.html", rows=rows)


@router.get("/submissions/{submission_id}")
def submission(request: Request, submission_id: int, conn: Connection = Depends(get_conn, scope="function"),
               user=Depends(steward)):
    row = submissions.get(conn, submission_id)
    _own(user, row["site"])
    from bonebase.ingest.receipt import to_markdown

    receipt = row["receipt"] or {}
    return render(request, "submission.html", sub=row, receipt=receipt,
                  markdown=to_markdown(receipt) if receipt else "",
                  has_docs=bool(receipt.get("data_docs")))


@router.get("/submissions/{submission_id}/docs/{path:path}")
def data_docs(submission_id: int, path: str = "", conn: Connection = Depends(get_conn, scope="function"),
              user=Depends(steward)):
    row = submissions.get(conn, submission_id)
    _own(user, row["site"])
    index = (row["receipt"] or {}).get("data_docs")
    if not index:
        raise HTTPException(404, f"submission {submission_id} has no Data Docs")
    root = Path(index).parent.resolve()
    target = (root / (path or Path(index).name)).resolve()
    # The path comes from the URL: never serve anything outside this submission's docs folder.
    try:
        found = target.is_relative_to(root) and target.is_file()
    except OSError:  # e.g. a name too long for the file system: no such page either
        found = False
    if not found:
        raise HTTPException(404, f"no Data Docs page {path!r} for submission {submission_id}")
    return FileResponse(target)


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
