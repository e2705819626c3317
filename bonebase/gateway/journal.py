"""Group commit of received instances: one disk sync makes many instances durable.

An instance may be acknowledged only once it survives a power loss. Syncing each received file
and then its folder costs two disk flushes per instance (4-8 ms each on this project's virtual
disk), about as much as pynetdicom spends receiving a radiograph. Instead one committer thread
makes everything that waits at that moment, from every association, durable at once, and only
then is success answered:

- ``syncfs`` (the default on Linux): the group's files are linked into their study folders and
  one ``syncfs`` of the spool's file system makes files and folders durable; the counts follow
  in one transaction. Nothing is copied.
- ``journal`` (the default where there is no syncfs): each file is copied into the ``journal``
  table of the gateway's state database (SQLite, WAL, ``synchronous=FULL``) in the transaction
  that counts it: one sync of the write-ahead log, which SQLite overwrites in place. The files
  are then linked into place, not yet synced; :func:`checkpoint` (the work loop, every pass)
  makes them durable there and deletes their rows. After a crash the rows still in the journal
  are written to their study folders again, so an acknowledged instance is never lost whichever
  step the crash interrupted.

An instance larger than ``JOURNAL_MAX`` is synced in place (its transfer takes longer than the
syncs) and only its count goes through the group commit.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

JOURNAL_MAX = 8 * 2**20  # larger instances are synced in place
# How a group is made durable: "syncfs" links its files into place and syncs the spool's file
# system once; "journal" copies them into the journal and syncs its write-ahead log once; "auto"
# is syncfs where the system has it (Linux), else the journal; "each" syncs every file and its
# folder in place, as the gateway did before (benchmarks/gateway.py measures all four).
MODES = ("auto", "journal", "syncfs", "each")
_CHUNK = 2**20  # bytes copied into a journal row at a time: memory stays flat
# Another process's checkpoint restores a row only this long after it was committed: the
# committing process links the file right after its commit.
_RESTORE_AFTER_S = 10.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS journal (
  id INTEGER PRIMARY KEY, dest TEXT NOT NULL, size INTEGER NOT NULL, committed REAL NOT NULL,
  data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS journal_dest ON journal (dest);
"""


@dataclass
class Entry:
    """One instance waiting for the group commit: ``source`` (its received file) becomes
    ``dest``; ``count`` runs in the commit's transaction (the study's instance count) and gets
    whether ``dest`` is new and the size it replaces."""

    source: Path
    dest: Path
    size: int
    count: Callable[[sqlite3.Connection, bool, int], None]
    synced: bool = False  # True: already synced and linked in place (large instances)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
    new: bool = False
    old_size: int = 0  # of the file ``dest`` replaced (synced entries: set by the caller)


