"""DVC layer of dataset versioning: version N images, then version again after adding M.

    python benchmarks/dataset.py [--images 10000 --added 500 --size 64 --bits 16] [--dir DIR]
                                 [--cache-type copy|hardlink] [--layout shards|flat]

Writes N random PNGs straight into the export layout (data/images/b0001/<sha256>.png +
labels.csv), then times the steps version_dataset runs after the export (dvc add and push of the changed
shards and tables to a local-directory remote, in one DVC process → git commit), adds M images
in shard b0002 and times them again. Prints both times, the per-step split, and the ratio
second/first: the second should scale with M, not N. ``--layout flat`` times the first layout
(one data.dvc over every image) for comparison. The database and the pixel pipeline are left
out on purpose (they are measured elsewhere).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bonebase.dataset import dvc as dv  # noqa: E402
from bonebase.dataset import tracking  # noqa: E402


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
    pngs = sorted((data / "images").rglob("*.png"), key=lambda p: p.name)
    with (data / "labels.csv").open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["instance_id", "image"])
        for png in pngs:
            writer.writerow([png.stem, png.relative_to(data).as_posix()])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _version(ws: Path, label: str, *, layout: str) -> dict[str, float]:
    times = {}
    cpu = _children_cpu()
    t = time.perf_counter()
    if layout == "flat":
        dv.dvc_batch(ws, [["add", "-q", "data"], ["push", "-q", "data.dvc"]], what="add+push")
    else:
        tracking.add_and_push(ws, remote="the benchmark remote")
        tracking.tree_md5(ws)
    times["dvc add+push"] = time.perf_counter() - t
    t = time.perf_counter()
    dv.git(ws, "add", "-A")
    dv.git(ws, "commit", "-q", "-m", label)
    times["git commit"] = time.perf_counter() - t
    times["total"] = sum(times.values())
    # CPU seconds of the DVC and git processes: steadier than wall time on a shared machine.
    times["cpu"] = _children_cpu() - cpu
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
    parser.add_argument("--layout", default="shards", choices=("shards", "flat"))
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
    flat = args.layout == "flat"
    first_dir, second_dir = (images, images) if flat else (images / "b0001", images / "b0002")
    first_dir.mkdir(parents=True)
    rng = np.random.default_rng(7)

    t = time.perf_counter()
    _write_images(first_dir, rng, args.images, size=args.size, bits=args.bits)
    _write_labels(ws / "data")
    made = time.perf_counter() - t
    mb = sum(p.stat().st_size for p in first_dir.iterdir()) / 1e6
    first = _version(ws, "v1", layout=args.layout)
    second_dir.mkdir(exist_ok=True)
    _write_images(second_dir, rng, args.added, size=args.size, bits=args.bits)
    _write_labels(ws / "data")
    second = _version(ws, "v2", layout=args.layout)

    print(
        f"images: {args.images} + {args.added} ({args.size}x{args.size}, {args.bits}-bit, "
        f"{mb:.0f} MB at first; generated in {made:.1f} s), cache.type={args.cache_type}, "
        f"layout={args.layout}"
    )
    for name, times in (
        (f"version 1 ({args.images} images)", first),
        (f"version 2 (+{args.added})", second),
    ):
        steps = ", ".join(f"{k} {v:.1f} s" for k, v in times.items() if k not in ("total", "cpu"))
        print(f"{name}: {times['total']:.1f} s wall, {times['cpu']:.1f} s CPU  ({steps})")
    print(
        f"ratio version 2 / version 1: {second['total'] / first['total']:.2f} wall, "
        f"{second['cpu'] / first['cpu']:.2f} CPU (files ratio {args.added / args.images:.2f})"
    )
    if args.dir is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
