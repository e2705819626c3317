"""The models page: the champion (deployed) per task, candidates, approvals and reports."""

from __future__ import annotations

from pathlib import PurePosixPath

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response
from psycopg import Connection

from bonebase.db import models as db_models
from web.auth import get_conn, require
from web.render import render

router = APIRouter()
TYPES = {".html": "text/html", ".md": "text/markdown; charset=utf-8", ".json": "application/json",
         ".pdf": "application/pdf", ".png": "image/png"}


@router.get("/models")
def model_list(request: Request, conn: Connection = Depends(get_conn, scope="function"),
               user=Depends(require("researcher"))):
    rows = db_models.list_models(conn)
    champions = {r["task"]: r for r in rows if r["status"] == "deployed"}
    approvals = {r["id"]: db_models.approvals_of(conn, r["id"]) for r in rows}
    return render(request, "models.html", rows=rows, champions=champions, approvals=approvals,
                  deployments=db_models.deployments(conn, limit=20))


@router.get("/models/{model_id}/report")
def report(request: Request, model_id: int, conn: Connection = Depends(get_conn, scope="function"),
           user=Depends(require("researcher"))):
    model = db_models.get_model(conn, model_id)
    if not model["report_key"]:
        raise HTTPException(404, f"model {model_id} was registered without a report")
    data = request.app.state.store.get_bytes(model["report_key"])
    kind = TYPES.get(PurePosixPath(model["report_key"]).suffix, "text/plain; charset=utf-8")
    # A report is our own file, but served as a download-free page it must not run scripts.
    return Response(data, media_type=kind,
                    headers={"Content-Security-Policy": "script-src 'none'"})
