"""Queries of the champion watch (tables of migration 0010): what to score, scores, checks."""

from __future__ import annotations

from psycopg import Connection
from psycopg.types.json import Jsonb

from bonebase.db import models as model_q
from bonebase.errors import NotFoundError

#: The tasks whose deployed model the watch scores with (two-class tasks).
WATCHED_TASKS = ("benign_vs_malignant", "os_vs_gct")


def deployed(conn: Connection) -> dict[str, dict]:
    """The deployed model of each watched task that has one, by task (in WATCHED_TASKS order)."""
    models = {t: model_q.deployed_model(conn, task=t) for t in WATCHED_TASKS}
    return {t: m for t, m in models.items() if m is not None}


def champion(conn: Connection, *, task: str) -> dict:
    """The deployed model of ``task``, or NotFoundError saying how to deploy one."""
    row = model_q.deployed_model(conn, task=task)
    if row is None:
        raise NotFoundError(f"no model of task {task} is deployed: nothing to watch; deploy one "
                            "with bonebase models deploy ID")
    return row

_TO_SCORE = """
SELECT i.id AS instance_id, i.object_key, i.sha256, c.id AS case_id, c.site_id, s.code AS site,
       i.submission_id, date_trunc('month', i.created_at)::date AS month,
       c.diagnosis_code, c.location_code, c.age, c.sex
  FROM instances i
  JOIN series se ON se.id = i.series_id
  JOIN studies st ON st.id = se.study_id
  JOIN cases c ON c.id = st.case_id
  JOIN sites s ON s.id = c.site_id
 WHERE c.is_current AND i.modality = ANY(%(modalities)s)
   AND NOT EXISTS (SELECT 1 FROM watch_scores w
                    WHERE w.model_id = %(model)s AND w.instance_id = i.id)
"""


def unscored(conn: Connection, *, model_id: int, modalities: list[str],
             submission_id: int | None = None, before=None, case_ids: list[int] | None = None,
             ) -> list[dict]:
    """Radiographs of current cases that ``model_id`` has not scored yet, by instance id:
    of one submission, or that arrived before ``before``, or of the cases ``case_ids``."""
    sql, args = _TO_SCORE, {"modalities": modalities, "model": model_id}
    if submission_id is not None:
        sql += " AND i.submission_id = %(submission)s"
        args["submission"] = submission_id
    if before is not None:
        sql += " AND i.created_at < %(before)s"
        args["before"] = before
    if case_ids is not None:
        sql += " AND c.id = ANY(%(cases)s)"
        args["cases"] = case_ids
    return list(conn.execute(sql + " ORDER BY i.id", args).fetchall())


def count_unscored(conn: Connection, *, model_id: int, modalities: list[str]) -> int:
    """How many radiographs of current cases ``model_id`` has not scored (a background watch
    still running or failed, images from before it was deployed): `bonebase monitor run`
    scores them."""
    return conn.execute(f"SELECT count(*) AS n FROM ({_TO_SCORE}) todo",  # noqa: S608
                        {"modalities": modalities, "model": model_id}).fetchone()["n"]


def insert_scores(conn: Connection, *, model_id: int, role: str, rows: list[dict]) -> int:
    """Store scored radiographs (see :func:`bonebase.monitor.scoring.score_rows`); an image
    scored twice by one model keeps its first score. Returns how many rows were new."""
    if not rows:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO watch_scores (model_id, instance_id, case_id, site_id, submission_id,"
            " role, month, label, probability, predicted, features, error)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (model_id, instance_id) DO NOTHING",
            [(model_id, r["instance_id"], r["case_id"], r["site_id"], r["submission_id"], role,
              r["month"], r["label"], r["probability"], r["predicted"], Jsonb(r["features"]),
              r["error"]) for r in rows],
        )
        return cur.rowcount


def scores(conn: Connection, *, model_id: int, role: str | None = None,
           site: str | None = None) -> list[dict]:
    """Scored radiographs of a model with their site code, oldest first."""
    sql = ("SELECT w.*, s.code AS site FROM watch_scores w JOIN sites s ON s.id = w.site_id"
           " WHERE w.model_id = %s")
    args: list = [model_id]
    if role:
        sql += " AND w.role = %s"
        args.append(role)
    if site:
        sql += " AND s.code = %s"
        args.append(site)
    return list(conn.execute(sql + " ORDER BY w.id", args).fetchall())


def ask_the_model(conn: Connection, *, model_version: str | None = None) -> list[dict]:
    """The web database's "Ask the model" answers on current cases, with the case's site,
    diagnosis and location (the truth is the case's pathology diagnosis)."""
    sql = ("SELECT p.id, p.model_version, p.task, p.probabilities, p.predicted_class,"
           " p.threshold, p.created_at, date_trunc('month', p.created_at)::date AS month,"
           " s.code AS site, c.diagnosis_code, c.location_code"
           " FROM predictions p JOIN cases c ON c.id = p.case_id"
           " JOIN sites s ON s.id = c.site_id WHERE c.is_current")
    args: list = []
    if model_version:
        sql += " AND p.model_version = %s"
        args.append(model_version)
    return list(conn.execute(sql + " ORDER BY p.id", args).fetchall())


def add_check(conn: Connection, *, model_id: int, site_id: int, kind: str, result: dict,
              breached: bool, report_key: str | None = None) -> dict:
    """Record one check of a site; returns the row."""
    return conn.execute(
        "INSERT INTO watch_checks (model_id, site_id, kind, result, breached, report_key)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
        (model_id, site_id, kind, Jsonb(result), breached, report_key),
    ).fetchone()


def latest_checks(conn: Connection, *, model_id: int | None = None) -> list[dict]:
    """The newest check of each (model, site, kind), with the site code."""
    sql = ("SELECT DISTINCT ON (w.model_id, w.site_id, w.kind) w.*, s.code AS site"
           " FROM watch_checks w JOIN sites s ON s.id = w.site_id")
    args: list = []
    if model_id is not None:
        sql += " WHERE w.model_id = %s"
        args.append(model_id)
    return list(conn.execute(
        sql + " ORDER BY w.model_id, w.site_id, w.kind, w.id DESC", args).fetchall())


def open_alerts(conn: Connection) -> list[dict]:
    """Breached checks that are the newest of their (model, site, kind) and not acknowledged:
    what the models page's banner shows."""
    return [c for c in latest_checks(conn) if c["breached"] and c["acknowledged_at"] is None]


def get_check(conn: Connection, check_id: int) -> dict | None:
    return conn.execute("SELECT w.*, s.code AS site FROM watch_checks w JOIN sites s"
                        " ON s.id = w.site_id WHERE w.id = %s", (check_id,)).fetchone()


def acknowledge(conn: Connection, check_id: int, *, by: str) -> None:
    conn.execute("UPDATE watch_checks SET acknowledged_by = %s, acknowledged_at = now()"
                 " WHERE id = %s", (by, check_id))


__all__ = ["acknowledge", "add_check", "champion", "ask_the_model", "count_unscored", "get_check",
           "insert_scores",
           "latest_checks", "open_alerts", "scores", "unscored"]
