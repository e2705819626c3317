"""Studies on site: complete after the quiet period or a flush, joined with the clinical CSV,
de-identified with the consortium's engine and key; nothing identifying in the outbox."""

from __future__ import annotations

import csv
import json

import pydicom

from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_mark import is_marked
from bonebase.gateway.studies import accession_pseudonym
from bonebase.ingest.accept import case_ref
from tests.gateway.conftest import SECRET, SITE, storescu, write_clinical
from tests.security.leaks import file_leaks, whole_tokens


def _outbox_rows(gateway) -> list[dict]:
    rows = []
    for manifest in sorted((gateway.gateway_dir / "outbox").glob("*/manifest.csv")):
        with open(manifest, encoding="utf-8", newline="") as fh:
            rows += list(csv.DictReader(fh))
    return rows


def test_study_waits_for_clinical_data_then_leaves_de_identified(gateway, hospital):
    with_data, without = hospital[0], hospital[1]
    write_clinical(gateway.gateway_dir / "clinical" / "clinical.csv", [with_data])
    gateway.start()
    # Two associations for the first study (half its files each), one for the other.
    half = len(with_data.files) // 2 or 1
    assert storescu(gateway.port, *with_data.files[:half]).returncode == 0
    assert storescu(gateway.port, *with_data.files[half:], without.folder).returncode == 0
    rows = gateway.wait_for(lambda rs: len(rs) == 2 and all(r["state"] != "receiving" for r in rs))
    states = {r["patient_id"]: r["state"] for r in rows}
    assert states == {with_data.row["patient_id"]: "queued",
                      without.row["patient_id"]: "needs clinical data"}
    status = json.loads(gateway.cli("status", "--json").stdout)
    assert sorted(s["state"] for s in status) == ["needs clinical data", "queued"]
    assert all(s["instances"] > 0 and s["bytes"] > 0 for s in status)

    deid = Deidentifier(SECRET.encode())
    [row] = _outbox_rows(gateway)
    # The engine's pseudonyms: a folder submission of the same case gets the same ones.
    assert row["patient_id"] == deid.pseudonym(SITE, with_data.row["patient_id"])
    assert row["case_id"] == case_ref(with_data.row["case_id"], site=SITE, deid=deid)
    assert row["accession_number"] == accession_pseudonym(
        deid, SITE, with_data.row["accession_number"])
    assert row["diagnosis"] == with_data.row["diagnosis"] and row["age"] == with_data.row["age"]
    files = sorted((gateway.gateway_dir / "outbox").rglob("*.dcm"))
    assert len(files) == len(with_data.files)
    originals = {str(pydicom.dcmread(f).SOPInstanceUID): f for f in with_data.files}
    for path in files:
        ds = pydicom.dcmread(path)
        assert ds.PatientID == row["patient_id"] and ds.AccessionNumber == row["accession_number"]
        assert is_marked(SECRET.encode(), SITE, ds.PatientID, ds.SOPInstanceUID,
                         list(ds.DeidentificationMethod))
        # the same UID remapping as central ingest
        assert str(ds.SOPInstanceUID) in {deid.remap_uid(u) for u in originals}
    assert file_leaks(gateway.gateway_dir / "outbox",
                      whole_tokens(sorted(with_data.identifiers()))) == []

    # The clinical row arrives: the waiting study goes out in the next batch.
    write_clinical(gateway.gateway_dir / "clinical" / "more.csv", [without])
    gateway.wait_for(lambda rs: all(r["state"] == "queued" for r in rs))
    assert len(_outbox_rows(gateway)) == 2


def test_flush_completes_studies_before_their_timeout(tmp_path, hospital):
    from tests.gateway.conftest import Gateway

    gw = Gateway(tmp_path / "gw")
    gw.cli("allow", "PACS1")
    write_clinical(gw.gateway_dir / "clinical" / "c.csv", hospital[:1])
    gw.start("--study-timeout", "3600")
    try:
        assert storescu(gw.port, hospital[0].folder).returncode == 0
        assert [r["state"] for r in gw.studies()] == ["receiving"]
        done = gw.cli("flush", "--site", SITE)
        assert "1 batches made" in done.stdout
        assert [r["state"] for r in gw.studies()] == ["queued"]
    finally:
        gw.kill()
