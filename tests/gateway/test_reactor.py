"""The gateway's event-driven pynetdicom reactors (bonebase.gateway.reactor): the SCP's
associations use them, and they still store, release, abort, time out idle peers and close
what they open; their C-STORE in bytes (bonebase.gateway.store_dimse) writes and answers what
pynetdicom would."""

from __future__ import annotations

import hashlib
import inspect
import queue
import socket
import struct
import tempfile
import threading
import time
from io import BytesIO
from types import SimpleNamespace

import pytest
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta, encode
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.sop_class import Verification

from bonebase.gateway import peers, reactor, store_dimse
from bonebase.gateway.home import GatewayHome
from bonebase.gateway.scp import ScpConfig, StorageSCP
from bonebase.gateway.spool import Spool
from tests.gateway.conftest import storescu

# pynetdicom 3.0's loops that reactor.py mirrors (Association._run_reactor, copied without its
# sleep) or relies on (the DUL loop sleeps _run_loop_delay and calls _is_transport_event only
# when no primitive waits; stop_dul spins on _run_loop_delay), and the C-STORE decoding and
# encoding store_dimse.py does in bytes. A change in pynetdicom fails here: compare the new
# source with reactor.py and store_dimse.py, adapt them, then record the new digests.
MIRRORED = {
    Association._run_reactor: "f28838c5559e462a",
    DULServiceProvider.run_reactor: "e3a10eb3a0931e48",
    DULServiceProvider.stop_dul: "28a7e0be126e7b30",
    DIMSEMessage.decode_msg: "f51c777e841a76be",
    DIMSEMessage.message_to_primitive: "f8f43d34e43450ef",
    DIMSEMessage.primitive_to_message: "71fd61d5997f0f0c",
    DIMSEServiceProvider.receive_primitive: "5f99c86b14a15cef",
    DIMSEServiceProvider.send_msg: "a839cf2fb46976d9",
    create_file_meta: "035ed415f5aeea15",
}


def _wait_until(condition, what: str, limit: float = 30.0) -> None:
    """A liveness bound, not a timing: fails only if ``condition`` never holds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {limit:.0f} s")
        time.sleep(0.02)


def test_the_pynetdicom_loops_reactor_mirrors_are_unchanged():
    changed = [f.__qualname__ for f, digest in MIRRORED.items()
               if hashlib.sha256(inspect.getsource(f).encode()).hexdigest()[:16] != digest]
    assert not changed, (f"pynetdicom changed {changed}: review bonebase/gateway/reactor.py "
                         "against the new source, then update MIRRORED")


@pytest.fixture
def scp(tmp_path):
    home = GatewayHome(tmp_path / "gw")
    spool = Spool(home)
    peers.allow(home.peers_file, "PACS1")
    server = StorageSCP(spool, ScpConfig(host="127.0.0.1", port=0))
    server.start()
    yield server
    server.stop()


def test_the_gateway_receives_over_event_driven_associations(scp, hospital):
    seen: list[tuple[str, str, str]] = []
    scp._server.bind(evt.EVT_ACCEPTED, lambda event: seen.append(
        (type(event.assoc).__name__, type(event.assoc.dul).__name__,
         type(event.assoc.dimse).__name__)))
    studies = [s for s in hospital if len(s.files) >= 2][:2]
    for study in studies:  # one association per study, as a PACS forwards them
        sent = storescu(scp.port, study.folder)
        assert sent.returncode == 0, sent.stderr
    assert seen == [("EventAssociation", "EventDUL", "EventDIMSE")] * len(studies)
    stored = {row["study_uid"]: row["instances"] for row in scp.spool.studies()}
    assert sorted(stored.values()) == sorted(len(s.files) for s in studies)


def _scu(port: int, *, network_timeout: float | None = None):
    ae = AE(ae_title="PACS1")
    ae.add_requested_context(Verification)
    if network_timeout is not None:
        ae.network_timeout = network_timeout
    assoc = ae.associate("127.0.0.1", port, ae_title="BONEBASE")
    assert assoc.is_established
    return assoc


def _acceptors(scp) -> list[threading.Thread]:
    """The gateway's association threads still running, and their DUL threads."""
    return [t for t in threading.enumerate()
            if isinstance(t, (reactor.EventAssociation, reactor.EventDUL))]


def _associations_running() -> bool:
    """Any association (either side) or DUL thread still running."""
    return any(isinstance(t, (Association, DULServiceProvider)) for t in threading.enumerate())


def test_echo_release_and_abort_end_the_acceptor(scp):
    before = set(_acceptors(scp))
    assoc = _scu(scp.port)
    assert assoc.send_c_echo().Status == 0x0000
    assoc.release()
    assert assoc.is_released
    assoc = _scu(scp.port)
    assoc.abort()
    _wait_until(lambda: not (set(_acceptors(scp)) - before), "the acceptor threads' end")


