"""Database-level validation (GX SQL data source) against a live PostgreSQL.

Creates the lead's tables in a throwaway schema, fills them with a clean and a faulty state,
and checks that each whole-table check fires with the right reason, then drops the schema.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from validation import validate_database

DDL = """
CREATE TABLE {s}.patients (id serial PRIMARY KEY, site_id int NOT NULL, pseudonym text NOT NULL,
    sex text);
CREATE TABLE {s}.cases (id serial PRIMARY KEY, site_id int NOT NULL,
    patient_id int REFERENCES {s}.patients(id), case_pseudonym text NOT NULL, version int NOT NULL,
    is_current boolean NOT NULL, age int, sex text, location_code text, diagnosis_code text,
    behaviour text, modalities text);
CREATE TABLE {s}.studies (id serial PRIMARY KEY, case_id int REFERENCES {s}.cases(id),
    study_uid text NOT NULL);
CREATE TABLE {s}.series (id serial PRIMARY KEY, study_id int REFERENCES {s}.studies(id),
    series_uid text NOT NULL, modality text);
CREATE TABLE {s}.instances (id serial PRIMARY KEY, series_id int REFERENCES {s}.series(id),
    sop_instance_uid text NOT NULL, sha256 text, modality text);
"""


@pytest.fixture(scope="module")
def database_url(fresh_database) -> str:
    """An empty database on the test server (conftest: DATABASE_URL's server or pgserver)."""
    return fresh_database()


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def schema(conn):
    name = f"bb_val_{uuid.uuid4().hex[:10]}"
    conn.execute(f'CREATE SCHEMA "{name}"')
    conn.execute(DDL.format(s=f'"{name}"'))
    yield name
    conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def _add_case(conn, s, *, patient, pseudonym, sex, modalities, current=True, version=1):
    """Insert a case with one study, one series per modality and one instance per series."""
    case_id = conn.execute(
        f'INSERT INTO "{s}".cases (site_id, patient_id, case_pseudonym, version, is_current, '
        "age, sex, location_code, diagnosis_code, behaviour, modalities) "
        "VALUES (1, %s, %s, %s, %s, 20, %s, 'distal_femur', 'osteosarcoma', 'malignant', %s) "
        "RETURNING id",
        (patient, pseudonym, version, current, sex, ";".join(modalities)),
    ).fetchone()[0]
    study = conn.execute(
        f'INSERT INTO "{s}".studies (case_id, study_uid) VALUES (%s, %s) RETURNING id',
        (case_id, f"2.25.{case_id}"),
    ).fetchone()[0]
    for n, modality in enumerate(modalities):
        series = conn.execute(
            f'INSERT INTO "{s}".series (study_id, series_uid, modality) VALUES (%s, %s, %s) '
            "RETURNING id",
            (study, f"2.25.{case_id}.{n}", modality),
        ).fetchone()[0]
        conn.execute(
            f'INSERT INTO "{s}".instances (series_id, sop_instance_uid, sha256, modality) '
            "VALUES (%s, %s, %s, %s)",
            (series, f"2.25.{case_id}.{n}.1", f"{case_id}{n}", modality),
        )
    return case_id


def _patient(conn, s, pseudonym, sex):
    return conn.execute(
        f'INSERT INTO "{s}".patients (site_id, pseudonym, sex) VALUES (1, %s, %s) RETURNING id',
        (pseudonym, sex),
    ).fetchone()[0]


def _clean_state(conn, s):
    p1 = _patient(conn, s, "PAT-A", "F")
    p2 = _patient(conn, s, "PAT-B", "M")
    _add_case(conn, s, patient=p1, pseudonym="CASE-1", sex="F", modalities=["DX"])
    _add_case(conn, s, patient=p1, pseudonym="CASE-2", sex="F", modalities=["CR", "MR"])
    _add_case(conn, s, patient=p2, pseudonym="CASE-3", sex="M", modalities=["DX", "CT"])
    # An old version without a radiograph is history, not a fault.
    _add_case(conn, s, patient=p2, pseudonym="CASE-4", sex="M", modalities=["MR"], current=False)
    return p1, p2


def test_clean_database_passes(conn, schema, database_url, tmp_path):
    _clean_state(conn, schema)
    report = validate_database(database_url, schema=schema, docs_dir=tmp_path / "docs")
    assert report.failures == []
    assert report.success
    assert set(report.stats) == {"database_instances", "database_cases"}
    assert report.stats["database_cases"]["evaluated"] == 3
    assert report.data_docs_index is not None and report.data_docs_index.is_file()


def test_database_faults_are_found_in_sql(conn, schema, database_url):
    p1, p2 = _clean_state(conn, schema)
    s = schema
    # duplicate_sop_instance: CASE-1's image ingested a second time under another series.
    series = conn.execute(f'SELECT min(id) FROM "{s}".series').fetchone()[0]
    uid = conn.execute(
        f'SELECT sop_instance_uid FROM "{s}".instances WHERE series_id = %s', (series,)
    ).fetchone()[0]
    conn.execute(
        f'INSERT INTO "{s}".instances (series_id, sop_instance_uid, modality) '
        "VALUES (%s, %s, 'DX')",
        (series, uid),
    )
    # inconsistent_sex: PAT-B's new case says F while the patient (and CASE-3) say M.
    _add_case(conn, s, patient=p2, pseudonym="CASE-5", sex="F", modalities=["DX"])
    # no_radiograph: a current case with MR only.
    _add_case(conn, s, patient=p1, pseudonym="CASE-6", sex="F", modalities=["MR"])

    report = validate_database(database_url, schema=schema)
    assert not report.success
    by_reason = {}
    for f in report.failures:
        by_reason.setdefault(f.reason, []).append(f)
    assert set(by_reason) == {"duplicate_sop_instance", "inconsistent_sex", "no_radiograph"}
    (dup,) = by_reason["duplicate_sop_instance"]
    assert uid in dup.message and "2 times" in dup.message
    assert dup.suite == "database_instances" and dup.severity == "error"
    # Both sex checks fire: across cases (one row) and case vs patient (CASE-5).
    assert len(by_reason["inconsistent_sex"]) == 2
    assert any(f.case_id == "CASE-5" for f in by_reason["inconsistent_sex"])
    (missing,) = by_reason["no_radiograph"]
    assert missing.case_id == "CASE-6" and "CASE-6" in missing.message
    assert report.stats["database_cases"]["failed"] == 3


def test_bad_schema_name_is_refused(database_url):
    from bonebase.errors import InputError

    with pytest.raises(InputError, match="schema"):
        validate_database(database_url, schema="public; DROP TABLE cases")
