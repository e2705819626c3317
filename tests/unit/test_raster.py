"""JPEG and PNG images wrapped as DICOM Secondary Capture (#20 item 2): pixels unchanged or the
change named, metadata cut out of JPEGs without re-encoding, bad files refused with a reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pydicom
import pytest
from PIL import Image

from bonebase.dicom import raster
from bonebase.dicom.raster import RasterError, RowValues, to_part10, wrap

ROW = RowValues(row=4, patient_id="PAT-778812", accession_number="ACC99121", sex="f", age="34",
                modalities="XR", study_date="20240131", position=2)
NAME = "Jane Doe-Smith"


def _ramp(rows=240, cols=320) -> np.ndarray:
    return (np.add.outer(np.arange(rows), np.arange(cols)) % 251).astype(np.uint8)


def _jpeg(arr: np.ndarray, mode: str | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _png_raw(arr: np.ndarray, colour_type: int, depth: int) -> bytes:
    """A PNG written byte by byte (Pillow cannot write 16-bit colour)."""
    rows, cols = arr.shape[:2]
    dtype = ">u2" if depth == 16 else "u1"
    raw = b"".join(b"\x00" + arr[i].astype(dtype).tobytes() for i in range(rows))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    ihdr = struct.pack(">IIBBBBB", cols, rows, depth, colour_type, 0, 0, 0)
    return (raster.PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def _wrap(data: bytes, **kw) -> raster.Wrapped:
    return wrap(data, name="images/x (row 4, image_file)", row=ROW, site="HX",
                source_sha256="ab" * 32, **kw)


def _stored(wrapped: raster.Wrapped) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(to_part10(wrapped.dataset)))


def test_baseline_jpeg_keeps_its_own_bytes_without_exif_or_comments():
    img = Image.fromarray(_ramp())
    exif = img.getexif()
    exif[0x013B] = NAME  # Artist
    exif[0x0132] = "2024:01:31 09:12:00"  # DateTime
    exif[0x010F] = "Hospital Camera Co"
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif, comment=b"patient " + NAME.encode())
    original = buf.getvalue()
    assert NAME.encode() in original
    w = _wrap(original)
    ds = _stored(w)
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
    assert ds.PhotometricInterpretation == "MONOCHROME2" and not w.notes
    assert {"APP1", "COM"} <= set(w.stripped)
    part10 = to_part10(w.dataset)
    assert NAME.encode() not in part10 and b"Exif" not in part10 and b"Camera" not in part10
    fragment = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    # Not re-encoded: the scan data are the original's, so the same decoder gives equal pixels.
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(fragment))),
                          np.asarray(Image.open(io.BytesIO(original))))
    assert original.endswith(fragment[-2000:])  # the entropy-coded data, byte for byte
    # pydicom's decoder (libjpeg) reads it too, within one grey level of Pillow's (IJG) IDCT.
    pillow = np.asarray(Image.open(io.BytesIO(original))).astype(int)
    assert np.abs(ds.pixel_array.astype(int) - pillow).max() <= 1


def test_header_comes_from_the_row_and_uids_repeat_for_the_same_input():
    w1, w2 = _wrap(_jpeg(_ramp())), _wrap(_jpeg(_ramp()))
    ds = w1.dataset
    assert (ds.PatientID, ds.AccessionNumber, ds.PatientSex, ds.PatientAge) == (
        "PAT-778812", "ACC99121", "F", "034Y")
    assert (ds.Modality, ds.StudyDate, ds.InstanceNumber, ds.ConversionType) == (
        "DX", "20240131", 2, "WSD")
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert ds[key].value == w2.dataset[key].value  # a resubmission is the same instance
    # Without accession number or date the case id keys the study, not the row's number.
    moved = wrap(_jpeg(_ramp()), name="x", site="HX", source_sha256="ab" * 32,
                 row=RowValues(row=9, patient_id="P", case_id="BT-7"))
    again = wrap(_jpeg(_ramp()), name="x", site="HX", source_sha256="ab" * 32,
                 row=RowValues(row=2, patient_id="P", case_id="BT-7"))
    assert moved.dataset.StudyInstanceUID == again.dataset.StudyInstanceUID
    assert raster.image_modality("MR") == "MR" and raster.image_modality("XR;MR") == "DX"
    assert raster.image_modality("") == "OT"


def test_exif_orientation_turns_the_image_upright_and_says_so():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _jpeg(_ramp(), exif=exif)
    w = _wrap(data)
    ds = _stored(w)
    decoded = np.asarray(Image.open(io.BytesIO(data)))
    assert (ds.Rows, ds.Columns) == (320, 240)
    assert np.array_equal(ds.pixel_array, np.rot90(decoded, -1))  # the decoded pixels, turned
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert any("EXIF orientation 6" in n for n in w.notes)


def test_colour_jpegs_rgb_kept_cmyk_converted_progressive_decoded():
    rgb = np.stack([_ramp(), _ramp() // 2, 255 - _ramp()], -1)
    w = _wrap(_jpeg(rgb))
    assert w.dataset.PhotometricInterpretation == "YBR_FULL_422" and not w.notes
    assert w.dataset.file_meta.TransferSyntaxUID == pydicom.uid.JPEGBaseline8Bit
    w = _wrap(_jpeg(rgb, subsampling=0))
    assert w.dataset.PhotometricInterpretation == "YBR_FULL"

    cmyk = _jpeg(np.stack([_ramp()] * 4, -1), "CMYK")
    w = _wrap(cmyk)
    ds = _stored(w)
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    assert np.array_equal(ds.pixel_array,
                          np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB")))
    assert any("CMYK" in n for n in w.notes)

    progressive = _jpeg(_ramp(), progressive=True)
    w = _wrap(progressive)
    assert np.array_equal(_stored(w).pixel_array, np.asarray(Image.open(io.BytesIO(progressive))))
    assert any("progressive" in n for n in w.notes)


def test_pngs_are_stored_losslessly_16_bit_grey_included():
    grey16 = (np.add.outer(np.arange(100), np.arange(120)) * 523 % 65536).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, "PNG")
    ds = _stored(_wrap(buf.getvalue()))
    assert (ds.BitsAllocated, ds.BitsStored, ds.PhotometricInterpretation) == (16, 16,
                                                                               "MONOCHROME2")
    assert np.array_equal(ds.pixel_array, grey16)

    rgb = np.stack([_ramp(), _ramp() // 3, 255 - _ramp()], -1)
    ds = _stored(_wrap(_png_raw(rgb, 2, 8)))
    assert ds.PhotometricInterpretation == "RGB" and np.array_equal(ds.pixel_array, rgb)

    opaque = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], -1)
    w = _wrap(_png_raw(opaque, 6, 8))
    assert np.array_equal(_stored(w).pixel_array, rgb) and "opaque alpha" in w.notes[0]

    palette = Image.fromarray(_ramp()).convert("P")
    buf = io.BytesIO()
    palette.save(buf, "PNG")
    w = _wrap(buf.getvalue())
    assert np.array_equal(_stored(w).pixel_array, np.asarray(palette.convert("RGB")))


@pytest.mark.parametrize("what, data, reason", [
    ("16-bit colour", _png_raw(np.zeros((8, 8, 3), np.uint16), 2, 16), "unsupported_image"),
    ("transparency", _png_raw(np.zeros((8, 8, 4), np.uint8), 6, 8), "unsupported_image"),
    ("truncated JPEG", _jpeg(_ramp())[:3000], "corrupt_image"),
    ("JPEG without frame", b"\xff\xd8\xff\xfe\x00\x04hi\xff\xd9", "corrupt_image"),
    ("truncated PNG", _png_raw(_ramp(), 0, 8)[:200], "corrupt_image"),
])
def test_what_cannot_be_stored_unchanged_is_refused_with_its_reason(what, data, reason):
    with pytest.raises(RasterError) as caught:
        _wrap(data)
    assert caught.value.reason == reason, what
    assert str(caught.value).startswith("images/x (row 4, image_file): ")  # file, row, field


def test_pixel_limit_is_checked_in_the_header_before_decoding():
    # Headers claiming 60,000 x 60,000 pixels over a few bytes of data: refused unread.
    png = _png_raw(np.zeros((1, 1), np.uint8), 0, 8)
    png = png[:16] + struct.pack(">II", 60_000, 60_000) + png[24:]
    jpeg = bytearray(_jpeg(_ramp(16, 16)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 60_000, 60_000)
    for data in (png, bytes(jpeg)):
        with pytest.raises(RasterError) as caught:
            _wrap(data, max_pixels=120_000_000)
        assert caught.value.reason == "too_many_pixels"
        assert "60000 x 60000" in str(caught.value)
