"""Fixtures of the gateway tests: a synthetic hospital's studies, a running `gateway serve`
(a real process on a free port), and DCMTK's storescu/echoscu as the sending side."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pytest

SITE = "HX"
SECRET = "gateway-test-secret-0123456789abcdef"
IDENTIFYING = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
               "InstitutionName", "ReferringPhysicianName", "PerformingPhysicianName",
               "OperatorsName", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def need(program: str) -> str:
    """The path of a DCMTK/Orthanc program; skipped (with the reason) only when it is absent
    and we are not root (CI, as root, installs it: .ci/run)."""
    path = shutil.which(program)
    if path is None:
        if os.geteuid() == 0:
            pytest.fail(f"{program} is missing: `apt-get install dcmtk orthanc` (.ci/run does)")
        pytest.skip(f"{program} is not installed and we are not root to install it "
                    "(apt-get install dcmtk orthanc)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Study:
    folder: Path  # the study's files (a patient's accession folder of the synthetic site)
    row: dict  # its manifest row: the clinical data, with the hospital's own ids
    files: list[Path] = field(default_factory=list)

    def identifiers(self) -> set[str]:
        """Every identifying value of its headers (and the manifest's ids)."""
        found = {self.row["patient_id"], self.row["accession_number"], self.row["case_id"]}
        for f in self.files:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            for keyword in IDENTIFYING:
                value = str(ds.get(keyword, "") or "").strip()
                if len(value) >= 4:
                    found.add(value)
        return found


@pytest.fixture(scope="session")
def hospital(tmp_path_factory) -> list[Study]:
    """Clean studies of a synthetic site (no injected fault touches them), one per case."""
    from bonebase.synth import generate

    out = tmp_path_factory.mktemp("gateway-synth")
    generate(out, sites=1, cases_per_site=22, seed=7, workers=1)
    site = out / SITE
    faults = json.loads((site / "faults.json").read_text())
    bad_cases = {f["case_id"] for f in faults if f.get("case_id")}
    bad_files = [f["file"] for f in faults if f.get("file")]
    sub = site / "submission"
    with open(sub / "manifest.csv", encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    studies = []
    for row in rows:
        if row["case_id"] in bad_cases:
            continue
        folders = list(sub.glob(f"{row['patient_id']}/*_{row['accession_number']}"))
        if len(folders) != 1:
            continue
        rel = folders[0].relative_to(sub).as_posix()
        if any(b.startswith(rel + "/") for b in bad_files):
            continue
        files = sorted(p for p in folders[0].rglob("*.dcm"))
        if files:
            studies.append(Study(folders[0], row, files))
    assert len(studies) >= 4, "the synthetic site has too few clean studies for the tests"
    return studies


def write_clinical(path: Path, studies: list[Study]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(studies[0].row))
        writer.writeheader()
        writer.writerows(s.row for s in studies)


def spool_with_batches(root: Path, studies: list[Study], *, per_batch: int = 1):
    """A gateway spool (in this process) holding ``studies``, de-identified into batches of
    ``per_batch`` studies in the outbox."""
    from bonebase.gateway.home import GatewayHome
    from bonebase.gateway.spool import Spool
    from bonebase.gateway.studies import batch_due

    spool = Spool(GatewayHome(root))
    write_clinical(spool.home.clinical / "c.csv", studies)
    for study in studies:
        for f in study.files:
            incoming = spool.home.incoming / "in.dcm"
            shutil.copy(f, incoming)
            spool.store(incoming)
            incoming.unlink()
    spool.flush()
    while batch_due(spool, site=SITE, secret=SECRET.encode(), uid_root="2.25", timeout=60,
                    max_studies=per_batch):
        pass
    assert {s["state"] for s in spool.studies()} == {"queued"}
    return spool


class Gateway:
    """A `gateway serve` process in its own BONEBASE_HOME."""

    def __init__(self, home: Path, *, extra_env: dict | None = None) -> None:
        self.home, self.port = home, free_port()
        self.env = {**os.environ, "BONEBASE_HOME": str(home), "BONEBASE_SECRET": SECRET,
                    **(extra_env or {})}
        self.proc: subprocess.Popen | None = None
        self.log = home / "serve.log"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "bonebase.gateway.cli", *args],
                              env=self.env, capture_output=True, text=True, timeout=120)
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def start(self, *args: str) -> Gateway:
        self.home.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bonebase.gateway.cli", "serve", "--site", SITE,
             "--port", str(self.port), "--host", "127.0.0.1", "--study-timeout", "1",
             "--batch-wait", "0", *args],
            env=self.env, stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            assert self.proc.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"gateway did not listen: {self.log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def studies(self) -> list:
        from bonebase.gateway.home import GatewayHome
        from bonebase.gateway.spool import Spool

        return [dict(r) for r in Spool(GatewayHome(self.home / "gateway")).studies()]

    def wait_for(self, predicate, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.studies()
            if predicate(rows):
                return rows
            time.sleep(0.2)
        raise AssertionError(f"timed out; studies: {self.studies()}\n{self.log.read_text()}")

    @property
    def gateway_dir(self) -> Path:
        return self.home / "gateway"


@pytest.fixture
def gateway(tmp_path):
    gw = Gateway(tmp_path / "gw")
    gw.cli("allow", "PACS1")
    yield gw
    gw.kill(signal.SIGTERM)


def storescu(port: int, *paths: Path, aet: str = "PACS1") -> subprocess.CompletedProcess:
    """DCMTK's storescu: one association for all ``paths`` (folders scanned recursively)."""
    return subprocess.run([need("storescu"), "-aet", aet, "-aec", "BONEBASE", "+sd", "+r",
                           "127.0.0.1", str(port), *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


class Orthanc:
    """Debian's Orthanc as the hospital PACS: its own configuration and storage folder, the
    gateway as a DICOM modality; studies are pushed through its REST API."""

    def __init__(self, root: Path, gateway_port: int) -> None:
        self.http = free_port()
        root.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "hospital-pacs", "StorageDirectory": str(root / "db"),
            "IndexDirectory": str(root / "db"), "HttpPort": self.http, "DicomPort": free_port(),
            "DicomAet": "ORTHANC", "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "Plugins": [], "DicomModalities": {"gateway": ["BONEBASE", "127.0.0.1", gateway_port]},
        }
        (root / "orthanc.json").write_text(json.dumps(config))
        self.proc = subprocess.Popen([need("Orthanc"), str(root / "orthanc.json")],
                                     stdout=open(root / "orthanc.log", "w"),
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.http}"
        import httpx

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError((root / "orthanc.log").read_text())

    def push(self, study: Study) -> dict:
        """Upload the study's files into Orthanc, then have Orthanc C-STORE it to the gateway."""
        import httpx

        ids = {httpx.post(f"{self.url}/instances", content=f.read_bytes(),
                          timeout=30).json()["ParentStudy"] for f in study.files}
        answer = httpx.post(f"{self.url}/modalities/gateway/store", json={
            "Resources": sorted(ids), "Synchronous": True}, timeout=120)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
