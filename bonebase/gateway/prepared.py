"""De-identified studies waiting for their batch.

While complete studies wait for a batch to be cut (the previous batch's receipt, ``--batch-wait``),
the work loop de-identifies them already (:func:`bonebase.gateway.studies.prepare_ahead`), so that
cutting the batch only moves the prepared folders into it. A prepared study is a folder
``prepared/<study key>/`` of de-identified files (synced) beside ``prepared/<study key>.json``
(its manifest row and a fingerprint), written last. It is a cache, never the record: the study's
state in the spool database does not change when it is prepared, and a prepared folder counts only
while its fingerprint still matches the study (instances, bytes, last instance's time), the
clinical row and the de-identification key; otherwise, and after any crash that leaves it half
moved, the study is de-identified again when its batch is cut. The folder is on site, beside the
outbox: nothing in it leaves until it is inside a batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from bonebase.gateway.journal import fsync_path, fsync_tree

_FILE = "prepared.json"


def fingerprint(study, row: dict, *, site: str, secret: bytes, uid_root: str,
                max_pixels: int | None) -> str:
    """What a prepared study depends on: a new or re-sent instance, a changed clinical row or
    another key makes it stale."""
    data = [study["key"], study["instances"], study["bytes"], repr(study["last_seen"]),
            sorted((str(k), str(v)) for k, v in row.items()), site,
            hashlib.sha256(secret).hexdigest(), uid_root, max_pixels]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()


class PreparedStudies:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _folder(self, key: str) -> Path:
        return self.root / key

    def _meta(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def staging(self, key: str) -> Path:
        """A path (not yet there) to de-identify the study into, then :meth:`keep`."""
        tmp = self.root / f".{key}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        return tmp

    def keep(self, key: str, tmp: Path, *, fp: str, row: dict) -> None:
        """Make the de-identified folder ``tmp`` the study's prepared one, durably."""
        fsync_tree(tmp)
        self.drop(key)
        os.replace(tmp, self._folder(key))
        meta = self.root / f".{key}.json.part"
        meta.write_text(json.dumps({"fingerprint": fp, "row": row}), encoding="utf-8")
        fsync_path(meta)
        os.replace(meta, self._meta(key))  # last: a folder without it does not count
        fsync_path(self.root)

    def valid(self, key: str, fp: str) -> dict | None:
        """The prepared study's manifest row if it matches ``fp``, else None."""
        try:
            meta = json.loads(self._meta(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("fingerprint") != fp or not self._folder(key).is_dir():
            return None
        return meta["row"]

    def take(self, key: str, fp: str, out: Path) -> dict | None:
        """Move the prepared study (if it matches ``fp``) to ``out``; its manifest row."""
        row = self.valid(key, fp)
        if row is None:
            return None
        os.replace(self._folder(key), out)
        self._meta(key).unlink()
        return row

    def drop(self, key: str) -> None:
        self._meta(key).unlink(missing_ok=True)
        shutil.rmtree(self._folder(key), ignore_errors=True)

    def tidy(self, keep: set[str]) -> None:
        """Remove what a killed pass left and the prepared studies not in ``keep`` (no longer
        waiting: sent, held, or receiving again)."""
        for path in self.root.iterdir():
            key = path.name.removesuffix(".json")
            if path.name.startswith(".") or key not in keep:
                path.unlink() if path.is_file() else shutil.rmtree(path, ignore_errors=True)
