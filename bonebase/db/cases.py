"""Case queries: patients, cases (versioned), studies, series and instances.

A case commits whole or not at all: :func:`commit_cases` writes a batch of cases in one
transaction, with one statement per table (``unnest`` of arrays) rather than several per file.
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


def _patients(conn: Connection, site_id: int, cases: list[CaseRecord]) -> dict[str, int]:
    sex_of: dict[str, str | None] = {}
    for case in cases:  # the first sex given for a patient, as one insert per case would keep
        if sex_of.get(case.patient_pseudonym) is None:
            sex_of[case.patient_pseudonym] = case.sex
    rows = conn.execute(
        "INSERT INTO patients (site_id, pseudonym, sex)"
        " SELECT %s, p, s FROM unnest(%s::text[], %s::text[]) AS t(p, s)"
        " ON CONFLICT (site_id, pseudonym) DO UPDATE SET sex = COALESCE(patients.sex,"
        " EXCLUDED.sex) RETURNING id, pseudonym",
        (site_id, list(sex_of), list(sex_of.values())),
    ).fetchall()
    return {r["pseudonym"]: r["id"] for r in rows}


def _upsert_cases(conn: Connection, *, site_id: int, submission_id: int,
                  patients: dict[str, int], cases: list[CaseRecord]) -> list[tuple[int, str, int]]:
    """(case id, status, version) per case: new, updated (a new version) or unchanged."""
    found = {r["case_pseudonym"]: r for r in conn.execute(
        "SELECT id, case_pseudonym, version, row_hash FROM cases WHERE site_id = %s"
        " AND case_pseudonym = ANY(%s) ORDER BY id FOR UPDATE",
        (site_id, [c.case_pseudonym for c in cases]),
    ).fetchall()}
    new = [c for c in cases if c.case_pseudonym not in found]
    if new:
        columns = list(zip(*[[getattr(c, f) for f in _CASE_FIELDS] for c in new], strict=True))
        rows = conn.execute(
            f"INSERT INTO cases (site_id, submission_id, patient_id, case_pseudonym, row_hash,"
            f" {', '.join(_CASE_FIELDS)}) SELECT %s, %s, * FROM unnest(%s::bigint[], %s::text[],"
            " %s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
            " %s::bool[]) RETURNING id, case_pseudonym, version, row_hash",
            (site_id, submission_id, [patients[c.patient_pseudonym] for c in new],
             [c.case_pseudonym for c in new], [c.row_hash for c in new], *map(list, columns)),
        ).fetchall()
        found.update({r["case_pseudonym"]: {**r, "new": True} for r in rows})
    out, updates, versions = [], [], []
    for c in cases:
        row = found[c.case_pseudonym]
        data = {f: getattr(c, f) for f in _CASE_FIELDS}
        if row.get("new"):
            out.append((row["id"], "new", 1))
        elif row["row_hash"] == c.row_hash:
            out.append((row["id"], "unchanged", row["version"]))
            continue
        else:
            # A corrected manifest row: the old values stay in case_versions, never overwritten.
            out.append((row["id"], "updated", row["version"] + 1))
            updates.append((*data.values(), row["version"] + 1, c.row_hash, submission_id,
                            patients[c.patient_pseudonym], row["id"]))
        versions.append((out[-1][0], out[-1][2], Jsonb(data), c.row_hash, submission_id))
    with conn.cursor() as cur:
        if updates:
            sets = ", ".join(f"{f} = %s" for f in _CASE_FIELDS)
            cur.executemany(
                f"UPDATE cases SET {sets}, version = %s, row_hash = %s, submission_id = %s,"
                " patient_id = %s, updated_at = now() WHERE id = %s", updates)
        if versions:
            cur.executemany(
                "INSERT INTO case_versions (case_id, version, data, row_hash, submission_id)"
                " VALUES (%s, %s, %s, %s, %s)", versions)
    return out


def _ids(conn: Connection, table: str, key: str, rows: dict[str, tuple], insert: str) -> dict:
    """Insert rows (key -> values) that are not there yet; return key -> id for all of them."""
    if rows:
        conn.execute(insert, [list(col) for col in zip(*rows.values(), strict=True)])
    found = conn.execute(f"SELECT id, {key} FROM {table} WHERE {key} = ANY(%s)",  # noqa: S608
                         (list(rows),)).fetchall()
    return {r[key]: r["id"] for r in found}


def commit_cases(conn: Connection, *, site_id: int, submission_id: int,
                 cases: list[tuple[CaseRecord, list[InstanceRecord]]]) -> list[CaseOutcome]:
    """Write many cases and their instances in one transaction (a handful of statements, not
    several per instance); existing instances count as duplicates. Every case commits whole
    or not at all. Case pseudonyms must be distinct within one call."""
    if not cases:
        return []
    if len({c.case_pseudonym for c, _ in cases}) != len(cases):
        raise ValueError("commit_cases: a case appears twice in one batch; split the batch")
    with conn.transaction():
        patients = _patients(conn, site_id, [c for c, _ in cases])
        heads = _upsert_cases(conn, site_id=site_id, submission_id=submission_id,
                              patients=patients, cases=[c for c, _ in cases])
        studies: dict[str, tuple] = {}
        series: dict[str, tuple] = {}
        for (case_id, _, _), (_, instances) in zip(heads, cases, strict=True):
            for i in instances:  # the first instance of a study or series describes it
                studies.setdefault(i.study_uid, (case_id, i.study_uid, i.study_date,
                                                 i.study_description))
                series.setdefault(i.series_uid, (i.study_uid, i.series_uid, i.modality,
                                                 i.body_part, i.series_description))
        study_ids = _ids(conn, "studies", "study_uid", studies,
                         "INSERT INTO studies (case_id, study_uid, study_date, description)"
                         " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::text[])"
                         " ON CONFLICT (study_uid) DO NOTHING")
        series = {k: (study_ids[v[0]], *v[1:]) for k, v in series.items()}
        series_ids = _ids(conn, "series", "series_uid", series,
                          "INSERT INTO series (study_id, series_uid, modality, body_part,"
                          " description) SELECT * FROM unnest(%s::bigint[], %s::text[],"
                          " %s::text[], %s::text[], %s::text[]) ON CONFLICT (series_uid) DO NOTHING")
        rows = [(series_ids[i.series_uid], i.sop_instance_uid, i.sop_class_uid, i.sha256,
                 i.source_sha256, i.object_key, i.size_bytes, i.modality, i.rows, i.columns,
                 i.bits_stored, i.photometric, i.instance_number, submission_id)
                for _, instances in cases for i in instances]
        inserted: set[str] = set()
        if rows:
            inserted = {r["source_sha256"] for r in conn.execute(
                "INSERT INTO instances (series_id, sop_instance_uid, sop_class_uid, sha256,"
                " source_sha256, object_key, size_bytes, modality, rows, columns, bits_stored,"
                " photometric, instance_number, submission_id) SELECT * FROM unnest("
                "%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::bigint[], %s::text[], %s::int[], %s::int[], %s::int[], %s::text[],"
                " %s::int[], %s::bigint[]) ON CONFLICT DO NOTHING RETURNING source_sha256",
                [list(col) for col in zip(*rows, strict=True)],
            ).fetchall()}
    outcomes = []
    for (case_id, status, version), (_, instances) in zip(heads, cases, strict=True):
        added = 0
        for i in instances:
            if i.source_sha256 in inserted:
                inserted.discard(i.source_sha256)  # a file listed twice is added once
                added += 1
        outcomes.append(CaseOutcome(case_id, status, version, added, len(instances) - added))
    return outcomes


def commit_case(conn: Connection, *, site_id: int, submission_id: int, case: CaseRecord,
                instances: list[InstanceRecord]) -> CaseOutcome:
    """Write a case and its instances in one transaction; existing instances count as duplicates."""
    return commit_cases(conn, site_id=site_id, submission_id=submission_id,
                        cases=[(case, instances)])[0]


def submission_tally(conn: Connection, *, site_id: int, submission_id: int,
                     case_pseudonyms: list[str]) -> tuple[dict[str, tuple[str, int]], set[str]]:
    """What a submission wrote, read from its rows (whichever run wrote them): per case
    pseudonym (new | updated | unchanged, version), and the source hashes of its instances."""
    cases = {r["case_pseudonym"]: r for r in conn.execute(
        "SELECT c.case_pseudonym, c.version, min(v.version) AS first, max(v.version) AS last"
        " FROM cases c LEFT JOIN case_versions v ON v.case_id = c.id AND v.submission_id = %s"
        " WHERE c.site_id = %s AND c.case_pseudonym = ANY(%s) GROUP BY c.id",
        (submission_id, site_id, case_pseudonyms)).fetchall()}
    status = {}
    for pseudonym, r in cases.items():
        if r["first"] is None:
            status[pseudonym] = ("unchanged", r["version"])
        else:
            status[pseudonym] = ("new" if r["first"] == 1 else "updated", r["last"])
    stored = {r["source_sha256"] for r in conn.execute(
        "SELECT source_sha256 FROM instances WHERE submission_id = %s", (submission_id,))}
    return status, stored


def held_elsewhere(conn: Connection, *, site_id: int, source_sha256: list[str],
                   sha256: list[str], sop_instance_uids: list[str], study_uids: list[str],
                   series_uids: list[str]) -> tuple[set[str], set[str], set[str]]:
    """Which of these files, studies and series another site holds already: (source hashes,
    de-identified hashes and SOP UIDs of instances; study UIDs; series UIDs). An instance key
    is unique across the consortium, so such a file cannot be stored for this site."""
    instances = conn.execute(
        "SELECT i.source_sha256, i.sha256, i.sop_instance_uid FROM instances i"
        " JOIN series se ON se.id = i.series_id JOIN studies st ON st.id = se.study_id"
        " JOIN cases c ON c.id = st.case_id WHERE c.site_id <> %s AND (i.source_sha256 = ANY(%s)"
        " OR i.sha256 = ANY(%s) OR i.sop_instance_uid = ANY(%s))",
        (site_id, source_sha256, sha256, sop_instance_uids)).fetchall()
    keys = {v for r in instances for v in r.values()}
    studies = {r["study_uid"] for r in conn.execute(
        "SELECT st.study_uid FROM studies st JOIN cases c ON c.id = st.case_id"
        " WHERE c.site_id <> %s AND st.study_uid = ANY(%s)", (site_id, study_uids))}
    series = {r["series_uid"] for r in conn.execute(
        "SELECT se.series_uid FROM series se JOIN studies st ON st.id = se.study_id"
        " JOIN cases c ON c.id = st.case_id WHERE c.site_id <> %s AND se.series_uid = ANY(%s)",
        (site_id, series_uids))}
    return keys, studies, series


def referenced_keys(conn: Connection, keys: list[str]) -> set[str]:
    """The object keys among ``keys`` that an instance row points to."""
    return {r["object_key"] for r in conn.execute(
        "SELECT object_key FROM instances WHERE object_key = ANY(%s)", (keys,))}


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


__all__ = ["CaseOutcome", "CaseRecord", "InstanceRecord", "commit_case", "commit_cases",
           "case_history", "counts", "held_elsewhere", "referenced_keys", "submission_tally"]
