"""Throughput of the synthetic consortium generator, and its cost over plain DICOM writing.

Prints cases/s and MB/s of ``bonebase.synth.generate`` and, as a reference measured in the same
process with the same number of workers, the rate of writing the same number of DICOM files of
the same sizes with constant pixels (no phantom rendering). Their ratio reads as "phantom cost".

    python benchmarks/synth.py [--sites 4] [--cases-per-site 100] [--workers N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from bonebase.synth import generate


def _plain(args: tuple[Path, list[tuple[int, int]], int]) -> int:
    """Write plain files of the given shapes (the reference work: no rendering)."""
    folder, shapes, start = args
    total = 0
    for i, (rows, cols) in enumerate(shapes, start=start):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid(
            entropy_srcs=[str(i)]
        )
        ds.PatientName, ds.PatientID, ds.Modality = "REF^PLAIN", str(i), "OT"
        ds.Rows, ds.Columns, ds.SamplesPerPixel = rows, cols, 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelData = np.full((rows, cols), 1000, dtype="<u2").tobytes()
        path = folder / f"{i:06d}.dcm"
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
        total += path.stat().st_size
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sites", type=int, default=4)
    ap.add_argument("--cases-per-site", type=int, default=100)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    workers = args.workers or multiprocessing.cpu_count()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "synth"
        t0 = time.perf_counter()
        summary = generate(
            out,
            sites=args.sites,
            cases_per_site=args.cases_per_site,
            seed=args.seed,
            workers=workers,
        )
        gen_s = time.perf_counter() - t0
        shapes = []
        for path in sorted(out.rglob("*")):
            if path.is_file() and path.suffix not in (".csv", ".json", ".txt", ".png", ".docx"):
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                    shapes.append((int(ds.Rows), int(ds.Columns)))
                except Exception:  # corrupt and stray files of the fault injection
                    continue
        ref = Path(tmp) / "plain"
        ref.mkdir()
        chunks = [(ref, shapes[i : i + 16], i) for i in range(0, len(shapes), 16)]
        t0 = time.perf_counter()
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            ref_bytes = sum(pool.map(_plain, chunks))
        ref_s = time.perf_counter() - t0
    mb = summary.bytes / 1e6
    print(
        f"generator: {summary.cases} cases, {summary.images} files, {mb:.1f} MB in "
        f"{gen_s:.1f} s with {workers} workers"
    )
    print(f"  {summary.cases / gen_s:.1f} cases/s, {mb / gen_s:.1f} MB/s")
    print(
        f"reference (plain pydicom files, same count and sizes): {len(shapes)} files, "
        f"{ref_bytes / 1e6:.1f} MB in {ref_s:.1f} s, {ref_bytes / 1e6 / ref_s:.1f} MB/s"
    )
    print(f"phantom cost: generator takes {gen_s / ref_s:.1f}x the time of plain writing")


if __name__ == "__main__":
    main()
