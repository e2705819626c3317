"""The issue's own figure for benchmarks/burned_in.py (#19): the cost of the burned-in text step
on the whole ingest FLOW (Prefect, the process pool, validation, PostgreSQL, the object store:
benchmarks/ingest.py's ``bench_flow``), the site's policy ``redact`` against the step switched
off, each arm on a fresh database, interleaved; files/s and CPU a file."""

from __future__ import annotations

import contextlib
import os
import statistics
from pathlib import Path


def _cpu() -> float:
    """CPU seconds of this process and of the programs it ran (the tesseract program of
    pytesseract)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def _flow_arm(data: Path, home: Path, step: bool,
              workers: int | None) -> tuple[float, dict, float]:
    """Seconds (wall and CPU, :func:`_cpu_all`) of the whole ingest flow over every site of
    ``data`` but the first (which warms it up) on a fresh database, and its stages' seconds: benchmarks/ingest.py's ``bench_flow``,
    with the sites' policy ``redact`` (``step``) or with the step switched off. Off: the flow's
    batches are handed to the process pool with ``burned_in=None`` (what process_file skips the
    step on; there is no such site policy), the only change between the arms."""
    from benchmarks.ingest import bench_flow
    from bonebase.ingest import runner

    original = runner.run_batch
    if not step:
        def run_batch(entries, **kwargs):
            return original(entries, **{**kwargs, "burned_in": None})
        runner.run_batch = run_batch
    import flows.ingest

    ingest, cpus = flows.ingest.ingest_submission, []

    def timed(*args, **kwargs):  # the CPU of each submission (bench_flow times all but the first)
        cpu = _cpu_all()
        try:
            return ingest(*args, **kwargs)
        finally:
            cpus.append(_cpu_all() - cpu)

    flows.ingest.ingest_submission = timed
    try:
        elapsed, timings, _ = bench_flow(data, home, {"task_runner": "process",
                                                      "ingest_workers": workers})
    finally:
        runner.run_batch = original
        flows.ingest.ingest_submission = ingest
    return elapsed, timings, sum(cpus[1:])


def _cpu_all() -> float:
    """CPU seconds of this process and every process it started, live (the flow's process
    pool, Prefect's server) or ended: steadier than wall time on a shared machine. The
    PostgreSQL server named by DATABASE_URL is not ours and not counted."""
    import psutil

    total = _cpu()
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def flow_figure(args, tmp: Path) -> None:
    """The issue's figure: files/s of the ingest flow with the step against without it."""
    from benchmarks.ingest import _files
    from bonebase.synth import generate

    data = tmp / "flow-synth"
    generate(data, sites=args.sites + 1, cases_per_site=args.flow_cases, seed=args.seed,
             workers=2, burned_in=args.share)
    first = sorted(p for p in data.iterdir() if p.is_dir())[0]
    files = len([p for p in _files(data) if not p.is_relative_to(first)])
    rates: dict[bool, list[float]] = {True: [], False: []}
    process: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    for i in range(args.flow_rounds):
        for step in ((True, False) if i % 2 == 0 else (False, True)):  # who goes first alternates
            elapsed, timings, cpu = _flow_arm(data, tmp / f"flow-home-{i}-{int(step)}", step,
                                              args.workers)
            rates[step].append(files / elapsed)
            process[step].append(files / timings.get("process", elapsed))
            cpus[step].append(1000 * cpu / files)
    ratio = [w / o for w, o in zip(rates[True], rates[False], strict=True)]
    stage = [w / o for w, o in zip(process[True], process[False], strict=True)]
    cpu_ratio = [o / w for w, o in zip(cpus[True], cpus[False], strict=True)]
    print(f"ingest flow (the issue's figure): {files} files in {args.sites} submissions a run "
          f"(the first site warms up), {args.flow_rounds} interleaved rounds, medians (ranges)")
    print(f"  with the step    files/s {_spread(rates[True])}; CPU ms/file {_spread(cpus[True])}")
    print(f"  without the step files/s {_spread(rates[False])}; CPU ms/file "
          f"{_spread(cpus[False])}")
    print(f"  ratio with/without: files/s {_spread(ratio)} (goal >= 0.7x); in CPU a file "
          f"{_spread(cpu_ratio)}; the flow's file-processing stage alone (files/s): "
          f"{_spread(stage)}")
