"""C-STORE requests decoded and C-STORE responses encoded without pydicom, for the gateway's
event-driven associations (:mod:`bonebase.gateway.reactor`).

pynetdicom 3.0 decodes every command set and writes every received file's meta information
through pydicom datasets, and builds every response the same way: about 1.5 ms of a loaded
machine's CPU per instance (benchmarks/gateway.py), more than DCMTK's ``storescp`` spends on
the whole instance. A C-STORE command set is a handful of fixed elements in Implicit VR Little
Endian, so :class:`StoreDIMSE` reads and writes those bytes directly:

- a P-DATA whose first fragment is a complete C-STORE-RQ command set of elements it knows is
  received here: the file (``STORE_RECV_CHUNKED_DATASET``'s temporary file, the same bytes
  pynetdicom writes) gets the file meta information and then every data set fragment, and
  the finished request goes on the message queue as the same primitive pynetdicom would put
  there, so ``EVT_C_STORE``, the service class and its statuses are pynetdicom's own;
- a C-STORE-RSP that carries nothing but its status is encoded here.

Anything else (other messages, unknown command elements, fragmented command sets, bound
``EVT_DIMSE_RECV``/``EVT_DIMSE_SENT`` handlers) takes pynetdicom's path unchanged, and so does
everything when ``BONEBASE_GATEWAY_PYDICOM_STORE=1`` (the way back should a PACS ever need it;
benchmarks/gateway.py compares both).
``tests/gateway/test_reactor.py`` compares these bytes with pynetdicom's.
"""

from __future__ import annotations

import os
import struct
from io import BytesIO
from pathlib import Path
from tempfile import NamedTemporaryFile

from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    _config,
    evt,
)
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

from bonebase.gateway.journal import start_writeback

# Command set elements (group 0000) a C-STORE-RQ may carry, by element number (PS3.7 9.3.1.1)
_GROUP_LENGTH, _SOP_CLASS, _FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE, _SOP_INSTANCE = (
    0x0000, 0x0002, 0x0100, 0x0110, 0x0700, 0x0800, 0x1000)
_MOVE_AE, _MOVE_ID = 0x1030, 0x1031
_STORE_RQ_ELEMENTS = {_GROUP_LENGTH, _SOP_CLASS, _FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE,
                      _SOP_INSTANCE, _MOVE_AE, _MOVE_ID}
C_STORE_RQ, C_STORE_RSP, NO_DATA_SET = 0x0001, 0x8001, 0x0101
_VERSION = PYNETDICOM_IMPLEMENTATION_VERSION.encode("ascii")
_VERSION += b" " * (len(_VERSION) % 2)


