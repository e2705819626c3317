"""The gateway's DICOM Storage SCP (pynetdicom): C-STORE for the image SOP classes of
radiographs, CT and MR, and C-ECHO; only allowed peers may associate.

Instances are received in chunks straight into a temporary file in the spool's own folder
(``STORE_RECV_CHUNKED_DATASET``), so memory does not grow with the file and taking the file into
its study is a link, not a copy; success is answered only once :meth:`Spool.store` has made it
durable.
"""

from __future__ import annotations

import logging
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, _config, evt
from pynetdicom.sop_class import Verification

from bonebase.gateway import peers as peer_list
from bonebase.gateway import reactor
from bonebase.gateway.spool import SOP_CLASSES, Refused, Spool

LOG = logging.getLogger("bonebase.gateway")
# The usual transfer syntaxes of radiographs, CT and MR: uncompressed, JPEG, JPEG-LS,
# JPEG 2000, RLE. Received as sent; decoding happens at de-identification if at all.
TRANSFER_SYNTAXES = [
    ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLosslessSV1,
    JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless,
]


@dataclass
class ScpConfig:
    ae_title: str = "BONEBASE"
    host: str = "0.0.0.0"
    port: int = 11112
    max_associations: int = 8
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None  # when given, peers must present a certificate it signed


def _ssl_context(cfg: ScpConfig) -> ssl.SSLContext | None:
    if cfg.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile=str(cfg.tls_cert), keyfile=str(cfg.tls_key or cfg.tls_cert))
    if cfg.tls_ca is not None:
        context.load_verify_locations(cafile=str(cfg.tls_ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class StorageSCP:
    """One running Storage SCP over a :class:`Spool`; :meth:`start` returns at once."""

    def __init__(self, spool: Spool, cfg: ScpConfig) -> None:
        self.spool, self.cfg = spool, cfg
        self._server = None

    def start(self):
        _config.STORE_RECV_CHUNKED_DATASET = True
        if not logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
            # pynetdicom's standard handlers summarise every PDU and DIMSE message for its INFO
            # and DEBUG logs: work for nothing when those are off (and they keep C-STORE on
            # pydicom's path: bonebase.gateway.store_dimse).
            _config.LOG_HANDLER_LEVEL = "none"
        # pynetdicom writes chunked receives with tempfile.NamedTemporaryFile: into the spool.
        tempfile.tempdir = str(self.spool.home.incoming)
        ae = AE(ae_title=self.cfg.ae_title)
        ae.maximum_associations = self.cfg.max_associations
        # Large PDUs, few round trips, and a bound: a peer claiming a longer one is
        # disconnected before it is read (bonebase.gateway.reactor.MAX_PDU).
        ae.maximum_pdu_size = reactor.MAX_PDU
        for uid in SOP_CLASSES:
            ae.add_supported_context(uid, TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        # EVT_CONN_OPEN fires before the association's threads start: the moment to make
        # its reactors event-driven (bonebase.gateway.reactor: no 1 ms polls per instance).
        handlers = [(evt.EVT_CONN_OPEN, lambda event: reactor.make_event_driven(event.assoc)),
                    (evt.EVT_REQUESTED, self._on_request), (evt.EVT_C_STORE, self._on_store),
                    (evt.EVT_C_ECHO, lambda event: 0x0000)]
        self._server = ae.start_server((self.cfg.host, self.cfg.port), block=False,
                                       evt_handlers=handlers, ssl_context=_ssl_context(self.cfg))
        return self._server

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_request(self, event) -> None:
        """Reject an association whose calling AE title (and address) is not allowed."""
        calling = event.assoc.requestor.primitive.calling_ae_title
        address = event.assoc.requestor.address
        try:
            allowed = peer_list.is_allowed(peer_list.load(self.spool.home.peers_file),
                                           calling, address)
        except Exception:  # noqa: BLE001 - an unreadable peers file allows nobody
            allowed = False
        if not allowed:
            LOG.warning("association from %s (calling AE %r) rejected: not an allowed peer "
                        "(`bonebase gateway allow AE --host ADDR`)", address, calling.strip())
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)  # permanent: calling AE not recognised
            event.assoc.is_rejected = True
            event.assoc.kill()

    def _on_store(self, event) -> int:
        try:
            stored = self.spool.store(event.dataset_path,
                                      sop_class_uid=str(event.request.AffectedSOPClassUID))
        except Refused as refused:
            LOG.warning("C-STORE from %s refused (0x%04X): %s",
                        event.assoc.requestor.ae_title.strip(), refused.status, refused.reason)
            return refused.status
        LOG.info("stored an instance of study %s (%d bytes)", stored.study_key, stored.size)
        return 0x0000