class Journal:
    """The committer thread of one spool (started on first use; a daemon)."""

    def __init__(self, state_db: Path, *, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"commit mode {mode!r}: one of {', '.join(MODES)}")
        self.state_db = state_db
        self.mode = mode
        self._queue: queue.SimpleQueue[Entry] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.groups = 0  # commits so far
        self._synchronous = "FULL"

    def commit(self, entry: Entry) -> Entry:
        """Make ``entry`` durable and link it into place; raises what the commit raised."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="spool-journal",
                                                daemon=True)
                self._thread.start()
        self._queue.put(entry)
        entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry

    def _run(self) -> None:
        conn = connect(self.state_db, synchronous="FULL")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run off the receive path
        while True:
            group = [self._queue.get()]
            while True:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            by_syncfs = self.mode == "syncfs" or (self.mode == "auto" and has_syncfs())
            try:
                (self._commit_syncfs if by_syncfs else self._commit)(conn, group)
            except BaseException as exc:  # noqa: BLE001 - every waiting caller gets it
                if conn.in_transaction:
                    conn.rollback()
                for entry in group:
                    entry.error = exc
            else:
                for entry in (e for e in group if not (e.synced or by_syncfs)):
                    try:
                        _link(entry.source, entry.dest)
                    except OSError:
                        pass  # durable in the journal: the next checkpoint writes it
            for entry in group:
                entry.done.set()

    def _commit(self, conn: sqlite3.Connection, group: list[Entry]) -> None:
        # Counts alone need no sync of their own: after a power loss recovery counts the
        # files, which were synced before they were counted.
        synchronous = "NORMAL" if all(e.synced for e in group) else "FULL"
        if synchronous != self._synchronous:
            conn.execute(f"PRAGMA synchronous={synchronous}")
            self._synchronous = synchronous
        conn.execute("BEGIN IMMEDIATE")
        in_group: set[str] = set()
        now = time.time()
        for entry in group:
            dest = str(entry.dest)
            if entry.synced:  # linked and synced already: only its count
                entry.count(conn, entry.new, entry.old_size)
                continue
            pending = conn.execute("SELECT size FROM journal WHERE dest = ? ORDER BY id DESC "
                                   "LIMIT 1", (dest,)).fetchone()
            if dest in in_group or pending is not None:
                entry.new, old = False, (pending[0] if pending else entry.size)
            elif entry.dest.exists():
                entry.new, old = False, entry.dest.stat().st_size
            else:
                entry.new, old = True, 0
            in_group.add(dest)
            entry.old_size = old
            row = conn.execute("INSERT INTO journal (dest, size, committed, data) VALUES "
                               "(?, ?, ?, zeroblob(?))",
                               (dest, entry.size, now, entry.size)).lastrowid
            _copy_in(conn, row, entry.source, entry.size)
            entry.count(conn, entry.new, old)
        conn.execute("COMMIT")
        self.groups += 1


    def _commit_syncfs(self, conn: sqlite3.Connection, group: list[Entry]) -> None:
        linked: set[Path] = set()
        for entry in group:
            if not entry.synced:
                entry.new = entry.dest not in linked and not entry.dest.exists()
                entry.old_size = 0 if entry.new else (
                    entry.size if entry.dest in linked else entry.dest.stat().st_size)
                _link(entry.source, entry.dest)
                linked.add(entry.dest)
        if linked:
            sync_filesystem(self.state_db.parent, sorted(linked))
        if self._synchronous != "NORMAL":
            conn.execute("PRAGMA synchronous=NORMAL")
            self._synchronous = "NORMAL"
        conn.execute("BEGIN IMMEDIATE")
        for entry in group:
            entry.count(conn, entry.new, entry.old_size)
            # an older journal row of the same file must not be restored over this one
            conn.execute("DELETE FROM journal WHERE dest = ?", (str(entry.dest),))
        conn.execute("COMMIT")
        self.groups += 1


def connect(state_db: Path, *, synchronous: str = "NORMAL") -> sqlite3.Connection:
    conn = sqlite3.connect(state_db, timeout=30, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    return conn


def checkpoint(conn: sqlite3.Connection, spool_root: Path, *, restore_all: bool = False) -> int:
    """Make the files of the journal's rows durable where they are, then drop the rows; the
    number of rows dropped. A row whose file is missing or short (a crash after its commit) is
    written from the journal first. ``restore_all``: at start-up, rows of any age."""
    limit = time.time() - (0 if restore_all else _RESTORE_AFTER_S)
    rows = conn.execute("SELECT id, dest, size, committed FROM journal ORDER BY id").fetchall()
    if not rows:
        return 0
    latest: dict[str, int] = {}
    for r in rows:
        latest[r["dest"]] = r["id"]
    done = []
    for r in rows:
        dest = Path(r["dest"])
        if latest[r["dest"]] != r["id"]:
            done.append(r["id"])  # replaced later in the journal
            continue
        if not dest.exists() or dest.stat().st_size != r["size"]:
            if r["committed"] > limit:
                continue  # its own process links it any moment now
            _copy_out(conn, r["id"], dest)
        done.append(r["id"])
    if not done:
        return 0
    sync_filesystem(spool_root, [Path(r["dest"]) for r in rows if r["id"] in set(done)])
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("DELETE FROM journal WHERE id = ?", [(i,) for i in done])
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    return len(done)


def _copy_in(conn: sqlite3.Connection, row: int, source: Path, size: int) -> None:
    with conn.blobopen("journal", "data", row) as blob, open(source, "rb") as fh:
        copied = 0
        while copied < size:
            chunk = fh.read(min(_CHUNK, size - copied))
            if not chunk:
                raise OSError(f"{source.name} shrank while it was being journaled")
            blob.write(chunk)
            copied += len(chunk)


def _copy_out(conn: sqlite3.Connection, row: int, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".restore")
    with conn.blobopen("journal", "data", row, readonly=True) as blob, open(tmp, "wb") as fh:
        while chunk := blob.read(_CHUNK):
            fh.write(chunk)
    os.replace(tmp, dest)


def _link(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    tmp.unlink(missing_ok=True)
    os.link(source, tmp)  # same file system: no copy
    os.replace(tmp, dest)


_LIBC = None
_SYNC_FILE_RANGE_WRITE = 2


def has_syncfs() -> bool:
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
            _LIBC.syncfs  # noqa: B018 - Linux only
        except (OSError, AttributeError):
            _LIBC = False
    return bool(_LIBC)


def start_writeback(fd: int) -> None:
    """Start writing ``fd``'s dirty pages to disk without waiting (Linux ``sync_file_range``;
    elsewhere nothing): the sync that must precede the answer then finds them written."""
    writeback = getattr(_LIBC, "sync_file_range", None) if has_syncfs() else None
    if writeback is not None:  # advisory: its result changes nothing, the sync still follows
        writeback(fd, ctypes.c_longlong(0), ctypes.c_longlong(0),
                  ctypes.c_uint(_SYNC_FILE_RANGE_WRITE))


def sync_filesystem(root: Path, files: list[Path]) -> None:
    """Make ``files`` and their folders durable: one ``syncfs`` of the file system holding
    ``root`` (Linux), else a sync of each file and each folder."""
    if has_syncfs():
        fd = os.open(root, os.O_RDONLY)
        try:
            if _LIBC.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in [*files, *{f.parent for f in files}, *{f.parent.parent for f in files}]:
        if path.exists():
            fsync_path(path)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Sync every file and folder under ``root``, then ``root`` itself."""
    for path in [*root.rglob("*"), root]:
        fsync_path(path)
