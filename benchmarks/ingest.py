"""Ingest throughput: the whole flow against plain pydicom read+write and dicognito, one process.

    python benchmarks/ingest.py [--sites 4 --cases-per-site 150 --seed 5] [--data DIR]
                                [--runner process|dask|both] [--workers N] [--dask-address URL]
                                [--repeat N] [--watch]

Generates (or reuses) a synthetic consortium, then over the same files measures:
  (a) plain pydicom: dcmread + dcmwrite of every file (the floor any DICOM pipeline pays);
  (b) dicognito: dcmread + Anonymizer().anonymize + dcmwrite;
  (c) the ingest flow (Prefect, validation, de-identification, PostgreSQL, object store),
and prints files/s, MB/s, the ratios (c)/(a) and (c)/(b), and validation's share of the flow.
With ``--runner dask`` the flow runs on Prefect's Dask task runner (a temporary local cluster of
``--workers`` processes, or the scheduler at ``--dask-address``); ``both`` runs it on the default
process pool and on Dask over the same files and prints the ratio. Every flow run also prints the
database growth and the object-store bytes per case and per stored image (for docs/scaling.md).
``--repeat N`` measures everything N times, interleaved (on a shared machine one run can be a
third slower than the next), and prints the median of each figure, with the range of the ratios.
``--watch`` measures the champion watch (#23) instead: its share of each submission's ingest
time, in process and deferred, wall-clock and CPU (benchmarks/ingest_watch.py says how).
Uses DATABASE_URL when set (a fresh database is created and dropped), else the embedded server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _files(root: Path) -> list[Path]:
    return sorted(p for site in root.iterdir() if site.is_dir()
                  for p in (site / "submission").rglob("*")
                  if p.is_file() and p.name != "manifest.csv")


def _dicom_files(files: list[Path]) -> list[Path]:
    import pydicom

    good = []
    for p in files:
        try:
            pydicom.dcmread(p, stop_before_pixels=True)
            good.append(p)
        except Exception:
            continue
    return good


def bench_pydicom(files: list[Path], out: Path) -> float:
    import pydicom

    t = time.perf_counter()
    for i, p in enumerate(files):
        ds = pydicom.dcmread(p)
        ds.save_as(out / f"{i}.dcm")
    return time.perf_counter() - t


def bench_dicognito(files: list[Path], out: Path) -> float:
    import pydicom
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer(seed="bench")
    t = time.perf_counter()
    for i, p in enumerate(files):
        ds = pydicom.dcmread(p)
        anonymizer.anonymize(ds)
        ds.save_as(out / f"{i}.dcm")
    return time.perf_counter() - t


def _database(home: Path) -> tuple[str, callable]:
    import psycopg

    server = os.environ.get("DATABASE_URL")
    if not server:
        from bonebase.db.engine import embedded_url

        return embedded_url(home / "pg"), lambda: None
    name = f"bonebase_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = make_conninfo(**{**conninfo_to_dict(server), "dbname": name})

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def bench_flow(data: Path, home: Path, runner: dict) -> tuple[float, dict, dict]:
    from bonebase.config import Settings
    from bonebase.db.engine import connect
    from bonebase.db.migrate import upgrade
    from flows.ingest import ingest_submission

    url, drop = _database(home)
    try:
        upgrade(url)
        settings = Settings(home=home, database_url=url, secret="b" * 40, env="test", **runner)
        settings.ensure_home()
        sites = _register_sites(url, data)
        with connect(url) as conn:
            empty = _db_bytes(conn)
        ingest_submission(sites[0]["code"], str(data / sites[0]["code"] / "submission"),
                          settings=settings)  # warm-up run: Prefect server start, imports
        timings: dict[str, float] = {}
        t = time.perf_counter()
        for s in sites[1:]:
            receipt = ingest_submission(s["code"], str(data / s["code"] / "submission"),
                                        settings=settings)
            for k, v in receipt["timings_s"].items():
                timings[k] = timings.get(k, 0.0) + v
        elapsed = time.perf_counter() - t
        with connect(url) as conn:
            sizes = _sizes(conn, empty, home / "objects")
        return elapsed, timings, sizes
    finally:
        drop()


def _register_sites(url: str, data: Path) -> list[dict]:
    """The synthetic consortium's hospitals (its sites.json), registered in ``url``'s database."""
    import json

    from bonebase.db.engine import connect
    from bonebase.db.sites import add_site

    sites = json.loads((data / "sites.json").read_text())
    with connect(url) as conn:
        for s in sites:
            add_site(conn, code=s["code"], name=s["name"])
        conn.commit()
    return sites


def _db_bytes(conn) -> int:
    return conn.execute("SELECT pg_database_size(current_database()) AS b").fetchone()["b"]


def _sizes(conn, empty: int, objects: Path) -> dict:
    """Database growth over the empty schema, and object-store bytes, for all sites ingested."""
    conn.execute("ANALYZE")
    n = {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]  # noqa: S608
         for t in ("cases", "instances", "quarantine_items")}
    curated = sum(p.stat().st_size for p in (objects / "curated").rglob("*") if p.is_file())
    total = sum(p.stat().st_size for p in objects.rglob("*") if p.is_file())
    return {**n, "db_bytes": _db_bytes(conn) - empty, "curated_bytes": curated,
            "object_bytes": total}


def _print_sizes(sizes: dict) -> None:
    cases, images = max(sizes["cases"], 1), max(sizes["instances"], 1)
    print(f"stored: {sizes['cases']} cases, {sizes['instances']} images, "
          f"{sizes['quarantine_items']} quarantine items (all sites)")
    print(f"database growth: {sizes['db_bytes'] / 1e6:.1f} MB = "
          f"{sizes['db_bytes'] / cases / 1e3:.1f} kB/case, "
          f"{sizes['db_bytes'] / images / 1e3:.1f} kB/image")
    print(f"object store: {sizes['object_bytes'] / 1e6:.1f} MB in all, curated "
          f"{sizes['curated_bytes'] / images / 1e3:.1f} kB/image, "
          f"{sizes['object_bytes'] / cases / 1e3:.1f} kB/case in all (quarantine included)")


def _report(runs: list[dict], names: list[str], *, n_files: int, n_dicom: int, mb: float) -> None:
    """Median seconds of each measure over the runs, rates and ratios (ranges when repeated)."""
    from statistics import median

    def secs(key: str) -> list[float]:
        return [r[key] if isinstance(r[key], float) else r[key][0] for r in runs]

    rows = [("plain pydicom read+write", "pydicom", n_dicom),
            ("dicognito read+anonymize+write", "dicognito", n_dicom)]
    rows += [(f"bonebase ingest flow ({name})", name, n_files) for name in names]
    for label, key, n in rows:
        t = median(secs(key))
        print(f"{label:<36} {t:8.2f} s  {n / t:8.1f} files/s  {mb / t:7.2f} MB/s")
    if len(runs) > 1:
        print(f"(median of {len(runs)} interleaved runs)")
    for name in names:
        for ref, label in (("pydicom", "plain pydicom"), ("dicognito", "dicognito")):
            # The rate ratio per run: flow files/s over the reference's files/s.
            ratios = [(n_files / f) / (n_dicom / r)
                      for f, r in zip(secs(name), secs(ref), strict=True)]
            spread = f"  (runs: {min(ratios):.2f}-{max(ratios):.2f}x)" if len(runs) > 1 else ""
            print(f"[{name}] ratio flow / {label + ':':<15} {median(ratios):.2f}x{spread}")
        timings: dict[str, float] = {}
        for r in runs:
            for k, v in r[name][1].items():
                timings[k] = timings.get(k, 0.0) + v / len(runs)
        total = sum(timings.values())
        shares = ", ".join(f"{k} {v:.1f}s ({v / total:.0%})" for k, v in timings.items())
        print(f"[{name}] flow stages (mean): {shares}")
        print(f"[{name}] validation share of ingest time: {timings.get('validate', 0) / total:.1%}")
    if len(names) == 2:
        ratio = median(secs("process")) / median(secs("dask"))
        print(f"ratio dask / process (files/s): {ratio:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--cases-per-site", type=int, default=150)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--data", type=Path, help="reuse a consortium made by `bonebase synth`")
    ap.add_argument("--runner", choices=("process", "dask", "both"), default="process",
                    help="task runner of the flow's file batches (both: compare them)")
    ap.add_argument("--workers", type=int, help="processes for file batches (default: cores)")
    ap.add_argument("--dask-address", help="tcp://… of a running Dask scheduler")
    ap.add_argument("--repeat", type=int, default=1,
                    help="measure everything N times, interleaved; medians are printed")
    ap.add_argument("--watch", action="store_true",
                    help="measure the champion watch's share of ingest time instead")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bonebase-bench-"))
    tmp.chmod(0o755)  # the embedded server's user must reach it when run as root
    # Prefect's own SQLite database apart from other Prefect processes on the machine: a shared
    # one makes every task wait on "database is locked" (pitfalls.md), which is not ingest's cost.
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    # As the CLI allows (bonebase.cli_common.prefect_env): a loaded machine starts it slowly.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        data = args.data
        if data is None:
            from bonebase.synth import generate

            data = tmp / "synth"
            generate(data, sites=args.sites + 1, cases_per_site=args.cases_per_site,
                     seed=args.seed)
        # The first site warms the flow up; the others are measured, and so are the baselines.
        first = sorted(p for p in data.iterdir() if p.is_dir())[0]
        measured = [p for p in _files(data) if not p.is_relative_to(first)]
        dicom = _dicom_files(measured)
        mb = sum(p.stat().st_size for p in measured) / 1e6
        print(f"files: {len(measured)} ({len(dicom)} DICOM), {mb:.1f} MB, {os.cpu_count()} cores")
        if args.watch:
            from benchmarks.ingest_watch import bench_watch, report

            rows = [r for i in range(args.repeat) for r in bench_watch(
                data, tmp / f"home-watch-{i}", {"task_runner": "process",
                                                "ingest_workers": args.workers})]
            report(rows)
            return
        runners = {"process": {"task_runner": "process"},
                   "dask": {"task_runner": "dask", "dask_address": args.dask_address}}
        names = ["process", "dask"] if args.runner == "both" else [args.runner]
        runs = []
        for i in range(args.repeat):
            for name in ("pydicom", "dicognito"):
                shutil.rmtree(tmp / name, ignore_errors=True)
                (tmp / name).mkdir()
            run = {"pydicom": bench_pydicom(dicom, tmp / "pydicom"),
                   "dicognito": bench_dicognito(dicom, tmp / "dicognito")}
            for name in names:
                run[name] = bench_flow(data, tmp / f"home-{name}-{i}",
                                       {**runners[name], "ingest_workers": args.workers})
            runs.append(run)
        _report(runs, names, n_files=len(measured), n_dicom=len(dicom), mb=mb)
        _print_sizes(runs[-1][names[0]][2])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
