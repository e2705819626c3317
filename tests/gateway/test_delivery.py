"""Delivery: studies from storescu and Orthanc into a running gateway, the gateway's outbox to the consortium's object store over S3 (moto's server over
HTTP), the central polling flow running the real ingest flow on PostgreSQL, receipts back to
the gateway; nothing identifying in any uploaded object or in the central database."""

from __future__ import annotations

import json
import shutil

import pytest

from bonebase.db.sites import add_site
from tests.gateway.conftest import SECRET, SITE, Gateway, Orthanc, storescu, write_clinical
from tests.security.leaks import database_leaks, whole_tokens


@pytest.fixture
def central(bonebase_env, monkeypatch, s3_bucket, db):
    """The consortium: the test database, its own home, the same key, the delivery bucket."""
    monkeypatch.setenv("BONEBASE_SECRET", SECRET)
    monkeypatch.setenv("BONEBASE_S3_ENDPOINT_URL", s3_bucket.endpoint_url)
    from bonebase.config import get_settings

    get_settings.cache_clear()
    add_site(db, code=SITE, name="Hospital HX")
    db.commit()
    yield f"s3://{s3_bucket.bucket}/deliveries"
    get_settings.cache_clear()


def _objects(s3_client, bucket: str) -> dict[str, bytes]:
    found = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def test_studies_arrive_as_cases_centrally_and_nothing_identifying_leaves(
        central, tmp_path, hospital, s3_bucket, s3_client, db, prefect_harness):
    from flows.gateway import gateway_deliveries
    from flows.ingest import ingest_submission

    studies = hospital[:2]
    gw = Gateway(tmp_path / "gw", extra_env={"BONEBASE_S3_ENDPOINT_URL": s3_bucket.endpoint_url})
    gw.cli("allow", "PACS1")
    gw.cli("allow", "ORTHANC", "--host", "127.0.0.1")
    write_clinical(gw.gateway_dir / "clinical" / "clinical.csv", studies)
    gw.start("--deliver-to", central, "--study-timeout", "3600")
    pacs = Orthanc(tmp_path / "orthanc", gw.port)
    try:
        # One study from DCMTK's storescu, the other pushed by Orthanc as the hospital's PACS.
        assert storescu(gw.port, studies[0].folder).returncode == 0
        pushed = pacs.push(studies[1])
        assert pushed["InstancesCount"] == len(studies[1].files) and pushed["FailedInstancesCount"] == 0
        assert len(gw.studies()) == 2
        gw.cli("flush", "--site", SITE, "--deliver-to", central)  # one batch, sent now
        assert {r["state"] for r in gw.studies()} == {"sent"}
        assert gateway_deliveries(central) == 1
        rows = gw.wait_for(lambda rs: all(r["state"] not in ("sent",) for r in rs))
        assert {r["state"] for r in rows} == {"ingested"}, rows
        assert gateway_deliveries(central) == 0  # nothing pending: no batch ingested twice
    finally:
        gw.kill()
        pacs.stop()
    cases = db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"]
    assert cases == 2
    instances = db.execute("SELECT count(*) AS n FROM instances").fetchone()["n"]
    assert instances == sum(len(s.files) for s in studies)
    identifiers = whole_tokens(sorted(set().union(*(s.identifiers() for s in studies))))
    uploaded = _objects(s3_client, s3_bucket.bucket)
    assert any(k.endswith(".dcm") for k in uploaded) and any("/receipts/" in k for k in uploaded)
    assert [k for k, data in uploaded.items() if identifiers.search(data)] == []
    assert database_leaks(db, identifiers) == []
    receipts = [json.loads(v) for k, v in uploaded.items() if "/receipts/" in k]
    assert all(r["status"] == "done" for r in receipts)
    assert sum(r["counts"]["cases_accepted"] for r in receipts) == 2

    # The first case sent again as a folder submission (identified, de-identified centrally)
    # links up with the gateway's: the same patient, the same case, no instance twice.
    folder = tmp_path / "folder"
    shutil.copytree(studies[0].folder, folder / "images")
    write_clinical(folder / "manifest.csv", studies[:1])
    patients = {r["pseudonym"] for r in db.execute("SELECT pseudonym FROM patients")}
    again = ingest_submission(SITE, str(folder))
    assert again["counts"]["cases_accepted"] == 1
    assert db.execute("SELECT count(*) AS n FROM instances").fetchone()["n"] == instances
    assert {r["pseudonym"] for r in db.execute("SELECT pseudonym FROM patients")} == patients
    assert db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"] == 2


def test_a_quiet_study_is_delivered_and_ingested_without_a_flush(
        central, tmp_path, hospital, s3_bucket, db, prefect_harness):
    """The path of every day: no `gateway flush`; the study's quiet period (--study-timeout 1)
    completes it, the gateway de-identifies, batches (--batch-wait 0) and uploads it, the
    consortium's flow ingests it and the receipt comes back."""
    from flows.gateway import gateway_deliveries

    study = hospital[2]
    gw = Gateway(tmp_path / "gw", extra_env={"BONEBASE_S3_ENDPOINT_URL": s3_bucket.endpoint_url})
    gw.cli("allow", "PACS1")
    write_clinical(gw.gateway_dir / "clinical" / "clinical.csv", [study])
    gw.start("--deliver-to", central, "--study-timeout", "1", "--batch-wait", "0")
    try:
        assert storescu(gw.port, study.folder).returncode == 0
        rows = gw.wait_for(lambda rs: rs and rs[0]["state"] == "sent", timeout=120)
        assert rows[0]["instances"] == len(study.files)
        assert gateway_deliveries(central) == 1
        rows = gw.wait_for(lambda rs: rs[0]["state"] != "sent", timeout=60)
        assert rows[0]["state"] == "ingested", rows
    finally:
        gw.kill()
    assert db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"] == 1
    assert db.execute("SELECT count(*) AS n FROM instances").fetchone()["n"] == len(study.files)
