"""Where a submission's file batches run: a process pool on this machine (the default), or, with
BONEBASE_TASK_RUNNER=dask, Prefect's Dask task runner (a temporary local cluster, or the scheduler
at BONEBASE_DASK_ADDRESS). The ingest flow (flows/ingest.py) hands its batch task to
:func:`run_batches` and gets the results back in submission order, whichever runs them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path

from bonebase.config import Settings
from bonebase.errors import ConfigError
from bonebase.ingest import process, scan

# Files per task: a task costs tens of milliseconds of orchestration (more on a busy machine),
# so about two tasks per worker, each of 100-500 files, keep every core busy at little cost.
BATCH_MIN, BATCH_MAX = 100, 500

Progress = Callable[[str, int, int], None]


def run_batches(batch_task, entries: list[scan.FileEntry], args: dict, settings: Settings,
                progress: Progress | None) -> list[process.FileResult]:
    """Run ``batch_task`` (a Prefect task taking ``entries``, ``args`` and ``pool``) over the
    batches of ``entries``, on the process pool or as Dask tasks."""
    from prefect.utilities.annotations import quote

    if settings.task_runner != "dask":
        slots = _worker_count(settings)
        futures = [batch_task.submit(quote(b), **args, pool=slots)
                   for b in _batches(entries, slots)]
        return _collect(futures, len(entries), progress)
    with _dask_runner(settings) as runner:
        # Batches are sized by the cluster as it is (a remote one has its own worker count).
        slots = sum(runner.client.nthreads().values()) or 1
        # (no quote() here: the Dask runner hands the quoted wrapper itself to the task)
        futures = [runner.submit(batch_task, {"entries": b, **args})
                   for b in _batches(entries, slots)]
        return _collect(futures, len(entries), progress)


def run_here(entries: list[scan.FileEntry], args: dict, settings: Settings,
             progress: Progress | None) -> list[process.FileResult]:
    """The batches of ``entries`` on this machine's process pool, without Prefect (what
    `bonebase validate` runs); results in submission order, as :func:`run_batches` gives them."""
    slots = _worker_count(settings)
    futures = [_workers(slots).submit(
        process.process_batch, b, secret=settings.consortium_secret(), uid_root=args["uid_root"],
        site=args["site"], staging=Path(args["staging"]), max_pixels=settings.max_pixels,
        keep_descriptors=args.get("keep_descriptors", False),
        burned_in=args.get("burned_in", "redact"))
        for b in _batches(entries, slots)]
    return _collect(futures, len(entries), progress)


def run_batch(entries: list[scan.FileEntry], *, pool: int, secret: str, uid_root: str,
              site: str, staging: Path, max_pixels: int, keep_descriptors: bool = False,
              burned_in: str = "redact") -> list[process.FileResult]:
    """One batch: here (``pool`` 0, as on a Dask worker) or on the process pool of ``pool``;
    ``keep_descriptors`` and ``burned_in`` are the site's de-identification settings."""
    if not pool:  # on Dask: the task already runs in a worker process of its own
        return process.process_batch(entries, secret=secret, uid_root=uid_root, site=site,
                                     staging=staging, max_pixels=max_pixels,
                                     keep_descriptors=keep_descriptors, burned_in=burned_in)
    # pydicom is pure Python: the work runs in a process pool so batches use every core, while
    # Prefect still sees (and retries) one task per batch.
    future = _workers(pool).submit(process.process_batch, entries, secret=secret,
                                   uid_root=uid_root, site=site, staging=staging,
                                   max_pixels=max_pixels, keep_descriptors=keep_descriptors,
                                   burned_in=burned_in)
    return future.result()


def report_progress(callback: Progress | None, stage: str, done: int, total: int) -> None:
    if callback:
        callback(stage, done, total)


def _collect(futures: list, total: int, progress) -> list[process.FileResult]:
    results: list[process.FileResult] = []
    for future in futures:  # in submission order: the receipt must not depend on timing
        results.extend(future.result())
        report_progress(progress, "files", len(results), total)
    return results


def _worker_count(settings: Settings) -> int:
    import os

    return settings.ingest_workers or os.cpu_count() or 1


def _batches(entries: list, slots: int) -> list[list]:
    """About two batches per worker slot, each of BATCH_MIN to BATCH_MAX files."""
    import math

    size = min(BATCH_MAX, max(BATCH_MIN, math.ceil(len(entries) / (2 * slots))))
    return [entries[i:i + size] for i in range(0, len(entries), size)]


_POOL = None
_POOL_LOCK = threading.Lock()  # two runs in one process (threads) must not make two pools


def _workers(size: int):
    """The process pool for file batches: BONEBASE_INGEST_WORKERS, default one per core."""
    global _POOL
    with _POOL_LOCK:
        return _POOL or _make_pool(size)


def _make_pool(size: int):
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
                "Dask workers reach: start one (`bonebase prefect ui`, or `prefect server start` with this home's PREFECT_HOME) and set PREFECT_API_URL "
                "for this process and the workers"
            )
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(cluster=_local_cluster(_worker_count(settings), _api_url(),
                                                 _worker_env(settings)))


def _worker_env(settings: Settings) -> dict[str, str]:
    """What a local Dask worker needs to find the consortium key itself (the flow's batch task
    reads it from the settings, never from a parameter)."""
    env = {"BONEBASE_HOME": str(settings.home), "BONEBASE_ENV": settings.env}
    if settings.secret:
        env["BONEBASE_SECRET"] = settings.secret
    return env


_CLUSTER: dict = {}


def _local_cluster(workers: int, api_url: str, env: dict[str, str]):
    """The temporary local cluster: made on first use and kept for the life of this process,
    like the process pool, so later runs find warm workers (a fresh worker spends seconds
    importing pydicom and Prefect); distributed closes it when the process exits."""
    # Keyed by a digest of the environment, so that a cluster holds no key other than its own.
    key = (workers, api_url, hashlib.sha256(repr(sorted(env.items())).encode()).hexdigest())
    if key not in _CLUSTER:
        from distributed import LocalCluster

        for old in _CLUSTER.values():  # another size or Prefect server: one cluster at a time
            old.close()
        _CLUSTER.clear()
        # One thread per worker process: pydicom holds the GIL, so more threads would not
        # help. The workers report to this run's Prefect API, a temporary server's included
        # (else each starts a temporary server of its own); ':0' avoids a port clash.
        _CLUSTER[key] = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=":0",
                                     env={"PREFECT_API_URL": api_url, **env})
    return _CLUSTER[key]


def _api_url() -> str:
    """The API this flow run reports to (a temporary server's too, which settings do not hold)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None:
        from prefect.settings import get_current_settings

        return get_current_settings().api.url or ""
    return str(context.client.api_url).rstrip("/")
