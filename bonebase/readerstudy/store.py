"""Queries of reader studies (migration 0011): studies, readers, sessions, order, answers.

Every read of a case, answer and correction leaves an audit event (entity ``reader_study``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg
from psycopg import Connection

from bonebase.db import audit
from bonebase.db.users import READER
from bonebase.errors import InputError, NotFoundError
from bonebase.readerstudy.design import arm_of, first_arms, reading_order

_STUDY = ("id, name, task, dataset_version, split, model_id, model_sha256, threshold,"
          " washout_days, seed, allow_corrections, created_by, created_at")


class Refused(InputError):
    """A reader's request the study does not allow (the web answers 403 or 409 with it)."""

    def __init__(self, message: str, *, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def reader_ids(conn: Connection, usernames: list[str]) -> dict[str, int]:
    """The user ids of ``usernames``, each of whom must be an active user of role reader."""
    if len(usernames) < 2:
        raise InputError("--readers needs at least two readers (the OR analysis compares readers)")
    if len(set(usernames)) != len(usernames):
        raise InputError("--readers names a reader twice")
    out = {}
    for name in usernames:
        row = conn.execute("SELECT id, role, active FROM users WHERE username = %s",
                           (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no user {name!r}: add them with "
                                f"`bonebase users add {name} --role reader`")
        if row["role"] != READER or not row["active"]:
            raise InputError(f"user {name!r} is {'an inactive ' if not row['active'] else 'a '}"
                             f"{row['role']}: study readers must be active users of role "
                             "reader (blinded, they see nothing else)")
        out[name] = row["id"]
    return out


def insert_study(conn: Connection, *, name: str, task: str, dataset_version: int, split: str,
                 model: dict, threshold: float, cases: list, answers: list, readers: list[str],
                 washout_days: int, seed: int, allow_corrections: bool, actor: str) -> dict:
    """Write a study with its cases and stored model answers, its readers, their two sessions
    and reading orders, in one transaction. ``cases``/``answers``: see readerstudy.cases."""
    ids = reader_ids(conn, readers)
    if washout_days < 0:
        raise InputError("--washout-days must be 0 or more")
    try:
        with conn.transaction():
            study = conn.execute(
                "INSERT INTO reader_studies (name, task, dataset_version, split, model_id,"
                " model_sha256, threshold, washout_days, seed, allow_corrections, created_by)"
                f" VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) RETURNING {_STUDY}",
                (name, task, dataset_version, split, model["id"], model["checkpoint_sha256"],
                 threshold, washout_days, seed, allow_corrections, actor)).fetchone()
            width = len(str(len(cases)))
            label_ids = {}
            for k, (case, answer) in enumerate(zip(cases, answers, strict=True), start=1):
                label = f"case-{k:0{width}d}"
                label_ids[label] = conn.execute(
                    "INSERT INTO reader_study_cases (study_id, label, case_id, instance_id, truth,"
                    " probability, predicted_class, gradcam_png) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
                    " RETURNING id",
                    (study["id"], label, case.case_id, case.instance_id, case.truth,
                     answer.probability, answer.predicted_class, answer.gradcam_png),
                ).fetchone()["id"]
            for reader, arm in first_arms(readers, seed).items():
                conn.execute("INSERT INTO reader_study_readers (study_id, user_id, first_arm)"
                             " VALUES (%s, %s, %s)", (study["id"], ids[reader], arm))
                for number in (1, 2):
                    session = conn.execute(
                        "INSERT INTO reader_sessions (study_id, user_id, number, arm, opens_at)"
                        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                        (study["id"], ids[reader], number, arm_of(arm, number),
                         study["created_at"] if number == 1 else None)).fetchone()["id"]
                    order = reading_order(list(label_ids), seed=seed, reader=reader,
                                          session=number)
                    with conn.cursor() as cur:
                        cur.executemany(
                            "INSERT INTO reader_order (session_id, position, study_case_id)"
                            " VALUES (%s, %s, %s)",
                            [(session, p, label_ids[lab]) for p, lab in enumerate(order, 1)])
            audit.record(conn, action="reader_study.create", entity="reader_study",
                         entity_id=name, actor=actor,
                         details={"cases": len(cases), "readers": readers, "model": model["id"],
                                  "dataset_version": dataset_version, "split": split,
                                  "washout_days": washout_days, "seed": seed})
    except psycopg.errors.UniqueViolation:
        raise InputError(f"a reader study named {name!r} exists: choose another name") from None
    return study


def get_study(conn: Connection, name: str) -> dict:
    row = conn.execute(f"SELECT {_STUDY} FROM reader_studies WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise NotFoundError(f"no reader study {name!r}; `bonebase reader-study list` shows them")
    return row


def list_studies(conn: Connection) -> list[dict]:
    return list(conn.execute(
        f"SELECT {_STUDY}, (SELECT count(*) FROM reader_study_cases c WHERE c.study_id = s.id)"
        " AS n_cases, (SELECT count(*) FROM reader_study_readers r WHERE r.study_id = s.id)"
        " AS n_readers FROM reader_studies s ORDER BY id").fetchall())


def sessions_of(conn: Connection, user_id: int) -> list[dict]:
    """A reader's sessions of every study assigned to them, with progress (no case data)."""
    return list(conn.execute(
        "SELECT st.name AS study, st.washout_days, se.id, se.number, se.arm, se.opens_at,"
        " coalesce(se.opens_at <= now(), false) AS is_open, se.finished_at, (SELECT count(*) FROM reader_order o WHERE o.session_id = se.id)"
        " AS total, (SELECT count(*) FROM reader_answers a WHERE a.session_id = se.id) AS done"
        " FROM reader_sessions se JOIN reader_studies st ON st.id = se.study_id"
        " WHERE se.user_id = %s ORDER BY st.id, se.number", (user_id,)).fetchall())


def open_session(conn: Connection, *, study: str, user_id: int, number: int,
                 now: datetime | None = None) -> dict:
    """The reader's session ``number`` of ``study`` if it is theirs and open, else Refused
    (403) saying why and, before the washout ends, the date it opens."""
    row = conn.execute(
        "SELECT se.*, st.name AS study, st.washout_days, st.allow_corrections, st.threshold,"
        " st.task, now() AS now FROM reader_sessions se"
        " JOIN reader_studies st ON st.id = se.study_id"
        " WHERE st.name = %s AND se.user_id = %s AND se.number = %s",
        (study, user_id, number)).fetchone()
    if row is None:
        raise Refused(f"you are not a reader of study {study!r} (or it has no session {number})")
    now = now or row["now"]
    if row["opens_at"] is None:
        raise Refused(f"session {number} of {study} opens {row['washout_days']} days after you "
                      "finish session 1 (the washout)")
    if row["opens_at"] > now:
        raise Refused(f"session {number} of {study} opens on "
                      f"{row['opens_at']:%Y-%m-%d %H:%M} UTC, after the "
                      f"{row['washout_days']}-day washout")
    return row


def progress(conn: Connection, session_id: int) -> tuple[int, int, int | None]:
    """(answered, total, first unanswered position or None)."""
    row = conn.execute(
        "SELECT count(*) AS total, count(a.id) AS done,"
        " min(o.position) FILTER (WHERE a.id IS NULL) AS next FROM reader_order o"
        " LEFT JOIN reader_answers a ON a.session_id = o.session_id"
        " AND a.study_case_id = o.study_case_id WHERE o.session_id = %s",
        (session_id,)).fetchone()
    return row["done"], row["total"], row["next"]


def case_at(conn: Connection, session: dict, position: int, *, actor: str) -> dict:
    """The case at ``position`` of a reader's session (blinded: no site, diagnosis or case id),
    its stored model answer and the reader's answer if any; records the first opening."""
    row = conn.execute(
        "SELECT o.position, o.first_opened_at, sc.id AS study_case_id, sc.label, sc.instance_id,"
        " sc.probability, sc.predicted_class, sc.gradcam_png IS NOT NULL AS has_heat,"
        " c.age, c.sex, c.location_code, a.score, a.diagnosis_code, a.confidence"
        " FROM reader_order o JOIN reader_study_cases sc ON sc.id = o.study_case_id"
        " JOIN cases c ON c.id = sc.case_id LEFT JOIN reader_answers a"
        " ON a.session_id = o.session_id AND a.study_case_id = o.study_case_id"
        " WHERE o.session_id = %s AND o.position = %s", (session["id"], position)).fetchone()
    if row is None:
        raise NotFoundError(f"session {session['number']} of {session['study']} has no case "
                            f"{position}")
    if row["first_opened_at"] is None:
        conn.execute("UPDATE reader_order SET first_opened_at = now()"
                     " WHERE session_id = %s AND position = %s", (session["id"], position))
        audit.record(conn, action="reader_study.open", entity="reader_study",
                     entity_id=session["study"], actor=actor,
                     details={"session": session["number"], "arm": session["arm"],
                              "case": row["label"]})
    return row


def answer(conn: Connection, session: dict, position: int, *, score: int,
           diagnosis: str | None, confidence: int | None, seconds: float | None,
           actor: str) -> dict:
    """Store the reader's answer for the case at ``position``. A second answer is refused
    (409, the first is kept) unless the study allows corrections, which are audited."""
    if not 0 <= score <= 100:
        raise Refused(f"score {score} is outside 0-100: give the probability in percent",
                      status=400)
    if confidence is not None and not 1 <= confidence <= 5:
        raise Refused(f"confidence {confidence} is outside 1-5", status=400)
    if seconds is not None and not 0 <= seconds < 86400:
        raise Refused(f"time per case {seconds} s is not a duration", status=400)
    with conn.transaction():
        item = conn.execute(
            "SELECT o.study_case_id, o.first_opened_at, sc.label, now() - o.first_opened_at"
            " AS elapsed FROM reader_order o JOIN reader_study_cases sc ON sc.id ="
            " o.study_case_id WHERE o.session_id = %s AND o.position = %s FOR UPDATE OF o",
            (session["id"], position)).fetchone()
        if item is None:
            raise NotFoundError(f"session {session['number']} of {session['study']} has no "
                                f"case {position}")
        if seconds is None:  # no timing from the page: from its first opening to now
            seconds = item["elapsed"].total_seconds() if item["elapsed"] else 0.0
        old = conn.execute(
            "SELECT id, score, diagnosis_code, confidence FROM reader_answers"
            " WHERE session_id = %s AND study_case_id = %s",
            (session["id"], item["study_case_id"])).fetchone()
        details = {"session": session["number"], "arm": session["arm"], "case": item["label"],
                   "score": score, "seconds": round(seconds, 2)}
        if old is not None:
            if not session["allow_corrections"]:
                raise Refused(f"{item['label']} is answered already (score {old['score']}): "
                              "answers are final in this study; the first is kept", status=409)
            conn.execute(
                "UPDATE reader_answers SET score = %s, diagnosis_code = %s, confidence = %s,"
                " corrections = corrections + 1, corrected_at = now() WHERE id = %s",
                (score, diagnosis, confidence, old["id"]))
            audit.record(conn, action="reader_study.correct", entity="reader_study",
                         entity_id=session["study"], actor=actor,
                         details={**details, "previous_score": old["score"]})
        else:
            conn.execute(
                "INSERT INTO reader_answers (session_id, study_case_id, score, diagnosis_code,"
                " confidence, seconds) VALUES (%s, %s, %s, %s, %s, %s)",
                (session["id"], item["study_case_id"], score, diagnosis, confidence, seconds))
            audit.record(conn, action="reader_study.answer", entity="reader_study",
                         entity_id=session["study"], actor=actor, details=details)
        done, total, _ = progress(conn, session["id"])
        if done == total and session["finished_at"] is None:
            _finish(conn, session, actor=actor)
    return {"done": done, "total": total}


def _finish(conn: Connection, session: dict, *, actor: str) -> None:
    row = conn.execute("UPDATE reader_sessions SET finished_at = now() WHERE id = %s"
                       " RETURNING finished_at", (session["id"],)).fetchone()
    if session["number"] == 1:
        # The washout runs from the end of the first reading.
        conn.execute(
            "UPDATE reader_sessions SET opens_at = %s WHERE study_id = %s AND user_id = %s"
            " AND number = 2",
            (row["finished_at"] + timedelta(days=session["washout_days"]), session["study_id"],
             session["user_id"]))
    audit.record(conn, action="reader_study.finish", entity="reader_study",
                 entity_id=session["study"], actor=actor,
                 details={"session": session["number"], "arm": session["arm"]})


def heat_map(conn: Connection, session: dict, position: int) -> bytes | None:
    """The stored Grad-CAM map of the case at ``position``; only in the aided arm."""
    if session["arm"] != "aided":
        raise Refused("the heat map is shown in the aided session only")
    row = conn.execute(
        "SELECT sc.gradcam_png FROM reader_order o JOIN reader_study_cases sc"
        " ON sc.id = o.study_case_id WHERE o.session_id = %s AND o.position = %s",
        (session["id"], position)).fetchone()
    if row is None:
        raise NotFoundError(f"no case {position} in this session")
    return row["gradcam_png"]


def image_key(conn: Connection, session: dict, position: int) -> str:
    """The object key of the radiograph of the case at ``position`` of the session."""
    row = conn.execute(
        "SELECT i.object_key FROM reader_order o JOIN reader_study_cases sc"
        " ON sc.id = o.study_case_id JOIN instances i ON i.id = sc.instance_id"
        " WHERE o.session_id = %s AND o.position = %s", (session["id"], position)).fetchone()
    if row is None:
        raise NotFoundError(f"no case {position} in this session")
    return row["object_key"]


def answers(conn: Connection, study_id: int) -> list[dict]:
    """Every answer of a study with reader, arm, case label, truth and the model's output."""
    return list(conn.execute(
        "SELECT u.username AS reader, se.arm, se.number, sc.label AS case, sc.truth, a.score,"
        " a.seconds, a.corrections, a.diagnosis_code, a.confidence FROM reader_answers a"
        " JOIN reader_sessions se ON se.id = a.session_id JOIN users u ON u.id = se.user_id"
        " JOIN reader_study_cases sc ON sc.id = a.study_case_id WHERE se.study_id = %s"
        " ORDER BY u.username, se.number, sc.label", (study_id,)).fetchall())


def study_cases(conn: Connection, study_id: int) -> list[dict]:
    return list(conn.execute(
        "SELECT label, truth, probability, predicted_class FROM reader_study_cases"
        " WHERE study_id = %s ORDER BY label", (study_id,)).fetchall())


def study_readers(conn: Connection, study_id: int) -> list[dict]:
    return list(conn.execute(
        "SELECT u.username AS reader, r.first_arm FROM reader_study_readers r"
        " JOIN users u ON u.id = r.user_id WHERE r.study_id = %s ORDER BY u.username",
        (study_id,)).fetchall())


__all__ = ["Refused", "answer", "answers", "case_at", "get_study", "heat_map", "image_key",
           "insert_study", "list_studies", "open_session", "progress", "reader_ids",
           "sessions_of", "study_cases", "study_readers"]
