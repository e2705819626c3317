"""Early scoring (#23): the champion scores a submission's radiographs while it is still being
validated and stored, so that the watch after ingest only stores scores and checks the site.

Once the files are de-identified, one of the machine's cores sits idle: Great Expectations
validates on one thread, then the cases are stored. The ingest flow (flows/ingest.py) then hands
the staged, de-identified radiographs to a scoring process of their own, kept for the life of the
process (its model stays loaded, like the watch's), which reads each file, checks it holds the
bytes the store will hold (its SHA-256, the instance's), and computes what the watch would: the
image's features and each deployed model's P(class 1), through the same scoring network. The
watch (bonebase.monitor.watch.score) takes them by content hash. Whatever was not scored early (a
file the process could not read, a model deployed meanwhile, a process that failed) the watch
scores as before: an early score is only ever a head start, never a different answer.

Nothing identifying crosses: the scorer gets paths in the staging folder, hashes and model ids,
and returns numbers computed from de-identified files. Its files are hard links made before the
store moves the staged files away, in a folder of their own that the scorer removes.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

#: Seconds the watch waits for a submission's early scores before it scores them itself.
WAIT_S = 600.0
#: The scoring process's niceness: it takes the CPU the ingest leaves idle, not the ingest's own
#: (at the same priority it slowed validation by more than its own work, benchmarks/ingest.py
#: --watch); what it has not scored when the watch starts, the watch scores at full speed.
NICE = 10
#: Radiographs per forward pass in the scoring process (a stop is heard between files).
BATCH = 8
#: The file in a scoring folder that tells the scoring process to stop and return what it has.
STOP = ".stop"
#: True or False: early scoring on or off whatever ``monitor.early`` says (benchmarks/ingest.py).
ENABLED: bool | None = None

_PENDING: dict[int, Early] = {}  # submission id -> its early scoring, until the watch takes it
_LOCK = threading.Lock()
_SCORER = None  # the scoring process (a pool of one), made on first use


@dataclass
class Early:
    """A submission's early scoring: the scoring process's answer, by model id and file hash."""

    future: Future
    models: tuple[int, ...]
    folder: Path  # the scorer's hard links (and its stop file)


def hook(connect: Callable, store, *, submission_id: int, staging: Path, policy,
         cache: Path) -> Callable[[list], None] | None:
    """What the ingest flow calls with a submission's results once its files are de-identified
    (staged in ``staging``): they are handed to the scoring process (:func:`start`). None when
    early scoring is off (``policy.early``, or :data:`ENABLED`), no model is deployed, or the
    watch is deferred (``policy.defer``: it runs in a process of its own). Only then is the
    database opened (``connect()``) and the models prepared (:func:`prepare`). Starting never
    fails an ingest: only the head start is lost (the watch scores the files itself)."""
    if policy.defer or not (policy.early if ENABLED is None else ENABLED):
        return None
    with connect() as conn:
        models = prepare(conn, store, cache=cache)
    if models is None:
        return None

    def begin(results: list) -> None:
        try:
            start(submission_id, results, staging, models, modalities=policy.modalities,
                  batch=policy.batch)
        except Exception as exc:  # noqa: BLE001 - the watch scores them after ingest instead
            print(f"early scoring did not start ({type(exc).__name__}); the champion watch "
                  "scores the submission after ingest")
    return begin


def prepare(conn, store, *, cache: Path) -> list[dict] | None:
    """The deployed watched models with their checkpoints fetched (and verified) once into
    ``cache``, and the scoring process told to load them now (it imports torch and builds the
    network while the files are de-identified); None when no model is deployed."""
    from bonebase.monitor.db import deployed
    from bonebase.release.registry import fetch_checkpoint

    models = []
    for row in deployed(conn).values():
        path = cache / f"{row['checkpoint_sha256']}.pt"
        if not path.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            # A folder of its own: two ingests in threads may fetch the same model at once.
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                fetch_checkpoint(store, row, tmp).replace(path)  # verified: its SHA-256
        models.append({"id": row["id"], "task": row["task"],
                       "checkpoint_sha256": row["checkpoint_sha256"], "path": str(path)})
    if not models:
        return None
    _scorer().submit(load_models, models)
    return models


def start(submission_id: int, results, staging: Path, models: list[dict], *,
          modalities: tuple[str, ...], batch: int) -> int:
    """Hand the staged radiographs of ``results`` (process.FileResult) to the scoring process;
    how many. The watch of ``submission_id`` takes the scores (:func:`take`)."""
    links = staging.with_name(f"{staging.name}.early")
    shutil.rmtree(links, ignore_errors=True)  # a run of this submission that died left it
    links.mkdir(parents=True)
    try:
        return _start(submission_id, results, links, models, modalities=modalities,
                      batch=batch)
    except BaseException:
        shutil.rmtree(links, ignore_errors=True)
        raise


def _start(submission_id: int, results, links: Path, models: list[dict], *,
           modalities: tuple[str, ...], batch: int) -> int:
    files = []
    for r in results:
        if (r.record is None or r.sha256 is None or r.staged is None
                or r.record.get("modality") not in modalities):
            continue
        link = links / f"{len(files)}.dcm"
        try:  # the store moves the staged file away: the link keeps its bytes for the scorer
            os.link(r.staged, link)
        except OSError:
            continue
        files.append((str(link), r.sha256))
    if not files:
        shutil.rmtree(links, ignore_errors=True)
        return 0
    future = _scorer().submit(score_files, files, models, batch=min(batch, BATCH),
                              folder=str(links))
    with _LOCK:
        _PENDING[submission_id] = Early(future, tuple(m["id"] for m in models), links)
    return len(files)


def take(submission_id: int, model_id: int) -> dict[str, dict]:
    """The early scores of ``submission_id`` by ``model_id``, by file hash: all of them, or,
    when the scoring process is still at work, those it has finished (it is told to stop) — the
    watch scores the rest itself, as it does everything when this is {} (none, or the scoring
    failed)."""
    with _LOCK:
        early = _PENDING.get(submission_id)
    if early is None or model_id not in early.models:
        return {}
    _stop(early)  # the rest is the watch's, at full speed
    try:
        scores = early.future.result(timeout=WAIT_S).get(model_id, {})
    except Exception as exc:  # noqa: BLE001 - a head start lost, never a failed watch
        print(f"early scoring of submission {submission_id} failed ({type(exc).__name__}): "
              "the watch scores its radiographs itself")
        scores = {}
    shutil.rmtree(early.folder, ignore_errors=True)  # (a STOP that came as it ended)
    with _LOCK:  # each model's scores are taken once
        early.models = tuple(m for m in early.models if m != model_id)
        if not early.models:
            _PENDING.pop(submission_id, None)
    return scores


def discard(submission_id: int) -> None:
    """Forget a submission's early scores (its ingest failed, or its watch did not take them)."""
    with _LOCK:
        early = _PENDING.pop(submission_id, None)
    if early is not None:
        _stop(early)  # a job already handed to the process cannot be cancelled: it stops
        early.future.cancel()
        early.future.add_done_callback(
            lambda _: shutil.rmtree(early.folder, ignore_errors=True))


