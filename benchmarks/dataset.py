"""DVC layer of dataset versioning: version N images, then version again after adding M.

    python benchmarks/dataset.py [--images 10000 --added 500 --size 64 --bits 16] [--dir DIR]
                                 [--cache-type copy|hardlink]

Writes N random PNGs straight into the export layout (data/images/<sha256>.png + labels.csv),
then times the steps version_dataset runs after the export (dvc add data → git commit →
dvc push to a local-directory remote), adds M images and times them again. Prints both times,
the per-step split, and the ratio second/first: the second should scale with M, not N.
The database and the pixel pipeline are left out on purpose (they are measured elsewhere).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonebase.dataset import dvc as dv  # noqa: E402


def _write_images(images: Path, rng: np.random.Generator, n: int, *, size: int, bits: int) -> None:
    dtype = np.uint16 if bits == 16 else np.uint8
    for _ in range(n):
        # Smooth-ish content (a random gradient plus noise) compresses like a radiograph would.
        ramp = np.linspace(0, rng.uniform(0.2, 1.0), size)[None, :] * np.ones((size, 1))
        img = np.clip(ramp + rng.normal(0, 0.02, (size, size)), 0, 1) * (2**bits - 1)
        buf = io.BytesIO()
        Image.fromarray(img.astype(dtype)).save(buf, format="PNG", compress_level=6)
        data = buf.getvalue()
        (images / f"{hashlib.sha256(data).hexdigest()}.png").write_bytes(data)


def _write_labels(data: Path) -> None:
    with (data / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["instance_id", "image"])
        for png in sorted((data / "images").iterdir()):
            writer.writerow([png.stem, f"images/{png.name}"])


def _version(ws: Path, label: str) -> dict[str, float]:
    times = {}
    t = time.perf_counter()
    dv.dvc(ws, "add", "data")
    times["dvc add"] = time.perf_counter() - t
    t = time.perf_counter()
    dv.git(ws, "add", "-A")
    dv.git(ws, "commit", "-q", "-m", label)
    times["git commit"] = time.perf_counter() - t
    t = time.perf_counter()
    dv.dvc(ws, "push", "data.dvc")
    times["dvc push"] = time.perf_counter() - t
    times["total"] = sum(times.values())
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--added", type=int, default=500)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--bits", type=int, default=16, choices=(8, 16))
    parser.add_argument("--cache-type", default="copy", choices=("copy", "hardlink", "symlink"))
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp one)")
    args = parser.parse_args()

    root = Path(args.dir or tempfile.mkdtemp(prefix="bonebase-bench-dataset-"))
    ws = root / "workspace"
    if ws.exists():
        shutil.rmtree(ws)
    shutil.rmtree(root / "remote", ignore_errors=True)
    dv.init_workspace(ws, remote_url=str(root / "remote"))
    dv.dvc(ws, "config", "cache.type", args.cache_type)
    images = ws / "data" / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(7)

    t = time.perf_counter()
    _write_images(images, rng, args.images, size=args.size, bits=args.bits)
    _write_labels(ws / "data")
    made = time.perf_counter() - t
    mb = sum(p.stat().st_size for p in images.iterdir()) / 1e6
    first = _version(ws, "v1")
    _write_images(images, rng, args.added, size=args.size, bits=args.bits)
    _write_labels(ws / "data")
    second = _version(ws, "v2")

    print(
        f"images: {args.images} + {args.added} ({args.size}x{args.size}, {args.bits}-bit, "
        f"{mb:.0f} MB at first; generated in {made:.1f} s), cache.type={args.cache_type}"
    )
    for name, times in (
        (f"version 1 ({args.images} images)", first),
        (f"version 2 (+{args.added})", second),
    ):
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in times.items() if k != "total")
        print(f"{name}: {times['total']:.1f} s  ({steps})")
    print(
        f"ratio version 2 / version 1: {second['total'] / first['total']:.2f} "
        f"(files ratio {args.added / args.images:.2f})"
    )
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
