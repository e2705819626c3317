"""Scale-out: the ingest flow on a local Dask cluster (2 workers) stores what the default runner
stores. Real Prefect, Dask, PostgreSQL and object store; rows are compared by their content keys,
not their ids (which depend on insertion order)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bonebase.config import Settings
from bonebase.db.engine import connect
from bonebase.db.sites import add_site

pytestmark = pytest.mark.slow

# Each table's rows as content: foreign keys replaced by the natural key they point to.
CONTENT = {
    "cases": """SELECT s.code, c.case_pseudonym, p.pseudonym, p.sex AS patient_sex, c.version,
                       c.is_current, c.age, c.sex, c.location_code, c.diagnosis_code, c.behaviour,
                       c.modalities, c.pathology_confirmed, c.row_hash
                FROM cases c JOIN sites s ON s.id = c.site_id
                JOIN patients p ON p.id = c.patient_id""",
    "studies": """SELECT c.case_pseudonym, st.study_uid, st.study_date, st.description
                  FROM studies st JOIN cases c ON c.id = st.case_id""",
    "series": """SELECT st.study_uid, se.series_uid, se.modality, se.body_part, se.description
                 FROM series se JOIN studies st ON st.id = se.study_id""",
    "instances": """SELECT se.series_uid, i.sop_instance_uid, i.sop_class_uid, i.sha256,
                           i.source_sha256, i.object_key, i.size_bytes, i.modality, i.rows,
                           i.columns, i.bits_stored, i.photometric, i.instance_number
                    FROM instances i JOIN series se ON se.id = i.series_id""",
    "quarantine_items": """SELECT s.code, q.reason, q.severity, q.message, q.file, q.row_number,
                                  q.case_ref, q.object_key, q.status
                           FROM quarantine_items q JOIN sites s ON s.id = q.site_id""",
}


@pytest.fixture(autouse=True)
def _close_clusters():
    """The temporary cluster outlives a run (warm workers for the next); not this module."""
    yield
    from bonebase.ingest import runner

    for cluster in runner._CLUSTER.values():
        cluster.close()
    runner._CLUSTER.clear()


@pytest.fixture(scope="module")
def submission(tmp_path_factory) -> tuple[str, Path]:
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("synth")
    generate(out, sites=1, cases_per_site=30, seed=23, workers=2)
    site = sorted(p for p in out.iterdir() if p.is_dir())[0]
    return site.name, site / "submission"


def _ingest(url: str, home: Path, code: str, source: Path, **runner) -> tuple[dict, dict]:
    from flows.ingest import ingest_submission

    settings = Settings(home=home, database_url=url, secret="d" * 40, env="test", **runner)
    settings.ensure_home()
    with connect(url) as conn:
        add_site(conn, code=code, name=f"Hospital {code}")
        conn.commit()
    receipt = ingest_submission(code, str(source), settings=settings)
    with connect(url) as conn:
        content = {t: Counter(tuple(r.values()) for r in conn.execute(q).fetchall())
                   for t, q in CONTENT.items()}
    return receipt, content


def test_dask_cluster_stores_the_same_content(submission, fresh_database, tmp_path, monkeypatch,
                                              prefect_harness):
    from bonebase.db.migrate import upgrade
    from bonebase.ingest import runner

    code, source = submission
    urls = [fresh_database(), fresh_database()]
    for url in urls:
        upgrade(url)
    # Small batches, so that the submission makes several tasks and both workers get some.
    monkeypatch.setattr(runner, "BATCH_MIN", 20)
    default, expected = _ingest(urls[0], tmp_path / "default", code, source)

    runners = []
    make_runner = runner._dask_runner
    monkeypatch.setattr(runner, "_dask_runner", lambda s: runners.append(make_runner(s))
                        or runners[-1])

    def no_pool(size):
        raise AssertionError("the process pool was used with BONEBASE_TASK_RUNNER=dask")

    monkeypatch.setattr(runner, "_workers", no_pool)
    on_dask, got = _ingest(urls[1], tmp_path / "dask", code, source,
                           task_runner="dask", ingest_workers=2)
    assert len(runners) == 1 and len(runners[0]._cluster.workers) == 2
    assert sum(expected["instances"].values()) > 0 and expected["quarantine_items"]
    for table in CONTENT:
        assert got[table] == expected[table], f"{table} differs between runners"
    assert on_dask["counts"] == default["counts"]
    # Both runs stored the same de-identified files under the same keys.
    keys = [sorted(p.relative_to(tmp_path / run / "objects").as_posix()
                   for p in (tmp_path / run / "objects" / "curated").rglob("*") if p.is_file())
            for run in ("default", "dask")]
    assert keys[0] and keys[0] == keys[1]
