"""One pass of the gateway's background work: complete studies into batches, deliver the queue,
read receipts, delete originals past their keeping time. One pass at a time (a file lock), so
`gateway flush` and a running `gateway serve` do not prepare the same study twice."""

from __future__ import annotations

import fcntl
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace

from bonebase.gateway import deliver, studies
from bonebase.gateway.spool import FAILED, INGESTED, QUARANTINED, SENT, Spool
from bonebase.storage import ObjectStore

_DONE = (SENT, INGESTED, QUARANTINED, FAILED)


@dataclass
class WorkConfig:
    site: str
    secret: bytes
    uid_root: str = "2.25"
    study_timeout: float = 60.0
    keep_days: float = 30.0
    max_pixels: int | None = None
    batch: studies.BatchPolicy = studies.BatchPolicy()


@contextmanager
def locked(spool: Spool, *, wait: bool):
    with open(spool.home.lock_file, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def work_once(spool: Spool, cfg: WorkConfig, store: ObjectStore | None, *,
              wait: bool = False) -> dict:
    """Run one pass; counts of what it did (empty when another pass holds the lock)."""
    with locked(spool, wait=wait) as got:
        if not got:
            return {}
        # Received files become durable in place and leave the journal (before any purge).
        done = {"checkpointed": spool.checkpoint(), "batches": 0, "sent": 0, "receipts": 0,
                "purged": 0}
        # Receipts first: a batch's receipt lets the studies waiting for it leave in this pass.
        if store is not None:
            done["receipts"] = deliver.collect_receipts(spool, store, site=cfg.site)
        # Without a consortium to deliver to, no receipt comes back to wait for.
        policy = cfg.batch if store is not None else replace(cfg.batch, receipt_wait=0.0)
        while studies.batch_due(spool, site=cfg.site, secret=cfg.secret, uid_root=cfg.uid_root,
                                timeout=cfg.study_timeout, max_pixels=cfg.max_pixels,
                                policy=policy):
            done["batches"] += 1
        if store is not None:
            done["sent"] = deliver.deliver_due(spool, store, site=cfg.site)
        done["purged"] = purge(spool, keep_days=cfg.keep_days)
        return done


def purge(spool: Spool, *, keep_days: float, now: float | None = None) -> int:
    """Delete the identified originals of studies sent more than ``keep_days`` ago."""
    limit = (time.time() if now is None else now) - keep_days * 86400
    count = 0
    for study in spool.studies():
        folder = spool.home.studies / study["key"]
        if study["state"] in _DONE and study["last_seen"] < limit and folder.exists():
            shutil.rmtree(folder)
            with spool.db() as conn:
                conn.execute("UPDATE studies SET purged = 1 WHERE key = ?", (study["key"],))
            count += 1
    return count