def _uid(value: str) -> bytes:
    raw = str(value).encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def _implicit(element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", 0, element, len(value)) + value


def _explicit(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return struct.pack("<HH", 2, element) + vr + struct.pack("<2xI", len(value)) + value
    return struct.pack("<HH", 2, element) + vr + struct.pack("<H", len(value)) + value


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    """Preamble, prefix and file meta information as pynetdicom writes them before a chunked
    data set (``create_file_meta`` + ``write_file_meta_info``)."""
    body = b"".join((
        _explicit(0x0001, b"OB", b"\0\1"), _explicit(0x0002, b"UI", _uid(sop_class)),
        _explicit(0x0003, b"UI", _uid(sop_instance)),
        _explicit(0x0010, b"UI", _uid(transfer_syntax)),
        _explicit(0x0012, b"UI", _uid(PYNETDICOM_IMPLEMENTATION_UID)),
        _explicit(0x0013, b"SH", _VERSION)))
    return b"\0" * 128 + b"DICM" + _explicit(0x0000, b"UL", struct.pack("<I", len(body))) + body


def store_response(sop_class: str, message_id: int, status: int, sop_instance: str) -> bytes:
    """The command set of a C-STORE-RSP without error comment or offending element."""
    body = b"".join((
        _implicit(_SOP_CLASS, _uid(sop_class)), _implicit(_FIELD, struct.pack("<H", C_STORE_RSP)),
        _implicit(0x0120, struct.pack("<H", message_id)),
        _implicit(_DATA_SET_TYPE, struct.pack("<H", NO_DATA_SET)),
        _implicit(0x0900, struct.pack("<H", status)), _implicit(_SOP_INSTANCE, _uid(sop_instance))))
    return _implicit(_GROUP_LENGTH, struct.pack("<I", len(body))) + body


def parse_store_request(command: bytes | memoryview) -> dict[int, bytes] | None:
    """The elements of a C-STORE-RQ command set with a data set; None for anything else."""
    elements, at, end = {}, 0, len(command)
    while at < end:
        if at + 8 > end:
            return None
        group, element, length = struct.unpack_from("<HHI", command, at)
        at += 8
        if group != 0 or element not in _STORE_RQ_ELEMENTS or at + length > end:
            return None
        elements[element] = bytes(command[at:at + length])
        at += length
    if (_us(elements.get(_FIELD)) != C_STORE_RQ or _us(elements.get(_MESSAGE_ID)) is None
            or _us(elements.get(_DATA_SET_TYPE)) in (None, NO_DATA_SET)
            or not elements.get(_SOP_CLASS) or not elements.get(_SOP_INSTANCE)):
        return None
    # A UID that is not ASCII: pynetdicom's path reads it as pydicom does (ISO 8859) and hands
    # the instance to the handler; here it could not be written into the file meta.
    if any(max(elements[key], default=0) >= 0x80 for key in (_SOP_CLASS, _SOP_INSTANCE)):
        return None
    return elements


def _us(value: bytes | None) -> int | None:
    return struct.unpack("<H", value)[0] if value is not None and len(value) == 2 else None


def _text(value: bytes) -> str:
    return value.decode("ascii", "replace").rstrip("\0 ").strip()


class _Receiving:
    """A C-STORE-RQ whose data set is being written to ``file``."""

    def __init__(self, context_id: int, command: dict[int, bytes], file) -> None:
        self.context_id, self.command, self.file = context_id, command, file

    def discard(self) -> None:
        self.file.close()
        Path(self.file.name).unlink(missing_ok=True)

    def primitive(self) -> C_STORE:
        """The request as pynetdicom's ``message_to_primitive`` makes it."""
        cmd, req = self.command, C_STORE()
        req.MessageID = _us(cmd[_MESSAGE_ID])
        req.AffectedSOPClassUID = _text(cmd[_SOP_CLASS])
        req.AffectedSOPInstanceUID = _text(cmd[_SOP_INSTANCE])
        priority = _us(cmd.get(_PRIORITY))
        req.Priority = 0x02 if priority is None else priority
        if _MOVE_AE in cmd:
            req.MoveOriginatorApplicationEntityTitle = _text(cmd[_MOVE_AE])
        if _MOVE_ID in cmd:
            req.MoveOriginatorMessageID = _us(cmd[_MOVE_ID])
        req.DataSet = BytesIO()
        req._context_id = self.context_id
        req._dataset_path = Path(self.file.name)
        req._dataset_file = self.file
        return req


class StoreDIMSE(DIMSEServiceProvider):
    """pynetdicom's DIMSE provider with C-STORE requests and responses done in bytes."""

    _receiving: _Receiving | None = None
    in_bytes = True  # False: pynetdicom's own path for everything

    def use_bytes(self) -> None:
        self.in_bytes = os.environ.get("BONEBASE_GATEWAY_PYDICOM_STORE") != "1"

    def receive_primitive(self, primitive: P_DATA) -> None:
        pdvs = primitive.presentation_data_value_list
        first = 0
        if self._receiving is None:
            self._receiving = self._start(pdvs)
            if self._receiving is None:
                super().receive_primitive(primitive)
                return
            first = 1
        receiving = self._receiving
        for context_id, data in pdvs[first:]:
            if data[0] & 1 or context_id != receiving.context_id:
                # a command, or another context, before the data set's last fragment
                receiving.discard()
                self._receiving = None
                self.dul.event_queue.put("Evt19")  # invalid PDU: the association is aborted
                return
            receiving.file.write(memoryview(data)[1:])
            receiving.file.flush()
            # the answer waits for the file on disk: its writing starts while the rest arrives
            start_writeback(receiving.file.fileno())
            if data[0] & 2:  # the last fragment
                self._receiving = None
                try:
                    request = receiving.primitive()
                except Exception:  # noqa: BLE001 - a value C_STORE refuses: nothing is kept
                    receiving.discard()
                    self.dul.event_queue.put("Evt19")  # as pynetdicom aborts an undecodable one
                    return
                self.msg_queue.put((receiving.context_id, request))
                return

    def _start(self, pdvs) -> _Receiving | None:
        """A C-STORE-RQ to receive here, if the P-DATA starts one that this path takes."""
        if (not self.in_bytes or self.message is not None or not pdvs
                or not _config.STORE_RECV_CHUNKED_DATASET):
            return None
        context_id, data = pdvs[0]
        if data[0] & 3 != 3 or self.assoc.get_handlers(evt.EVT_DIMSE_RECV):
            return None  # not a whole command set in one fragment, or someone listens
        context = self.assoc._accepted_cx.get(context_id)
        command = parse_store_request(memoryview(data)[1:])
        if command is None or context is None:
            return None
        # as pynetdicom: delete=False, the service class closes and deletes it after the handler
        file = NamedTemporaryFile(delete=False, mode="wb", suffix=".dcm")
        try:
            file.write(file_meta(_text(command[_SOP_CLASS]), _text(command[_SOP_INSTANCE]),
                                 context.transfer_syntax[0]))
        except BaseException:
            file.close()
            os.unlink(file.name)
            raise
        return _Receiving(context_id, command, file)

    def send_msg(self, primitive, context_id: int) -> None:
        if (self.in_bytes and type(primitive) is C_STORE
                and primitive.MessageIDBeingRespondedTo is not None
                and primitive.AffectedSOPClassUID and primitive.AffectedSOPInstanceUID
                and isinstance(primitive.Status, int) and primitive.ErrorComment is None
                and primitive.OffendingElement is None
                and not self.assoc.get_handlers(evt.EVT_DIMSE_SENT)):
            command = store_response(primitive.AffectedSOPClassUID,
                                     primitive.MessageIDBeingRespondedTo, primitive.Status,
                                     primitive.AffectedSOPInstanceUID)
            if not self.maximum_pdu_size or len(command) + 1 <= self.maximum_pdu_size - 6:
                pdata = P_DATA()
                pdata.presentation_data_value_list = [[context_id, b"\x03" + command]]
                self.dul.send_pdu(pdata)
                return
        super().send_msg(primitive, context_id)

    def discard_partial(self) -> None:
        """Delete the file of a request the association ended in the middle of (never
        acknowledged)."""
        if self._receiving is not None:
            self._receiving.discard()
            self._receiving = None
