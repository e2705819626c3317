"""kill -9 of the gateway during an association: on restart every instance the sender was told
was stored is there, nothing is counted twice, and a re-send completes the study set."""

from __future__ import annotations

import re
import subprocess
import time

import pydicom

from tests.gateway.conftest import need


def test_kill_9_during_an_association_loses_nothing_acknowledged(gateway, hospital):
    files = [f for s in hospital for f in s.files]
    gateway.start()
    sender = subprocess.Popen(
        [need("storescu"), "-v", "-aet", "PACS1", "-aec", "BONEBASE", "127.0.0.1",
         str(gateway.port), *map(str, files)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while sum(r["instances"] for r in gateway.studies()) < 5:
        assert time.monotonic() < deadline and sender.poll() is None, "sent too fast to kill"
        time.sleep(0.02)
    gateway.kill()  # SIGKILL, mid-association
    output = sender.communicate(timeout=60)[0]
    # storescu -v: "Sending file: PATH" ... "Received Store Response (Success)" per instance
    acknowledged, current = set(), None
    for line in output.splitlines():
        if m := re.search(r"Sending file: (.+)$", line):
            current = m.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            acknowledged.add(current)
    assert 0 < len(acknowledged) < len(files)  # killed mid-association
    uid_of = {str(f): str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
              for f in files}

    gateway.start()  # restart: recovery counts from disk, cleans unacknowledged leftovers
    spool = gateway.gateway_dir / "spool"
    kept = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in (spool / "studies").rglob("*.dcm")}
    assert {uid_of[f] for f in acknowledged} <= kept
    assert sum(r["instances"] for r in gateway.studies()) == len(kept)
    assert not any((spool / "incoming").iterdir())
    assert not list((spool / "studies").rglob("*.part"))

    # The PACS sends again: every instance once.
    again = subprocess.run([need("storescu"), "-aet", "PACS1", "-aec", "BONEBASE", "127.0.0.1",
                            str(gateway.port), *map(str, files)], capture_output=True, timeout=120)
    assert again.returncode == 0
    assert sum(r["instances"] for r in gateway.studies()) == len(set(uid_of.values()))


def test_kill_9_during_an_upload_then_resume_ingests_each_case_once(
        tmp_path, hospital, s3_bucket, s3_client, db, bonebase_env, monkeypatch, prefect_harness):
    import os
    import signal
    import sys

    from bonebase.db.sites import add_site
    from bonebase.gateway import central
    from bonebase.storage import open_store
    from flows.ingest import ingest_submission
    from tests.gateway.conftest import SECRET, SITE, spool_with_batches

    studies = hospital[:6]
    spool = spool_with_batches(tmp_path / "home" / "gateway", studies, per_batch=3)
    url = f"s3://{s3_bucket.bucket}/deliveries"
    env = {**os.environ, "BONEBASE_HOME": str(tmp_path / "home"), "BONEBASE_SECRET": SECRET,
           "BONEBASE_S3_ENDPOINT_URL": s3_bucket.endpoint_url}
    flush = [sys.executable, "-m", "bonebase.gateway.cli", "flush", "--site", SITE,
             "--deliver-to", url]
    uploader = subprocess.Popen(flush, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def keys(prefix: str) -> list[str]:
        listing = s3_client.list_objects_v2(Bucket=s3_bucket.bucket, Prefix=prefix)
        return [o["Key"] for o in listing.get("Contents", [])]

    deadline = time.monotonic() + 60
    while not keys(f"deliveries/{SITE}/batches/"):
        assert time.monotonic() < deadline and uploader.poll() is None, "upload never started"
        time.sleep(0.005)
    uploader.send_signal(signal.SIGKILL)
    uploader.wait()
    assert len(keys(f"deliveries/{SITE}/ready/")) < 2, "the upload finished first"

    assert subprocess.run(flush, env=env, capture_output=True).returncode == 0  # the restart
    assert {s["state"] for s in spool.studies()} == {"sent"}
    assert len(keys(f"deliveries/{SITE}/ready/")) == 2

    from bonebase.config import get_settings

    store = open_store(url, endpoint_url=s3_bucket.endpoint_url)
    # The consortium cannot reach the store for a moment: the batches stay pending.
    monkeypatch.setenv("BONEBASE_SECRET", SECRET)
    monkeypatch.setenv("BONEBASE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    get_settings.cache_clear()
    add_site(db, code=SITE, name="Hospital HX")
    db.commit()
    def ingest(site, src):
        return ingest_submission(site, src)

    assert central.poll(store, url, ingest, sites=[SITE]) == []
    assert len(central.pending(store, [SITE])) == 2
    monkeypatch.setenv("BONEBASE_S3_ENDPOINT_URL", s3_bucket.endpoint_url)
    get_settings.cache_clear()
    receipts = central.poll(store, url, ingest, sites=[SITE])
    assert len(receipts) == 2 and {r["status"] for r in receipts} == {"done"}
    assert central.poll(store, url, ingest, sites=[SITE]) == []
    assert not keys(f"deliveries/{SITE}/ready/")  # answered batches leave no marker to list
    assert db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"] == len(studies)
    assert db.execute("SELECT count(*) AS n FROM instances").fetchone()["n"] == \
        sum(len(s.files) for s in studies)
