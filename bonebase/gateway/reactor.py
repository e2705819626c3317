"""Event-driven reactors for the gateway's pynetdicom associations.

pynetdicom 3.0 runs two polling loops per association: the DUL thread sleeps
``_run_loop_delay`` (1 ms) whenever nothing happened, and the association thread sleeps 1 ms
before every look at its DIMSE message queue. A sender such as ``storescu`` waits for each
C-STORE response before it sends the next instance, so every instance pays those sleeps
three times over (incoming data noticed, request picked up, response noticed), each 1-2 ms on
a loaded machine: more than DCMTK's ``storescp`` spends on the whole instance
(benchmarks/gateway.py). pynetdicom's own source marks the loop "TODO: try and make this
event based".

:func:`make_event_driven` turns a freshly accepted association (before its threads start,
from an ``EVT_CONN_OPEN`` handler) into one whose threads wait on what they wait for:

- the DUL thread blocks in ``select`` on its socket and on a wake-up socket pair that every
  primitive queued for sending (a C-STORE response, a release) writes to;
- the association thread blocks on an event set whenever a DIMSE message or a PDU for the
  user (release request, abort) is queued;
- C-STORE requests are decoded, and their responses encoded, without pydicom
  (:mod:`bonebase.gateway.store_dimse`).

Both waits are bounded (:data:`IDLE_WAIT`) so timers, kills and anything else pynetdicom puts
on its queues are still seen as often as before. Nothing is copied except the association's
reactor loop, which is pynetdicom 3.0's without its sleep; ``tests/gateway/test_reactor.py``
fails when pynetdicom's loop changes, so the copy is looked at again on an upgrade. Other
pynetdicom major versions keep the stock reactors (:func:`supported`).
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import ssl
import threading
import time

import pynetdicom
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pynetdicom.transport import AssociationSocket

from bonebase.gateway.store_dimse import StoreDIMSE

LOG = logging.getLogger("pynetdicom.assoc")  # the logger of the loop mirrored below
IDLE_WAIT = 0.05  # seconds a reactor waits at most before it looks at timers and flags again
#: The largest PDU the gateway announces (A-ASSOCIATE's maximum length) and reads: a peer
#: that claims a longer one is disconnected before its body is read. pynetdicom reads a whole
#: PDU into memory, so without this a peer (even one not allowed: the association request is
#: a PDU too) decides how much memory an association holds. 1 MiB is 8-64 times what PACS and
#: DCMTK send by default, so large PDUs still mean few round trips.
MAX_PDU = 1 << 20
#: Association requests carry no data set, but presentation contexts and user identities can
#: make them long: the bound for any PDU is the larger of the two.
_READ_LIMIT = max(MAX_PDU, 1 << 16)


def supported() -> bool:
    """Whether the installed pynetdicom is the one these reactors were written against, and
    they are not switched off (``BONEBASE_GATEWAY_STOCK_REACTORS=1``: pynetdicom's own polling
    loops, the way back should these ever misbehave with a PACS)."""
    if os.environ.get("BONEBASE_GATEWAY_STOCK_REACTORS") == "1":
        return False
    return pynetdicom.__version__.split(".")[0] == "3"


def make_event_driven(assoc: Association) -> None:
    """Switch a not yet started acceptor association to the event-driven reactors."""
    if not supported() or assoc.is_alive():
        return
    # pynetdicom's request handler builds these objects itself; new ones would lose what they
    # already hold (the socket, the queued transport-connected event, the timers' settings),
    # so the existing ones change class (subclasses adding no state of their own but the
    # wake-ups set up here).
    wake = threading.Event()
    dul = assoc.dul
    if type(dul.socket) is AssociationSocket:
        dul.socket.__class__ = _BoundedSocket
    dul.__class__ = EventDUL
    dul._setup_wake()
    dul.to_user_queue = _WakeQueue(wake, dul.to_user_queue)
    assoc.dimse.__class__ = EventDIMSE
    assoc.dimse._wake = wake
    assoc.dimse.use_bytes()
    assoc.dimse.msg_queue = _WakeQueue(wake, assoc.dimse.msg_queue)
    assoc.__class__ = EventAssociation


class _BoundedSocket(AssociationSocket):
    """An association's socket that refuses to read a PDU longer than :data:`MAX_PDU`: the
    DUL sees a transport failure (Evt17) and closes the connection, nothing of it read."""

    def recv(self, nr_bytes: int) -> bytearray:
        if nr_bytes > _READ_LIMIT:
            LOG.warning("a PDU of %d bytes from %s is longer than the gateway reads (%d): "
                        "connection closed", nr_bytes, self._peer(), _READ_LIMIT)
            raise OSError(f"PDU of {nr_bytes} bytes refused (at most {_READ_LIMIT})")
        return super().recv(nr_bytes)

    def _peer(self) -> str:
        try:
            sock = getattr(self, "socket", None)
            return str(sock.getpeername()[0]) if sock else "?"
        except OSError:
            return "?"


class _WakeQueue(queue.Queue):
    """A queue that sets ``wake`` whenever something is put on it (keeps what ``old`` held)."""

    def __init__(self, wake: threading.Event, old: queue.Queue) -> None:
        super().__init__()
        self._wake = wake
        while True:
            try:
                super().put(old.get_nowait())
            except queue.Empty:
                break

    def put(self, item, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._wake.set()


class EventDUL(DULServiceProvider):
    """The DUL reactor, waiting in ``select`` instead of sleeping between loops."""

    def _setup_wake(self) -> None:
        self._run_loop_delay = 0  # the wait happens in _is_transport_event instead
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def _wake_up(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed (the reactor ended)
            pass

    def send_pdu(self, primitive) -> None:
        super().send_pdu(primitive)
        self._wake_up()

    def kill_dul(self) -> None:
        super().kill_dul()
        self._wake_up()

    def stop_dul(self) -> bool:
        if self.state_machine.current_state != "Sta1":
            return False
        self._kill_thread = True
        self._wake_up()
        while self.is_alive():
            time.sleep(0.001)
        return True

    def _is_transport_event(self) -> bool:
        # Called when no primitive waits to be sent: wait for data, a primitive or a kill.
        if self.event_queue.empty() and not self._kill_thread:
            self._wait_for_io()
        return super()._is_transport_event()

    def _wait_for_io(self) -> None:
        sock = getattr(self.socket, "socket", None)
        if sock is None or not getattr(self.socket, "_is_connected", False):
            time.sleep(0.001)  # no connection to wait on: poll as pynetdicom does
            return
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return  # decrypted bytes already buffered: select would not see them
        try:
            ready, _, _ = select.select([sock, self._wake_r], [], [], IDLE_WAIT)
        except (OSError, ValueError):  # closed under us: the reactor notices next loop
            time.sleep(0.001)
            return
        if self._wake_r in ready:
            try:
                while self._wake_r.recv(4096):
                    pass
            except OSError:
                pass

    def run(self) -> None:
        # run(), not run_reactor(): the thread's target was bound to the DUL's own
        # run_reactor when it was made, before its class changed, so an override of
        # run_reactor never runs; Thread.start() looks run() up on the class it has now.
        try:
            super().run()
        finally:
            self._wake_r.close()
            self._wake_w.close()
            if isinstance(self.assoc.dimse, StoreDIMSE):  # ended inside a data set
                self.assoc.dimse.discard_partial()


class EventDIMSE(StoreDIMSE):
    """DIMSE provider whose non-blocking ``get_msg`` waits (at most :data:`IDLE_WAIT`) for a
    message, or for a PDU for the user that the association's reactor must act on; C-STORE
    requests and responses in bytes (:mod:`bonebase.gateway.store_dimse`)."""

    _wake: threading.Event

    def get_msg(self, block: bool = False):
        if block:
            return super().get_msg(block=True)
        try:
            return self.msg_queue.get_nowait()
        except queue.Empty:
            pass
        self._wake.wait(IDLE_WAIT)
        self._wake.clear()  # whatever set it is looked at below or by the reactor's checks
        try:
            return self.msg_queue.get_nowait()
        except queue.Empty:
            return None, None


class EventAssociation(Association):
    """An acceptor association whose reactor waits on :class:`EventDIMSE` instead of
    sleeping 1 ms per loop; otherwise pynetdicom 3.0's ``Association._run_reactor``."""

    def _run_reactor(self) -> None:
        self._is_paused = False
        while not self._kill:
            # the reactor can be paused while the user sends DIMSE messages itself
            self._is_paused = True
            self._reactor_checkpoint.wait()
            self._is_paused = False

            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, context_id)

            if self.is_established and self.acse.is_release_requested():
                self.acse.send_release(is_response=True)
                LOG.info("Association Released")
                self.is_released = True
                self.is_established = False
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return

            if self.acse.is_aborted():
                log_msg = "Association Aborted"
                if self.acse.is_aborted("a-p-abort"):
                    log_msg += " (A-P-ABORT)"
                LOG.info(log_msg)
                self.dul.receive_pdu(wait=False)  # EVT_ACSE_RECV fires for subscribers
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return

            if not self.dul.is_alive():
                self.kill()
                return

            if self.dul.idle_timer_expired():
                LOG.error("Network timeout reached")
                if self.network_timeout_response == "A-RELEASE":
                    self._is_paused = True
                    self._reactor_checkpoint.wait()
                    self.release()
                    self._is_paused = False
                else:
                    self.abort()
                self.kill()
                return
