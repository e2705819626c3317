"""What the validation report costs a submission: the suites alone, with Data Docs, and the share
of bonebase's offline pass (vendored assets linked in, CDN links rewritten) and of its summary.

    python benchmarks/datadocs.py [--cases 700] [--repeat 5]

Validates one synthetic submission (``--cases`` manifest rows, three images each, one failing row
and one failing file, as tests/unit/test_validation.py builds them) with GX in this process:
without a docs folder, with one, and with one built by GX's own SiteBuilder (which copies its
3.4 MB of static files into every site; bonebase's hard-links them), interleaved ``--repeat``
times after a warm-up run (on a shared machine one run can be a third slower than the next). Prints
the median of each, the Data Docs share (with − without) and the time of
``docs_offline.make_offline`` and ``docs_offline.write_summary`` inside the runs with docs. Last,
GX's static files into a fresh folder alone (less noisy than whole runs): GX's copy against
bonebase's hard links, 15 times each, medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _static_copy_vs_link(times: int = 15) -> tuple[float, float]:
    from great_expectations.data_context.store.html_site_store import HtmlSiteStore

    from validation.docs_offline import link_tree
    from validation.docs_view import GX_STATIC

    root = Path(tempfile.mkdtemp(prefix="bonebase-static-"))
    copied, linked = [], []
    try:
        for i in range(times):
            store = HtmlSiteStore(store_backend={"class_name": "TupleFilesystemStoreBackend",
                                                 "base_directory": str(root / f"copy{i}")})
            t = time.perf_counter()
            store.copy_static_assets()
            copied.append(time.perf_counter() - t)
            t = time.perf_counter()
            link_tree(GX_STATIC, root / f"link{i}" / "static")
            linked.append(time.perf_counter() - t)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return statistics.median(copied), statistics.median(linked)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=700, help="manifest rows (three images each)")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved measurements")
    args = ap.parse_args()

    from tests.unit.test_validation import clean_frames
    from validation import docs_offline, docs_view, runner

    manifest, headers = clean_frames(args.cases)
    manifest.at[1, "age"] = "214"
    headers.at[4, "modality"] = "US"
    times: dict[str, list[float]] = {"without docs": [], "with docs": [],
                                     "GX copying": [], "offline pass": [], "summary": []}
    linked = docs_view.site_config

    def copying(base_directory: str, title: str = "Validation") -> dict:
        config = {**linked(base_directory, title), "class_name": "SiteBuilder",
                  "module_name": "great_expectations.render.renderer.site_builder"}
        config.pop("title")  # bonebase's builder's option
        return config

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                times[name].append(time.perf_counter() - t)
        return wrapper

    docs_offline.make_offline = timed("offline pass", docs_offline.make_offline)
    docs_offline.write_summary = timed("summary", docs_offline.write_summary)
    root = Path(tempfile.mkdtemp(prefix="bonebase-datadocs-"))
    try:
        runner.validate_submission(manifest, headers, site="HX", submission_id="warm",
                                   docs_dir=root / "warm")
        for name in times:
            times[name].clear()
        for i in range(args.repeat):
            t = time.perf_counter()
            runner.validate_submission(manifest, headers, site="HX", submission_id=str(i))
            times["without docs"].append(time.perf_counter() - t)
            t = time.perf_counter()
            runner.validate_submission(manifest, headers, site="HX", submission_id=str(i),
                                       docs_dir=root / str(i))
            times["with docs"].append(time.perf_counter() - t)
            docs_view.site_config = copying
            t = time.perf_counter()
            runner.validate_submission(manifest, headers, site="HX", submission_id=str(i),
                                       docs_dir=root / f"copy{i}")
            times["GX copying"].append(time.perf_counter() - t)
            docs_view.site_config = linked
    finally:
        shutil.rmtree(root, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.cases} rows, {len(headers)} images, {args.repeat} interleaved runs (medians):")
    for name, value in med.items():
        print(f"  {name:13s} {value:7.3f} s   (runs: {', '.join(f'{x:.3f}' for x in times[name])})")
    static = _static_copy_vs_link()
    print(f"  GX static files into a site: copied {static[0] * 1000:.1f} ms, hard-linked "
          f"{static[1] * 1000:.1f} ms")
    print(f"  Data Docs     {med['with docs'] - med['without docs']:7.3f} s per submission "
          f"(GX's own builder: {med['GX copying'] - med['without docs']:.3f} s); the offline pass "
          f"{med['offline pass']:.3f} s and the summary {med['summary']:.3f} s of it")


if __name__ == "__main__":
    main()
