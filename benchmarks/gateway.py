"""Hospital gateway: receive speed against DCMTK's storescp, and central ingest of gateway
deliveries one study at a time, batched, and as one folder.

    python benchmarks/gateway.py [--cases 40 --seed 3] [--rounds 3] [--associations 1 4]
                                 [--receivers storescp,gateway,...] [--skip-receive]
                                 [--skip-central] [--skip-unbatched]
                                 [--gateway-args='--receipt-wait 0 --batch-wait 5' ...]

Generates a synthetic hospital (clean studies only: radiographs of 1-4 files, some CT/MR), then
  (a) sends every file with DCMTK's storescu over loopback (one association, or several at once
      with whole studies each) to each receiver in turn, in interleaved rounds: DCMTK's own
      storescp (the reference), storescp syncing each file (DCMTK's durable equivalent), a bare
      pynetdicom SCP with stock and with the gateway's event-driven reactors (the ceiling of a
      pynetdicom receiver), `gateway serve --commit each` (file and folder synced per
      instance), `--commit journal` and `gateway serve` (the group commit by syncfs); prints
      instances/s and MB/s (median and range) and the ratios to storescp within each round
      (goal for the gateway: >= 0.5);
  (b) unless --skip-central (benchmarks/gateway_central.py): ingests centrally (a fresh
      database each) the original files as one folder submission; the studies sent one by one
      (an association each, as a PACS forwards them) through a running `gateway serve` (study
      timeout 1 s, its defaults otherwise: receipt-clocked batches) delivering to a local
      folder while the consortium polls it and ingests each batch as it comes
      (bonebase.gateway.central.poll, the ingest flow per batch); and, unless
      --skip-unbatched, the same studies made into one submission each. Prints files/s of
      each (seconds spent in central ingest) and the ratios to one folder (goal for one by one
      through the gateway: >= 0.5), the batches' sizes, and the time from the last instance
      sent to every case ingested against the goal (study timeout + the last batch's central
      ingest + 10 s).
Uses DATABASE_URL when set (fresh databases are created and dropped), else the embedded server.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SITE = "HX"
SECRET = "gateway-bench-secret-0123456789abcdef"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise SystemExit(f"receiver exited ({proc.returncode})")
        time.sleep(0.05)
    raise SystemExit("receiver did not listen")


def clean_studies(root: Path) -> tuple[list[dict], dict[str, list[Path]]]:
    """Manifest rows and files of the studies no injected fault touches."""
    site = root / SITE
    faults = json.loads((site / "faults.json").read_text())
    bad_cases = {f["case_id"] for f in faults if f.get("case_id")}
    bad_files = {f["file"] for f in faults if f.get("file")}
    sub = site / "submission"
    with open(sub / "manifest.csv", encoding="utf-8-sig", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["case_id"] not in bad_cases]
    kept, files = [], {}
    for row in rows:
        folders = list(sub.glob(f"{row['patient_id']}/*_{row['accession_number']}"))
        if len(folders) != 1:
            continue
        found = sorted(folders[0].rglob("*.dcm"))
        if found and not any(p.relative_to(sub).as_posix() in bad_files for p in found):
            kept.append(row)
            files[row["case_id"]] = found
    return kept, files


# DCMTK leaves Nagle's algorithm on unless TCP_NODELAY=1 is in its environment: each small
# C-STORE response then waits for a delayed ACK (~15 instances/s on loopback instead of
# hundreds). The baseline is DCMTK at its best, so both DCMTK programs run with it.
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def _send(port: int, aec: str, files: list[Path]) -> float:
    t = time.perf_counter()
    done = subprocess.run(["storescu", "-aet", "PACS1", "-aec", aec, "127.0.0.1", str(port),
                           *map(str, files)], capture_output=True, text=True, env=DCMTK_ENV)
    elapsed = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"storescu failed: {done.stderr[-500:]}")
    return elapsed


def _send_parallel(port: int, aec: str, groups: list[list[Path]]) -> float:
    """Every group by its own storescu association, all at once; seconds until the last ends."""
    t = time.perf_counter()
    procs = [subprocess.Popen(["storescu", "-aet", "PACS1", "-aec", aec, "127.0.0.1", str(port),
                               *map(str, group)], env=DCMTK_ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for group in groups]
    failed = [p.communicate()[1] for p in procs if p.wait() != 0]
    elapsed = time.perf_counter() - t
    if failed:
        raise SystemExit(f"storescu failed: {failed[0][-500:]}")
    return elapsed


# The receivers of the receive benchmark, run in turn in every round (interleaved).
RECEIVERS = {
    "storescp": "DCMTK storescp, nothing synced (the reference)",
    "storescp+sync": "DCMTK storescp running `sync FILE FOLDER` on each file (it has no fsync"
                     " option: --exec-on-reception --exec-sync)",
    "pynetdicom": "a bare pynetdicom SCP: receives to a temporary file and answers success, "
                  "nothing synced, nothing filed (stock reactors: 1 ms polls)",
    "pynetdicom+event": "the same with the gateway's event-driven reactors and C-STORE in "
                        "bytes (bonebase.gateway.reactor, store_dimse; pynetdicom's logging "
                        "handlers off, as in the gateway): the ceiling of the gateway's receiver",
    "gateway-each": "gateway serve --commit each: file and folder synced per instance "
                    "(as before the journal)",
    "gateway-journal": "gateway serve --commit journal: every group copied into the journal, "
                       "one sync of its write-ahead log",
    "gateway-pydicom": "gateway serve with BONEBASE_GATEWAY_PYDICOM_STORE=1: C-STORE decoded "
                       "and answered through pydicom datasets (pynetdicom's path)",
    "gateway": "gateway serve (--commit auto: syncfs on Linux; C-STORE in bytes)",
}


def _noop_scp(port: int, folder: str, event_driven: bool) -> None:
    """The bare pynetdicom receiver (run as `benchmarks/gateway.py --noop-scp PORT DIR`)."""
    from pynetdicom import AE, _config, evt

    from bonebase.gateway import reactor
    from bonebase.gateway.scp import TRANSFER_SYNTAXES
    from bonebase.gateway.spool import SOP_CLASSES

    _config.STORE_RECV_CHUNKED_DATASET = True
    if event_driven:
        _config.LOG_HANDLER_LEVEL = "none"  # as StorageSCP.start with pynetdicom's log quiet
    tempfile.tempdir = folder
    ae = AE("NOOP")
    ae.maximum_pdu_size = 0
    for uid in SOP_CLASSES:
        ae.add_supported_context(uid, TRANSFER_SYNTAXES)
    handlers = [(evt.EVT_C_STORE, lambda event: 0x0000)]
    if event_driven:
        handlers.append((evt.EVT_CONN_OPEN, lambda event: reactor.make_event_driven(event.assoc)))
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=handlers)


def _start_receiver(kind: str, work: Path) -> tuple[subprocess.Popen, int, str]:
    port = _port()
    out = work / kind
    out.mkdir()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    if kind.startswith("storescp"):
        # -pdu 131072: storescp's largest PDU (the gateway accepts PDUs of any size); --fork:
        # one process per association, so parallel associations are received in parallel.
        sync = ["-xcr", "sync #p/#f #p", "-xs"] if kind == "storescp+sync" else []
        proc = subprocess.Popen(["storescp", "-aet", "STORESCP", "-pdu", "131072", "--fork",
                                 "-od", str(out), *sync, str(port)], env=DCMTK_ENV, **quiet)
        aec = "STORESCP"
    elif kind.startswith("pynetdicom"):
        proc = subprocess.Popen([sys.executable, __file__, "--noop-scp", str(port), str(out),
                                 *(["--event-driven"] if kind.endswith("+event") else [])],
                                **quiet)
        aec = "NOOP"
    else:
        env = {**os.environ, "BONEBASE_HOME": str(out), "BONEBASE_SECRET": SECRET,
               "BONEBASE_GATEWAY_PYDICOM_STORE": "1" if kind == "gateway-pydicom" else "0"}
        subprocess.run([sys.executable, "-m", "bonebase.gateway.cli", "allow", "PACS1"],
                       env=env, check=True, capture_output=True)
        proc = subprocess.Popen([sys.executable, "-m", "bonebase.gateway.cli", "serve", "--site",
                                 SITE, "--port", str(port), "--host", "127.0.0.1",
                                 "--max-associations", "32", "--study-timeout", "3600",
                                 "--commit", {"each": "each", "journal": "journal"}.get(
                                     kind.partition("-")[2], "auto")],
                                env=env, **quiet)
        aec = "BONEBASE"
    _wait_port(port, proc)
    return proc, port, aec


def bench_receive(files: list[Path], work: Path, *, rounds: int, associations: int,
                  kinds: list[str]) -> dict[str, list[float]]:
    """Seconds to receive ``files`` per receiver and round, the receivers interleaved in each
    round (the machine's load changes between rounds, not within a comparison)."""
    by_study: dict[Path, list[Path]] = {}
    for f in files:
        by_study.setdefault(f.parent, []).append(f)
    groups: list[list[Path]] = [[] for _ in range(associations)]
    for i, study in enumerate(by_study.values()):  # whole studies per association
        groups[i % associations].extend(study)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for r in range(rounds):
        for kind in kinds:
            folder = work / f"receive-{r}"
            folder.mkdir(exist_ok=True)
            proc, port, aec = _start_receiver(kind, folder)
            try:
                times[kind].append(_send(port, aec, files) if associations == 1
                                   else _send_parallel(port, aec, groups))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait()
                shutil.rmtree(folder / kind, ignore_errors=True)
    return times


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} ({min(values):.2f}-{max(values):.2f})"


