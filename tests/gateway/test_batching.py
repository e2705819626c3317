"""Receipt-clocked batches: while the consortium ingests one batch of a gateway, the studies
that become complete wait and then leave together, so batches grow with the central latency
(a submission costs central ingest seconds whatever its size); bounded by --receipt-wait,
--max-batch-studies and --max-batch-mb, and a flush leaves at once."""

from __future__ import annotations

import shutil

from bonebase.db.sites import add_site
from bonebase.gateway import central
from bonebase.gateway.home import GatewayHome
from bonebase.gateway.spool import Spool
from bonebase.gateway.studies import BatchPolicy
from bonebase.gateway.work import WorkConfig, work_once
from bonebase.storage import open_store
from tests.gateway.conftest import SECRET, SITE, write_clinical

CLOCKED = BatchPolicy(receipt_wait=3600)


def _receive(spool: Spool, study) -> None:
    for f in study.files:
        incoming = spool.home.incoming / "in.dcm"
        shutil.copy(f, incoming)
        spool.store(incoming)
        incoming.unlink()


def _states(spool: Spool) -> list[tuple[str, str | None]]:
    return [(s["state"], s["batch"]) for s in spool.studies()]


def test_studies_wait_for_the_last_batchs_receipt_then_leave_together(
        tmp_path, hospital, db, bonebase_env, monkeypatch, prefect_harness):
    from flows.ingest import ingest_submission

    monkeypatch.setenv("BONEBASE_SECRET", SECRET)
    add_site(db, code=SITE, name="Hospital HX")
    db.commit()
    spool = Spool(GatewayHome(tmp_path / "gw"))
    write_clinical(spool.home.clinical / "c.csv", hospital[:3])
    store = open_store(str(tmp_path / "deliveries"))
    cfg = WorkConfig(site=SITE, secret=SECRET.encode(), study_timeout=0, batch=CLOCKED)

    _receive(spool, hospital[0])
    assert work_once(spool, cfg, store)["sent"] == 1  # nothing in flight: it leaves at once
    for study in hospital[1:3]:
        _receive(spool, study)
    done = work_once(spool, cfg, store)
    assert done["batches"] == 0 and done["sent"] == 0  # the first batch has no receipt yet
    assert [s for s, _ in _states(spool)].count("receiving") == 2

    ingest = lambda site, src: ingest_submission(site, src)  # noqa: E731
    [first] = central.poll(store, str(tmp_path / "deliveries"), ingest, sites=[SITE])
    assert first["status"] == "done" and first["counts"]["cases_accepted"] == 1
    done = work_once(spool, cfg, store)  # the receipt comes back: the two leave as one batch
    assert done["receipts"] == 1 and done["batches"] == 1 and done["sent"] == 1
    states = _states(spool)
    assert states[0][0] == "ingested" and {s for s, _ in states[1:]} == {"sent"}
    assert states[1][1] == states[2][1] != states[0][1]
    [second] = central.poll(store, str(tmp_path / "deliveries"), ingest, sites=[SITE])
    assert second["counts"]["cases_accepted"] == 2
    assert work_once(spool, cfg, store)["receipts"] == 1
    assert {s for s, _ in _states(spool)} == {"ingested"}
    assert db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"] == 3


def test_what_ends_the_wait(tmp_path, hospital):
    """The receipt wait is bounded; a full batch, a flush and a gateway without a consortium
    do not wait; the batch wait holds even with nothing in flight."""
    spool = Spool(GatewayHome(tmp_path / "gw"))
    write_clinical(spool.home.clinical / "c.csv", hospital[:3])
    cfg = WorkConfig(site=SITE, secret=SECRET.encode(), study_timeout=0, batch=CLOCKED)
    _receive(spool, hospital[0])
    assert work_once(spool, cfg, None)["batches"] == 1  # queued: no consortium to send to
    _receive(spool, hospital[1])
    ready = [s for s in spool.studies() if s["state"] == "receiving"]
    now = ready[0]["last_seen"]
    assert CLOCKED.hold(spool, ready, timeout=0, now=now + 1)  # the queued batch is in flight
    assert not BatchPolicy(receipt_wait=10).hold(spool, ready, timeout=0, now=now + 11)
    assert not BatchPolicy(receipt_wait=3600, max_studies=1).hold(spool, ready, timeout=0,
                                                                   now=now)
    assert not BatchPolicy(receipt_wait=3600, max_bytes=ready[0]["bytes"]).hold(
        spool, ready, timeout=0, now=now)
    assert BatchPolicy(batch_wait=5).hold(spool, ready, timeout=0, now=now + 4)
    assert not BatchPolicy(batch_wait=5).hold(spool, ready, timeout=0, now=now + 6)
    # Without --deliver-to no receipt can come back: the study is batched without waiting.
    assert work_once(spool, cfg, None)["batches"] == 1
    _receive(spool, hospital[2])
    assert spool.flush() == 1  # `gateway flush`: it leaves now, whatever is in flight
    flushed = [s for s in spool.studies() if s["state"] == "receiving"]
    assert not CLOCKED.hold(spool, flushed, timeout=0, now=flushed[0]["last_seen"])
