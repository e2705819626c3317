import psycopg
import pytest

from bonebase.db.migrate import current_revision, downgrade, head_revision, require_head, upgrade
from bonebase.errors import DatabaseError

CORE_TABLES = {"sites", "submissions", "patients", "cases", "case_versions", "studies", "series",
               "instances", "quarantine_items", "audit_events"}


def _tables(url):
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'").fetchall()}


def test_upgrade_downgrade_upgrade(fresh_database):
    url = fresh_database()
    with pytest.raises(DatabaseError, match="bonebase init"):
        require_head(url)
    assert upgrade(url) == head_revision()
    assert CORE_TABLES <= _tables(url)
    require_head(url)
    assert upgrade(url) == head_revision()  # idempotent
    assert downgrade(url, "base") is None
    assert _tables(url) <= {"alembic_version"}
    assert upgrade(url) == head_revision()
    assert current_revision(url) == head_revision()


def test_domain_keys_are_enforced(db):
    site = db.execute("INSERT INTO sites (code, name) VALUES ('HX', 'H') RETURNING id").fetchone()["id"]
    db.execute("INSERT INTO patients (site_id, pseudonym) VALUES (%s, 'p1')", (site,))
    db.commit()
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO patients (site_id, pseudonym) VALUES (%s, 'p1')", (site,))
    db.rollback()
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("INSERT INTO sites (code, name) VALUES ('hx', 'lower')")
    db.rollback()
    # The same pseudonym at another site is another patient.
    other = db.execute("INSERT INTO sites (code, name) VALUES ('BJ', 'B') RETURNING id").fetchone()["id"]
    db.execute("INSERT INTO patients (site_id, pseudonym) VALUES (%s, 'p1')", (other,))
    db.commit()
    assert db.execute("SELECT count(*) AS n FROM patients").fetchone()["n"] == 2


def test_embedded_server_path():
    """The embedded path (no DATABASE_URL) starts pgserver, creates our database, and reuses it."""
    from bonebase.db.engine import embedded_url
    from tests.conftest import world_traversable_tmp

    pg_dir = world_traversable_tmp("bonebase-test-embedded-") / "pg"
    url = embedded_url(pg_dir)
    try:
        assert embedded_url(pg_dir) == url  # a second call reuses the running server
        assert upgrade(url) == head_revision()
        assert CORE_TABLES <= _tables(url)
    finally:
        from bonebase.db.engine import stop_embedded

        stop_embedded(pg_dir)
