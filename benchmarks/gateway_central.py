"""The consortium's side of benchmarks/gateway.py: central ingest of the same studies as one
folder, sent one by one through a running gateway (with the consortium polling at the same
time, as it does in production, so the gateway's receipt-clocked batches form as they would),
and, for comparison, made into one submission each (no batching)."""

from __future__ import annotations

import csv
import functools
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchmarks.gateway import SECRET, SITE, _port, _send, _wait_port

STUDY_TIMEOUT_S = 1  # the live gateway's --study-timeout
# Issue #18's latency goal: last instance -> its cases visible centrally within the study
# timeout + the central ingest of its batch + this many seconds.
LATENCY_SLACK_S = 10


def _write_rows(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _gateway_batches(rows, files, work: Path, *, per_batch: int) -> Path:
    """A gateway home holding the studies, de-identified into batches of ``per_batch``,
    delivered to a local delivery folder (returned)."""
    from bonebase.gateway import deliver, studies
    from bonebase.gateway.home import GatewayHome
    from bonebase.gateway.spool import Spool
    from bonebase.storage import open_store

    spool = Spool(GatewayHome(work / "gateway"))
    _write_rows(spool.home.clinical / "c.csv", rows)
    for row in rows:
        for f in files[row["case_id"]]:
            tmp = spool.home.incoming / "in.dcm"
            shutil.copy(f, tmp)
            spool.store(tmp)
            tmp.unlink()
    spool.flush()
    while studies.batch_due(spool, site=SITE, secret=SECRET.encode(), uid_root="2.25",
                            timeout=3600, max_studies=per_batch):
        pass
    delivery = work / "delivery"
    store = open_store(str(delivery))
    deliver.deliver_due(spool, store, site=SITE)
    return delivery


def _one_by_one(rows, files, work: Path, ingest, *, serve_args: list[str],
                poll_every: float) -> dict:
    """A running `gateway serve` (study timeout 1 s, ``serve_args``) receives each study by its
    own storescu association, one after the other as a PACS forwards them, while the
    consortium polls the delivery folder (this thread; ``poll_every`` seconds between polls
    as `gateway ingest-deliveries --every`, 0: at once again) and ingests each ready batch.
    Returns the seconds the consortium spent ingesting, the batches' sizes and the times from
    the first instance sent and from the last one to every case ingested."""
    from bonebase.gateway import central
    from bonebase.gateway.home import GatewayHome
    from bonebase.storage import open_store

    delivery = work / "delivery"
    env = {**os.environ, "BONEBASE_HOME": str(work), "BONEBASE_SECRET": SECRET}
    subprocess.run([sys.executable, "-m", "bonebase.gateway.cli", "allow", "PACS1"], env=env,
                   check=True, capture_output=True)
    _write_rows(GatewayHome.under(work).clinical / "c.csv", rows)
    port = _port()
    gw = subprocess.Popen([sys.executable, "-m", "bonebase.gateway.cli", "serve", "--site", SITE,
                           "--port", str(port), "--host", "127.0.0.1", "--study-timeout", str(STUDY_TIMEOUT_S),
                           "--deliver-to", str(delivery), *serve_args],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sent: dict[str, float] = {}

    def send_all() -> None:
        sent["first"] = time.perf_counter()
        for row in rows:
            _send(port, "BONEBASE", files[row["case_id"]])
        sent["last"] = time.perf_counter()

    busy, sizes, seconds, started = 0.0, [], [], []

    def timed(site: str, source: str) -> dict:
        nonlocal busy
        t = time.perf_counter()
        started.append(t)
        try:
            return ingest(site, source)
        finally:
            seconds.append(time.perf_counter() - t)
            busy += seconds[-1]

    try:
        _wait_port(port, gw)
        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        store = open_store(str(delivery))
        deadline = time.monotonic() + 3600
        while sum(sizes) < len(rows):
            if time.monotonic() > deadline or (not sender.is_alive() and "last" not in sent):
                raise SystemExit(f"not every study was ingested ({sum(sizes)} of {len(rows)})")
            receipts = central.poll(store, str(delivery), timed, sites=[SITE])
            _check(receipts, allow_empty=True)
            sizes += [r["counts"]["cases_accepted"] for r in receipts]
            if poll_every or not receipts:
                time.sleep(poll_every or 0.2)
        done = time.perf_counter()
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait()
    return {"busy_s": busy, "batches": sizes, "seconds": seconds, "wall_s": done - sent["first"],
            "send_s": sent["last"] - sent["first"], "after_last_s": done - sent["last"],
            # the batch holding the last study is the last one ingested
            "last_batch_s": seconds[-1], "last_batch_wait_s": started[-1] - sent["last"],
            # a batch's receipt written -> the next batch's ingest begins: the gateway reads the
            # receipt, cuts and uploads the batch, the consortium polls (one thread ingests)
            "handoff_s": [b - (a + s) for a, s, b in zip(started, seconds, started[1:],
                                                         strict=False)]}


def bench_central(rows, files, work: Path, *, unbatched: bool = True,
                  variants: tuple[str, ...] = ("",), polls: tuple[float, ...] = (0.0,)) -> dict:
    """Seconds of central ingest as one folder (and one study per submission); the studies
    sent one by one once per gateway variant (``serve`` options, "": its defaults) and
    consortium poll interval."""
    from benchmarks.ingest import _database
    from bonebase.config import Settings
    from bonebase.db.engine import connect
    from bonebase.db.migrate import upgrade
    from bonebase.db.sites import add_site
    from bonebase.gateway import central
    from bonebase.storage import open_store
    from flows.ingest import ingest_submission

    def run(name: str, body) -> float:
        """Seconds ``body(settings)`` takes on a fresh database; or what it returns."""
        home = work / f"central-{name}"
        url, drop = _database(home)
        try:
            upgrade(url)
            settings = Settings(home=home / "central", database_url=url, secret=SECRET,
                                env="test")
            settings.ensure_home()
            with connect(url) as conn:
                add_site(conn, code=SITE, name="Hospital")
                conn.commit()
            t = time.perf_counter()
            out = body(settings)
            return out if out is not None else time.perf_counter() - t
        finally:
            drop()

    def ingest_with(settings):
        return lambda site, src: ingest_submission(site, src, settings=settings)

    def as_folder(folder: Path, some: list[dict]):
        folder.mkdir()
        _write_rows(folder / "manifest.csv", some)
        for row in some:
            (folder / row["case_id"]).mkdir()
            for i, f in enumerate(files[row["case_id"]]):
                shutil.copy(f, folder / row["case_id"] / f"{i}.dcm")
        return lambda settings: _check([ingest_submission(SITE, str(folder),
                                                          settings=settings)])

    def _live(settings, *, run: int, args: str, every: float) -> dict:
        return _one_by_one(rows, files, work / f"gw-live-{run}", ingest_with(settings),
                           serve_args=args.split(), poll_every=every)

    def one_per_batch(settings):
        delivery = _gateway_batches(rows, files, work / "gw-1", per_batch=1)
        _check(central.poll(open_store(str(delivery)), str(delivery), ingest_with(settings),
                            sites=[SITE]))

    # Prefect's temporary server starts, imports load, the process pool starts.
    run("warmup", as_folder(work / "warmup-submission", rows[:20]))
    return {
        "one_folder_s": run("folder", as_folder(work / "one-folder-submission", rows)),
        "one_per_batch_s": run("one-per-batch", one_per_batch) if unbatched else None,
        "one_by_one": {(args, every): run(f"one-by-one-{i}", functools.partial(
            _live, run=i, args=args, every=every))
            for i, (args, every) in enumerate(itertools.product(variants, polls))},
    }


def _check(receipts: list[dict], *, allow_empty: bool = False) -> None:
    """Every delivery ingested, every case accepted: a refused batch is no speed."""
    bad = [r for r in receipts if r.get("status") != "done" or r["counts"].get("quarantined")]
    if bad or not (receipts or allow_empty):
        raise SystemExit(f"ingest did not accept everything: {json.dumps(bad)[:2000]}")


def print_central(c: dict, n: int) -> None:
    print(f"central ingest one folder{'':20s}: {n / c['one_folder_s']:6.1f} files/s "
          f"({c['one_folder_s']:.1f} s)")
    if c["one_per_batch_s"] is not None:
        print(f"central ingest one study per submission{'':6s}: "
              f"{n / c['one_per_batch_s']:6.1f} files/s ({c['one_per_batch_s']:.1f} s); "
              f"/ one folder: {c['one_folder_s'] / c['one_per_batch_s']:.2f}")
    for (args, every), live in c["one_by_one"].items():
        sizes = sorted(live["batches"])
        when = f"every {every:g} s" if every else "again at once"
        print(f"studies sent one by one through the gateway ({args or 'its defaults'}), the "
              f"consortium polling {when}: "
              f"{len(sizes)} batches of {sizes[0]}-{sizes[-1]} studies (median "
              f"{sizes[len(sizes) // 2]}); sent in {live['send_s']:.1f} s "
              f"({sum(sizes) / live['send_s']:.2f} studies/s)")
        print("  each batch (studies, seconds of ingest): " + ", ".join(
            f"{b} {s:.1f}" for b, s in zip(live["batches"], live["seconds"], strict=False)))
        busy = live["busy_s"]
        print(f"  central ingest of them: {n / busy:6.1f} files/s ({busy:.1f} s of ingest); "
              f"/ one folder: {c['one_folder_s'] / busy:.2f} (goal >= 0.5)")
        print(f"  first instance sent -> every case ingested: {live['wall_s']:.1f} s")
        print(latency_line(live))
        hand = sorted(live["handoff_s"]) or [float("nan")]
        print(f"  a batch's receipt written -> the next batch's ingest began: last "
              f"{live['handoff_s'][-1] if live['handoff_s'] else float('nan'):.1f} s, median "
              f"{hand[len(hand) // 2]:.1f} s (range {hand[0]:.1f}-{hand[-1]:.1f} s; receipt read, "
              "batch cut and uploaded, polled)")


def latency_line(live: dict) -> str:
    """The last instance -> every case ingested, against issue #18's goal (study timeout +
    the central ingest of the last batch + 10 s)."""
    goal = STUDY_TIMEOUT_S + live["last_batch_s"] + LATENCY_SLACK_S
    after = live["after_last_s"]
    return (f"  last instance sent -> every case ingested: {after:.1f} s; goal <= study timeout "
            f"{STUDY_TIMEOUT_S} s + the last batch's central ingest {live['last_batch_s']:.1f} s"
            f" + {LATENCY_SLACK_S} s = {goal:.1f} s: {'met' if after <= goal else 'NOT met'} "
            f"(the last batch's ingest began {live['last_batch_wait_s']:.1f} s after the last "
            "instance: study timeout, waiting for the previous batch's receipt, "
            "de-identification, upload and poll)")
