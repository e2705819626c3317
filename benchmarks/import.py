"""BTXRD import throughput (#20): `bonebase import btxrd` against Pillow decode + pydicom write.

    python benchmarks/import.py [--images 1000] [--size 2000x2500] [--repeat 3] [--seed 20]
                                [--data DIR]

Generates (or reuses, ``--data``) a clean BTXRD-shaped folder (bonebase import btxrd-sample:
``--images`` JPEGs of about ``--size`` pixels, LabelMe outlines on the tumour images), then, in one
process and interleaved ``--repeat`` times (on a shared machine one run can be a third slower
than the next):
  (a) reference: every JPEG decoded with Pillow and written with pydicom as an uncompressed
      Secondary Capture (the floor of any JPEG-to-DICOM import);
  (b) the import: `bonebase import btxrd` as the command runs it (plan, three centres' submission
      folders, the ingest flow per centre: de-identification, QC, burned-in text, validation,
      PostgreSQL, object store; the outlines stored), into a fresh database each round.
Prints images/s and MB/s of each, the ratio (b)/(a) per round, and the median with the range
(goal >= 0.5x); beside it the same ratio in CPU seconds (this process and its children: the
ingest worker pool, Prefect's server), which a shared machine's load moves far less than wall
time. A warm-up import of a 6-image folder first starts Prefect's temporary server and
loads the libraries, outside the timings. Uses DATABASE_URL when set (fresh databases are created
and dropped), else the embedded server.
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
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from a benchmark


def _database(home: Path) -> tuple[str, callable]:
    import psycopg

    from bonebase.db.migrate import upgrade

    server = os.environ.get("DATABASE_URL")
    if not server:
        from bonebase.db.engine import embedded_url

        url = embedded_url(home / "pg")
        upgrade(url)
        return url, lambda: None
    name = f"bonebase_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    url = make_conninfo(**{**conninfo_to_dict(server), "dbname": name})
    upgrade(url)

    def drop() -> None:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


def _cpu() -> float:
    from benchmarks.ingest_watch import _cpu as cpu  # this process and its live children

    return cpu()


def bench_reference(images: list[Path], out: Path) -> float:
    """Pillow decode + pydicom write of each JPEG as an uncompressed Secondary Capture."""
    import numpy as np
    from PIL import Image
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    t = time.perf_counter()
    for i, path in enumerate(images):
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"))
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = "DX"
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        ds.PixelData = pixels.tobytes()
        ds.save_as(out / f"{i}.dcm", enforce_file_format=True)
    return time.perf_counter() - t


def bench_import(data: Path, home: Path, sites: dict) -> tuple[float, dict]:
    """One `bonebase import btxrd` of ``data`` into a fresh database; (seconds, summary with
    the CPU seconds it took)."""
    from bonebase.config import Settings
    from bonebase.importers import btxrd_run

    url, drop = _database(home)
    try:
        settings = Settings(home=home, database_url=url, secret="b" * 40, env="test")
        settings.ensure_home()
        cpu, t = _cpu(), time.perf_counter()
        results = btxrd_run.run(data, sites=sites, settings=settings, say=lambda _: None)
        elapsed, cpu = time.perf_counter() - t, _cpu() - cpu
        summary = {"cpu": cpu, "stored": sum(r.receipt.get("counts", {}).get("files_stored", 0)
                                 for r in results),
                   "quarantined": sum(r.receipt.get("counts", {}).get("quarantined", 0)
                                      for r in results),
                   "outlines": sum(r.outlines for r in results), "stages": {}}
        for r in results:  # the flow's own stage timings, summed over the centres
            for stage, secs in r.receipt.get("timings_s", {}).items():
                summary["stages"][stage] = summary["stages"].get(stage, 0.0) + secs
        return elapsed, summary
    finally:
        drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--size", default="2000x2500", help="COLUMNSxROWS of the pictures (±10%%)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--data", type=Path, help="reuse (or create) the generated folder here")
    args = ap.parse_args()
    columns, rows = (int(v) for v in args.size.lower().split("x"))

    from prefect.testing.utilities import prefect_test_harness

    from bonebase.importers import btxrd_import as imp
    from bonebase.importers.btxrd_sample import generate

    work = Path(tempfile.mkdtemp(prefix="bench-import-"))
    data = args.data or work / "BTXRD"
    try:
        if not (data / "dataset.csv").is_file():
            t = time.perf_counter()
            generate(data, images=args.images, seed=args.seed, size=(columns, rows), faults=False)
            print(f"generated {args.images} images in {time.perf_counter() - t:.0f} s: {data}")
        images = sorted((data / "images").iterdir())
        mb = sum(p.stat().st_size for p in images) / 2**20
        print(f"{len(images)} JPEGs, {mb:.0f} MB, about {columns} x {rows} px, "
              f"{len(list((data / 'Annotations').iterdir()))} LabelMe files")
        with prefect_test_harness(server_startup_timeout=180):
            warm = work / "warm"
            generate(warm, images=6, seed=1, faults=False)
            bench_import(warm, work / "home-warm", imp.DEFAULT_SITES)
            ref, imports, ratios, cpu_ratios = [], [], [], []
            for n in range(args.repeat):
                out = work / f"ref-{n}"
                out.mkdir()
                cpu = _cpu()
                ref.append(bench_reference(images, out))
                ref_cpu = _cpu() - cpu
                shutil.rmtree(out)
                seconds, summary = bench_import(data, work / f"home-{n}", imp.DEFAULT_SITES)
                shutil.rmtree(work / f"home-{n}", ignore_errors=True)
                imports.append(seconds)
                ratios.append(ref[-1] / seconds)
                cpu_ratios.append(ref_cpu / summary["cpu"])
                print(f"round {n + 1}: reference {len(images) / ref[-1]:.2f} images/s, import "
                      f"{len(images) / seconds:.2f} images/s ({summary['stored']} stored, "
                      f"{summary['quarantined']} quarantined, {summary['outlines']} with outlines)"
                      f", ratio {ratios[-1]:.2f}x; CPU s: reference {ref_cpu:.1f}, import "
                      f"{summary['cpu']:.1f}, ratio {cpu_ratios[-1]:.2f}x; load "
                      f"{os.getloadavg()[0]:.1f}", flush=True)
                stages = ", ".join(f"{k} {v:.1f}" for k, v in summary["stages"].items())
                print(f"  flow stages (s, 3 centres): {stages}; outside the flows "
                      f"{seconds - sum(summary['stages'].values()):.1f}", flush=True)
        n = len(images)
        print(f"\nmedian of {args.repeat} interleaved rounds, {n} images:")
        print(f"  (a) Pillow decode + pydicom write: {n / median(ref):.2f} images/s, "
              f"{mb / median(ref):.1f} MB/s")
        print(f"  (b) bonebase import btxrd:          {n / median(imports):.2f} images/s, "
              f"{mb / median(imports):.1f} MB/s")
        print(f"  ratio (b)/(a): {median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f};"
              " goal >= 0.5x)")
        print(f"  in CPU seconds: {median(cpu_ratios):.2f}x (range {min(cpu_ratios):.2f}-"
              f"{max(cpu_ratios):.2f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
