"""The grey pipeline (stored values -> display floats in [0, 1]) per pixel against once per stored
value (a table), on full-size radiographs from pydicom's test data (#23).

    python benchmarks/grey_pipeline.py [--repeat 9]

Every image the champion watch scores, the dataset export renders, `/diagnose` answers and the
web viewer shows goes through `bonebase.dicom.pixels.radiograph_to_float`. Both arms run on the
same decoded pixels, interleaved (the order alternates each round), and must give the same
floats bit for bit; the median ms per image, its range, and the ratio are printed per file.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import median

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Computed and digital radiographs and an MR slice of pydicom-data, native and JPEG 2000.
FILES = ("RG1_UNCI.dcm", "RG3_UNCR.dcm", "RG1_J2KR.dcm", "MR2_UNCR.dcm")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9, help="interleaved rounds per file")
    args = ap.parse_args()

    import numpy as np
    import pydicom
    from pydicom.data import get_testdata_file

    from bonebase.dicom import pixels

    ratios = []
    for name in FILES:
        path = get_testdata_file(name)
        if path is None:
            print(f"{name}: not in this pydicom-data; skipped")
            continue
        ds = pydicom.dcmread(path)
        stored = pixels._decoded_pixels(ds)
        arms = {"per pixel": lambda ds=ds, stored=stored: pixels._grey_values(ds, stored),
                "table": lambda ds=ds, stored=stored: pixels._grey_to_float(ds, stored)}
        if pixels._grey_table(ds, stored, None) is None:
            print(f"{name}: the table does not apply (no window in the header); skipped")
            continue
        assert np.array_equal(arms["per pixel"](), arms["table"]()), name
        times: dict[str, list[float]] = {arm: [] for arm in arms}
        for i in range(args.repeat):
            for arm in (list(arms) if i % 2 == 0 else list(arms)[::-1]):
                t = time.perf_counter()
                arms[arm]()
                times[arm].append((time.perf_counter() - t) * 1000)
        shown = "  ".join(f"{arm} {median(v):6.1f} ms ({min(v):.1f}-{max(v):.1f})"
                          for arm, v in times.items())
        ratio = median(times["per pixel"]) / median(times["table"])
        ratios.append(ratio)
        print(f"{name:<14} {stored.shape[0]}x{stored.shape[1]} {stored.dtype}  {shown}  "
              f"table {ratio:.1f}x faster, same floats")
    if ratios:
        print(f"median over {len(ratios)} files: the table is {median(ratios):.1f}x faster")


if __name__ == "__main__":
    main()
