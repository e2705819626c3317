"""Prefect flow `ingest-submission`: a site's folder, zip or S3 prefix into the database.

Thin by design: every step is a function of ``bonebase.ingest``; tasks batch hundreds of files
(a task per file costs more than the file) and the I/O tasks retry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from bonebase.config import Settings, get_settings
from bonebase.db import audit
from bonebase.db import submissions as subs
from bonebase.db.engine import connect, database_url
from bonebase.db.sites import get_site
from bonebase.dicom.deid import Deidentifier
from bonebase.ingest import accept, process, receipt, scan, source, store
from bonebase.storage import open_store

# Files per task: a task costs tens of milliseconds of orchestration (more on a busy machine),
# so about two tasks per worker, each of 100-500 files, keep every core busy at little cost.
BATCH_MIN, BATCH_MAX = 100, 500


@task(name="process-files", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def process_files(entries: list[scan.FileEntry], secret: bytes, uid_root: str, site: str,
                  staging: str) -> list[process.FileResult]:
    """Read, QC and de-identify one batch of files into the staging folder (streamed)."""
    # pydicom is pure Python: the work runs in a process pool so batches use every core, while
    # Prefect still sees (and retries) one task per batch.
    future = _workers().submit(process.process_batch, entries, secret=secret, uid_root=uid_root,
                               site=site, staging=Path(staging))
    return future.result()


_POOL = None


def _worker_count() -> int:
    import os

    return max(1, int(os.environ.get("BONEBASE_INGEST_WORKERS") or os.cpu_count() or 1))


def _batch_size(n: int) -> int:
    import math

    return min(BATCH_MAX, max(BATCH_MIN, math.ceil(n / (2 * _worker_count()))))


def _workers():
    """The process pool for file batches: BONEBASE_INGEST_WORKERS, default one per core."""
    global _POOL
    if _POOL is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the flow process runs Prefect's threads, which fork must not copy.
        _POOL = ProcessPoolExecutor(max_workers=_worker_count(),
                                    mp_context=multiprocessing.get_context("spawn"))
    return _POOL


@task(name="validate", cache_policy=NO_CACHE)
def validate(manifest, headers, site: str, submission_id: int, docs_dir: str):
    """Run the Great Expectations suites over the manifest and the header table."""
    from validation.runner import validate_submission

    return validate_submission(manifest, headers, site=site, submission_id=str(submission_id),
                               docs_dir=Path(docs_dir))


@task(name="store-cases", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def store_cases(plan, url: str, storage_url: str, endpoint: str | None, region: str | None,
                site_id: int, submission_id: int):
    """Move accepted files into the object store, then commit the cases in batches."""
    with connect(url) as conn:
        return store.store_cases(plan, conn=conn,
                                 store=open_store(storage_url, endpoint_url=endpoint, region=region),
                                 site_id=site_id, submission_id=submission_id)


def _progress(callback: Callable[[str, int, int], None] | None, stage: str, done: int, total: int):
    if callback:
        callback(stage, done, total)


@flow(name="ingest-submission", log_prints=True)
def ingest_submission(site: str, source_path: str, *, settings: Settings | None = None,
                      progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Ingest one submission of ``site`` from a folder, zip or s3:// prefix; returns the receipt."""
    import pandas as pd

    from validation.inputs import load_manifest

    settings = settings or get_settings()
    clock = _Clock()
    url = database_url(settings)
    secret = settings.consortium_secret()
    with connect(url) as conn:
        site_row = get_site(conn, site)
    with source.as_folder(source_path, endpoint_url=settings.s3_endpoint_url,
                          region=settings.s3_region) as root:
        manifest_path = scan.find_manifest(root)
        entries = scan.scan_files(root, manifest_path)
        digest = scan.submission_hash(manifest_path, entries)
        clock.lap("scan")
        with connect(url) as conn:
            row, created = subs.register(conn, site_id=site_row.id, source=source_path,
                                         content_hash=digest)
            conn.commit()
            if not created and row["status"] == "done":
                print(f"submission {row['id']} of site {site} was already ingested: nothing to do")
                return {**(row["receipt"] or {}), "already_ingested": True}
            if not created:
                subs.restart(conn, row["id"])  # finish a run that crashed: every step is idempotent
                conn.commit()
        submission_id = row["id"]
        manifest = load_manifest(manifest_path)
        objects = open_store(settings.object_store_url, endpoint_url=settings.s3_endpoint_url,
                             region=settings.s3_region)
        # A local store stages inside itself, so storing an accepted file is a rename.
        staging = (objects.staging_dir(str(submission_id))
                   or settings.home / "staging" / str(submission_id))
        size = _batch_size(len(entries))
        batches = [entries[i:i + size] for i in range(0, len(entries), size)]
        futures = [process_files.submit(b, secret, settings.uid_root, site, str(staging))
                   for b in batches]
        results: list[process.FileResult] = []
        for future, _batch in zip(futures, batches, strict=True):
            results.extend(future.result())
            _progress(progress, "files", len(results), len(entries))
        clock.lap("process")
        headers = pd.DataFrame([r.record for r in results if r.record is not None])
        docs_dir = settings.home / "datadocs" / str(submission_id)
        report = validate(manifest, headers, site, submission_id, str(docs_dir))
        clock.lap("validate")
        deid = Deidentifier(secret, uid_root=settings.uid_root)
        # Files stored by an earlier submission are counted as duplicates when their rows
        # conflict (ON CONFLICT DO NOTHING), so no lookup is needed here.
        plan = accept.plan_submission(manifest, results, report, site=site, deid=deid)
        outcome = store_cases(plan, url, settings.object_store_url, settings.s3_endpoint_url,
                              settings.s3_region, site_row.id, submission_id)
        _progress(progress, "cases", len(plan.cases), len(plan.cases))
        clock.lap("store")
        docs = str(report.data_docs_index) if report.data_docs_index else None
        the_receipt = receipt.build_receipt(
            site=site, submission_id=submission_id, source=source_path, plan=plan,
            outcome=outcome, n_files=len(entries), n_rows=len(manifest), data_docs=docs)
        with connect(url) as conn:
            store.store_quarantine(plan, conn=conn, store=objects, site_id=site_row.id,
                                   submission_id=submission_id,
                                   entries={e.rel: e for e in entries},
                                   manifest_bytes=manifest_path.read_bytes())
            subs.finish(conn, submission_id, status="done", counts=the_receipt["counts"],
                        receipt=the_receipt)
            audit.record(conn, action="submission.ingest", entity="submission",
                         entity_id=submission_id, details=the_receipt["counts"])
            conn.commit()
        clock.lap("quarantine")
    json_path, md_path = receipt.write_receipt(the_receipt, settings.home / "receipts")
    the_receipt["paths"] = {"json": str(json_path), "markdown": str(md_path)}
    create_markdown_artifact(markdown=receipt.to_markdown(the_receipt),
                             key=f"receipt-{site.lower()}-{submission_id}",
                             description=f"Receipt of submission {submission_id} ({site})")
    _cleanup(staging)
    the_receipt["timings_s"] = clock.laps
    return the_receipt


class _Clock:
    """Seconds spent per stage, reported with the receipt (and read by benchmarks/ingest.py)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


def _cleanup(staging: Path) -> None:
    import shutil

    shutil.rmtree(staging, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(ingest_submission(sys.argv[1], sys.argv[2])["counts"])