def _stop(early: Early) -> None:
    """Tell the scoring process to stop scoring ``early``'s files (it returns what it has)."""
    if not early.future.done():
        try:
            (early.folder / STOP).touch()
        except OSError:  # it has just finished, and removed its folder
            pass


def _scorer():
    global _SCORER
    with _LOCK:  # a process that died (out of memory, killed) is replaced on the next use
        if _SCORER is None or getattr(_SCORER, "_broken", False):
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, as the ingest pool (bonebase.ingest.runner): the flow process runs threads.
            _SCORER = ProcessPoolExecutor(max_workers=1,
                                          mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_one_thread)
            atexit.register(_SCORER.shutdown, cancel_futures=True)
        return _SCORER


def _one_thread() -> None:
    """The scoring process's torch runs on one core, at :data:`NICE`: the other is validating
    (or, while it loads, de-identifying), and two threads fought over a loaded 2-core machine
    for no gain (benchmarks/ingest_watch.py)."""
    import torch

    torch.set_num_threads(1)
    os.nice(NICE)


# What runs in the scoring process.

def load_models(models: list[dict]) -> list[int]:
    """Load each model (and build its scoring network) into this process's cache."""
    from bonebase.monitor import watch

    return [watch.load_file(Path(m["path"]), m).id for m in models]


def score_files(files: list[tuple[str, str]], models: list[dict], *, batch: int,
                folder: str) -> dict[int, dict[str, dict]]:
    """Each model's early scores of ``files`` ((path, sha256)): by model id, by hash, the image's
    features and P(class 1). A file whose bytes do not hash as given, or that cannot be read, is
    left out (the watch reads the stored copy and records its error). When ``folder`` holds the
    file STOP, what is scored so far is returned (the watch scores the rest). ``folder`` is
    removed."""
    import numpy as np

    from bonebase.monitor import watch
    from bonebase.monitor.scoring import read_image

    try:
        loaded = [watch.load_file(Path(m["path"]), m) for m in models]
        out: dict[int, dict[str, dict]] = {m.id: {} for m in loaded}
        stop = Path(folder) / STOP
        for start in range(0, len(files), max(1, batch)):
            read = []
            for path, sha in files[start:start + batch]:
                if stop.exists():
                    return out
                try:
                    data = Path(path).read_bytes()
                    if hashlib.sha256(data).hexdigest() != sha:
                        continue  # not the bytes the store holds: the watch reads those
                    read.append((sha, *read_image(data)))
                except Exception:  # noqa: BLE001 - the watch reads the stored copy, says why
                    continue
                finally:
                    Path(path).unlink(missing_ok=True)
            for model in loaded:
                if not read:
                    break
                inputs = np.stack([model.predictor.preprocess(image) for _, _, image in read])
                for (sha, features, _), p in zip(read, model.probabilities(inputs), strict=True):
                    out[model.id][sha] = {"features": features, "probability": float(p)}
        return out
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["ENABLED", "WAIT_S", "discard", "hook", "load_models", "prepare", "score_files", "start",
           "take"]
