"""STOW-RS: dicomweb-client (a DICOMweb client nobody here wrote) over HTTP to a running
gateway; the token is required; malformed bodies get a 4xx, never a 500."""

from __future__ import annotations

import time

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from requests.exceptions import HTTPError

from tests.gateway.conftest import Gateway, free_port

TOKEN = "stow-test-token-0123456789abcdef"


@pytest.fixture(scope="module")
def stow(tmp_path_factory):
    gw = Gateway(tmp_path_factory.mktemp("stow") / "gw",
                 extra_env={"BONEBASE_GATEWAY_TOKEN": TOKEN})
    gw.stow_port = free_port()
    gw.start("--stow-port", str(gw.stow_port), "--study-timeout", "3600")
    url = f"http://127.0.0.1:{gw.stow_port}/dicomweb"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    gw.url = url
    yield gw
    gw.kill()


def test_stow_rs_stores_instances_with_the_token(stow, hospital):
    study = hospital[2]
    datasets = [pydicom.dcmread(f) for f in study.files]
    client = DICOMwebClient(url=stow.url, headers={"Authorization": f"Bearer {TOKEN}"})
    answer = client.store_instances(datasets=datasets)
    referenced = answer.ReferencedSOPSequence
    assert {str(i.ReferencedSOPInstanceUID) for i in referenced} == \
        {str(d.SOPInstanceUID) for d in datasets}
    assert "FailedSOPSequence" not in answer
    [row] = [r for r in stow.studies() if r["patient_id"] == study.row["patient_id"]]
    assert row["instances"] == len(datasets)


def test_stow_rs_refuses_without_the_token(stow, hospital):
    before = stow.studies()
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        client = DICOMwebClient(url=stow.url, headers=headers)
        with pytest.raises(HTTPError) as refused:
            client.store_instances(datasets=[pydicom.dcmread(hospital[3].files[0])])
        assert refused.value.response.status_code == 401
    assert stow.studies() == before


@pytest.mark.parametrize("content_type, body, status", [
    ("application/dicom", b"DICM", 400),  # not multipart
    ("multipart/related; type=\"application/dicom\"", b"--x\r\n\r\nabc", 400),  # no boundary
    ("multipart/related; type=\"application/dicom\"; boundary=x", b"garbage", 400),
    ("multipart/related; type=\"application/dicom\"; boundary=x",
     b"--x\r\nContent-Type: application/dicom\r\n\r\ntruncated", 400),
    ("multipart/related; type=\"application/dicom\"; boundary=x",
     b"--x\r\nContent-Type: text/plain\r\n\r\nhello\r\n--x--\r\n", 415),
    ("multipart/related; type=\"application/dicom\"; boundary=x",
     b"--x\r\nContent-Type: application/dicom\r\n\r\nnot dicom at all\r\n--x--\r\n", 409),
])
def test_malformed_bodies_get_a_4xx(stow, content_type, body, status):
    answer = httpx.post(f"{stow.url}/studies", content=body, timeout=30,
                        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type})
    assert answer.status_code == status, answer.text
    if status == 409:  # the standard response: a failed instance, with its reason
        failed = answer.json()["00081198"]["Value"]
        assert failed[0]["00081197"]["Value"] == [0xC000]
    assert not any((stow.gateway_dir / "spool" / "incoming").iterdir())


def test_clinical_rows_can_be_posted(stow, hospital):
    """A hospital system posts the clinical CSV; a study waiting for its row then leaves."""
    import csv
    import io

    study = hospital[4]
    client = DICOMwebClient(url=stow.url, headers={"Authorization": f"Bearer {TOKEN}"})
    client.store_instances(datasets=[pydicom.dcmread(f) for f in study.files])
    stow.cli("flush", "--site", "HX")
    waiting = [r for r in stow.studies() if r["patient_id"] == study.row["patient_id"]]
    assert [r["state"] for r in waiting] == ["needs clinical data"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(study.row))
    writer.writeheader()
    writer.writerow(study.row)
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/csv"}
    bad = httpx.post(f"{stow.url.rsplit('/', 1)[0]}/clinical", content=b"name,age\nx,3\n",
                     headers=auth, timeout=30)
    assert bad.status_code == 400 and "accession_number" in bad.json()["error"]
    assert httpx.post(f"{stow.url.rsplit('/', 1)[0]}/clinical", content=text.getvalue().encode(),
                      headers={"Content-Type": "text/csv"}, timeout=30).status_code == 401
    posted = httpx.post(f"{stow.url.rsplit('/', 1)[0]}/clinical", content=text.getvalue().encode(),
                        headers=auth, timeout=30)
    assert posted.status_code == 201
    stow.cli("flush", "--site", "HX")
    done = [r for r in stow.studies() if r["patient_id"] == study.row["patient_id"]]
    assert [r["state"] for r in done] == ["queued"]
