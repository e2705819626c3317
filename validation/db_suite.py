"""Database-level checks: whole-table invariants evaluated in PostgreSQL, not row by row here.

Each check is a GX ``UnexpectedRowsExpectation``: a query returning the offending rows, run by
the database on an asset (``{batch}`` is the ``instances`` or ``cases`` table). GX substitutes
``{batch}`` as ``(subquery) AS subselect`` in a query without JOIN and as a bare ``(subquery)``
in a query with one: queries with a JOIN alias it themselves (``{batch} AS c``), others use
unqualified columns. Table names come
from the lead's schema: patients, cases, studies, series, instances.
"""

from __future__ import annotations

import re

import great_expectations as gx
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

from bonebase.errors import InputError
from validation.manifest_suite import meta

INSTANCES_SUITE = "database_instances"
CASES_SUITE = "database_cases"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_schema_name(schema: str) -> str:
    """The schema name, refused unless a plain identifier (it is spliced into SQL)."""
    if not _IDENT.match(schema):
        raise InputError(
            f"database schema {schema!r} is not a plain identifier (letters, digits, _); "
            "pass the schema the bonebase tables live in"
        )
    return schema


def build_instances_suite() -> gx.ExpectationSuite:
    """Checks on the ``instances`` table."""
    suite = gx.ExpectationSuite(name=INSTANCES_SUITE)
    # Consistency/leak: a SOP Instance UID identifies one image world-wide; two rows with it mean
    # the same image was ingested twice (and could land on both sides of a split).
    suite.add_expectation(
        gx.expectations.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT sop_instance_uid, count(*) AS copies FROM {batch} "
                "GROUP BY sop_instance_uid HAVING count(*) > 1 ORDER BY sop_instance_uid"
            ),
            description="No SOP Instance UID occurs twice in the database",
            meta=meta("error", "duplicate_sop_instance", "sop_instance_uid"),
        )
    )
    return suite


def build_cases_suite(schema: str) -> gx.ExpectationSuite:
    """Checks on current case versions (``cases`` table joined to its neighbours)."""
    s = f'"{check_schema_name(schema)}"'
    E = gx.expectations
    suite = gx.ExpectationSuite(name=CASES_SUITE)
    # Consistency: a patient's sex does not change between their current cases.
    suite.add_expectation(
        E.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT site_id, patient_id, min(case_pseudonym) AS case_pseudonym, "
                "count(DISTINCT sex) AS sexes FROM {batch} "
                "WHERE is_current AND sex IS NOT NULL "
                "GROUP BY site_id, patient_id HAVING count(DISTINCT sex) > 1"
            ),
            description="A patient's sex is the same in all their current cases",
            meta=meta("error", "inconsistent_sex", "sex"),
        )
    )
    # Consistency: the case's sex agrees with the patient record it hangs off.
    suite.add_expectation(
        E.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT c.id AS case_row, c.patient_id, c.case_pseudonym, c.sex AS case_sex, "
                f"p.sex AS patient_sex FROM {{batch}} AS c JOIN {s}.patients p ON p.id = c.patient_id "
                "WHERE c.is_current AND c.sex IS NOT NULL AND p.sex IS NOT NULL "
                "AND p.sex <> c.sex"
            ),
            description="A current case's sex equals its patient's sex",
            meta=meta("error", "inconsistent_sex", "sex"),
        )
    )
    # Schema of the dataset: every current case has a radiograph (the model's input).
    suite.add_expectation(
        E.UnexpectedRowsExpectation(
            unexpected_rows_query=(
                "SELECT c.id AS case_row, c.case_pseudonym FROM {batch} AS c "
                "WHERE c.is_current "
                f"AND NOT EXISTS (SELECT 1 FROM {s}.studies st "
                f"JOIN {s}.series se ON se.study_id = st.id "
                f"JOIN {s}.instances i ON i.series_id = se.id "
                "WHERE st.case_id = c.id AND coalesce(i.modality, se.modality) IN ('CR', 'DX'))"
            ),
            description="Every current case has at least one CR/DX instance",
            meta=meta("error", "no_radiograph", "modalities"),
        )
    )
    return suite


def sqlalchemy_url(database_url: str) -> str:
    """A libpq URL or key=value DSN as a SQLAlchemy URL for the psycopg 3 driver.

    psycopg2 is not installed, so the URL names psycopg 3 (``postgresql+psycopg://``). A socket
    directory host (pgserver's embedded server) goes in the query string, as libpq expects.
    """
    params = conninfo_to_dict(database_url)
    host = params.pop("host", None)
    query = {
        k: str(v) for k, v in params.items() if k not in ("user", "password", "dbname", "port")
    }
    if host and str(host).startswith("/"):
        query["host"], host = str(host), None
    url = URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(params["port"]) if params.get("port") else None,
        database=params.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)
