"""Stored answers of the served model on radiographs of the database (migration 0004)."""

from __future__ import annotations

from psycopg import Connection
from psycopg.types.json import Jsonb

from bonebase.db import audit
from bonebase.errors import NotFoundError

_COLS = ("id, case_id, instance_id, model_version, task, dataset_version, predicted_class,"
         " probabilities, threshold, out_of_distribution, requested_by, created_at")


def add_prediction(conn: Connection, *, case_id: int, instance_id: int, result: dict,
                   gradcam_png: bytes | None, requested_by: str) -> dict:
    """Store one /diagnose answer (the service's JSON) with who asked; returns the row. The
    answer's ``out_of_distribution`` part is kept (NULL when the service has no detector)."""
    ood = result.get("out_of_distribution")
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO predictions (case_id, instance_id, model_version, task, dataset_version,"
            " predicted_class, probabilities, threshold, out_of_distribution, gradcam_png,"
            f" requested_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_COLS}",
            (case_id, instance_id, result["model_version"], result.get("task"),
             result.get("dataset_version"), result["predicted_class"],
             Jsonb(result["probabilities"]), result.get("threshold"),
             Jsonb(ood) if ood is not None else None, gradcam_png, requested_by),
        ).fetchone()
        audit.record(conn, action="prediction.add", entity="case", entity_id=case_id,
                     actor=requested_by, details={"prediction": row["id"],
                                                  "model_version": row["model_version"]})
    return row


def for_case(conn: Connection, case_id: int) -> list[dict]:
    """A case's predictions, newest first (without the heat map bytes)."""
    return list(conn.execute(
        f"SELECT {_COLS} FROM predictions WHERE case_id = %s ORDER BY id DESC", (case_id,)
    ).fetchall())


def heat_map(conn: Connection, prediction_id: int) -> tuple[int, bytes | None]:
    """(case_id, Grad-CAM PNG) of a prediction."""
    row = conn.execute("SELECT case_id, gradcam_png FROM predictions WHERE id = %s",
                       (prediction_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"no prediction {prediction_id}")
    return row["case_id"], row["gradcam_png"]


__all__ = ["add_prediction", "for_case", "heat_map"]
