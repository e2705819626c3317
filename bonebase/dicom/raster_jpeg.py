"""JPEG streams read marker by marker (bonebase.dicom.raster): the frame header, the Adobe
colour transform, and the stream with its metadata segments cut out, scan data untouched.

APP0-APP13 and APP15 (JFIF, EXIF with camera, dates, GPS and names, XMP, ICC ...), comments and
any bytes after end-of-image go; the Adobe APP14 segment stays (it says whether three components
are RGB or YCbCr, four CMYK or YCCK). A stream that ends early or breaks its markers is
``corrupt_image``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bonebase.errors import InputError

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_KEPT_APP = {0xEE}  # Adobe APP14: how the components are coded, nothing about the patient
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7
_RESEND = "export the image again (JPEG, PNG or DICOM) and resubmit"


class RasterError(InputError):
    """A JPEG or PNG that cannot be stored as it is; ``reason`` is its quarantine reason."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class JpegStream:
    sof: int
    precision: int
    rows: int
    columns: int
    components: int
    sampling: list[tuple[int, int]]
    adobe_transform: int | None
    clean: bytes  # the stream without APPn (but APP14), COM, and anything after EOI
    stripped: list[str]


def _corrupt(name: str, what: str) -> RasterError:
    return RasterError(f"{name}: the JPEG file is corrupt or truncated ({what}); {_RESEND}",
                       reason="corrupt_image")


def parse_jpeg(data: bytes, name: str) -> JpegStream:
    """Walk the JPEG's markers: frame header, Adobe transform, and the stream with its
    metadata segments cut out (scan data untouched). Raises corrupt_image on a broken stream."""
    if not data.startswith(b"\xff\xd8"):
        raise _corrupt(name, "no start-of-image marker")
    out = [b"\xff\xd8"]
    stripped: list[str] = []
    pos, n = 2, len(data)
    frame = None
    adobe = None
    scans = 0
    while True:
        if pos >= n:
            raise _corrupt(name, "it ends before its end-of-image marker")
        if data[pos] != 0xFF:
            raise _corrupt(name, f"no marker at byte {pos}")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            raise _corrupt(name, "it ends inside a marker")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI: what follows (trailers, other images) is not kept
            out.append(b"\xff\xd9")
            if pos < n:
                stripped.append("data after end of image")
            break
        if marker in _STANDALONE:
            out.append(bytes((0xFF, marker)))
            continue
        if pos + 2 > n:
            raise _corrupt(name, "it ends inside a segment")
        length = struct.unpack(">H", data[pos:pos + 2])[0]
        end = pos + length
        if length < 2 or end > n:
            raise _corrupt(name, f"segment FF{marker:02X} runs past the end of the file")
        body = data[pos + 2:end]
        if marker in _SOF:
            if frame is not None or len(body) < 6:
                raise _corrupt(name, "a second or short frame header")
            precision, rows, cols, comps = struct.unpack(">BHHB", body[:6])
            if len(body) < 6 + 3 * comps:
                raise _corrupt(name, "short frame header")
            sampling = [(body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(comps)]
            frame = (marker, precision, rows, cols, comps, sampling)
        if 0xE0 <= marker <= 0xEF and marker not in _KEPT_APP or marker == 0xFE:
            stripped.append("COM" if marker == 0xFE else f"APP{marker - 0xE0}")
            pos = end
            continue
        if marker == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
            adobe = body[11]
        out.append(data[pos - 2:end])
        pos = end
        if marker == 0xDA:  # scan data up to the next marker that is not RSTn or a stuffed 00
            if frame is None:
                raise _corrupt(name, "a scan before the frame header")
            scans += 1
            start = pos
            while True:
                hit = data.find(b"\xff", pos)
                if hit < 0 or hit + 1 >= n:
                    raise _corrupt(name, "it ends inside the image data")
                following = data[hit + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
                    pos = hit + (2 if following != 0xFF else 1)
                    continue
                out.append(data[start:hit])
                pos = hit
                break
    if frame is None or not scans:
        raise _corrupt(name, "no frame header or no image data")
    marker, precision, rows, cols, comps, sampling = frame
    return JpegStream(marker, precision, rows, cols, comps, sampling, adobe, b"".join(out),
                      stripped)


def jpeg_photometric(stream: JpegStream) -> str | None:
    """PhotometricInterpretation of the JPEG's own bytes, or None when they cannot be kept."""
    if stream.components == 1:
        return "MONOCHROME2"
    if stream.components != 3:
        return None  # CMYK / YCCK: no DICOM form
    if stream.adobe_transform == 0:
        return "RGB"
    subsampled = len({s for s in stream.sampling}) > 1
    return "YBR_FULL_422" if subsampled else "YBR_FULL"


# -- decoding (Pillow), bounded ----------------------------------------------------------------
