"""Case queries: patients, cases (versioned), studies, series and instances.

A case commits whole or not at all: :func:`commit_case` runs in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from psycopg import Connection
from psycopg.types.json import Jsonb


@dataclass(frozen=True)
class CaseRecord:
    case_pseudonym: str
    patient_pseudonym: str
    age: int | None
    sex: str | None
    location_code: str | None
    diagnosis_code: str | None
    behaviour: str | None
    modalities: str
    pathology_confirmed: bool | None
    row_hash: str  # hash of the normalised manifest row: a change makes a new version


@dataclass(frozen=True)
class InstanceRecord:
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str | None
    modality: str
    sha256: str
    source_sha256: str
    object_key: str
    size_bytes: int
    study_date: date | None = None
    study_description: str | None = None
    series_description: str | None = None
    body_part: str | None = None
    rows: int | None = None
    columns: int | None = None
    bits_stored: int | None = None
    photometric: str | None = None
    instance_number: int | None = None


@dataclass(frozen=True)
class CaseOutcome:
    case_id: int
    status: str  # new | updated | unchanged
    version: int
    added: int
    duplicates: int


_CASE_FIELDS = ("age", "sex", "location_code", "diagnosis_code", "behaviour", "modalities",
                "pathology_confirmed")


def _upsert_case(conn: Connection, *, site_id: int, submission_id: int, patient_id: int,
                 case: CaseRecord) -> tuple[int, str, int]:
    row = conn.execute(
        "SELECT id, version, row_hash FROM cases WHERE site_id = %s AND case_pseudonym = %s"
        " FOR UPDATE",
        (site_id, case.case_pseudonym),
    ).fetchone()
    values = [getattr(case, f) for f in _CASE_FIELDS]
    data = {f: getattr(case, f) for f in _CASE_FIELDS}
    if row is None:
        case_id = conn.execute(
            f"INSERT INTO cases (site_id, patient_id, case_pseudonym, {', '.join(_CASE_FIELDS)},"
            " row_hash, submission_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " RETURNING id",
            (site_id, patient_id, case.case_pseudonym, *values, case.row_hash, submission_id),
        ).fetchone()["id"]
        status, version = "new", 1
    elif row["row_hash"] == case.row_hash:
        return row["id"], "unchanged", row["version"]
    else:
        # A corrected manifest row: the old values stay in case_versions, never overwritten.
        case_id, version, status = row["id"], row["version"] + 1, "updated"
        sets = ", ".join(f"{f} = %s" for f in _CASE_FIELDS)
        conn.execute(
            f"UPDATE cases SET {sets}, version = %s, row_hash = %s, submission_id = %s,"
            " patient_id = %s, updated_at = now() WHERE id = %s",
            (*values, version, case.row_hash, submission_id, patient_id, case_id),
        )
    conn.execute(
        "INSERT INTO case_versions (case_id, version, data, row_hash, submission_id)"
        " VALUES (%s, %s, %s, %s, %s)",
        (case_id, version, Jsonb(data), case.row_hash, submission_id),
    )
    return case_id, status, version


def _id_of(conn: Connection, insert: str, select: str, args: tuple, key: tuple) -> int:
    row = conn.execute(insert, args).fetchone()
    return row["id"] if row else conn.execute(select, key).fetchone()["id"]


def commit_case(conn: Connection, *, site_id: int, submission_id: int, case: CaseRecord,
                instances: list[InstanceRecord]) -> CaseOutcome:
    """Write a case and its instances in one transaction; existing instances count as duplicates."""
    added = duplicates = 0
    with conn.transaction():
        patient_id = conn.execute(
            "INSERT INTO patients (site_id, pseudonym, sex) VALUES (%s, %s, %s)"
            " ON CONFLICT (site_id, pseudonym) DO UPDATE SET sex = COALESCE(patients.sex,"
            " EXCLUDED.sex) RETURNING id",
            (site_id, case.patient_pseudonym, case.sex),
        ).fetchone()["id"]
        case_id, status, version = _upsert_case(
            conn, site_id=site_id, submission_id=submission_id, patient_id=patient_id, case=case
        )
        for inst in instances:
            study_id = _id_of(
                conn,
                "INSERT INTO studies (case_id, study_uid, study_date, description)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (study_uid) DO NOTHING RETURNING id",
                "SELECT id FROM studies WHERE study_uid = %s",
                (case_id, inst.study_uid, inst.study_date, inst.study_description),
                (inst.study_uid,),
            )
            series_id = _id_of(
                conn,
                "INSERT INTO series (study_id, series_uid, modality, body_part, description)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (series_uid) DO NOTHING RETURNING id",
                "SELECT id FROM series WHERE series_uid = %s",
                (study_id, inst.series_uid, inst.modality, inst.body_part,
                 inst.series_description),
                (inst.series_uid,),
            )
            row = conn.execute(
                "INSERT INTO instances (series_id, sop_instance_uid, sop_class_uid, sha256,"
                " source_sha256, object_key, size_bytes, modality, rows, columns, bits_stored,"
                " photometric, instance_number, submission_id) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT DO NOTHING RETURNING id",
                (series_id, inst.sop_instance_uid, inst.sop_class_uid, inst.sha256,
                 inst.source_sha256, inst.object_key, inst.size_bytes, inst.modality, inst.rows,
                 inst.columns, inst.bits_stored, inst.photometric, inst.instance_number,
                 submission_id),
            ).fetchone()
            if row:
                added += 1
            else:
                duplicates += 1
    return CaseOutcome(case_id, status, version, added, duplicates)



def case_history(conn: Connection, *, site_id: int, case_pseudonym: str) -> list[dict]:
    return list(conn.execute(
        "SELECT v.version, v.data, v.row_hash, v.submission_id, v.created_at FROM case_versions v"
        " JOIN cases c ON c.id = v.case_id WHERE c.site_id = %s AND c.case_pseudonym = %s"
        " ORDER BY v.version",
        (site_id, case_pseudonym),
    ).fetchall())


def counts(conn: Connection) -> dict:
    """Row counts of the case tables (for receipts, demos and tests)."""
    return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]  # noqa: S608
            for t in ("patients", "cases", "case_versions", "studies", "series", "instances")}


__all__ = ["CaseOutcome", "CaseRecord", "InstanceRecord", "commit_case",
           "case_history", "counts"]
