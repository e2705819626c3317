"""The champion watch's cost beside ingest (#23): ``python benchmarks/ingest.py --watch``.

A model is trained (params.yaml's export size, architecture and image size; one epoch, its
weights do not matter for speed) on the first site and deployed, its reference scored, then each
other site's submission is ingested once and watched in three arms, interleaved (each arm first
in turn; the previous arm's scores are deleted before each, so all score the same radiographs):

- ``process``: the watch-champion flow in process, as the hook runs it with ``monitor.defer:
  false``, as it now scores (network optimized for the CPU, next batch read during the forward);
- ``fused``: the same with session 8's scoring (BatchNorm folded only, batch after batch): the
  reference the speed-up is measured against;
- ``deferred``: the hook's background process (``defer: true``): what the submission waits for
  and when its scores are stored.

Each is compared with that submission's ingest time, in wall-clock seconds and in CPU seconds
(this process, its live children: the ingest's worker pool and Prefect's server; the deferred
child's own CPU once it has exited). Goal: the in-process watch adds <= 20%.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from statistics import median

ARMS = ("process", "fused", "deferred")


def _cpu() -> float:
    """CPU seconds of this process and its live children (worker pool, Prefect server)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:  # a child that ended meanwhile
            pass
    return total


def _reaped_cpu() -> float:
    """CPU seconds of the children that have ended and been waited for (the deferred watch)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _champion(conn, store, home: Path) -> int:
    """A deployed model of params.yaml's shape, trained one epoch on what is ingested."""
    import pandas as pd
    import yaml

    from bonebase.dataset.export import export
    from bonebase.dataset.split import assign_splits, write_assignments
    from bonebase.db import models as q
    from bonebase.model.checkpoint import save_checkpoint
    from bonebase.model.data import load_frame
    from bonebase.model.train import train
    from bonebase.release.registry import register

    params = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    data, task = home / "data", params["task"]
    export(conn, store, data, size=params["export"]["size"], bits=params["export"]["bits"],
           modalities=params["export"]["modalities"])
    labels = pd.read_csv(data / "labels.csv", dtype=str)
    write_assignments(assign_splits(labels, None, seed=1, val_fraction=0.25, test_fraction=0.2),
                      data / "split.csv")
    ckpt = train(frame=load_frame(data, task=task), data_dir=data, task=task,
                 arch=params["train"]["arch"], image_size=params["train"]["image_size"],
                 epochs=1, batch_size=16, patience=1, num_workers=0, seed=1, amp=False)
    row = register(conn, store, checkpoint=save_checkpoint(ckpt, data / "model.pt"),
                   metrics={"task": task}, by="benchmark")
    q.set_status(conn, row["id"], status="deployed")
    conn.commit()
    print(f"champion: {params['train']['arch']} at {params['train']['image_size']} px "
          f"(export {params['export']['size']} px), model {row['id']}")
    return row["id"]


def _watch_in_process(how: str, sid: int) -> int:
    """The flow in process with the scoring of arm ``how``; radiographs scored."""
    from bonebase.flow_run import in_process
    from bonebase.monitor import watch
    from flows.monitor import watch_flow

    saved = watch.SCORING, watch.PIPELINE
    watch.SCORING, watch.PIPELINE = ("optimized", True) if how == "process" else ("fused", False)
    try:
        with in_process():  # as the ingest hook runs it (flows.monitor.watch_submission)
            return watch_flow(submission_id=sid)["scored"]["watch"]
    finally:
        watch.SCORING, watch.PIPELINE = saved


def bench_watch(data: Path, home: Path, runner: dict) -> list[dict]:
    """One row per measured submission: site, radiographs, ingest wall/CPU s, and per arm its
    wall/CPU s (deferred: the hook's wait, then until its scores are stored), and the watch
    network's bare forward per radiograph."""
    from benchmarks.ingest import _database, _register_sites
    from bonebase.config import Settings, get_settings
    from bonebase.db.engine import connect
    from bonebase.storage import open_store
    from flows.ingest import ingest_submission
    from flows.monitor import start_deferred, watch_flow

    url, drop = _database(home)
    saved = dict(os.environ)
    try:
        from bonebase.db.migrate import upgrade

        upgrade(url)
        settings = Settings(home=home, database_url=url, secret="b" * 40, env="test", **runner)
        settings.ensure_home()
        for name, value in settings.environ().items():  # the watch's tasks read the environment
            os.environ[name] = value
        get_settings.cache_clear()
        sites = _register_sites(url, data)
        ingest_submission(sites[0]["code"], str(data / sites[0]["code"] / "submission"),
                          settings=settings, watch=False)
        store = open_store(settings.object_store_url)
        with connect(url) as conn:
            model_id = _champion(conn, store, home)
        watch_flow(sites=[])  # warm-up: the reference (the first site) scored, flow imports
        for how in ARMS[:2]:  # and each arm's network built once, as a long-lived process does
            _watch_in_process(how, None)
        out = []
        for i, s in enumerate(sites[1:]):
            c, t = _cpu(), time.perf_counter()
            receipt = ingest_submission(s["code"], str(data / s["code"] / "submission"),
                                        settings=settings, watch=False)
            row = {"site": s["code"], "ingest": time.perf_counter() - t, "ingest_cpu": _cpu() - c}
            sid = receipt["submission"]
            for how in ARMS[i % 3:] + ARMS[:i % 3]:  # each arm first in turn
                _unscore(url, sid)
                c, reaped, t = _cpu(), _reaped_cpu(), time.perf_counter()
                if how == "deferred":
                    child = start_deferred(sid)["process"]
                    row["hook"] = time.perf_counter() - t
                    child.wait()
                    row["deferred"] = time.perf_counter() - t
                    row["deferred_cpu"] = _reaped_cpu() - reaped + _cpu() - c
                else:
                    row["n"] = _watch_in_process(how, sid)
                    row[how], row[f"{how}_cpu"] = time.perf_counter() - t, _cpu() - c
            row["forward"] = _bare_forward(store, url, model_id)
            out.append(row)
        return out
    finally:
        os.environ.clear()
        os.environ.update(saved)  # DATABASE_URL names the server again for the next repeat
        get_settings.cache_clear()
        drop()


