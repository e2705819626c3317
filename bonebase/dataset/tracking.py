"""How a workspace's ``data/`` is tracked by DVC: one ``.dvc`` file per image shard and table.

``data/images/b0001.dvc``, ``data/images/b0002.dvc``, … (one per arrival shard, see
:mod:`bonebase.dataset.export`) and ``data/labels.csv.dvc``, ``data/split.csv.dvc``,
``data/export-state.json.dvc``. A version adds and pushes only the shards whose file list
changed (the new shard, and an old one that lost a withdrawn case's images): DVC's cost is per
file it walks (treeverse/dvc#6222), so a version that adds 500 images costs about 500 images
plus one DVC start.

A shard's file names are its content (``<source sha256>.png`` under fixed preprocessing
parameters), so comparing the names on disk with the listing DVC keeps in its cache
(``<md5>.dir``) says whether a shard changed without reading a single image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import yaml

from bonebase.dataset import dvc as dv
from bonebase.dataset.export import STATE_FILE, shard_number

DATA = "data"
TABLES = ("labels.csv", "split.csv", STATE_FILE)
LEGACY_DVC = "data.dvc"  # one .dvc for all of data/ (first layout): replaced by shards
# Files DVC and git keep beside the tracked data; not part of a dataset version's content.
BOOKKEEPING = ("*.dvc", ".gitignore")


def _images(ws: Path) -> Path:
    return ws / DATA / "images"


def tracked_shards(ws: Path) -> dict[str, Path]:
    """Shard name → its .dvc file, for the shards the workspace's git tree tracks now."""
    folder = _images(ws)
    if not folder.is_dir():
        return {}
    return {
        p.name[:-4]: p
        for p in folder.glob("*.dvc")
        if p.is_file() and shard_number(p.name[:-4]) is not None
    }


def shard_dirs(ws: Path) -> list[str]:
    folder = _images(ws)
    if not folder.is_dir():
        return []
    return sorted(
        e.name for e in os.scandir(folder) if e.is_dir() and shard_number(e.name) is not None
    )


def _cached_listing(ws: Path, dvc_file: Path) -> set[str] | None:
    """File names DVC recorded for a tracked folder (from ``<md5>.dir`` in the cache)."""
    try:
        md5 = str(yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"]).removesuffix(".dir")
        listing = ws / ".dvc" / "cache" / "files" / "md5" / md5[:2] / f"{md5[2:]}.dir"
        return {entry["relpath"] for entry in json.loads(listing.read_text())}
    except (OSError, ValueError, TypeError, KeyError, IndexError, yaml.YAMLError):
        return None  # unknown: treat as changed, `dvc add` will find out


def changed_shards(ws: Path) -> tuple[list[str], list[str]]:
    """(shards to ``dvc add``, tracked shards whose folder is gone) in the workspace."""
    tracked = tracked_shards(ws)
    on_disk = shard_dirs(ws)
    to_add = [
        name
        for name in on_disk
        if name not in tracked
        or _cached_listing(ws, tracked[name]) != set(os.listdir(_images(ws) / name))
    ]
    gone = sorted(set(tracked) - set(on_disk))
    return to_add, gone


def drop_legacy(ws: Path) -> None:
    """Stop tracking ``data/`` as one folder (the first layout), keeping the files."""
    if (ws / LEGACY_DVC).is_file():
        dv.dvc(ws, "remove", LEGACY_DVC, what="dvc remove data.dvc (old one-folder layout)")


def _pending(ws: Path) -> set[str]:
    """.dvc files under data/ that differ from the last commit (a failed run's included)."""
    out = dv.git(ws, "status", "--porcelain", "--untracked-files=all", "--", DATA)
    paths = (line[3:].strip('"') for line in out.splitlines())
    return {p for p in paths if p.endswith(".dvc") and (ws / p).is_file()}


def add_and_push(ws: Path, *, remote: str) -> None:
    """``dvc remove`` vanished shards, ``dvc add`` the tables and the changed shards, and
    ``dvc push`` them (and anything a failed run left unpushed), in one DVC process.

    Pushing before the git commit is safe: a push writes content-addressed objects only, so a
    failure leaves the previous version intact, and a version not committed after all leaves
    objects no .dvc file names.
    """
    drop_legacy(ws)
    to_add, gone = changed_shards(ws)
    targets = [f"{DATA}/{t}" for t in TABLES if (ws / DATA / t).is_file()]
    targets += [f"{DATA}/images/{name}" for name in to_add]
    push = sorted(_pending(ws) | {f"{t}.dvc" for t in targets})
    commands = [["remove", f"{DATA}/images/{name}.dvc"] for name in gone]
    commands += [["add", "-q", *targets], ["push", "-q", *push]]
    dv.dvc_batch(ws, commands, what=f"dvc add and push to {remote}")


def discard_uncommitted(ws: Path) -> None:
    """After a failed add/push: tracked files back to the last commit, new .dvc files gone, so
    that the next run adds those shards again (and DVC rewrites their .gitignore entries)."""
    out = dv.git(ws, "status", "--porcelain", "--untracked-files=all", "--", DATA)
    for line in out.splitlines():
        if line.startswith("??") and line.endswith(".dvc"):
            (ws / line[3:].strip('"')).unlink(missing_ok=True)
    dv.git(ws, "checkout", "-q", "-f", dv.BRANCH)


def tree_md5(ws: Path) -> str:
    """One hash of everything the workspace tracks under data/ (its .dvc files' hashes)."""
    lines = []
    for dvc_file in sorted((ws / DATA).rglob("*.dvc")):
        rel = dvc_file.relative_to(ws).as_posix()
        lines.append(f"{rel} {dv.tracked_md5(dvc_file)}")
    if not lines:
        raise dv.VersioningError(f"nothing is tracked under {ws / DATA}; run the export first")
    return hashlib.md5("\n".join(lines).encode()).hexdigest()


def prune_untracked_shards(ws: Path) -> None:
    """Delete shard folders the checked-out revision does not track (another version's)."""
    tracked = tracked_shards(ws)
    for name in shard_dirs(ws):
        if name not in tracked:
            shutil.rmtree(_images(ws) / name)


def copy_data(src: Path, dest: Path) -> Path:
    """Copy a restored data/ to ``dest`` (replaced), without DVC's and git's files."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(*BOOKKEEPING))
    return dest


__all__ = [
    "BOOKKEEPING",
    "DATA",
    "add_and_push",
    "changed_shards",
    "copy_data",
    "discard_uncommitted",
    "prune_untracked_shards",
    "tracked_shards",
    "tree_md5",
]
