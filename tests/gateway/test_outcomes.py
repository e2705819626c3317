"""What a study can end as besides ingested: held on site (an image that may show identifying
text never leaves), and refused centrally (a site the consortium marked inactive)."""

from __future__ import annotations

import pydicom

from bonebase.db.sites import add_site, update_site
from bonebase.gateway import central, deliver
from bonebase.gateway.home import GatewayHome
from bonebase.gateway.spool import Spool
from bonebase.gateway.studies import batch_due
from bonebase.storage import open_store
from tests.gateway.conftest import SECRET, SITE, spool_with_batches, write_clinical


def test_a_study_with_burned_in_annotation_is_held_on_site(tmp_path, hospital):
    study = hospital[0]
    spool = Spool(GatewayHome(tmp_path / "gw"))
    write_clinical(spool.home.clinical / "c.csv", [study])
    for i, f in enumerate(study.files):
        ds = pydicom.dcmread(f)
        if i == 0:
            ds.BurnedInAnnotation = "YES"  # the image says it shows text
        ds.save_as(spool.home.incoming / "in.dcm")
        spool.store(spool.home.incoming / "in.dcm")
        (spool.home.incoming / "in.dcm").unlink()  # linked into the study, not copied
    spool.flush()
    assert batch_due(spool, site=SITE, secret=SECRET.encode(), uid_root="2.25", timeout=60) is None
    [row] = spool.studies()
    assert row["state"] == "held on site" and row["detail"].startswith("burned_in_annotation")
    assert not list(spool.home.outbox.rglob("*.dcm"))  # nothing of it is ready to leave


def test_an_inactive_sites_delivery_is_refused_centrally_and_the_gateway_says_so(
        tmp_path, hospital, db, bonebase_env, monkeypatch, prefect_harness):
    from flows.ingest import ingest_submission

    monkeypatch.setenv("BONEBASE_SECRET", SECRET)
    add_site(db, code=SITE, name="Hospital HX")
    update_site(db, SITE, active=False)
    db.commit()
    spool = spool_with_batches(tmp_path / "gw", hospital[:1])
    store = open_store(str(tmp_path / "deliveries"))
    assert deliver.deliver_due(spool, store, site=SITE) == 1
    [receipt] = central.poll(store, str(tmp_path / "deliveries"),
                             lambda site, src: ingest_submission(site, src), sites=[SITE])
    assert receipt["status"] == "refused" and "inactive" in receipt["error"]
    assert receipt["error_code"] == "site_inactive"
    assert db.execute("SELECT count(*) AS n FROM cases").fetchone()["n"] == 0
    assert deliver.collect_receipts(spool, store, site=SITE) == 1
    [row] = spool.studies()
    assert row["state"] == "failed centrally" and "marked inactive" in row["detail"]
    assert central.pending(store, [SITE]) == []  # answered: not tried again on every poll


def test_a_late_instance_reopens_its_study_and_originals_expire(tmp_path, hospital):
    """Instances of a study arriving after it left send the whole study again (central ingest
    stores what it has once); originals of sent studies are deleted after --keep-days."""
    import time

    from bonebase.gateway.work import purge

    study = hospital[0]
    spool = spool_with_batches(tmp_path / "gw", [study])
    late = spool.home.incoming / "late.dcm"
    ds = pydicom.dcmread(study.files[0])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()  # one more instance of the same study
    ds.save_as(late)
    spool.store(late)
    late.unlink()
    [row] = spool.studies()
    assert row["state"] == "receiving" and row["instances"] == len(study.files) + 1
    spool.flush()
    second = batch_due(spool, site=SITE, secret=SECRET.encode(), uid_root="2.25", timeout=60)
    assert len(list((spool.home.outbox / second).rglob("*.dcm"))) == len(study.files) + 1

    spool.set_state(row["key"], "sent")
    assert purge(spool, keep_days=30) == 0  # sent today: kept for re-sends
    assert purge(spool, keep_days=30, now=time.time() + 31 * 86400) == 1
    assert not (spool.home.studies / row["key"]).exists() and spool.used_bytes() == 0


def test_residue_after_de_identification_holds_the_study_on_site(tmp_path, hospital):
    study = hospital[1]
    spool = Spool(GatewayHome(tmp_path / "gw"))
    write_clinical(spool.home.clinical / "c.csv", [study])
    for f in study.files:
        ds = pydicom.dcmread(f)
        ds.Manufacturer = str(ds.PatientName)  # kept by the profile: the name would leave
        ds.save_as(spool.home.incoming / "in.dcm")
        spool.store(spool.home.incoming / "in.dcm")
        (spool.home.incoming / "in.dcm").unlink()
    spool.flush()
    assert batch_due(spool, site=SITE, secret=SECRET.encode(), uid_root="2.25", timeout=60) is None
    [row] = spool.studies()
    assert row["state"] == "held on site" and row["detail"].startswith("phi_residue")
    assert "Manufacturer" in row["detail"] and str(pydicom.dcmread(study.files[0]).PatientName) \
        not in row["detail"]
    assert not list(spool.home.outbox.rglob("*.dcm"))
