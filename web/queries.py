"""Read queries of the web database: the case list (keyset pages), one case, the statistics.

Plain functions over a connection, like ``bonebase.db``; withdrawn cases (not current) are never
shown. Paging is by case id, newest first, so a page costs the same at any depth.
"""

from __future__ import annotations

from psycopg import Connection

from bonebase.errors import NotFoundError
from web.filters import CaseFilters

COUNT_CAP = 1_000  # beyond this the list says "more than 1,000": an exact count scans every match
_LIST_COLS = ("c.id, s.code AS site, c.case_pseudonym, c.age, c.sex, c.location_code,"
              " c.diagnosis_code, c.behaviour, c.modalities")


def where(f: CaseFilters) -> tuple[str, list]:
    """SQL conditions (ANDed, on alias ``c``) and their arguments for ``f``."""
    clauses, args = ["c.is_current"], []
    if f.site:
        # A scalar subquery, not a join condition: the planner then uses (site_id, id).
        clauses.append("c.site_id = (SELECT id FROM sites WHERE code = %s)")
        args.append(f.site)
    for col, value in (("diagnosis_code", f.diagnosis), ("behaviour", f.behaviour),
                       ("location_code", f.location), ("sex", f.sex)):
        if value is not None:
            clauses.append(f"c.{col} = %s")
            args.append(value)
    if f.age_min is not None:
        clauses.append("c.age >= %s")
        args.append(f.age_min)
    if f.age_max is not None:
        clauses.append("c.age <= %s")
        args.append(f.age_max)
    if f.modality:
        # Same expression as the GIN index cases_modalities_idx.
        clauses.append("string_to_array(c.modalities, ';') @> ARRAY[%s]::text[]")
        args.append(f.modality)
    if f.dataset is not None:
        clauses.append("EXISTS (SELECT 1 FROM dataset_version_cases d"
                       " WHERE d.version = %s AND d.case_id = c.id)")
        args.append(f.dataset)
    return " AND ".join(clauses), args


def list_cases(conn: Connection, f: CaseFilters, *, after: int | None = None,
               before: int | None = None, limit: int = 50) -> tuple[list[dict], bool, bool]:
    """One page, newest first: (rows, has_newer, has_older).

    ``after`` = id of the last row of the previous page (go older); ``before`` = id of the first
    row of the next page (go newer).
    """
    cond, args = where(f)
    if before is not None:
        rows = conn.execute(
            f"SELECT {_LIST_COLS} FROM cases c JOIN sites s ON s.id = c.site_id"
            f" WHERE {cond} AND c.id > %s ORDER BY c.id LIMIT %s",
            (*args, before, limit + 1),
        ).fetchall()
        newer = len(rows) > limit
        return list(reversed(rows[:limit])), newer, True
    extra, extra_args = ("AND c.id < %s", [after]) if after is not None else ("", [])
    rows = conn.execute(
        f"SELECT {_LIST_COLS} FROM cases c JOIN sites s ON s.id = c.site_id"
        f" WHERE {cond} {extra} ORDER BY c.id DESC LIMIT %s",
        (*args, *extra_args, limit + 1),
    ).fetchall()
    return rows[:limit], after is not None, len(rows) > limit


def count_cases(conn: Connection, f: CaseFilters, *, cap: int = COUNT_CAP) -> int:
    """Matches of ``f``, counted up to ``cap + 1`` (the page shows "cap+" beyond)."""
    cond, args = where(f)
    return conn.execute(
        f"SELECT count(*) AS n FROM (SELECT 1 FROM cases c WHERE {cond} LIMIT %s) m",
        (*args, cap + 1),
    ).fetchone()["n"]


def get_case(conn: Connection, case_id: int) -> dict:
    """A case with its site and patient, its studies → series → instances."""
    case = conn.execute(
        "SELECT c.*, s.code AS site, s.name AS site_name, p.pseudonym AS patient"
        " FROM cases c JOIN sites s ON s.id = c.site_id JOIN patients p ON p.id = c.patient_id"
        " WHERE c.id = %s AND c.is_current",
        (case_id,),
    ).fetchone()
    if case is None:
        raise NotFoundError(f"no case {case_id}; it may have been withdrawn")
    rows = conn.execute(
        "SELECT st.id AS study_id, st.study_date, st.description AS study_description,"
        " se.id AS series_id, se.modality, se.body_part, se.description AS series_description,"
        " i.id AS instance_id, i.instance_number, i.rows, i.columns, i.object_key, i.sop_class_uid"
        " FROM studies st JOIN series se ON se.study_id = st.id"
        " JOIN instances i ON i.series_id = se.id WHERE st.case_id = %s"
        " ORDER BY st.study_date NULLS LAST, st.id, se.id, i.instance_number NULLS LAST, i.id",
        (case_id,),
    ).fetchall()
    studies: dict[int, dict] = {}
    for r in rows:
        study = studies.setdefault(r["study_id"], {
            "id": r["study_id"], "date": r["study_date"], "description": r["study_description"],
            "series": {}})
        series = study["series"].setdefault(r["series_id"], {
            "id": r["series_id"], "modality": r["modality"], "body_part": r["body_part"],
            "description": r["series_description"], "instances": []})
        series["instances"].append({"id": r["instance_id"], "number": r["instance_number"],
                                    "rows": r["rows"], "columns": r["columns"],
                                    "object_key": r["object_key"],
                                    "sop_class_uid": r["sop_class_uid"]})
    for study in studies.values():
        study["series"] = list(study["series"].values())
    return {**case, "studies": list(studies.values())}


def get_instance(conn: Connection, instance_id: int) -> dict:
    """An instance with its case id and the case's clinical values (for /diagnose)."""
    row = conn.execute(
        "SELECT i.id, i.object_key, i.modality, i.sop_instance_uid, st.case_id, c.age, c.sex,"
        " c.location_code FROM instances i JOIN series se ON se.id = i.series_id"
        " JOIN studies st ON st.id = se.study_id JOIN cases c ON c.id = st.case_id"
        " WHERE i.id = %s AND c.is_current",
        (instance_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no image {instance_id}")
    return row


def _grouped(conn: Connection, expr: str) -> list[tuple[str, int]]:
    rows = conn.execute(
        f"SELECT {expr} AS k, count(*) AS n FROM cases c JOIN sites s ON s.id = c.site_id"
        " WHERE c.is_current GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    return [(r["k"] if r["k"] is not None else "unknown", r["n"]) for r in rows]


def statistics(conn: Connection) -> dict[str, list[tuple[str, int]]]:
    """Counts by diagnosis, behaviour, site, location and age decade (cases, current)."""
    ages = conn.execute(
        "SELECT width_bucket(age, 0, 100, 10) AS b, count(*) AS n FROM cases"
        " WHERE is_current AND age IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()
    decades = [(f"{(r['b'] - 1) * 10}-{(r['b'] - 1) * 10 + 9}" if r["b"] <= 10 else "100+", r["n"])
               for r in ages]
    return {
        "diagnosis": _grouped(conn, "c.diagnosis_code"),
        "behaviour": _grouped(conn, "c.behaviour"),
        "site": _grouped(conn, "s.code"),
        "location": _grouped(conn, "c.location_code"),
        "age": decades,
    }
