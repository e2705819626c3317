"""Reader studies in the web database (#22): the reading pages (role reader, blinded) and the
admins' study pages (create, results, scores.csv).

A reader reaches a case only through their own session and its position in their reading
order: no case id, hospital, diagnosis or other reader is in a reading page, and a session of
another reader or one whose washout has not ended answers 403 with the reason.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from psycopg import Connection

from bonebase.errors import BonebaseError
from bonebase.readerstudy import store
from bonebase.readerstudy.create import MAX_CASES, create_study, parse_readers
from bonebase.readerstudy.figure import operating_points_svg
from bonebase.readerstudy.results import export_csv, results
from bonebase.vocab import DIAGNOSES
from web.auth import csrf_protect, get_conn, require
from web.imaging import heat_colour, render_windowed
from web.imaging import render as render_png
from web.render import render, t

router = APIRouter()
SIZE = 1024  # the reading page's picture: zoom in the browser stays sharp
IMMUTABLE = {"Cache-Control": "private, max-age=86400, immutable"}


def _session(conn: Connection, user, study: str, number: int) -> dict:
    try:
        return store.open_session(conn, study=study, user_id=user.id, number=number)
    except store.Refused as exc:
        raise HTTPException(exc.status, str(exc)) from None


@router.get("/read")
def reading_list(request: Request, conn: Connection = Depends(get_conn, scope="function"),
                 user=Depends(require("reader"))):
    return render(request, "reader_list.html", sessions=store.sessions_of(conn, user.id))


@router.get("/read/{study}/{number}")
def resume(request: Request, study: str, number: int,
           conn: Connection = Depends(get_conn, scope="function"),
           user=Depends(require("reader"))):
    """The first unanswered case of the session (a reader who stopped resumes here)."""
    session = _session(conn, user, study, number)
    done, total, nxt = store.progress(conn, session["id"])
    if nxt is None:
        return render(request, "reader_done.html", session=session, done=done, total=total)
    return RedirectResponse(f"/read/{study}/{number}/{nxt}", status_code=303)


@router.get("/read/{study}/{number}/{position}")
def case_page(request: Request, study: str, number: int, position: int,
              conn: Connection = Depends(get_conn, scope="function"),
              user=Depends(require("reader"))):
    session = _session(conn, user, study, number)
    case = store.case_at(conn, session, position, actor=user.username)
    done, total, _ = store.progress(conn, session["id"])
    location = (case["location_code"] or "").replace("_", " ")
    return render(request, "reader_case.html", session=session, case=case, done=done,
                  total=total, location=location, aided=session["arm"] == "aided",
                  threshold=session["threshold"],
                  diagnoses=sorted((d.name, code) for code, d in DIAGNOSES.items()),
                  base=f"/read/{study}/{number}/{position}")


@router.post("/read/{study}/{number}/{position}", dependencies=[Depends(csrf_protect)])
def submit(request: Request, study: str, number: int, position: int,
           score: int = Form(...), diagnosis: str = Form(""), confidence: str = Form(""),
           seconds: str = Form(""), conn: Connection = Depends(get_conn, scope="function"),
           user=Depends(require("reader"))):
    session = _session(conn, user, study, number)
    if diagnosis and diagnosis not in DIAGNOSES:
        raise HTTPException(400, t(request, "diagnosis %(term)s is not in the vocabulary",
                                    term=repr(diagnosis[:40])))
    try:
        conf = int(confidence) if confidence else None
        secs = float(seconds) if seconds else None
    except ValueError:
        raise HTTPException(400, t(request, "confidence must be 1-5 and seconds a number")) from None
    try:
        store.answer(conn, session, position, score=score, diagnosis=diagnosis or None,
                     confidence=conf, seconds=secs, actor=user.username)
    except store.Refused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return RedirectResponse(f"/read/{study}/{number}", status_code=303)


@router.get("/read/{study}/{number}/{position}/image.png")
def image(request: Request, study: str, number: int, position: int,
          level: float | None = Query(None, ge=0, le=1, description="window centre, 0-1"),
          window: float | None = Query(None, gt=0, le=2, description="window width, 0-2"),
          conn: Connection = Depends(get_conn, scope="function"),
          user=Depends(require("reader"))):
    """The case's radiograph: the header's window, or the reader's (``level`` and ``window`` as
    fractions of the stored range), re-rendered from the stored values."""
    session = _session(conn, user, study, number)
    data = request.app.state.store.get_bytes(store.image_key(conn, session, position))
    png = None
    if level is not None and window is not None:
        try:
            png = render_windowed(data, SIZE, level=level, window=window)
        except BonebaseError:  # a multi-frame image: its frames keep their own windows
            png = None
    return Response(png or render_png(data, SIZE), media_type="image/png", headers=IMMUTABLE)


@router.get("/read/{study}/{number}/{position}/heat.png")
def heat(request: Request, study: str, number: int, position: int,
         conn: Connection = Depends(get_conn, scope="function"),
         user=Depends(require("reader"))):
    session = _session(conn, user, study, number)
    try:
        png = store.heat_map(conn, session, position)
    except store.Refused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if png is None:
        raise HTTPException(404, "this case has no stored heat map")
    return Response(heat_colour(png), media_type="image/png", headers=IMMUTABLE)


# ----------------------------------------------------------------------------------------
# The admins' pages: studies, creation, results and the scores for `reader-study analyze`


def _study_form(conn: Connection) -> dict:
    from bonebase.readerstudy.cases import STUDY_TASKS

    return {
        "studies": store.list_studies(conn),
        "tasks": STUDY_TASKS,
        "versions": [r["version"] for r in conn.execute(
            "SELECT version FROM dataset_versions ORDER BY version DESC")],
        "models": list(conn.execute("SELECT id, task, status, created_at FROM models"
                                    " ORDER BY id DESC LIMIT 200")),
        "readers": [r["username"] for r in conn.execute(
            "SELECT username FROM users WHERE role = 'reader' AND active ORDER BY username")],
        "max_cases": MAX_CASES,
    }


@router.get("/reader-studies")
def studies_page(request: Request, conn: Connection = Depends(get_conn, scope="function"),
                 user=Depends(require("admin"))):
    return render(request, "reader_studies.html", error=None, form={}, **_study_form(conn))


@router.post("/reader-studies", dependencies=[Depends(csrf_protect)])
def create(request: Request, name: str = Form(""), dataset_version: int = Form(...),
           split: str = Form("test"), task: str = Form(...), model: int = Form(...),
           readers: str = Form(""), washout_days: int = Form(28), seed: str = Form(""),
           max_cases: str = Form(""), allow_corrections: str = Form(""),
           conn: Connection = Depends(get_conn, scope="function"),
           user=Depends(require("admin"))):
    from bonebase.errors import BonebaseError

    form = dict(name=name, dataset_version=dataset_version, split=split, task=task, model=model,
                readers=readers, washout_days=washout_days, seed=seed, max_cases=max_cases)
    try:
        if not name.strip():
            raise store.Refused("give the study a name", status=400)
        if (seed and not seed.isdigit()) or (max_cases and not max_cases.isdigit()):
            raise store.Refused("seed and maximum number of cases are whole numbers", status=400)
        study = create_study(
            conn, request.app.state.store, name=name.strip(), dataset_version=dataset_version,
            split=split, task=task, model_id=model, readers=parse_readers(readers),
            washout_days=washout_days, seed=int(seed) if seed else None,
            max_cases=int(max_cases) if max_cases else None,
            allow_corrections=bool(allow_corrections), actor=user.username)
    except BonebaseError as exc:
        conn.rollback()
        return render(request, "reader_studies.html", status=400, error=str(exc), form=form,
                      **_study_form(conn))
    return RedirectResponse(f"/reader-studies/{study['name']}", status_code=303)


@router.get("/reader-studies/{name}")
def results_page(request: Request, name: str,
                 conn: Connection = Depends(get_conn, scope="function"),
                 user=Depends(require("admin"))):
    out = results(conn, name)
    return render(request, "reader_results.html", r=out, figure=operating_points_svg(out))


@router.get("/reader-studies/{name}/scores.csv")
def scores_csv(name: str, conn: Connection = Depends(get_conn, scope="function"),
               user=Depends(require("admin"))):
    text = export_csv(conn, store.get_study(conn, name))
    return Response(text, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}-scores.csv"'})
