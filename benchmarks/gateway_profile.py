"""Where a received instance's time goes in the gateway: an in-process Storage SCP (the
gateway's, on a fresh spool) receives a synthetic hospital's files from DCMTK's storescu over
one association, with the receive path's stages timed per call.

    python benchmarks/gateway_profile.py [--cases 150 --seed 3] [--repeat 3]
                                         [--paths bytes,pydicom]

Prints instances/s, wall and process CPU milliseconds per instance, then for each stage its
calls per instance and its median and mean wall milliseconds per instance. Stages nest (the
handler holds the header read and the commit, the commit the syncfs) and run on different
threads (the DUL thread receives and sends, the association thread serves), so they do not
add up to the wall time; what is missing from the serial path (DUL receive + serve + send) is
thread hand-offs and storescu's own time. ``--paths bytes,pydicom`` profiles the gateway's
C-STORE path and pynetdicom's own (BONEBASE_GATEWAY_PYDICOM_STORE=1; its pydicom stages then
show too) in turn in every repeat.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pynetdicom.dimse as dimse  # noqa: E402
import pynetdicom.dimse_messages as dimse_messages  # noqa: E402
import pynetdicom.dul as dul  # noqa: E402
import pynetdicom.fsm as fsm  # noqa: E402

from benchmarks.gateway import DCMTK_ENV, clean_studies  # noqa: E402
from bonebase.gateway import journal, peers, reactor, scp, spool, store_dimse  # noqa: E402

# (owner, attribute, label): the receive path in the order an instance meets it
STAGES = [
    (dul.DULServiceProvider, "_read_pdu_data", "DUL: read and decode a PDU"),
    (fsm.StateMachine, "do_action", "DUL: state machine action (P-DATA to DIMSE, send)"),
    (store_dimse.StoreDIMSE, "receive_primitive", "DIMSE: a P-DATA received (bytes path: into the file)"),
    (dimse.DIMSEServiceProvider, "receive_primitive", "  DIMSE: pynetdicom's own (its path)"),
    (dimse_messages, "write_file_meta_info", "  pydicom: file meta written"),
    (reactor.EventAssociation, "_serve_request", "association: serve a request"),
    (scp.StorageSCP, "_on_store", "  handler: Spool.store"),
    (spool, "read_header", "    read_header (pydicom, up to the pixels)"),
    (journal.Journal, "commit", "    group commit (hand-off, link, sync, count)"),
    (journal, "sync_filesystem", "      syncfs"),
    (store_dimse.StoreDIMSE, "send_msg", "  response (bytes path, else pydicom)"),
]


def _timed(times: dict[str, list[float]], owner, name: str, label: str) -> None:
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            times[label].append(time.perf_counter() - t)

    setattr(owner, name, wrapper)


def profile(files: list[Path], work: Path) -> tuple[float, float, dict[str, list[float]]]:
    """Seconds of wall and process CPU to receive ``files``, and every stage's call times."""
    times: dict[str, list[float]] = defaultdict(list)
    originals = [(owner, name, vars(owner).get(name)) for owner, name, _ in STAGES]
    for owner, name, label in STAGES:
        _timed(times, owner, name, label)
    try:
        home = spool.GatewayHome(work)
        store = spool.Spool(home)
        peers.allow(home.peers_file, "PACS1")
        server = scp.StorageSCP(store, scp.ScpConfig(host="127.0.0.1", port=0))
        server.start()
        try:
            cpu, t = os.times(), time.perf_counter()
            sent = subprocess.run(["storescu", "-aet", "PACS1", "-aec", "BONEBASE", "127.0.0.1",
                                   str(server.port), *map(str, files)],
                                  capture_output=True, text=True, env=DCMTK_ENV)
            wall, after = time.perf_counter() - t, os.times()
        finally:
            server.stop()
        if sent.returncode != 0:
            raise SystemExit(f"storescu failed: {sent.stderr[-500:]}")
    finally:
        for owner, name, original in originals:
            if original is None:  # inherited: drop the wrapper, the base's shows again
                delattr(owner, name)
            else:
                setattr(owner, name, original)
    return wall, after.user - cpu.user + after.system - cpu.system, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=150)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="profiled runs, one after another")
    parser.add_argument("--paths", default="bytes",
                        help="comma-separated C-STORE paths run in turn: bytes, pydicom")
    args = parser.parse_args()
    from bonebase.synth import generate

    with tempfile.TemporaryDirectory(prefix="bench-gateway-profile-") as tmp:
        work = Path(tmp)
        generate(work / "synth", sites=1, cases_per_site=args.cases, seed=args.seed, workers=1)
        rows, by_case = clean_studies(work / "synth")
        files = [f for row in rows for f in by_case[row["case_id"]]]
        n = len(files)
        print(f"{n} instances, {sum(f.stat().st_size for f in files) / 2**20:.1f} MB, "
              "one association")
        for run, path in ((r, p) for r in range(args.repeat) for p in args.paths.split(",")):
            os.environ["BONEBASE_GATEWAY_PYDICOM_STORE"] = "1" if path == "pydicom" else "0"
            wall, cpu, times = profile(files, work / f"gateway-{run}-{path}")
            print(f"run {run + 1}, {path} path: {n / wall:.0f} instances/s, "
                  f"{1000 * wall / n:.2f} ms wall "
                  f"and {1000 * cpu / n:.2f} ms CPU per instance; per stage: calls per "
                  "instance, median ms per call, mean ms per instance")
            for _, _, label in STAGES:
                if secs := times.get(label):
                    print(f"  {label:52s} {len(secs) / n:4.1f}  "
                          f"{1000 * statistics.median(secs):6.3f}  {1000 * sum(secs) / n:6.3f}")


if __name__ == "__main__":
    main()
