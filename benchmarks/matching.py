"""Matching images to manifest rows (bonebase.ingest.match), per rule, at a consortium's scale.

    python benchmarks/matching.py [--rows 10000] [--images-per-row 20] [--orphans 2000]

Builds plain rows and image records in memory (no DICOM, no database) and prints, per rule, the
seconds to match every image and explain every miss, then the seconds to collect the values a
receipt must redact (dates, UIDs, folders) and the dates written in the paths.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import pandas as pd

    from bonebase.ingest import match
    from bonebase.ingest.match import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--images-per-row", type=int, default=20)
    parser.add_argument("--orphans", type=int, default=2_000)
    args = parser.parse_args()
    rows = [{"row": i + 1, "patient_id": f"P{i:07d}", "accession_number": f"A{i}" if i % 3 else "",
             "study_date": "2020-01-02", "study_instance_uid": f"1.2.{i}",
             "folder": f"P{i:07d}/2020-01-02"} for i in range(args.rows)]
    images = [Image(f"P{i:07d}/2020-01-02/s{j}.dcm", f"P{i:07d}", f"A{i}" if i % 3 else "",
                    "20200102", f"1.2.{i}")
              for i in range(args.rows) for j in range(args.images_per_row)]
    images += [Image(f"X{i}/1.dcm", f"X{i}", "Z", "20200102", "9.9") for i in range(args.orphans)]
    print(f"{len(rows)} rows, {len(images)} images ({args.orphans} matching no row)")
    for rule in match.RULES:
        start = time.perf_counter()
        result = match.match(rows, images, rule=rule)
        assert len(result.why_file) == args.orphans
        print(f"  {rule:<13} {time.perf_counter() - start:6.2f} s")
    start = time.perf_counter()
    match.identifying_values(pd.DataFrame(rows), images)
    print(f"  {'redacted':<13} {time.perf_counter() - start:6.2f} s")
    start = time.perf_counter()
    match.dates_in_paths(i.file for i in images)
    print(f"  {'path dates':<13} {time.perf_counter() - start:6.2f} s")


if __name__ == "__main__":
    main()
