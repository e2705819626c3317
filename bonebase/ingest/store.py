"""Write a planned submission: curated objects and case rows, quarantined originals and items."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from psycopg import Connection

from bonebase.db import quarantine
from bonebase.db.cases import commit_cases
from bonebase.ingest.accept import CasePlan, Plan, instance_record
from bonebase.ingest.scan import FileEntry
from bonebase.storage import ObjectStore, content_key


@dataclass
class StoreOutcome:
    cases: dict[str, Counter] = field(default_factory=lambda: {"status": Counter()})
    case_results: list[dict] = field(default_factory=list)
    added: int = 0
    duplicates: int = 0


CASES_PER_COMMIT = 50  # cases per transaction: few statements per batch, little lost to a crash


def store_cases(plan: Plan, *, conn: Connection, store: ObjectStore, site_id: int,
                submission_id: int) -> StoreOutcome:
    """Objects first (content-addressed, so a re-run rewrites nothing), then the case rows in
    transactions of whole cases."""
    outcome = StoreOutcome()
    # Every object is durable (the batch exits) before any row that points at it is committed.
    with store.batch():
        for case in plan.cases:
            for r in case.files:
                key = content_key(r.sha256)
                if r.staged is not None and r.staged.exists():
                    store.put_staged(key, r.staged, sha256=r.sha256)  # a rename when local
                elif not store.exists(key):  # a retry finds the objects it moved already
                    raise FileNotFoundError(
                        f"{plan.redact(r.rel)}: its de-identified copy is missing from staging;"
                        " run the submission again")
    for batch in _batches(plan.cases):
        results = commit_cases(
            conn, site_id=site_id, submission_id=submission_id,
            cases=[(case.record, [instance_record(r, object_key=content_key(r.sha256))
                                  for r in case.files]) for case in batch])
        for case, result in zip(batch, results, strict=True):
            outcome.cases["status"][result.status] += 1
            outcome.added += result.added
            outcome.duplicates += result.duplicates
            outcome.case_results.append({
                "row": case.row, "case_id": case.case_ref, "status": result.status,
                "version": result.version, "files_added": result.added,
                "files_duplicate": result.duplicates,
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
        if entry is not None and entry.path.exists():
            # Keyed by content, not by the submitted path, which may hold a PatientID.
            key = content_key(entry.sha256, area=f"quarantine/{submission_id}", suffix=".bin")
            if not store.exists(key):
                store.put_file(key, entry.path, sha256=entry.sha256)
        items.append(replace(item, object_key=key, file=plan.redact(item.file),
                             message=plan.redact(item.message), case_ref=item.case_ref))
