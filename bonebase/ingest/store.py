"""Write a planned submission: curated objects and case rows, quarantined originals and items.

What a receipt reports is read back from the rows the submission wrote (:func:`tally`), not
counted by the run: a run that finishes what a killed or concurrent one began tells the truth
about the submission as a whole.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from psycopg import Connection

from bonebase.db import quarantine
from bonebase.db.cases import commit_cases, held_elsewhere, referenced_keys, submission_tally
from bonebase.db.quarantine import QuarantineItem
from bonebase.errors import InputError
from bonebase.ingest.accept import CasePlan, Plan, instance_record
from bonebase.ingest.scan import FileEntry
from bonebase.storage import ObjectStore, content_key

#: Reason code of a file (or a row whose every file) that is already part of another site's
#: data. Its wording is neutral on purpose: a site must not learn what another site holds.
HELD = "held_for_review"


@dataclass
class StoreOutcome:
    cases: dict[str, Counter] = field(default_factory=lambda: {"status": Counter()})
    case_results: list[dict] = field(default_factory=list)
    added: int = 0
    duplicates: int = 0


CASES_PER_COMMIT = 50  # cases per transaction: few statements per batch, little lost to a crash


def hold_elsewhere(plan: Plan, *, conn: Connection, site_id: int) -> int:
    """Move the planned files that another site holds (same source or de-identified bytes, SOP,
    study or series UID) from their cases to quarantine; returns how many.

    Such a file cannot be stored for this site (instance and study keys are unique across the
    consortium; storing it would attach it to the other site's case), and storing it twice would
    put one image in two sites' data, across the site-wise split of the dataset. A data steward
    decides; the site's receipt says only that the file is held for review."""
    files = [r for case in plan.cases for r in case.files]
    if not files:
        return 0
    keys, studies, series = held_elsewhere(
        conn, site_id=site_id, source_sha256=[r.source_sha256 for r in files],
        sha256=[r.sha256 for r in files], sop_instance_uids=[r.sop_instance_uid for r in files],
        study_uids=[r.study_uid for r in files], series_uids=[r.series_uid for r in files])
    held, kept = 0, []
    for case in plan.cases:
        mine = []
        for r in case.files:
            if ({r.source_sha256, r.sha256, r.sop_instance_uid} & keys or r.study_uid in studies
                    or r.series_uid in series):
                plan.quarantine.append((QuarantineItem(
                    HELD, f"{r.rel}: held for review by the consortium's data stewards before it"
                    " is stored; nothing to do now", file=r.rel, row_number=case.row,
                    case_ref=case.case_ref), r))
                held += 1
            else:
                mine.append(r)
        if mine:
            kept.append(replace(case, files=mine))
        else:
            plan.quarantine.append((QuarantineItem(
                HELD, f"row {case.row}: its images are held for review by the consortium's data"
                " stewards; the case is stored when they are released", row_number=case.row,
                case_ref=case.case_ref), None))
    plan.cases = kept
    return held


def store_cases(plan: Plan, *, conn: Connection, store: ObjectStore, site_id: int,
                submission_id: int) -> StoreOutcome:
    """Objects first (content-addressed, so a re-run rewrites nothing), then the case rows in
    transactions of whole cases; objects no row points to are removed again."""
    moved: list[str] = []
    # Every object is durable (the batch exits) before any row that points at it is committed.
    with store.batch():
        for case in plan.cases:
            for r in case.files:
                key = content_key(r.sha256)
                if r.staged is not None and r.staged.exists():
                    store.put_staged(key, r.staged, sha256=r.sha256)  # a rename when local
                    moved.append(key)
                elif not store.exists(key):  # a retry finds the objects it moved already
                    raise FileNotFoundError(
                        f"{plan.redact(r.rel)}: its de-identified copy is missing from staging;"
                        " run the submission again")
    for batch in _batches(plan.cases):
        commit_cases(
            conn, site_id=site_id, submission_id=submission_id,
            cases=[(case.record, [instance_record(r, object_key=content_key(r.sha256))
                                  for r in case.files]) for case in batch])
    if plan.annotations:  # outlines of the stored images (annotation_file), replaced on re-runs
        from bonebase.ingest.annotations import store_for_instances

        mine = {r.sha256 for case in plan.cases for r in case.files}
        store_for_instances(conn, shapes_by_sha256={
            sha: shapes for sha, shapes in plan.annotations.items() if sha in mine})
        conn.commit()
    # A file whose instance row was not written (its SOP UID came with other bytes before)
    # would leave its object with no row pointing to it.
    for key in sorted(set(moved) - referenced_keys(conn, moved)):
        store.delete(key)
    return tally(plan, conn=conn, site_id=site_id, submission_id=submission_id)


def tally(plan: Plan, *, conn: Connection, site_id: int, submission_id: int) -> StoreOutcome:
    """Per case and in all, what the submission stored: read from its rows in the database."""
    status, stored = submission_tally(conn, site_id=site_id, submission_id=submission_id,
                                      case_pseudonyms=[c.record.case_pseudonym for c in plan.cases])
    outcome = StoreOutcome()
    for case in plan.cases:
        state, version = status[case.record.case_pseudonym]
        added = sum(r.source_sha256 in stored for r in case.files)
        outcome.cases["status"][state] += 1
        outcome.added += added
        outcome.duplicates += len(case.files) - added
        outcome.case_results.append({
            "row": case.row, "case": case.case_ref, "status": state, "version": version,
            "files_added": added, "files_duplicate": len(case.files) - added,
            "files": [plan.redact(r.rel) for r in case.files],
        })
    return outcome


def _batches(cases: list[CasePlan]) -> list[list[CasePlan]]:
    """Chunks of CASES_PER_COMMIT cases, a case pseudonym at most once per chunk."""
    batches: list[list[CasePlan]] = [[]]
    seen: set[str] = set()
    for case in cases:
        if len(batches[-1]) >= CASES_PER_COMMIT or case.record.case_pseudonym in seen:
            batches.append([])
            seen.clear()
        batches[-1].append(case)
        seen.add(case.record.case_pseudonym)
    return [b for b in batches if b]


def store_quarantine(plan: Plan, *, conn: Connection, store: ObjectStore, site_id: int,
                     submission_id: int, entries: dict[str, FileEntry], manifest_bytes: bytes) -> int:
    """Keep every rejected file's original bytes (quarantine area) and record every item."""
    manifest_key = f"quarantine/{submission_id}/manifest.csv"
    if any(item.row_number is not None and item.file is None for item, _ in plan.quarantine):
        store.put_bytes(manifest_key, manifest_bytes)
    items = []
    with store.batch():
        _keep_originals(plan, store, submission_id, entries, manifest_key, items)
    quarantine.add_many(conn, submission_id=submission_id, site_id=site_id, items=items)
    conn.commit()
    return len(items)


def _keep_originals(plan: Plan, store: ObjectStore, submission_id: int,
                    entries: dict[str, FileEntry], manifest_key: str, items: list) -> None:
    for item, _ in plan.quarantine:
        key = manifest_key if item.file is None else None
        entry = entries.get(item.file) if item.file is not None else None
        # A refused entry (a link, a bomb) is recorded without its bytes: they are not ours to keep.
        if entry is not None and not getattr(entry, "refused", None):
            # Keyed by content, not by the submitted path, which may hold a PatientID.
            key = content_key(entry.sha256, area=f"quarantine/{submission_id}", suffix=".bin")
            if not store.exists(key) and not _copy_plain_file(store, key, entry):
                key = None
        items.append(replace(item, object_key=key, file=plan.redact(item.file),
                             message=plan.redact(item.message), case_ref=item.case_ref))


def _copy_plain_file(store: ObjectStore, key: str, entry: FileEntry) -> bool:
    """Copy the entry's bytes if it is still a regular file that is not a symbolic link;
    False when it is gone or is not one (a link would copy whatever it points to)."""
    try:
        fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:  # ELOOP: a link; ENOENT: gone since the scan
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        # The open descriptor, not the path again: the path could be swapped for a link now.
        store.put_file(key, Path(f"/dev/fd/{fd}"), sha256=entry.sha256)
        return True
    except InputError:  # changed since it was hashed: not the file the submission held
        return False
    finally:
        os.close(fd)