def print_receive(times: dict[str, list[float]], n: int, mb: float, associations: int) -> None:
    rounds = len(next(iter(times.values())))
    print(f"receive over loopback, {associations} association(s), {rounds} interleaved rounds; "
          "median (range):")
    for kind, secs in times.items():
        rate = [n / s for s in secs]
        print(f"  {kind:18s} {_spread(rate)} instances/s  {mb / statistics.median(secs):6.1f} "
              f"MB/s  {RECEIVERS[kind]}")
    base = times.get("storescp")
    for kind in (k for k in times if k != "storescp" and base):
        ratios = [b / s for b, s in zip(base, times[kind], strict=True)]  # same round
        print(f"  ratio {kind} / storescp: {_spread(ratios)}"
              + ("  (goal >= 0.5)" if kind == "gateway" else ""))
    if "storescp+sync" in times and "gateway" in times:
        ratios = [b / s for b, s in zip(times["storescp+sync"], times["gateway"], strict=True)]
        print(f"  ratio gateway / storescp+sync (both durable per instance): {_spread(ratios)}")
    for other in ("gateway-each", "gateway-journal"):
        if other in times and "gateway" in times:
            ratios = [b / s for b, s in zip(times[other], times["gateway"], strict=True)]
            print(f"  ratio gateway / {other}: {_spread(ratios)}")


