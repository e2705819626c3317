"""The champion watch's cost beside ingest (#23): ``python benchmarks/ingest.py --watch``.

A model is trained (params.yaml's export size, architecture and image size; one epoch, its
weights do not matter for speed) on the first site and deployed in a *watched* home; a twin home
(its own database and store, no model) ingests the same sites. Each other site's submission is
then ingested in both, the order alternating (one starts first, then the other):

- ``ingest``: the twin's ingest, nothing watched: the reference;
- ``watched``: the watched home's ``ingest_submission(watch=True)``, as `bonebase submit` runs
  it with ``monitor.defer: false``: its radiographs scored early (bonebase.monitor.early, while
  the submission is validated and stored), then the watch-champion flow (stores the scores,
  checks the site). Goal: it takes at most 20% longer than ``ingest``.

and then, on the watched home's submission (its scores deleted before each):

- ``late``: the watch-champion flow alone, scoring the stored radiographs itself (how the watch
  ran before early scoring, and what `bonebase monitor run` does);
- ``deferred``: the hook's background process (``defer: true``): what the submission waits for
  and when its scores are stored.

Each is compared with the submission's ``ingest`` time, in wall-clock seconds and in CPU seconds
(this process and its live children: the ingest's worker pool, the early scorer and Prefect's
server; the deferred child's own CPU once it has exited).
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from statistics import median


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


def _watch_in_process(sid: int | None) -> int:
    """The flow in process, as the hook runs it; radiographs scored."""
    from bonebase.flow_run import in_process
    from flows.monitor import watch_flow

    with in_process():  # as the ingest hook runs it (flows.monitor.watch_submission)
        return watch_flow(submission_id=sid)["scored"]["watch"]


def _timed_hook(times: list[float]):
    """flows.monitor.watch_after_ingest timed (the watch after a watched ingest), and undone."""
    import flows.monitor as monitor

    real = monitor.watch_after_ingest

    def hook(receipt, **kwargs):
        t = time.perf_counter()
        try:
            return real(receipt, **kwargs)
        finally:
            times.append(time.perf_counter() - t)

    monitor.watch_after_ingest = hook
    return lambda: setattr(monitor, "watch_after_ingest", real)


def _timed_take(waits: list[tuple[float, int]]):
    """bonebase.monitor.early.take timed (how long the watch waited for the early scores, and
    how many it got)."""
    from bonebase.monitor import early

    real = early.take

    def take(submission_id, model_id):
        t = time.perf_counter()
        scores = real(submission_id, model_id)
        waits.append((time.perf_counter() - t, len(scores)))
        return scores

    early.take = take
    return lambda: setattr(early, "take", real)


def _home(root: Path, name: str, runner: dict):
    from benchmarks.ingest import _database
    from bonebase.config import Settings
    from bonebase.db.migrate import upgrade

    url, drop = _database(root / name)
    upgrade(url)
    settings = Settings(home=root / name, database_url=url, secret="b" * 40, env="test",
                        **runner)
    settings.ensure_home()
    return settings, drop


def bench_watch(data: Path, home: Path, runner: dict) -> list[dict]:
    """One row per measured submission: site, radiographs, the twin's ingest wall/CPU s, the
    watched ingest's, the watch's part of it, and the late and deferred arms' (deferred: the
    hook's wait, then until its scores are stored), and the watch network's bare forward per
    radiograph."""
    from benchmarks.ingest import _register_sites
    from bonebase.config import get_settings
    from bonebase.db.engine import connect
    from bonebase.monitor import early
    from bonebase.storage import open_store
    from flows.ingest import ingest_submission
    from flows.monitor import start_deferred, watch_flow

    saved = dict(os.environ)
    settings, drop = _home(home, "watched", runner)
    twin, drop_twin = _home(home, "twin", runner)
    url = settings.database_url
    early.ENABLED = True  # whatever params.yaml says: the watched arm scores early
    hook_times: list[float] = []
    waits: list[tuple[float, int]] = []
    undo = _timed_hook(hook_times), _timed_take(waits)
    try:
        for name, value in settings.environ().items():  # the watch's tasks read the environment
            os.environ[name] = value
        get_settings.cache_clear()
        sites = _register_sites(url, data)
        _register_sites(twin.database_url, data)
        for s in (settings, twin):
            ingest_submission(sites[0]["code"], str(data / sites[0]["code"] / "submission"),
                              settings=s, watch=False)
        store = open_store(settings.object_store_url)
        with connect(url) as conn:
            model_id = _champion(conn, store, home / "watched")
            # As a long-lived process has them: the early scorer's model loaded, ...
            models = early.prepare(conn, store, cache=settings.home / "cache" / "models")
        early._scorer().submit(early.load_models, models).result()
        watch_flow(sites=[])  # ... the reference (the first site) scored, the flow imported
        _watch_in_process(None)  # and the watch's network built once
        out = []
        for i, s in enumerate(sites[1:]):
            folder = str(data / s["code"] / "submission")
            row = {"site": s["code"]}
            for arm in ("ingest", "watched") if i % 2 == 0 else ("watched", "ingest"):
                c, t = _cpu(), time.perf_counter()
                receipt = ingest_submission(s["code"], folder, watch=arm == "watched",
                                            settings=settings if arm == "watched" else twin)
                row[arm], row[f"{arm}_cpu"] = time.perf_counter() - t, _cpu() - c
                row[f"{arm}_laps"] = receipt.get("timings_s") or {}
                if arm == "watched":
                    sid, row["hook"] = receipt["submission"], hook_times[-1]
                    row["wait"], row["early"] = waits[-1]
                    row["n"] = _scored(url, sid)
            for arm in ("late", "deferred") if i % 2 == 0 else ("deferred", "late"):
                _unscore(url, sid)
                c, reaped, t = _cpu(), _reaped_cpu(), time.perf_counter()
                if arm == "deferred":
                    child = start_deferred(sid)["process"]
                    row["deferred_hook"] = time.perf_counter() - t
                    child.wait()
                    row["deferred"] = time.perf_counter() - t
                    row["deferred_cpu"] = _reaped_cpu() - reaped + _cpu() - c
                else:
                    assert _watch_in_process(sid) == row["n"]
                    row["late"], row["late_cpu"] = time.perf_counter() - t, _cpu() - c
            row["forward"] = _bare_forward(store, url, model_id)
            out.append(row)
        return out
    finally:
        early.ENABLED = None
        for step in undo:
            step()
        os.environ.clear()
        os.environ.update(saved)  # DATABASE_URL names the server again for the next repeat
        get_settings.cache_clear()
        drop()
        drop_twin()


def _scored(url: str, submission_id: int) -> int:
    """Radiographs of a submission the watch has scored."""
    from bonebase.db.engine import connect

    with connect(url) as conn:
        return conn.execute("SELECT count(*) AS n FROM watch_scores WHERE submission_id = %s",
                            (submission_id,)).fetchone()["n"]


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

    def share(arm: str, key: str = "") -> tuple[list[float], list[float]]:
        wall = [r[arm] / r["ingest"] - (1 if arm == "watched" else 0) for r in rows]
        cpu = [r[f"{arm}_cpu"] / r["ingest_cpu"] - (1 if arm == "watched" else 0)
               for r in rows]
        return wall, cpu

    print(f"torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f} at the end")
    for r in rows:
        print(f"{r['site']:<6} {r['n']:4d} radiographs  ingest {r['ingest']:6.2f} s (CPU "
              f"{r['ingest_cpu']:6.2f})  watched ingest {r['watched']:6.2f} s (CPU "
              f"{r['watched_cpu']:6.2f}, +{r['watched'] / r['ingest'] - 1:.0%}; its watch "
              f"{r['hook']:5.2f} s, {r['early']} scored early, waiting {r['wait']:4.2f} s)"
              f"  late watch {r['late']:5.2f} s  deferred: hook "
              f"{r['deferred_hook'] * 1000:4.0f} ms, scored {r['deferred']:6.2f} s later")
    wall, cpu = share("watched")
    print(f"a watched ingest (early scoring, then the watch) takes {median(wall):.0%} longer than "
          f"the same submission's ingest ({spread(wall)}); in CPU seconds {median(cpu):.0%} more "
          f"({spread(cpu)}); goal <= 20%")
    stages = [k for k in rows[0]["ingest_laps"] if k in rows[0]["watched_laps"]]
    print("  the ingest flow's stages (median s), alone / watched: " + ", ".join(
        f"{k} {median(r['ingest_laps'][k] for r in rows):.2f} / "
        f"{median(r['watched_laps'][k] for r in rows):.2f}" for k in stages))
    hook = [r["hook"] / r["ingest"] for r in rows]
    print(f"  of which the watch flow after ingest (storing early scores, checking the site): "
          f"{median(hook):.0%} ({spread(hook)})")
    wall, cpu = share("late")
    print(f"the watch scoring after ingest by itself (no early scores) adds {median(wall):.0%} "
          f"({spread(wall)}); in CPU seconds {median(cpu):.0%} ({spread(cpu)})")
    hooks = [r["deferred_hook"] / r["ingest"] for r in rows]
    later = [r["deferred"] / r["ingest"] for r in rows]
    print(f"deferred (monitor.defer: true), the submission waits {median(hooks):.1%} more "
          f"({spread(hooks)}); its scores are stored {median(later):.0%} of its ingest time "
          f"after ({spread(later)}), in a background process; its CPU "
          f"{median(r['deferred_cpu'] / r['ingest_cpu'] for r in rows):.0%} of ingest's")
    per = [r["late"] / r["n"] for r in rows if r["n"]]
    bare = [r["forward"] for r in rows if r["n"]]
    if per:
        net = [b / p for b, p in zip(bare, per, strict=True)]
        print(f"late watch: {median(per) * 1000:.0f} ms per radiograph (median); the bare "
              f"network forward alone {median(bare) * 1000:.0f} ms, {median(net):.0%} of it "
              f"(range {min(net):.0%}-{max(net):.0%})")
        floor = [r["forward"] * r["n"] / r["ingest"] for r in rows if r["n"]]
        print(f"the bare network alone on each submission's radiographs is {median(floor):.0%} "
              f"of its ingest time ({spread(floor)}): what scoring after ingest cannot go below")
