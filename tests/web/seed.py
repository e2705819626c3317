"""Fill a test database from a synthetic consortium with the ingest library's own steps.

Each file goes through ``process_file`` (read, QC, de-identify) and each manifest row through
``case_record``; cases are committed with ``commit_case`` and quarantined faults recorded with
``quarantine.add_many``, as the ingest flow does, without the Prefect and GX start-up cost.
The first site also gets one case of real multi-frame images from pydicom's test data
(:data:`MULTIFRAME_FILES`): enhanced MR (native and JPEG 2000) and enhanced CT.
"""

from __future__ import annotations

import csv
import json
import tempfile
from collections import defaultdict
from pathlib import Path

from bonebase.db import quarantine
from bonebase.db.cases import commit_case
from bonebase.db.sites import add_site
from bonebase.dicom.deid import Deidentifier
from bonebase.ingest.accept import case_record, instance_record
from bonebase.ingest.process import process_file
from bonebase.ingest.scan import FileEntry
from bonebase.storage import content_key, sha256_file

SECRET = b"web-test-secret-0123456789abcdef"
# Real multi-frame objects nobody here wrote (pydicom-data, the test extra): file → frames.
MULTIFRAME_FILES = {
    "emri_small.dcm": 10,  # Enhanced MR, Explicit VR Little Endian, no functional-group window
    "emri_small_jpeg_2k_lossless.dcm": 10,  # the same volume, JPEG 2000: decoded frame by frame
    "eCT_Supplemental.dcm": 2,  # Enhanced CT: rescale and window in the functional groups
}
MULTIFRAME_CASE = "MF-CASE-1"


def multiframe_submission(folder: Path) -> dict:
    """Copies of :data:`MULTIFRAME_FILES` as one hospital patient would send them (PatientID,
    name and accession number filled, each file its own instance and series) and their manifest
    row. The files' descriptions are empty, as the real ones are."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    for name in MULTIFRAME_FILES:
        path = get_testdata_file(name, download=False)
        if path is None:
            raise RuntimeError(f"{name} is not installed: pip install pydicom-data (test extra)")
        ds = pydicom.dcmread(path)
        ds.PatientID, ds.PatientName, ds.AccessionNumber = "MF0001", "Frame^Multi", "ACCMF1"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
            entropy_srcs=["bonebase-web-seed", name])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["bonebase-web-seed", name, "series"])
        ds.save_as(folder / name, enforce_file_format=True)
    return {"case_id": MULTIFRAME_CASE, "patient_id": "MF0001", "accession_number": "ACCMF1",
            "age": "41", "sex": "F", "location": "distal_femur", "diagnosis": "osteosarcoma",
            "pathology_confirmed": "yes", "modalities": "MR;CT"}


def seed(conn, store, synth_root: Path) -> dict:
    """Sites, cases and instances of every site under ``synth_root``, plus one open quarantine
    item per injected fault. Returns {site: [case ids]}."""
    deid = Deidentifier(SECRET)
    staging = Path(tempfile.mkdtemp(prefix="web-seed-"))
    made: dict[str, list[int]] = {}
    for entry in json.loads((synth_root / "sites.json").read_text()):
        add_site(conn, code=entry["code"], name=entry["name"], country=entry.get("country", ""))
    conn.commit()
    for site_dir in sorted(p for p in synth_root.iterdir() if p.is_dir()):
        site = site_dir.name
        site_id = conn.execute("SELECT id FROM sites WHERE code = %s", (site,)).fetchone()["id"]
        sub = site_dir / "submission"
        submission_id = conn.execute(
            "INSERT INTO submissions (site_id, source, content_hash, status)"
            " VALUES (%s, %s, %s, 'done') RETURNING id", (site_id, str(sub), f"seed-{site}"),
        ).fetchone()["id"]
        faults = json.loads((site_dir / "faults.json").read_text())
        bad_files = {f["file"] for f in faults if f["file"]}
        bad_cases = {f["case_id"] for f in faults if f["case_id"]}
        rows = {r["case_id"]: r for r in csv.DictReader((sub / "manifest.csv").open())}
        files = defaultdict(list)
        for t in csv.DictReader((site_dir / "truth.csv").open()):
            if t["file"] not in bad_files and t["case_id"] not in bad_cases:
                files[t["case_id"]].append(t["file"])
        made[site] = []
        cases = [(rows[ref], [(rel, sub / rel) for rel in rels])
                 for ref, rels in sorted(files.items())]
        if len(made) == 1:  # the first site: one case of real multi-frame images
            extra = staging / "multiframe"
            cases.append((multiframe_submission(extra),
                          [(name, extra / name) for name in MULTIFRAME_FILES]))
        for row, paths in cases:
            record = case_record(row, site=site, deid=deid)
            if record.sex not in (None, "M", "F", "O"):
                continue  # the validation suite would quarantine this row
            instances = []
            for rel, path in paths:
                r = process_file(FileEntry(rel, path, path.stat().st_size, sha256_file(path)),
                                 deid=deid, site=site, staging=staging)
                if r.reason:
                    if row.get("case_id") == MULTIFRAME_CASE:
                        raise AssertionError(f"{rel} was refused: {r.message}")
                    continue
                key = content_key(r.sha256)
                store.put_file(key, r.staged, sha256=r.sha256)
                instances.append(instance_record(r, object_key=key))
            out = commit_case(conn, site_id=site_id, submission_id=submission_id, case=record,
                              instances=instances)
            made[site].append(out.case_id)
        quarantine.add_many(conn, submission_id=submission_id, site_id=site_id, items=[
            quarantine.QuarantineItem(reason=f["kind"], message=f.get("detail") or f["kind"],
                                      file=f["file"], case_ref=f["case_id"])
            for f in faults])
        conn.commit()
    return made