def bench_spool(files: list[Path], work: Path, *, rounds: int, threads: int) -> dict:
    """Seconds for ``Spool.store`` of ``files`` per commit mode (the durability step alone,
    without DICOM networking), from ``threads`` threads at once, modes interleaved per round."""
    from concurrent.futures import ThreadPoolExecutor

    from bonebase.gateway.home import GatewayHome
    from bonebase.gateway.journal import MODES
    from bonebase.gateway.spool import Spool

    modes = [m for m in MODES if m != "syncfs"]  # auto is syncfs on Linux
    times: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(rounds):
        for mode in modes:
            spool = Spool(GatewayHome(work / f"spool-{mode}-{r}"), commit=mode)
            copies = []
            for i, f in enumerate(files):  # as pynetdicom leaves them: in incoming, not synced
                copies.append(spool.home.incoming / f"{i}.dcm")
                shutil.copyfile(f, copies[-1])
            t = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(spool.store, copies))
            times[mode].append(time.perf_counter() - t)
            spool.checkpoint(restore_all=True)
            shutil.rmtree(spool.home.root)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--skip-central", action="store_true")
    parser.add_argument("--skip-unbatched", action="store_true",
                        help="leave out one study per submission (minutes for many studies)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the receive benchmark")
    parser.add_argument("--associations", type=int, nargs="+", default=[1],
                        help="parallel storescu associations (several values: one table each)")
    parser.add_argument("--receivers", default=",".join(RECEIVERS),
                        help=f"comma-separated, of: {', '.join(RECEIVERS)}")
    parser.add_argument("--skip-receive", action="store_true")
    parser.add_argument("--spool", action="store_true",
                        help="also time Spool.store alone per commit mode (1 and 4 threads)")
    parser.add_argument("--gateway-args", action="append",
                        help="options for the gateway the studies are sent to one by one, e.g. "
                        "'--receipt-wait 0 --batch-wait 5' (batches by time, not by receipt); "
                        "again for another run ('' for its defaults); default: its defaults")
    parser.add_argument("--poll-every", type=float, nargs="+", default=[0.0],
                        help="seconds the consortium waits between polls of the deliveries "
                        "(as `gateway ingest-deliveries --every`; 0: polls again at once); "
                        "several values: one run of the studies sent one by one each")
    parser.add_argument("--noop-scp", nargs=2, metavar=("PORT", "DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--event-driven", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.noop_scp:
        _noop_scp(int(args.noop_scp[0]), args.noop_scp[1], args.event_driven)
        return
    kinds = args.receivers.split(",")
    if unknown := set(kinds) - set(RECEIVERS):
        raise SystemExit(f"unknown receivers {sorted(unknown)}: choose from {list(RECEIVERS)}")
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install dcmtk")
    from bonebase.cli_common import prefect_env
    from bonebase.synth import generate

    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("PREFECT_HOME", str(work / "prefect"))
        prefect_env()
        generate(work / "synth", sites=1, cases_per_site=max(22, args.cases), seed=args.seed,
                 workers=1)
        rows, files = clean_studies(work / "synth")
        every = [f for row in rows for f in files[row["case_id"]]]
        mb = sum(f.stat().st_size for f in every) / 2**20
        n = len(every)
        print(f"{len(rows)} studies, {n} instances, {mb:.1f} MB")
        for threads in ((1, 4) if args.spool else ()):
            times = bench_spool(every, work, rounds=args.rounds, threads=threads)
            print(f"Spool.store alone, {threads} thread(s), {args.rounds} interleaved rounds; "
                  "ms per instance, median (range):")
            for mode, secs in times.items():
                print(f"  --commit {mode:8s} {_spread([1000 * s / n for s in secs])}")
            sys.stdout.flush()
        for associations in ([] if args.skip_receive else args.associations):
            times = bench_receive(every, work, rounds=args.rounds, associations=associations,
                                  kinds=kinds)
            print_receive(times, n, mb, associations)
            sys.stdout.flush()
        if args.skip_central:
            return
        from benchmarks.gateway_central import bench_central, print_central

        print_central(bench_central(rows, files, work, unbatched=not args.skip_unbatched,
                                    variants=tuple(args.gateway_args or [""]),
                                    polls=tuple(args.poll_every)), n)

if __name__ == "__main__":
    main()
