"""Stewards' pages: sites, submissions with receipts and Data Docs, the quarantine and its actions.

A steward sees and acts on their own site only; an admin sees every site.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from psycopg import Connection

from bonebase.db import submissions
from bonebase.db.quality import site_quality
from bonebase.db.users import User
from validation.docs_offline import SUMMARY, offline_html
from web.auth import get_conn, require
from web.render import render, request_language, t

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
    docs = _docs_folder(receipt)
    # The receipt's words in the reader's language (its JSON holds codes, so any language can
    # be written from it); the site received it in the site's language.
    lang = request_language(request)
    return render(request, "submission.html", sub=row, receipt=receipt,
                  markdown=to_markdown(receipt, lang) if receipt else "",
                  has_docs=docs is not None and (docs / "index.html").is_file(),
                  has_summary=docs is not None and (docs / SUMMARY).is_file())


def _docs_folder(receipt: dict) -> Path | None:
    index = receipt.get("data_docs")
    return Path(index).parent if index else None


@router.get("/submissions/{submission_id}/validation")
def validation(request: Request, submission_id: int,
               conn: Connection = Depends(get_conn, scope="function"), user=Depends(steward)):
    """The validation results in bonebase's own page (no script, nothing from other hosts)."""
    row = submissions.get(conn, submission_id)
    _own(user, row["site"])
    docs = _docs_folder(row["receipt"] or {})
    path = docs / SUMMARY if docs is not None else None
    if path is None or not path.is_file():
        raise HTTPException(404, t(request, "submission %(id)s has no validation summary (it was "
                                            "validated before bonebase kept one); open its Data "
                                            "Docs instead", id=submission_id))
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        suites = report["suites"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HTTPException(404, t(request, "the validation summary of submission %(id)s cannot "
                                            "be read (%(error)s); submit it again",
                                   id=submission_id, error=type(exc).__name__)) from None
    return render(request, "validation.html", sub=row, suites=suites)


# Data Docs pages run GX's inline scripts; everything else comes from this server only.
_DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; "
                "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'none'")


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
    headers = {"Content-Security-Policy": _DOCS_POLICY}
    if target.suffix != ".html":
        return FileResponse(target, headers=headers)
    # Pages written before bonebase rewrote them still name CDNs: point those at /static/vendor.
    depth = len(target.relative_to(root).parts) - 1
    html = offline_html(target.read_text(encoding="utf-8", errors="replace"), "/static/vendor/",
                        "../" * depth + "static/")
    return HTMLResponse(html, headers=headers)
