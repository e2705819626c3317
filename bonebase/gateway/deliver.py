"""Delivery of the outbox to the consortium's object store (S3, a per-site prefix).

The queue is the ``batches`` table of the gateway's state database, beside the batch folders of
the outbox: it survives a crash or a reboot. A batch goes up file by file (a file the store holds
already with the same SHA-256 is not sent again, so an interrupted upload resumes), then its
``ready`` marker, written last: the consortium's polling flow ingests only batches whose marker
exists. A failed attempt waits 2, 4, 8 ... seconds (at most ``MAX_BACKOFF``) before the next.

Layout under ``s3://bucket/prefix/<SITE>/``: ``batches/<id>/`` (manifest.csv, study-N/*.dcm),
``ready/<id>.json``, and ``receipts/<id>.json`` which the consortium writes back.
"""

from __future__ import annotations

import json
import logging
import time

from bonebase.errors import BonebaseError
from bonebase.gateway.spool import FAILED, INGESTED, QUARANTINED, QUEUED, SENT, Spool
from bonebase.storage import ObjectStore, sha256_file

LOG = logging.getLogger("bonebase.gateway")
MAX_BACKOFF = 300.0


def batch_prefix(site: str, batch: str) -> str:
    return f"{site}/batches/{batch}"


def ready_key(site: str, batch: str) -> str:
    return f"{site}/ready/{batch}.json"


def receipt_key(site: str, batch: str) -> str:
    return f"{site}/receipts/{batch}.json"


def deliver_due(spool: Spool, store: ObjectStore, *, site: str, now: float | None = None) -> int:
    """Send every queued batch whose retry time has come; the number sent now."""
    now = time.time() if now is None else now
    with spool.db() as conn:
        due = conn.execute("SELECT id, attempts FROM batches WHERE state = ? AND next_try <= ? "
                           "ORDER BY created", (QUEUED, now)).fetchall()
    sent = 0
    for batch in due:
        try:
            _upload(spool, store, site=site, batch=batch["id"])
        except (BonebaseError, OSError) as exc:
            attempts = batch["attempts"] + 1
            wait = min(MAX_BACKOFF, 2.0 ** attempts)
            with spool.db() as conn:
                conn.execute("UPDATE batches SET attempts = ?, next_try = ?, error = ? "
                             "WHERE id = ?", (attempts, time.time() + wait,
                                              _failure_record(exc)[:500], batch["id"]))
            LOG.warning("batch %s not delivered (attempt %d), next try in %.0f s: %s",
                        batch["id"], attempts, wait, type(exc).__name__)
            break  # the consortium is unreachable: the rest waits too, in order
        sent += 1
    return sent


def _failure_record(exc: BonebaseError | OSError) -> str:
    """What the queue keeps of a failed attempt: our errors' stable code and English, whatever
    the language they were raised in (as the central receipts keep ``error_code`` and ``error``);
    an OSError's type and text (Python's, in English)."""
    if isinstance(exc, BonebaseError):
        return f"{exc.code}: {exc.english}"
    return f"{type(exc).__name__}: {exc}"


def _upload(spool: Spool, store: ObjectStore, *, site: str, batch: str) -> None:
    folder = spool.home.outbox / batch
    prefix = batch_prefix(site, batch)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    listing = {}
    for path in files:
        rel = path.relative_to(folder).as_posix()
        sha = sha256_file(path)
        key = f"{prefix}/{rel}"
        if not (store.exists(key) and store.sha256(key) == sha):  # resumed: sent already
            store.put_file(key, path, sha256=sha)
        listing[rel] = sha
    marker = json.dumps({"site": site, "batch": batch, "files": listing}, indent=1).encode()
    store.put_bytes(ready_key(site, batch), marker)
    with spool.db() as conn:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE batches SET state = ?, sent = ?, error = NULL WHERE id = ?",
                     (SENT, time.time(), batch))
        conn.execute("UPDATE studies SET state = ?, detail = NULL WHERE batch = ? AND state = ?",
                     (SENT, batch, QUEUED))
        conn.execute("COMMIT")


def collect_receipts(spool: Spool, store: ObjectStore, *, site: str) -> int:
    """Read the consortium's receipts of sent batches into the studies' states; the number read."""
    with spool.db() as conn:
        waiting = [r["id"] for r in conn.execute("SELECT id FROM batches WHERE state = ?",
                                                 (SENT,))]
    read = 0
    for batch in waiting:
        key = receipt_key(site, batch)
        if not store.exists(key):
            continue
        receipt = json.loads(store.get_bytes(key))
        _apply(spool, batch, receipt)
        read += 1
    return read


def _apply(spool: Spool, batch: str, receipt: dict) -> None:
    """Each study of the batch becomes ingested, quarantined (with the reason) or failed."""
    with spool.db() as conn:
        studies = conn.execute("SELECT key, case_ref FROM studies WHERE batch = ? ORDER BY rowid",
                               (batch,)).fetchall()
    manifest = spool.home.outbox / batch / "manifest.csv"
    rows = _rows_by_case(manifest)
    reasons: dict[int, str] = {}
    for item in receipt.get("quarantine") or []:
        if item.get("row") is not None:
            reasons.setdefault(int(item["row"]), f"{item.get('reason')}: {item.get('fix', '')}")
    accepted = {int(c["row"]) for c in receipt.get("cases") or [] if c.get("row") is not None}
    failed = receipt.get("status") != "done"
    with spool.db() as conn:
        conn.execute("BEGIN IMMEDIATE")
        for study in studies:
            row = rows.get(study["case_ref"])
            if failed:
                state, detail = FAILED, str(receipt.get("error") or "refused centrally")
            elif row in accepted:
                state, detail = INGESTED, None
            else:
                state, detail = QUARANTINED, reasons.get(row, "see the batch's receipt")
            conn.execute("UPDATE studies SET state = ?, detail = ? WHERE key = ?",
                         (state, detail, study["key"]))
        conn.execute("UPDATE batches SET state = ?, receipt = ? WHERE id = ?",
                     ("failed" if failed else "done", json.dumps(receipt), batch))
        conn.execute("COMMIT")


def _rows_by_case(manifest) -> dict[str, int]:
    import csv

    with open(manifest, encoding="utf-8", newline="") as fh:
        return {r["case_id"]: n for n, r in enumerate(csv.DictReader(fh), 1)}
