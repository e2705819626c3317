"""Durable receipt of instances and the state of each study, on the gateway's disk.

An instance is acknowledged only after :func:`Spool.store` returns: its bytes and its count
are committed together to the state database's journal (SQLite, WAL, synchronous FULL; one
commit and one disk sync for every instance waiting at that moment, from every association:
:mod:`bonebase.gateway.journal`), and the received file is linked into its study's folder. The
work loop's :meth:`Spool.checkpoint` later makes the linked files durable in place and empties
the journal. A kill -9 (or a power loss) before the commit leaves at most an unacknowledged
temporary file, which the sender sends again; after it, :meth:`Spool.recover` finds the
instance in its study folder, written again from the journal where the crash left it missing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from bonebase.gateway import journal
from bonebase.gateway.home import GatewayHome
from bonebase.gateway.journal import JOURNAL_MAX, Entry, Journal, _link, fsync_path

# Image storage SOP classes of radiographs, CT and MR (issue #18), by PS3.4 Annex B UID.
SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
}
# Study states, in the order a study normally passes them.
RECEIVING, NEEDS_CLINICAL, HELD, QUEUED, SENT, INGESTED, QUARANTINED, FAILED = (
    "receiving", "needs clinical data", "held on site", "queued", "sent", "ingested",
    "quarantined", "failed centrally")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS studies (
  key TEXT PRIMARY KEY, study_uid TEXT NOT NULL, patient_id TEXT, accession TEXT,
  modalities TEXT NOT NULL DEFAULT '', instances INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
  state TEXT NOT NULL, detail TEXT, batch TEXT, case_ref TEXT, flush INTEGER NOT NULL DEFAULT 0,
  purged INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS batches (
  id TEXT PRIMARY KEY, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_try REAL NOT NULL DEFAULT 0, error TEXT, created REAL NOT NULL, sent REAL,
  receipt TEXT);
"""


class Refused(Exception):
    """An instance the gateway does not take; ``status`` is the DIMSE status to answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


# DIMSE statuses (PS3.4 B.2.3)
OUT_OF_RESOURCES = 0xA700
SOP_CLASS_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
SOP_CLASS_NOT_SUPPORTED = 0x0122


@dataclass(frozen=True)
class Stored:
    study_key: str
    sop_instance_uid: str
    size: int
    new: bool


def study_key(study_uid: str) -> str:
    """A study's folder name: a hash, so that no UID shows in paths or logs."""
    return hashlib.sha256(study_uid.encode()).hexdigest()[:32]


