"""One frame of a multi-frame image for the web viewer: time and memory, against the volume.

    python benchmarks/frames.py [--frames 200] [--side 512] [--repeat 5]

Renders one frame to the viewer's 512 px PNG with ``render_png(..., frame=N)`` (header read
without pixels, then only that frame decoded with its own rescale and window) for pydicom's
real multi-frame test files (pydicom-data: Enhanced MR in JPEG 2000, Enhanced CT) and for a
synthetic native CT volume of ``--frames`` × ``--side``² 16-bit pixels; for comparison, the
decode of the whole volume that a frame slider would cost without per-frame decoding. Prints
mean time per call and the peak of Python allocations (tracemalloc) during one call; the
stored bytes themselves are allocated before the measurement, as the web route has them from
the object store.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from pydicom.data import get_testdata_file  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.pixels import pixel_array  # noqa: E402

from bonebase.dataset.export import render_png  # noqa: E402

REAL = ("emri_small_jpeg_2k_lossless.dcm", "eCT_Supplemental.dcm")


def volume(frames: int, side: int) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.2.1"
    pixels = np.random.default_rng(0).integers(0, 4096, (frames, side, side), dtype=np.uint16)
    ds.set_pixel_data(pixels, "MONOCHROME2", 12)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def measure(label: str, fn: Callable[[], object], repeat: int) -> None:
    fn()  # imports and caches out of the measurement
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    mean = (time.perf_counter() - start) / repeat
    tracemalloc.start()
    try:
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"{label:62s} {mean * 1000:8.1f} ms  peak {peak / 2**20:7.1f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    for name in REAL:
        path = get_testdata_file(name, download=False)
        if path is None:
            raise SystemExit(f"{name} is not installed: pip install pydicom-data")
        data = Path(path).read_bytes()
        measure(f"{name}: frame 2 -> 512 px PNG",
                lambda data=data: render_png(data, size=512, bits=8, frame=2), args.repeat)
    big = volume(args.frames, args.side)
    middle = args.frames // 2
    print(f"synthetic CT: {args.frames} x {args.side} x {args.side} x 16 bit, "
          f"{len(big) / 2**20:.0f} MiB stored")
    measure(f"frame {middle} -> 512 px PNG",
            lambda: render_png(big, size=512, bits=8, frame=middle), args.repeat)
    measure("whole volume decoded (pydicom pixel_array), for comparison",
            lambda: pixel_array(io.BytesIO(big)), max(1, args.repeat // 2))


if __name__ == "__main__":
    main()
