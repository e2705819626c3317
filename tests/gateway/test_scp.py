"""The Storage SCP against DCMTK's echoscu/storescu as real processes: who may associate, what
is stored, what is refused with which status."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset

from bonebase.gateway.spool import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, Refused, Spool
from tests.gateway.conftest import need, storescu


def _echo(port: int, aet: str) -> subprocess.CompletedProcess:
    return subprocess.run([need("echoscu"), "-aet", aet, "-aec", "BONEBASE", "127.0.0.1",
                           str(port)], capture_output=True, text=True, timeout=60)


def test_allowed_peer_echoes_and_stores_a_study(gateway, hospital):
    gateway.start()
    assert _echo(gateway.port, "PACS1").returncode == 0
    study = hospital[0]
    sent = storescu(gateway.port, study.folder)
    assert sent.returncode == 0, sent.stderr
    rows = gateway.studies()
    assert len(rows) == 1
    assert rows[0]["instances"] == len(study.files)
    # Every instance as sent (the data set; the file meta is the receiver's own)
    originals = {str(d.SOPInstanceUID): d for d in map(pydicom.dcmread, study.files)}
    received = [pydicom.dcmread(p) for p in (gateway.gateway_dir / "spool").rglob("*.dcm")]
    assert {str(d.SOPInstanceUID) for d in received} == set(originals)
    assert all(d == originals[str(d.SOPInstanceUID)] for d in received)
    # The same study again (a PACS re-sending): still one study, no instance counted twice.
    assert storescu(gateway.port, study.folder).returncode == 0
    again = gateway.studies()
    assert len(again) == 1 and again[0]["instances"] == len(study.files)
    stored = list((gateway.gateway_dir / "spool" / "studies").rglob("*.dcm"))
    assert len(stored) == len(study.files)
    assert not any((gateway.gateway_dir / "spool" / "incoming").iterdir())


def test_unknown_ae_and_wrong_host_are_rejected(gateway, hospital):
    gateway.cli("allow", "PACS2", "--host", "10.9.8.7")  # allowed, but from elsewhere only
    gateway.start()
    for aet in ("EVIL", "PACS2"):
        answer = _echo(gateway.port, aet)
        assert answer.returncode != 0
        assert "Calling AE Title Not Recognized" in answer.stderr
        assert storescu(gateway.port, hospital[0].folder, aet=aet).returncode != 0
    assert gateway.studies() == []
    assert "calling AE 'EVIL') rejected" in gateway.log.read_text()
    # deny takes effect on the running gateway, at the next association
    gateway.cli("deny", "PACS1")
    assert _echo(gateway.port, "PACS1").returncode != 0


def test_unsupported_sop_class_is_refused(gateway, tmp_path, hospital):
    """A Basic Text SR (not an image class the gateway takes): storescu finds no accepted
    presentation context and sends nothing."""
    ds = pydicom.dcmread(hospital[0].files[0])
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    path = tmp_path / "report.dcm"
    ds.save_as(path)
    gateway.start()
    sent = storescu(gateway.port, path)
    assert sent.returncode != 0
    assert "no presentation context" in sent.stderr.lower()
    assert gateway.studies() == []


def _send_raw(port: int, path: Path, sop_class: str) -> int:
    """Send ``path``'s bytes as they are (pynetdicom's chunked send does not parse them)."""
    from pynetdicom import AE, _config

    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        ae = AE(ae_title="PACS1")
        ae.add_requested_context(sop_class, "1.2.840.10008.1.2.1")
        assoc = ae.associate("127.0.0.1", port, ae_title="BONEBASE")
        assert assoc.is_established
        status = assoc.send_c_store(path)
        assoc.release()
        return int(status.Status)
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = False


def test_bytes_that_are_not_dicom_are_refused(gateway, tmp_path):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    path = tmp_path / "junk.dcm"
    with open(path, "wb") as fh:
        fh.write(b"\0" * 128 + b"DICM")
        pydicom.filewriter.write_file_meta_info(fh, meta)
        fh.write(b"this is a scanned PDF, not a data set" * 50)
    gateway.start()
    assert _send_raw(gateway.port, path, "1.2.840.10008.5.1.4.1.1.1") == CANNOT_UNDERSTAND
    assert gateway.studies() == []
    assert not any((gateway.gateway_dir / "spool" / "incoming").iterdir())


def test_full_spool_answers_out_of_resources(tmp_path, hospital):
    from bonebase.gateway.home import GatewayHome

    home = GatewayHome(tmp_path / "gw")
    spool = Spool(home, max_bytes=100)
    incoming = home.incoming / "one.dcm"
    incoming.write_bytes(hospital[0].files[0].read_bytes())
    with pytest.raises(Refused) as refused:
        spool.store(incoming)
    assert refused.value.status == OUT_OF_RESOURCES
    assert spool.studies() == [] and not any(home.studies.iterdir())


def test_tls_peers_connect_and_plain_ones_do_not(tmp_path):
    from tests.gateway.conftest import Gateway

    key, cert = tmp_path / "gw.key", tmp_path / "gw.pem"
    subprocess.run([need("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"],
                   check=True, capture_output=True)
    gw = Gateway(tmp_path / "gw")
    gw.cli("allow", "PACS1")
    gw.start("--tls-cert", str(cert), "--tls-key", str(key))
    try:
        secure = subprocess.run([need("echoscu"), "-aet", "PACS1", "-aec", "BONEBASE", "+tla",
                                 "+cf", str(cert), "127.0.0.1", str(gw.port)],
                                capture_output=True, text=True, timeout=60)
        assert secure.returncode == 0, secure.stderr
        assert _echo(gw.port, "PACS1").returncode != 0  # plain DICOM on a TLS port
    finally:
        gw.kill()


def test_tls_ca_requires_a_client_certificate_the_ca_signed(tmp_path):
    """With --tls-ca only peers presenting a certificate signed by that CA associate: one
    without a certificate, or with one the CA did not sign, is refused during the handshake."""
    from tests.gateway.conftest import Gateway

    openssl = need("openssl")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=tmp_path)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=hospital-ca")
    for name in ("gw", "pacs"):  # the gateway's and the PACS's certificates, signed by the CA
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", "2")
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "rogue.key", "-out",
        "rogue.pem", "-days", "2", "-subj", "/CN=pacs")  # self-signed: not the CA's
    gw = Gateway(tmp_path / "home")
    gw.cli("allow", "PACS1")
    gw.start("--tls-cert", str(tmp_path / "gw.pem"), "--tls-key", str(tmp_path / "gw.key"),
             "--tls-ca", str(tmp_path / "ca.pem"))

    def echo(*tls: str) -> subprocess.CompletedProcess:
        return subprocess.run([need("echoscu"), "-aet", "PACS1", "-aec", "BONEBASE", *tls,
                               "+cf", str(tmp_path / "ca.pem"), "127.0.0.1", str(gw.port)],
                              capture_output=True, text=True, timeout=60)

    try:
        signed = echo("+tls", str(tmp_path / "pacs.key"), str(tmp_path / "pacs.pem"))
        assert signed.returncode == 0, signed.stderr
        assert echo("+tla").returncode != 0  # no client certificate
        assert echo("+tls", str(tmp_path / "rogue.key"), str(tmp_path / "rogue.pem")
                    ).returncode != 0
        assert gw.proc.poll() is None  # refused handshakes do not stop the gateway
    finally:
        gw.kill()
