"""kill -9 of the gateway during an association: on restart every instance the sender was told
was stored is there, nothing is counted twice, and a re-send completes the study set."""

from __future__ import annotations

import re
import subprocess
import time

import pydicom

from tests.gateway.conftest import need


def test_kill_9_during_an_association_loses_nothing_acknowledged(gateway, hospital):
    files = [f for s in hospital for f in s.files]
    gateway.start()
    sender = subprocess.Popen(
        [need("storescu"), "-v", "-aet", "PACS1", "-aec", "BONEBASE", "127.0.0.1",
         str(gateway.port), *map(str, files)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while sum(r["instances"] for r in gateway.studies()) < 5:
        assert time.monotonic() < deadline and sender.poll() is None, "sent too fast to kill"
        time.sleep(0.02)
    gateway.kill()  # SIGKILL, mid-association
    output = sender.communicate(timeout=60)[0]
    # storescu -v: "Sending file: PATH" ... "Received Store Response (Success)" per instance
    acknowledged, current = set(), None
    for line in output.splitlines():
        if m := re.search(r"Sending file: (.+)$", line):
            current = m.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            acknowledged.add(current)
    assert 5 <= len(acknowledged) < len(files)
    uid_of = {str(f): str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID)
              for f in files}

    gateway.start()  # restart: recovery counts from disk, cleans unacknowledged leftovers
    spool = gateway.gateway_dir / "spool"
    kept = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in (spool / "studies").rglob("*.dcm")}
    assert {uid_of[f] for f in acknowledged} <= kept
    assert sum(r["instances"] for r in gateway.studies()) == len(kept)
    assert not any((spool / "incoming").iterdir())
    assert not list((spool / "studies").rglob("*.part"))

    # The PACS sends again: every instance once.
    again = subprocess.run([need("storescu"), "-aet", "PACS1", "-aec", "BONEBASE", "127.0.0.1",
                            str(gateway.port), *map(str, files)], capture_output=True, timeout=120)
    assert again.returncode == 0
    assert sum(r["instances"] for r in gateway.studies()) == len(set(uid_of.values()))
