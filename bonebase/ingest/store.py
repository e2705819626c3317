"""Write a planned submission: curated objects and case rows, quarantined originals and items."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from psycopg import Connection

from bonebase.db import quarantine
from bonebase.db.cases import commit_case
from bonebase.ingest.accept import Plan, instance_record
from bonebase.ingest.scan import FileEntry
from bonebase.storage import ObjectStore, content_key


@dataclass
class StoreOutcome:
    cases: dict[str, Counter] = field(default_factory=lambda: {"status": Counter()})
    case_results: list[dict] = field(default_factory=list)
    added: int = 0
    duplicates: int = 0


def store_cases(plan: Plan, *, conn: Connection, store: ObjectStore, site_id: int,
                submission_id: int) -> StoreOutcome:
    """Objects first (content-addressed, so a re-run rewrites nothing), then one transaction per case."""
    outcome = StoreOutcome()
    # Every object is durable (the batch exits) before any row that points at it is committed.
    with store.batch():
        for case in plan.cases:
            for r in case.files:
                key = content_key(r.sha256)
                if not store.exists(key):
                    store.put_file(key, r.staged, sha256=r.sha256)
    for case in plan.cases:
        instances = [instance_record(r, object_key=content_key(r.sha256)) for r in case.files]
        result = commit_case(conn, site_id=site_id, submission_id=submission_id,
                             case=case.record, instances=instances)
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
