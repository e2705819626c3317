"""Fill a test database from a synthetic consortium with the ingest library's own steps.

Each file goes through ``process_file`` (read, QC, de-identify) and each manifest row through
``case_record``; cases are committed with ``commit_case`` and quarantined faults recorded with
``quarantine.add_many``, as the ingest flow does, without the Prefect and GX start-up cost.
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
        for case_ref, rels in sorted(files.items()):
            record = case_record(rows[case_ref], site=site, deid=deid)
            if record.sex not in (None, "M", "F", "O"):
                continue  # the validation suite would quarantine this row
            instances = []
            for rel in rels:
                path = sub / rel
                r = process_file(FileEntry(rel, path, path.stat().st_size, sha256_file(path)),
                                 deid=deid, site=site, staging=staging)
                if r.reason:
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