def _unscore(url: str, submission_id: int | None) -> None:
    """Forget a submission's watch scores, so that the next watch scores it again."""
    from bonebase.db.engine import connect

    with connect(url) as conn:
        conn.execute("DELETE FROM watch_scores WHERE submission_id = %s", (submission_id,))
        conn.commit()


def _bare_forward(store, url: str, model_id: int) -> float:
    """Seconds per radiograph of the network the watch runs, alone (batches of 32, no data):
    the floor of any in-process scoring, measured right after each submission's arms."""
    import numpy as np

    from bonebase.db.engine import connect
    from bonebase.db.models import get_model
    from bonebase.monitor import watch

    with connect(url) as conn:
        model = watch.load(store, get_model(conn, model_id))
    size = model.predictor.checkpoint.image_size
    batch = np.zeros((32, 1, size, size), np.float32)
    model.probabilities(batch)
    t = time.perf_counter()
    for _ in range(2):
        model.probabilities(batch)
    return (time.perf_counter() - t) / 64


def report(rows: list[dict]) -> None:
    """Per submission, then medians and ranges of each arm's share of ingest time."""
    import torch

    def spread(values: list[float]) -> str:
        return f"median of {len(values)}; range {min(values):.0%}-{max(values):.0%}"

    print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f} at the end")
    for r in rows:
        print(f"{r['site']:<6} {r['n']:4d} radiographs  ingest {r['ingest']:6.2f} s "
              f"(CPU {r['ingest_cpu']:6.2f})  watch {r['process']:6.2f} s (CPU "
              f"{r['process_cpu']:6.2f}, +{r['process'] / r['ingest']:.0%})  session 8's "
              f"{r['fused']:6.2f} s (CPU {r['fused_cpu']:6.2f})  deferred: hook "
              f"{r['hook'] * 1000:4.0f} ms, scored {r['deferred']:6.2f} s later")
    for arm, label in (("process", "the watch in process"),
                       ("fused", "session 8's scoring (BatchNorm folded only)")):
        wall = [r[arm] / r["ingest"] for r in rows]
        cpu = [r[f"{arm}_cpu"] / r["ingest_cpu"] for r in rows]
        print(f"{label} adds {median(wall):.0%} to a submission's ingest time ({spread(wall)});"
              f" in CPU seconds {median(cpu):.0%} ({spread(cpu)}); goal <= 20%")
    speed = [r["fused"] / r["process"] for r in rows]
    print(f"now / session 8: {median(speed):.2f}x faster (range {min(speed):.2f}-"
          f"{max(speed):.2f}x)")
    hooks = [r["hook"] / r["ingest"] for r in rows]
    later = [r["deferred"] / r["ingest"] for r in rows]
    print(f"deferred (monitor.defer: true), the submission waits {median(hooks):.1%} more "
          f"({spread(hooks)}); its scores are stored {median(later):.0%} of its ingest time "
          f"after ({spread(later)}), in a background process; its CPU "
          f"{median(r['deferred_cpu'] / r['ingest_cpu'] for r in rows):.0%} of ingest's")
    per = [r["process"] / r["n"] for r in rows if r["n"]]
    bare = [r["forward"] for r in rows if r["n"]]
    if per:
        net = [b / p for b, p in zip(bare, per, strict=True)]
        print(f"watch: {median(per) * 1000:.0f} ms per radiograph (median); the bare network "
              f"forward alone {median(bare) * 1000:.0f} ms, {median(net):.0%} of it "
              f"(range {min(net):.0%}-{max(net):.0%})")
        # The floor of any in-process scoring: the network alone on the submission's radiographs,
        # against its ingest time (no reading, no Prefect, no database).
        floor = [r["forward"] * r["n"] / r["ingest"] for r in rows if r["n"]]
        print(f"the bare network alone on each submission's radiographs is {median(floor):.0%} "
              f"of its ingest time ({spread(floor)}): in-process scoring cannot add less here")
