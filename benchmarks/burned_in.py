"""Burned-in text on the synthetic consortium: how much identifying text is removed, how many
harmless markers go with it, and what the step costs ingest.

    python benchmarks/burned_in.py [--sites 2] [--cases 22] [--share 0.3] [--rounds 3] [--seed 19]
                                   [--compare-pytesseract] [--no-large]
                                   [--flow-rounds N] [--flow-cases 60] [--workers N]

Generates a synthetic consortium whose radiographs carry burned-in text in a ``--share`` of them
(bonebase.synth.generate(burned_in=...); the truth in <CODE>/burned_in.csv), then runs ingest's
per-file step (bonebase.ingest.process.process_file: read, QC, de-identify, burned-in text,
stage) over every file of every site's submission, with the step (site policy ``redact``) and
without it, interleaved ``--rounds`` times. Prints:

- recall of identifying text boxes: a truth box counts when every pixel in it is one flat value
  in the stored image (blacked out);
- identifying values OCR can still read after redaction: Tesseract (the same reader) over every
  stored image that had burned-in text, each drawn value searched in what it reads (goal 0);
- the share of harmless markers (L/R, AP, LAT) redacted (goal <= 5%);
- files/s with the step against without it (medians and ranges of the rounds; goal >= 0.7x),
  and the same as this process's CPU time a file (steadier on a shared machine: what a core
  of ingest's process pool spends), with ``--compare-pytesseract`` also for Tesseract run as a
  program per image (the fallback without tesserocr);
- where the step's CPU goes, in ms a file: the pre-filter (and the boxes of what OCR read),
  OCR's crops and sheets, Tesseract (and a call), the verdicts, the redaction (and a redacted
  image), the redacted files' encoding;
- the seconds a 10,000 x 10,000 radiograph with text costs (memory bounded: read strided);
- the issue's own figure, the cost on the ingest FLOW: the whole flow (Prefect, the process
  pool, validation, PostgreSQL, the object store: benchmarks/ingest.py's ``bench_flow``) over a
  synthetic submission made the same way (``--flow-cases`` cases a site, the first site warming
  up each run), the site's policy ``redact`` against the step switched off, each arm on a fresh
  database, interleaved ``--flow-rounds`` times (the arm that goes first alternates): files/s
  and the ratio, and the same in CPU a file (this process and every process it started: the
  pool, Prefect's server; not the PostgreSQL server), steadier than wall time when the machine
  is shared. The per-file ratio above is the strict figure (the step against the per-file
  work alone); the flow's is the cost a submission sees. Both are printed; ``--flow-rounds 0``
  skips the flow.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.burned_in_flow import _cpu, _spread, flow_figure  # noqa: E402


def _entries(root: Path):
    from bonebase.ingest.scan import FileEntry

    out = []
    for site_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted((site_dir / "submission").rglob("*")):
            if path.is_file() and path.name != "manifest.csv":
                out.append((site_dir.name, FileEntry(path.relative_to(site_dir / "submission")
                                                     .as_posix(), path, path.stat().st_size,
                                                     "0" * 64)))
    return out


def _run(entries, deid, staging: Path, policy: str | None) -> tuple[float, float, dict]:
    """files/s (wall clock), CPU milliseconds a file (this process) and the results."""
    from bonebase.ingest.process import process_file

    started, cpu = time.perf_counter(), _cpu()
    results = {}
    for site, entry in entries:
        results[site, entry.rel] = process_file(entry, deid=deid, site=site, staging=staging,
                                                burned_in=policy)
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    return len(entries) / wall, 1000 * cpu / len(entries), results


class _Stages:
    """CPU time spent in the step's parts, by wrapping them for one extra run (not the timed
    rounds): the step whole (process.burned_in_text), find_text, the rectangles' OCR
    (read_rects), Tesseract's calls, the verdicts (Step.judge), the redaction (the source's
    Pixel Data element, the black boxes, the method recorded) and, after the step, the
    redacted file's encoding (DeidResult.encode_whole)."""

    def __init__(self) -> None:
        from bonebase.dicom import burned_in, burned_in_ocr
        from bonebase.dicom.deid_result import DeidResult
        from bonebase.ingest import pixel_text, process

        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo = []
        for owner, name, key in ((process, "burned_in_text", "step"),
                                 (burned_in, "find_text", "find_text"),
                                 (burned_in, "read_rects", "read_rects"),
                                 (burned_in_ocr, "_words", "tesseract"),
                                 (burned_in.Step, "judge", "judge"),
                                 (pixel_text, "_pixel_element", "redaction"),
                                 (burned_in, "redact", "redaction"),
                                 (burned_in, "add_method", "redaction"),
                                 (DeidResult, "encode_whole", "encoding")):
            original = getattr(owner, name)
            setattr(owner, name, self._timed(original, key))
            self._undo.append((owner, name, original))

    def _timed(self, fn, key):
        def wrapped(*args, **kwargs):
            started = _cpu()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[key] = self.cpu.get(key, 0.0) + _cpu() - started
                self.calls[key] = self.calls.get(key, 0) + 1
        return wrapped

    def close(self) -> None:
        for owner, name, original in self._undo:
            setattr(owner, name, original)

    def report(self, files: int) -> str:
        """The parts in CPU ms a file (of all ``files``), and per call where that says more."""
        cpu, calls = self.cpu.get, self.calls.get

        def ms(key: str, less: str | None = None) -> float:
            return 1000 * (cpu(key, 0.0) - (cpu(less, 0.0) if less else 0.0)) / files

        images, reads = calls("find_text", 0), calls("tesseract", 0)
        redacted = calls("encoding", 0)
        return (f"where the step's CPU goes (one more run; ms a file of {files}): the step "
                f"{ms('step'):.2f}: pre-filter and boxes {ms('find_text', 'read_rects'):.2f} "
                f"(find_text {images} images, {1000 * cpu('find_text', 0.0) / max(1, images):.1f}"
                f" ms each with OCR), OCR's crops and sheets {ms('read_rects', 'tesseract'):.2f}, "
                f"Tesseract {ms('tesseract'):.2f} ({reads} calls, "
                f"{1000 * cpu('tesseract', 0.0) / max(1, reads):.1f} ms each), verdicts "
                f"{ms('judge'):.2f}, redaction {ms('redaction'):.2f} ({redacted} images, "
                f"{1000 * cpu('redaction', 0.0) / max(1, redacted):.1f} ms each); outside it, "
                f"the redacted files' encoding {ms('encoding'):.2f}")


