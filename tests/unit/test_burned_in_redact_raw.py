"""Redacted pixels written without reading the file again (#19): ingest takes a native
little-endian Pixel Data value from where it lies in the source and encodes the redacted data
set with the fast header encoder; the stored bytes and the result are those of the reference
path (pydicom reads the whole file, ``DeidResult.to_bytes`` writes it)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from bonebase.dicom import burned_in, stream
from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_result import DeidResult
from bonebase.dicom.stream import PIXEL_DATA
from bonebase.ingest import pixel_text
from bonebase.ingest.process import process_file
from tests.unit.test_burned_in import NAME_AT_EDGE, SECRET, _drawn, _entry, _instance, _write

pytestmark = pytest.mark.skipif(not burned_in.tesseract_available(),
                                reason="Tesseract is not installed (apt install tesseract-ocr)")


def _reference(parts):
    full = pydicom.dcmread(io.BytesIO(parts.fh.getbuffer()) if parts.in_memory else parts.path)
    return full[PIXEL_DATA]


def _case(kind: str) -> pydicom.Dataset:
    pixels = _drawn(NAME_AT_EDGE)
    ds = _instance(pixels, frames=3 if kind == "frames" else 1)
    if kind == "8-bit":
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelData = (pixels >> 4).astype(np.uint8).tobytes()
    elif kind == "monochrome1":
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.PixelData = (4095 - pixels).astype("<u2").tobytes()
    elif kind == "signed":
        ds.PixelRepresentation = 1
        ds.PixelData = (pixels.astype(np.int16) - 2048).astype("<i2").tobytes()
    elif kind == "high-bits":  # bits above BitsStored set: pydicom's decoding masks them
        ds.PixelData = (pixels | 0x8000).astype("<u2").tobytes()
    elif kind == "one-frame":
        ds.NumberOfFrames = 1
    elif kind == "implicit":  # the reference path itself
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return ds


@pytest.mark.parametrize("on_disk", [False, True])
@pytest.mark.parametrize("kind", ["16-bit", "8-bit", "monochrome1", "signed", "frames",
                                  "high-bits", "one-frame", "implicit"])
def test_redacted_file_equals_the_reference_path(tmp_path, monkeypatch, kind, on_disk) -> None:
    path = _write(_case(kind), tmp_path / f"{kind}.dcm")
    if on_disk:  # read from the file (as a file over IN_MEMORY_MAX), not from memory
        monkeypatch.setattr(stream, "IN_MEMORY_MAX", 0)
    deid = Deidentifier(SECRET)
    results, reads = [], []
    read = pydicom.dcmread
    for reference in (False, True):
        staging = tmp_path / f"stage-{reference}"
        staging.mkdir()
        with monkeypatch.context() as m:
            if reference:
                m.setattr(pixel_text, "_pixel_element", _reference)
                m.setattr(DeidResult, "encode_whole", DeidResult.to_bytes)
            else:
                def whole(*args, **kwargs):  # a read of the file with its pixels
                    reads.append(not kwargs.get("stop_before_pixels"))
                    return read(*args, **kwargs)
                m.setattr(pydicom, "dcmread", whole)
            results.append(process_file(_entry(path), deid=deid, site="HX", staging=staging))
    new, ref = results
    assert ref.reason is None, ref.message
    assert ref.extra["burned_in"]["redacted"]
    assert (new.reason, new.extra, new.record) == (ref.reason, ref.extra, ref.record)
    assert Path(new.staged).read_bytes() == Path(ref.staged).read_bytes()
    assert sum(reads) == (kind == "implicit")  # the file is parsed again only there
