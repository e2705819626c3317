"""Prefect flow `ingest-submission`: a site's folder, zip or S3 prefix into the database.

Thin by design: every step is a function of ``bonebase.ingest``; tasks batch hundreds of files
(a task per file costs more than the file) and the I/O tasks retry. The file batches run on a
process pool on this machine, or with BONEBASE_TASK_RUNNER=dask as tasks of Prefect's Dask task
runner (a temporary local cluster, or the scheduler at BONEBASE_DASK_ADDRESS); the rest of the
flow is the same either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from bonebase.config import Settings, get_settings
from bonebase.db import audit
from bonebase.db import submissions as subs
from bonebase.db.engine import connect, database_url
from bonebase.db.sites import get_site
from bonebase.dicom.deid import Deidentifier
from bonebase.errors import ConfigError
from bonebase.ingest import accept, process, receipt, scan, source, store
from bonebase.storage import open_store

# Files per task: a task costs tens of milliseconds of orchestration (more on a busy machine),
# so about two tasks per worker, each of 100-500 files, keep every core busy at little cost.
BATCH_MIN, BATCH_MAX = 100, 500


@task(name="process-files", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def process_files(entries: list[scan.FileEntry], secret: bytes, uid_root: str, site: str,
                  staging: str, pool: int = 0) -> list[process.FileResult]:
    """Read, QC and de-identify one batch of files into the staging folder (streamed)."""
    if not pool:  # on Dask: the task already runs in a worker process of its own
        return process.process_batch(entries, secret=secret, uid_root=uid_root, site=site,
                                     staging=Path(staging))
    # pydicom is pure Python: the work runs in a process pool so batches use every core, while
    # Prefect still sees (and retries) one task per batch.
    future = _workers(pool).submit(process.process_batch, entries, secret=secret,
                                   uid_root=uid_root, site=site, staging=Path(staging))
    return future.result()


_POOL = None


def _worker_count(settings: Settings) -> int:
    import os

    return settings.ingest_workers or os.cpu_count() or 1


def _batches(entries: list, slots: int) -> list[list]:
    """About two batches per worker slot, each of BATCH_MIN to BATCH_MAX files."""
    import math

    size = min(BATCH_MAX, max(BATCH_MIN, math.ceil(len(entries) / (2 * slots))))
    return [entries[i:i + size] for i in range(0, len(entries), size)]


def _workers(size: int):
    """The process pool for file batches: BONEBASE_INGEST_WORKERS, default one per core."""
    global _POOL
    if _POOL is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the flow process runs Prefect's threads, which fork must not copy.
        _POOL = ProcessPoolExecutor(max_workers=size,
                                    mp_context=multiprocessing.get_context("spawn"))
    return _POOL


def _dask_runner(settings: Settings):
    """Prefect's Dask task runner: the scheduler at BONEBASE_DASK_ADDRESS, else a temporary
    local cluster of BONEBASE_INGEST_WORKERS processes."""
    from prefect.settings import get_current_settings
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        # Workers elsewhere report their task runs to the Prefect server; a temporary one
        # listens on this machine only, and each worker would start one of its own.
        if not get_current_settings().api.url:
            raise ConfigError(
                f"BONEBASE_DASK_ADDRESS={settings.dask_address} needs a Prefect server that the "
                "Dask workers reach: start one (`prefect server start`) and set PREFECT_API_URL "
                "for this process and the workers"
            )
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster=_local_cluster(_worker_count(settings), _api_url()))


_CLUSTER: dict = {}


def _local_cluster(workers: int, api_url: str):
    """The temporary local cluster: made on first use and kept for the life of this process,
    like the process pool, so later runs find warm workers (a fresh worker spends seconds
    importing pydicom and Prefect); distributed closes it when the process exits."""
    key = (workers, api_url)
    if key not in _CLUSTER:
        from distributed import LocalCluster

        for old in _CLUSTER.values():  # another size or Prefect server: one cluster at a time
            old.close()
        _CLUSTER.clear()
        # One thread per worker process: pydicom holds the GIL, so more threads would not
        # help. The workers report to this run's Prefect API, a temporary server's included
        # (else each starts a temporary server of its own); ':0' avoids a port clash.
        _CLUSTER[key] = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", env={"PREFECT_API_URL": api_url})
    return _CLUSTER[key]


def _api_url() -> str:
    """The API this flow run reports to (a temporary server's too, which settings do not hold)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None:
        from prefect.settings import get_current_settings

        return get_current_settings().api.url or ""
    return str(context.client.api_url).rstrip("/")


def _process_all(entries: list[scan.FileEntry], args: dict, settings: Settings,
                 progress: Callable[[str, int, int], None] | None) -> list[process.FileResult]:
    """Run the file batches as Prefect tasks, on the process pool or as Dask tasks."""
    if settings.task_runner != "dask":
        slots = _worker_count(settings)
        futures = [process_files.submit(quote(b), **args, pool=slots)
                   for b in _batches(entries, slots)]
        return _collect(futures, len(entries), progress)
    with _dask_runner(settings) as runner:
        # Batches are sized by the cluster as it is (a remote one has its own worker count).
        slots = sum(runner.client.nthreads().values()) or 1
        # (no quote() here: the Dask runner hands the quoted wrapper itself to the task)
        futures = [runner.submit(process_files, {"entries": b, **args})
                   for b in _batches(entries, slots)]
        return _collect(futures, len(entries), progress)


def _collect(futures: list, total: int, progress) -> list[process.FileResult]:
    results: list[process.FileResult] = []
    for future in futures:  # in submission order: the receipt must not depend on timing
        results.extend(future.result())
        _progress(progress, "files", len(results), total)
    return results


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
        args = {"secret": secret, "uid_root": settings.uid_root, "site": site,
                "staging": str(staging)}
        results = _process_all(entries, args, settings, progress)
        clock.lap("process")
        headers = pd.DataFrame([r.record for r in results if r.record is not None])
        docs_dir = settings.home / "datadocs" / str(submission_id)
        report = validate(quote(manifest), quote(headers), site, submission_id, str(docs_dir))
        clock.lap("validate")
        deid = Deidentifier(secret, uid_root=settings.uid_root)
        # Files stored by an earlier submission are counted as duplicates when their rows
        # conflict (ON CONFLICT DO NOTHING), so no lookup is needed here.
        plan = accept.plan_submission(manifest, results, report, site=site, deid=deid)
        # quote(): Prefect would walk every object of the plan (and of the batches, frames
        # above) looking for futures to wait on: seconds per submission, for nothing.
        outcome = store_cases(quote(plan), url, settings.object_store_url,
                              settings.s3_endpoint_url, settings.s3_region, site_row.id,
                              submission_id)
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