def test_an_idle_peer_is_timed_out_by_the_acceptor(tmp_path):
    """The bounded waits still look at the network idle timer (ae.network_timeout)."""
    home = GatewayHome(tmp_path / "gw")
    spool = Spool(home)
    peers.allow(home.peers_file, "PACS1")
    server = StorageSCP(spool, ScpConfig(host="127.0.0.1", port=0))
    ae_server = server.start()
    ae_server.ae.network_timeout = 0.5
    try:
        assoc = _scu(server.port)  # then says nothing
        _wait_until(lambda: assoc.is_aborted or not assoc.is_established,
                    "the acceptor's abort of an idle association")
    finally:
        server.stop()


def test_associations_leave_no_descriptor_open(scp, monkeypatch):
    """Every association's wake-up socket pair is closed when it ends. (Counting the whole
    process's descriptors was flaky beside other suites' servers and threads.)"""
    pairs = []
    setup = reactor.EventDUL._setup_wake

    def recorded(dul) -> None:
        setup(dul)
        pairs.append((dul._wake_r, dul._wake_w))

    monkeypatch.setattr(reactor.EventDUL, "_setup_wake", recorded)
    for _ in range(20):
        assoc = _scu(scp.port)
        assoc.send_c_echo()
        assoc.release()
    assert len(pairs) == 20
    # each pair is closed as its DUL thread ends, shortly after its association
    _wait_until(lambda: all(r.fileno() == -1 and w.fileno() == -1 for r, w in pairs),
                "every wake-up pair closed")


def test_other_pynetdicom_versions_keep_the_stock_reactors(monkeypatch):
    import pynetdicom

    monkeypatch.setattr(pynetdicom, "__version__", "4.0.0")
    assert not reactor.supported()
    assoc = Association(AE(), "acceptor")
    reactor.make_event_driven(assoc)
    assert type(assoc) is Association and type(assoc.dul) is DULServiceProvider


def test_the_stock_reactors_can_be_put_back(monkeypatch):
    monkeypatch.setenv("BONEBASE_GATEWAY_STOCK_REACTORS", "1")
    assoc = Association(AE(), "acceptor")
    reactor.make_event_driven(assoc)
    assert type(assoc) is Association and type(assoc.dul) is DULServiceProvider
    monkeypatch.delenv("BONEBASE_GATEWAY_STOCK_REACTORS")
    assert reactor.supported()


SOP_CLASS, SOP_INSTANCE = "1.2.840.10008.5.1.4.1.1.1.1", "1.2.826.0.1.3680043.8.498.123"


@pytest.mark.parametrize("instance", [SOP_INSTANCE, SOP_INSTANCE + "4"])  # odd and even
def test_file_meta_is_the_bytes_pynetdicom_writes(instance):
    ours = store_dimse.file_meta(SOP_CLASS, instance, "1.2.840.10008.1.2.1")
    theirs = BytesIO()
    theirs.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(theirs, create_file_meta(
        sop_class_uid=SOP_CLASS, sop_instance_uid=instance,
        transfer_syntax="1.2.840.10008.1.2.1"))
    assert ours == theirs.getvalue()


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xC000])
def test_a_store_response_is_the_bytes_pynetdicom_encodes(status):
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo, rsp.Status = 7, status
    rsp.AffectedSOPClassUID, rsp.AffectedSOPInstanceUID = SOP_CLASS, SOP_INSTANCE
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    assert store_dimse.store_response(SOP_CLASS, 7, status, SOP_INSTANCE) == encode(
        message.command_set, True, True)


def test_other_command_sets_are_left_to_pynetdicom():
    response = store_dimse.store_response(SOP_CLASS, 7, 0, SOP_INSTANCE)
    assert store_dimse.parse_store_request(response) is None  # a response, not a request
    assert store_dimse.parse_store_request(response[:-3]) is None  # truncated


def test_the_gateway_stores_the_bytes_pynetdicom_stores(tmp_path, hospital, monkeypatch):
    """The same study, received by the byte-level C-STORE path and by pynetdicom's own (the
    stock reactors), is stored as the same files."""
    study = next(s for s in hospital if len(s.files) >= 2)
    taken = []
    start = store_dimse.StoreDIMSE._start
    monkeypatch.setattr(store_dimse.StoreDIMSE, "_start",
                        lambda self, pdvs: taken.append(start(self, pdvs)) or taken[-1])
    stored = {}
    for stock in ("", "1"):
        monkeypatch.setenv("BONEBASE_GATEWAY_STOCK_REACTORS", stock)
        home = GatewayHome(tmp_path / f"gw{stock}")
        spool = Spool(home)
        peers.allow(home.peers_file, "PACS1")
        server = StorageSCP(spool, ScpConfig(host="127.0.0.1", port=0))
        server.start()
        try:
            sent = storescu(server.port, study.folder)
        finally:
            server.stop()
        assert sent.returncode == 0, sent.stderr
        stored[stock] = {p.relative_to(home.studies): p.read_bytes()
                         for p in home.studies.rglob("*.dcm")}
        assert not list(home.incoming.iterdir())  # the temporary files are gone
    assert len([t for t in taken if t is not None]) == len(study.files)  # all on the fast path
    assert len(stored[""]) == len(study.files)
    assert stored[""] == stored["1"]