class Spool:
    def __init__(self, home: GatewayHome, *, max_bytes: int | None = None,
                 commit: str = "auto") -> None:
        """``commit``: how received instances are made durable (:data:`journal.MODES`)."""
        self.home = home
        self.max_bytes = max_bytes
        self._local = threading.local()
        home.create()
        with self.db() as conn:
            conn.executescript(_SCHEMA + journal.SCHEMA)
        self.journal = Journal(home.state_db, mode=commit)

    @contextmanager
    def db(self):
        """This thread's connection (opening one per call cost more than the instance: the
        last close of a WAL database checkpoints it). NORMAL synchronous: a commit survives a
        crash of the process, and after a power loss :meth:`recover` counts the instances from
        the files, which are synced before they are acknowledged."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = journal.connect(self.home.state_db)
            self._local.conn = conn
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise

    def used_bytes(self) -> int:
        with self.db() as conn:
            row = conn.execute("SELECT COALESCE(SUM(bytes), 0) FROM studies WHERE purged = 0"
                               ).fetchone()
        return int(row[0])

    def store(self, path: Path, *, sop_class_uid: str | None = None) -> Stored:
        """Take the DICOM file at ``path`` (in the spool's ``incoming`` folder) into its study;
        raises :class:`Refused` with the status to answer. The file is linked, not copied: the
        caller may delete ``path`` afterwards but must not write to it again."""
        size = path.stat().st_size
        head = read_header(path)
        study_uid, sop_uid, sop_class = head["study_uid"], head["sop_uid"], head["sop_class"]
        if not study_uid or not sop_uid:
            raise Refused(CANNOT_UNDERSTAND, "StudyInstanceUID or SOPInstanceUID is missing")
        if sop_class not in SOP_CLASSES:
            raise Refused(SOP_CLASS_NOT_SUPPORTED, "SOP class not supported by the gateway")
        if sop_class_uid is not None and sop_class_uid != sop_class:
            raise Refused(SOP_CLASS_MISMATCH, "data set does not match the SOP class sent")
        if self.max_bytes is not None and self.used_bytes() + size > self.max_bytes:
            raise Refused(OUT_OF_RESOURCES, "the gateway's spool is full")
        key = study_key(study_uid)
        folder = self.home.studies / key
        dest = folder / f"{hashlib.sha256(sop_uid.encode()).hexdigest()[:32]}.dcm"

        def count(conn, new: bool, old_size: int) -> None:
            now = time.time()
            conn.execute(
                "INSERT INTO studies (key, study_uid, patient_id, accession, modalities, instances,"
                " bytes, first_seen, last_seen, state) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (key) DO UPDATE SET instances = instances + excluded.instances, "
                "bytes = bytes + excluded.bytes, last_seen = excluded.last_seen, "
                "patient_id = excluded.patient_id, accession = excluded.accession, "
                "modalities = CASE WHEN instr(modalities, excluded.modalities) > 0 "
                "THEN modalities ELSE trim(modalities || ' ' || excluded.modalities) END, "
                "state = excluded.state, flush = 0, purged = 0",
                (key, study_uid, head["patient_id"], head["accession"], head["modality"],
                 int(new), size - old_size, now, now, RECEIVING))

        entry = Entry(source=path, dest=dest, size=size, count=count)
        try:
            if size > JOURNAL_MAX or self.journal.mode == "each":  # large: the transfer
                # takes longer than the syncs: synced in place, its count group-committed
                entry.synced = True
                entry.new = not dest.exists()
                entry.old_size = 0 if entry.new else dest.stat().st_size
                folder.mkdir(parents=True, exist_ok=True)
                fsync_path(path)
                _link(path, dest)
                fsync_path(folder)
            self.journal.commit(entry)
        except (OSError, sqlite3.OperationalError) as exc:  # disk full: nothing acknowledged
            reason = getattr(exc, "strerror", None) or str(exc)
            raise Refused(OUT_OF_RESOURCES, f"the spool cannot be written ({reason})") from None
        new = entry.new
        return Stored(key, sop_uid, size, new)

    def incoming_file(self) -> Path:
        """A fresh temporary path in the spool's file system (for STOW-RS parts)."""
        return self.home.incoming / f"stow-{os.getpid()}-{time.monotonic_ns()}.dcm"

    def checkpoint(self, *, restore_all: bool = False) -> int:
        """Make the files the journal holds durable in their study folders and drop them from
        the journal (:func:`journal.checkpoint`); the number of instances checkpointed."""
        with self.db() as conn:
            return journal.checkpoint(conn, self.home.root, restore_all=restore_all)

    def recover(self) -> int:
        """After a crash: write every acknowledged instance still in the journal to its study
        folder, remove what a killed receive left in ``incoming`` (never acknowledged) and count
        each study's instances and bytes again from its folder (a kill between the link and the
        count leaves the file, which is what counts); the number of files removed."""
        self.checkpoint(restore_all=True)
        count = 0
        for path in self.home.incoming.iterdir():
            path.unlink(missing_ok=True) if path.is_file() else shutil.rmtree(path, True)
            count += 1
        with self.db() as conn:
            known = {r["key"] for r in conn.execute("SELECT key FROM studies")}
            for folder in self.home.studies.iterdir():  # killed before its first count
                files = sorted(folder.glob("*.dcm"))
                if folder.name not in known and files:
                    head, now = read_header(files[0]), time.time()
                    conn.execute(
                        "INSERT INTO studies (key, study_uid, patient_id, accession, modalities,"
                        " first_seen, last_seen, state) VALUES (?,?,?,?,?,?,?,?)",
                        (folder.name, head["study_uid"], head["patient_id"], head["accession"],
                         head["modality"], now, now, RECEIVING))
            for study in conn.execute("SELECT key FROM studies").fetchall():
                folder = self.home.studies / study["key"]
                for part in [*folder.glob("*.part"), *folder.glob("*.restore")]:
                    part.unlink()
                sizes = [p.stat().st_size for p in folder.glob("*.dcm")]
                if folder.exists():
                    conn.execute("UPDATE studies SET instances = ?, bytes = ? WHERE key = ?",
                                 (len(sizes), sum(sizes), study["key"]))
        return count

    def studies(self) -> list[sqlite3.Row]:
        with self.db() as conn:
            return conn.execute("SELECT * FROM studies ORDER BY first_seen").fetchall()

    def set_state(self, key: str, state: str, *, detail: str | None = None,
                  batch: str | None = None, case_ref: str | None = None) -> None:
        with self.db() as conn:
            conn.execute("UPDATE studies SET state = ?, detail = ?, batch = COALESCE(?, batch),"
                         " case_ref = COALESCE(?, case_ref) WHERE key = ?",
                         (state, detail, batch, case_ref, key))

    def flush(self) -> int:
        """Mark every receiving study complete now; the number marked."""
        with self.db() as conn:
            return conn.execute("UPDATE studies SET flush = 1 WHERE state IN (?, ?)",
                                (RECEIVING, NEEDS_CLINICAL)).rowcount


def read_header(path: Path) -> dict[str, str]:
    """The identifiers the spool files an instance by; :class:`Refused` if it is not DICOM."""
    try:
        ds = dcmread(path, stop_before_pixels=True, force=False)
        return {name: str(ds.get(keyword, "") or "").strip() for name, keyword in (
            ("study_uid", "StudyInstanceUID"), ("sop_uid", "SOPInstanceUID"),
            ("sop_class", "SOPClassUID"), ("patient_id", "PatientID"),
            ("accession", "AccessionNumber"), ("modality", "Modality"))}
    except (InvalidDicomError, ValueError, TypeError, KeyError, OSError, EOFError,
            AttributeError, OverflowError, UnicodeDecodeError, NotImplementedError):
        raise Refused(CANNOT_UNDERSTAND, "not a readable DICOM data set") from None
