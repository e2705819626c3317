"""Which dataset version a ``data/`` folder holds: the marker ``checkout --to`` leaves there.

``bonebase dataset checkout N --to DIR`` writes ``DIR/dataset-version.json`` with the version
number, its DVC hash and git revision, and the sha256 of ``labels.csv`` and ``split.csv`` as
restored. :func:`dataset_identity` names the data a model is trained on: ``v3:<hash>`` when the
marker matches the tables (so a stale marker, e.g. after a re-export or a new split, is never
believed), otherwise the content hash alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bonebase.dataset.export import MARKER_FILE

TABLES = ("labels.csv", "split.csv")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def content_hash(data: Path) -> str:
    """Hash of the label and split tables (16 hex): the data whatever their version."""
    h = hashlib.sha256()
    for name in TABLES:
        h.update((Path(data) / name).read_bytes())
    return h.hexdigest()[:16]


def write_marker(data: Path, *, version: int, dvc_md5: str, git_rev: str) -> Path:
    """Record in ``data`` that it holds dataset ``version`` as restored just now."""
    data = Path(data)
    marker = {
        "version": version,
        "dvc_md5": dvc_md5,
        "git_rev": git_rev,
        **{name: _sha256(data / name) for name in TABLES if (data / name).is_file()},
    }
    path = data / MARKER_FILE
    path.write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    return path


def read_marker(data: Path) -> dict | None:
    """The marker when it is there and still matches the tables, else None."""
    data = Path(data)
    try:
        marker = json.loads((data / MARKER_FILE).read_text())
        matches = all(marker.get(name) == _sha256(data / name) for name in TABLES)
    except (OSError, ValueError, AttributeError):
        return None
    return marker if matches and isinstance(marker.get("version"), int) else None


def dataset_identity(data: Path) -> str:
    """``v<N>:<content hash>`` for a restored version, else ``<content hash>``."""
    marker = read_marker(data)
    digest = content_hash(data)
    return f"v{marker['version']}:{digest}" if marker else digest


__all__ = ["content_hash", "dataset_identity", "read_marker", "write_marker"]