def _receiver(tmp_path, monkeypatch):
    """A StoreDIMSE on a stand-in association (one accepted context), temporary files in
    ``tmp_path``."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(_config, "STORE_RECV_CHUNKED_DATASET", True)
    context = SimpleNamespace(transfer_syntax=["1.2.840.10008.1.2.1"])
    assoc = SimpleNamespace(_accepted_cx={1: context}, get_handlers=lambda event: [],
                            dul=SimpleNamespace(event_queue=queue.Queue()))
    return store_dimse.StoreDIMSE(assoc), assoc


def _pdata(*pdvs):
    primitive = P_DATA()
    primitive.presentation_data_value_list = [list(pdv) for pdv in pdvs]
    return primitive


def _store_rq(*, priority: int = 0, instance: bytes | None = None) -> bytes:
    def element(number: int, value: bytes) -> bytes:
        return struct.pack("<HHI", 0, number, len(value)) + value

    body = b"".join((element(0x0002, store_dimse._uid(SOP_CLASS)),
                     element(0x0100, struct.pack("<H", 0x0001)),
                     element(0x0110, struct.pack("<H", 5)),
                     element(0x0700, struct.pack("<H", priority)),
                     element(0x0800, struct.pack("<H", 0x0000)),
                     element(0x1000, instance or store_dimse._uid(SOP_INSTANCE))))
    return element(0x0000, struct.pack("<I", len(body))) + body


def test_a_request_is_received_into_its_file_and_queued(tmp_path, monkeypatch):
    dimse, _ = _receiver(tmp_path, monkeypatch)
    dimse.receive_primitive(_pdata((1, b"\x03" + _store_rq()), (1, b"\x00" + b"ab")))
    dimse.receive_primitive(_pdata((1, b"\x02" + b"cd")))
    context_id, req = dimse.msg_queue.get_nowait()
    assert (context_id, req.MessageID, req.AffectedSOPInstanceUID, req.Priority) == (
        1, 5, SOP_INSTANCE, 0)
    req._dataset_file.close()
    data = req._dataset_path.read_bytes()
    assert data == store_dimse.file_meta(SOP_CLASS, SOP_INSTANCE, "1.2.840.10008.1.2.1") + b"abcd"


def test_a_data_set_cut_short_leaves_no_file(tmp_path, monkeypatch):
    dimse, assoc = _receiver(tmp_path, monkeypatch)
    dimse.receive_primitive(_pdata((1, b"\x03" + _store_rq()), (1, b"\x00" + b"ab")))
    assert len(list(tmp_path.iterdir())) == 1
    dimse.discard_partial()  # the association ended inside the data set
    assert not list(tmp_path.iterdir())
    dimse.receive_primitive(_pdata((1, b"\x03" + _store_rq()), (1, b"\x00" + b"ab")))
    dimse.receive_primitive(_pdata((1, b"\x03" + _store_rq())))  # a command inside a data set
    assert assoc.dul.event_queue.get_nowait() == "Evt19"  # invalid PDU: aborted
    assert not list(tmp_path.iterdir()) and dimse.msg_queue.empty()


@pytest.mark.parametrize("command", [
    _store_rq(priority=5),  # C_STORE accepts 0, 1, 2
    _store_rq(instance=b"1." * 40),  # a UID over 64 characters
], ids=["priority 5", "UID of 80 characters"])
def test_a_request_refused_once_its_data_set_is_in_leaves_no_file(tmp_path, monkeypatch,
                                                                  command):
    # pynetdicom's C_STORE refuses these values only when the request is built, after the
    # whole data set arrived: the association is aborted as pynetdicom aborts it, and its
    # file (which pynetdicom's own path would leave in the spool) is deleted.
    dimse, assoc = _receiver(tmp_path, monkeypatch)
    dimse.receive_primitive(_pdata((1, b"\x03" + command), (1, b"\x02" + b"data")))
    assert assoc.dul.event_queue.get_nowait() == "Evt19"
    assert not list(tmp_path.iterdir()) and dimse.msg_queue.empty()


def test_a_uid_that_is_not_ascii_is_left_to_pynetdicom():
    assert store_dimse.parse_store_request(_store_rq()) is not None
    assert store_dimse.parse_store_request(_store_rq(instance=b"1.2.\xe9")) is None


def test_a_peer_claiming_a_pdu_longer_than_the_gateway_reads_is_disconnected(scp):
    # Not even associated: an association request claiming 64 MiB. pynetdicom would wait for
    # it and hold it whole in memory; the gateway closes the connection without reading it.
    with socket.create_connection(("127.0.0.1", scp.port), timeout=10) as peer:
        peer.sendall(struct.pack(">BBL", 0x01, 0, 64 << 20) + b"\0" * 4096)
        peer.settimeout(10)
        try:
            got = peer.recv(1)  # an orderly close (b"") or a reset: either ends it
        except ConnectionResetError:
            got = b""
    assert got == b""
    assert reactor.MAX_PDU == 1 << 20


def test_the_bounded_socket_refuses_before_reading():
    sock = reactor._BoundedSocket.__new__(reactor._BoundedSocket)  # no socket: nothing read
    with pytest.raises(OSError, match="refused"):
        sock.recv(reactor._READ_LIMIT + 1)
