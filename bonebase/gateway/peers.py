"""The calling AE titles (and optionally host addresses) allowed to send to the gateway.

Kept in ``peers.json`` of the gateway's home and read again for each association, so `gateway
allow` and `gateway deny` take effect on a running gateway without a restart.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from bonebase.errors import InputError

# PS3.5 AE: 1-16 characters of the default repertoire, no backslash or control characters;
# leading/trailing spaces are not significant.
_AE_RE = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")


@dataclass(frozen=True)
class Peer:
    ae_title: str
    host: str | None = None  # None: any address


def check_ae(ae_title: str) -> str:
    """The AE title stripped, or an error that says what an AE title may hold."""
    title = ae_title.strip()
    if not title or not _AE_RE.match(title):
        raise InputError(f"AE title {ae_title!r} is invalid: use 1-16 printable ASCII characters "
                         "without a backslash, as configured in the PACS (e.g. PACS01)")
    return title


def load(path: Path) -> list[Peer]:
    if not path.exists():
        return []
    try:
        items = json.loads(path.read_text())
        return [Peer(i["ae_title"], i.get("host")) for i in items]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path} is not a peers list written by `bonebase gateway allow`; "
                         "remove it and allow the peers again") from None


def _save(path: Path, peers: list[Peer]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"ae_title": p.ae_title, "host": p.host} for p in peers], indent=2))
    os.replace(tmp, path)


def allow(path: Path, ae_title: str, host: str | None = None) -> Peer:
    """Allow ``ae_title`` (from ``host`` only, when given); replaces an earlier entry of it."""
    peer = Peer(check_ae(ae_title), host.strip() if host else None)
    peers = [p for p in load(path) if p.ae_title != peer.ae_title]
    _save(path, [*peers, peer])
    return peer


def deny(path: Path, ae_title: str) -> bool:
    """Remove ``ae_title``; False when it was not allowed."""
    title = check_ae(ae_title)
    peers = load(path)
    kept = [p for p in peers if p.ae_title != title]
    _save(path, kept)
    return len(kept) != len(peers)


def is_allowed(peers: list[Peer], ae_title: str, address: str) -> bool:
    title = ae_title.strip()
    return any(p.ae_title == title and (p.host is None or p.host == address) for p in peers)