def _flat(pixels: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    x0, y0, x1, y1 = box
    part = pixels[max(0, y0):y1, max(0, x0):x1]
    return part.size > 0 and int(np.ptp(part)) == 0


def _norm(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _score(root: Path, results: dict) -> dict:
    import pydicom

    from bonebase.dicom import burned_in

    found = total = markers = markers_hit = readable = held = 0
    truth: dict[tuple[str, str], list[dict]] = {}
    for path in root.glob("*/burned_in.csv"):
        for row in csv.DictReader(path.open(encoding="utf-8")):
            truth.setdefault((path.parent.name, row["file"]), []).append(row)
    for key, rows in truth.items():
        result = results.get(key)
        if result is None or result.staged is None:
            held += result is not None and result.reason is not None
            continue
        ds = pydicom.dcmread(result.staged)
        pixels = ds.pixel_array
        read = _norm(" ".join(r.text for r in burned_in.find_text(
            pixels, str(ds.PhotometricInterpretation)).regions))
        for row in rows:
            box = tuple(int(row[k]) for k in ("x0", "y0", "x1", "y1"))
            if row["identifying"] == "1":
                total += 1
                found += _flat(pixels, box)
                value = _norm(row["text"]).removeprefix("dob")
                readable += bool(value) and value in read
            else:
                markers += 1
                markers_hit += _flat(pixels, box)
    clean = [r for k, r in results.items() if k not in truth and r.extra.get("burned_in")]
    false = sum(bool(r.extra["burned_in"]["redacted"]) for r in clean)
    return {"clean": len(clean), "false": false, "ocr_clean": sum(
            bool(r.extra["burned_in"]["read"]) for r in clean), "recall": found / max(1, total), "boxes": total, "readable": readable,
            "marker_share": markers_hit / max(1, markers), "markers": markers,
            "images": len(truth), "held": held}


def _large(tmp: Path) -> tuple[float, float]:
    """Seconds and peak memory growth (MB) of process_file on a 10,000 x 10,000 radiograph."""
    from PIL import Image, ImageDraw, ImageFont

    from bonebase.dicom.deid import Deidentifier
    from bonebase.ingest.process import process_file
    from bonebase.ingest.scan import FileEntry
    from tests.unit.dicom_samples import make_instance

    side = 10_000
    canvas = Image.new("L", (side, side))
    ImageDraw.Draw(canvas).text((60, 60), "MULLER JOHANNA MRN-0042731", fill=255,
                                font=ImageFont.load_default(size=220))
    ds = make_instance()
    ds.Rows = ds.Columns = side
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ramp = (np.arange(side, dtype=np.uint16) % 3000)[None, :] + 500
    ds.PixelData = np.where(np.asarray(canvas) > 96, 4095, ramp).astype("<u2").tobytes()
    path = tmp / "large.dcm"
    ds.save_as(path, enforce_file_format=True)
    del ds, canvas
    staging = tmp / "large-staging"
    staging.mkdir()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = process_file(FileEntry("large.dcm", path, path.stat().st_size, "0" * 64),
                          deid=Deidentifier(b"benchmark-secret-0123456789abcdef"), site="HX",
                          staging=staging, max_pixels=side * side)
    seconds = time.perf_counter() - started
    growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(f"10,000 x 10,000 radiograph with text: {seconds:.1f} s, peak memory growth "
          f"{growth:.0f} MB, outcome {result.reason or 'redacted'}")
    return seconds, growth


@contextlib.contextmanager
def _engine(arm: str):
    """The arm "with, pytesseract" runs without the in-process engine (as without tesserocr)."""
    from bonebase.dicom import burned_in_ocr

    if "pytesseract" not in arm:
        yield
        return
    saved = burned_in_ocr._engine()
    burned_in_ocr._local.api = None
    try:
        yield
    finally:
        burned_in_ocr._local.api = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--cases", type=int, default=22)
    parser.add_argument("--share", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--no-large", action="store_true", help="skip the 10,000 x 10,000 image")
    parser.add_argument("--compare-pytesseract", action="store_true",
                        help="a third arm: the step with Tesseract run as a program per image")
    parser.add_argument("--flow-rounds", type=int, default=3,
                        help="interleaved rounds of the whole ingest flow, each arm (0: skip)")
    parser.add_argument("--flow-cases", type=int, default=60,
                        help="cases a site of the flow's consortium")
    parser.add_argument("--workers", type=int, help="the flow's processes (default: cores)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bonebase-burned-"))
    tmp.chmod(0o755)  # the embedded server's user must reach it when run as root
    # As benchmarks/ingest.py: Prefect's own database apart, a slow machine's start allowed.
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")  # the figures, not each task run
    try:
        _main(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _main(args, tmp: Path) -> None:
    from bonebase.dicom.deid import Deidentifier
    from bonebase.synth import generate

    root = tmp / "synth"
    generate(root, sites=args.sites, cases_per_site=args.cases, seed=args.seed, workers=2,
             burned_in=args.share)
    entries = _entries(root)
    deid = Deidentifier(b"benchmark-secret-0123456789abcdef")
    arms = {"with": "redact", "without": None}
    if args.compare_pytesseract:
        arms["with, pytesseract"] = "redact"
    rates: dict[str, list[float]] = {k: [] for k in arms}
    cpus: dict[str, list[float]] = {k: [] for k in arms}
    scored = None
    (tmp / "warm").mkdir()
    _run(entries[:20], deid, tmp / "warm", "redact")  # imports and caches, not measured
    for i in range(args.rounds):
        for arm, policy in arms.items():
            staging = tmp / f"stage-{i}-{list(arms).index(arm)}"
            staging.mkdir()
            with _engine(arm):
                rate, cpu, results = _run(entries, deid, staging, policy)
            rates[arm].append(rate)
            cpus[arm].append(cpu)
            if arm == "with" and scored is None:
                scored = _score(root, results)
    print(f"synthetic consortium: {len(entries)} files, "
          f"{scored['images']} radiographs with burned-in text, {scored['boxes']} identifying "
          f"boxes, {scored['markers']} markers; {scored['held']} held")
    print(f"radiographs without burned-in text: {scored['clean']}, OCR ran on "
          f"{scored['ocr_clean']} (the pre-filter passed the rest), redacted by mistake "
          f"{scored['false']}")
    print(f"recall of identifying text boxes: {scored['recall']:.3f} (goal >= 0.98)")
    print(f"identifying values OCR still reads after redaction: {scored['readable']} (goal 0)")
    print(f"harmless markers redacted: {scored['marker_share']:.1%} (goal <= 5%)")
    from bonebase.dicom import burned_in_ocr

    print(f"Tesseract read through {burned_in_ocr.engine_name()}; {args.rounds} interleaved "
          "rounds, medians (ranges)")
    base_rate, base_cpu = rates["without"], cpus["without"]
    for arm in arms:
        ratio = [r / b for r, b in zip(rates[arm], base_rate, strict=True)]
        cpu_ratio = [b / c for c, b in zip(cpus[arm], base_cpu, strict=True)]
        print(f"  {arm:<18} files/s {_spread(rates[arm])}, ratio {_spread(ratio)}; "
              f"CPU ms/file {_spread(cpus[arm])}, ratio {_spread(cpu_ratio)}"
              + ("" if arm == "without" else " (goal >= 0.7x)"))
    stages = _Stages()
    staging = tmp / "stages"
    staging.mkdir()
    try:
        _run(entries, deid, staging, "redact")
    finally:
        stages.close()
    print(stages.report(len(entries)))
    if not args.no_large:
        _large(tmp)
    if args.flow_rounds:
        flow_figure(args, tmp)


if __name__ == "__main__":
    main()
