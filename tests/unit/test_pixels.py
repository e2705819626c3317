"""Radiograph normalisation: modality LUT → VOI LUT/window → MONOCHROME1, on in-memory datasets;
multi-frame images frame by frame."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from bonebase.dicom.pixels import (
    MultiFrameError,
    frame_count,
    frame_to_float,
    frame_view,
    radiograph_to_float,
    resize_keep_aspect,
    to_uint,
)
from bonebase.errors import InputError

RAMP = np.arange(4096, dtype=np.uint16).reshape(64, 64)  # every 12-bit value once, row-major


def make_ds(arr=RAMP, *, photometric="MONOCHROME2", bits=12, **attrs) -> Dataset:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3.4"
    ds.set_pixel_data(arr, photometric, bits)
    for name, value in attrs.items():
        setattr(ds, name, value)
    return ds


def add_voi_lut(ds: Dataset, data: list[int], *, first: int = 0, bits: int = 16) -> Dataset:
    item = Dataset()
    item.add_new(0x00283002, "US", [len(data), first, bits])  # LUT Descriptor
    item.add_new(0x00283006, "US", data)  # LUT Data
    ds.VOILUTSequence = [item]
    return ds


def at(out: np.ndarray, stored: int) -> float:
    return float(out.flat[stored])  # RAMP holds value v at flat index v


def test_output_is_2d_float32_in_unit_range_and_monotonic():
    out = radiograph_to_float(make_ds())
    assert out.shape == (64, 64) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.all(np.diff(out.ravel()) >= 0)  # brighter stored value, brighter output


def test_robust_window_ignores_outliers():
    rng = np.random.default_rng(0)
    arr = rng.integers(1000, 2001, size=(100, 100), dtype=np.uint16)
    arr.flat[:10] = 65535  # burned-in marker pixels
    out = radiograph_to_float(make_ds(arr, bits=16))
    # A min/max window would squash the anatomy below 0.02; the percentile window keeps it spread.
    assert 0.35 < float(np.median(out)) < 0.65
    assert np.all(out.flat[:10] == 1.0)


def test_monochrome1_is_the_inverse_of_monochrome2():
    mono2 = radiograph_to_float(make_ds())
    mono1 = radiograph_to_float(make_ds(photometric="MONOCHROME1"))
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)


def test_window_applies_to_rescaled_values():
    # Rescaled value = 2 * stored - 1000; the window [-100, 100] is in rescaled units.
    ds = make_ds(RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=200)
    out = radiograph_to_float(ds)
    assert at(out, 450) == 0.0 and at(out, 449) == 0.0  # rescaled -100 and below
    assert at(out, 551) == 1.0 and at(out, 4095) == 1.0  # rescaled above +100
    assert at(out, 500) == pytest.approx(0.5, abs=0.01)  # rescaled 0: the window centre
    # Without the rescale the same window would put every stored value (>= 0) above -100.
    assert at(out, 0) == 0.0


def test_monochrome1_inversion_comes_after_the_window():
    ds = make_ds(photometric="MONOCHROME1", WindowCenter=1000, WindowWidth=101)
    out = radiograph_to_float(ds)
    # VOI first: 0 is below the window → 0 → inverted to 1; 4095 is above → 1 → 0; the centre
    # stays mid-grey. Inverting the stored values first would map the centre (1000 → 3095)
    # above the window, i.e. to 1.
    assert at(out, 0) == 1.0 and at(out, 4095) == 0.0
    assert at(out, 1000) == pytest.approx(0.5, abs=0.01)
    assert at(out, 1100) == 0.0 and at(out, 900) == 1.0


def test_first_of_several_windows_is_used():
    ds = make_ds(WindowCenter=[1000, 3000], WindowWidth=[101, 101])
    out = radiograph_to_float(ds)
    assert at(out, 1000) == pytest.approx(0.5, abs=0.01) and at(out, 3000) == 1.0


def test_signed_pixels_with_window():
    arr = np.arange(-2048, 2048, dtype=np.int16).reshape(64, 64)
    ds = make_ds(arr, WindowCenter=0, WindowWidth=101)
    out = radiograph_to_float(ds)
    assert ds.PixelRepresentation == 1
    assert at(out, 2048) == pytest.approx(0.5, abs=0.01)  # stored 0
    assert at(out, 0) == 0.0 and at(out, 4095) == 1.0


def test_voi_lut_sequence_is_preferred_and_scaled_by_its_entries():
    # A 16-bit LUT whose entries stop at 4095 (a common vendor quirk), mapping 0..255 upward
    # and clamping everything beyond 255 to the top entry.
    lut = [int(v) for v in np.linspace(0, 4095, 256)]
    ds = add_voi_lut(make_ds(WindowCenter=3000, WindowWidth=10), lut)
    out = radiograph_to_float(ds)
    assert at(out, 0) == 0.0
    assert at(out, 255) == 1.0 and at(out, 4095) == 1.0  # clamped to the last entry
    assert at(out, 128) == pytest.approx(lut[128] / 4095, abs=1e-6)  # not lut[128] / 65535


def test_voi_lut_with_first_mapped_value_and_monochrome1():
    lut = list(range(0, 1000, 10))  # 100 entries, from stored value 2000 on
    ds = add_voi_lut(make_ds(photometric="MONOCHROME1"), lut, first=2000)
    out = radiograph_to_float(ds)
    assert at(out, 0) == 1.0 and at(out, 1999) == 1.0  # below the first entry → 0 → inverted
    assert at(out, 2099) == 0.0 and at(out, 4095) == 0.0
    assert at(out, 2050) == pytest.approx(1 - 500 / 990, abs=1e-6)


@pytest.mark.parametrize(
    "attrs",
    [{}, {"WindowCenter": 100, "WindowWidth": 50}, {"RescaleSlope": 0.5, "RescaleIntercept": 3}],
)
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_constant_image_gives_zeros_without_nan(photometric, attrs):
    ds = make_ds(np.full((8, 9), 77, np.uint16), photometric=photometric, **attrs)
    out = radiograph_to_float(ds)
    assert out.shape == (8, 9) and out.dtype == np.float32
    assert not np.isnan(out).any() and np.all(out == 0)


def test_multi_frame_is_refused():
    ds = make_ds(np.zeros((3, 8, 8), np.uint16))
    assert ds.NumberOfFrames == 3
    with pytest.raises(InputError, match="3 frames"):
        radiograph_to_float(ds)


def test_colour_radiograph_is_its_luma_and_palette_and_pixel_less_are_refused():
    # A JPEG/PNG export wrapped as DICOM may be RGB: equal channels keep their grey values.
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    rgb = make_ds(np.stack([grey, grey, grey], -1), photometric="RGB", bits=8)
    assert np.allclose(radiograph_to_float(rgb), radiograph_to_float(make_ds(grey, bits=8)))
    red = make_ds(np.stack([grey, 0 * grey, 0 * grey], -1), photometric="RGB", bits=8)
    assert radiograph_to_float(red).max() == 1.0  # luma of pure red still windows to [0, 1]
    palette = make_ds(grey, photometric="PALETTE COLOR", bits=8)
    with pytest.raises(InputError, match="MONOCHROME1, MONOCHROME2 or RGB"):
        radiograph_to_float(palette)
    with pytest.raises(InputError, match="no Pixel Data"):
        radiograph_to_float(Dataset())


def test_bad_window_width_names_the_field():
    with pytest.raises(InputError, match="Window Center/Width"):
        radiograph_to_float(make_ds(WindowCenter=100, WindowWidth=0))


def test_resize_keeps_aspect_and_pads_with_zero():
    img = np.ones((300, 600), np.float32)
    out = resize_keep_aspect(img, 64)
    assert out.shape == (64, 64) and out.dtype == np.float32
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert len(rows) == 32 and np.all(out[rows] == 1.0)  # 600→64 wide, 300→32 high, no dark rim
    assert np.all(out[: rows[0]] == 0) and np.all(out[rows[-1] + 1 :] == 0)


def test_resize_averages_when_shrinking_and_upsamples_small_images():
    stripes = np.zeros((40, 40), np.float32)
    stripes[::2] = 1.0
    assert np.allclose(resize_keep_aspect(stripes, 10), 0.5)  # no aliasing into bands
    noise = np.random.default_rng(1).random((40, 40), dtype=np.float32)
    blocks = noise.reshape(10, 4, 10, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(resize_keep_aspect(noise, 10), blocks, atol=1e-6)
    small = resize_keep_aspect(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), 8)
    assert small.shape == (8, 8)
    assert small[0].max() == 0 and small[-1].max() == 0  # 3x4 → 6x8, one padded row each side
    assert 0.0 <= small.min() and small.max() <= 1.0
    with pytest.raises(InputError):
        resize_keep_aspect(np.zeros((2, 2, 2)), 8)


def test_to_uint():
    img = np.array([[0.0, 0.5, 1.0, 1.2, -0.1]], np.float32)
    assert to_uint(img).tolist() == [[0, 128, 255, 255, 0]]
    assert to_uint(img).dtype == np.uint8
    as16 = to_uint(img, bits=16)
    assert as16.dtype == np.uint16 and as16.tolist() == [[0, 32768, 65535, 65535, 0]]
    with pytest.raises(InputError, match="8 or 16"):
        to_uint(img, bits=12)
    with pytest.raises(InputError, match="NaN"):
        to_uint(np.array([np.nan], np.float32))


def _multi_frame_file(frames: np.ndarray, **attrs) -> tuple[Dataset, io.BytesIO]:
    """A multi-frame image as a file in memory, and its header read without the pixels."""
    ds = make_ds(frames, bits=16, **attrs)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return pydicom.dcmread(buf, stop_before_pixels=True), buf


def _group(**values) -> Dataset:
    item = Dataset()
    for name, value in values.items():
        setattr(item, name, value)
    return item


def test_each_frame_is_rendered_alone_from_the_file():
    reversed_ramp = RAMP.ravel()[::-1].reshape(64, 64)
    header, source = _multi_frame_file(
        np.stack([RAMP, reversed_ramp, np.full((64, 64), 9, np.uint16)]))
    assert frame_count(header) == 3 and "PixelData" not in header
    np.testing.assert_array_equal(frame_to_float(header, 1, source=source),
                                  radiograph_to_float(make_ds()))
    second = frame_to_float(header, 2, source=source)
    assert at(second, 0) == 1.0 and at(second, 4095) == 0.0  # the reversed ramp, not frame 1
    assert np.all(frame_to_float(header, 3, source=source) == 0)  # a constant frame
    # Frame 1 of a single-frame image is the radiograph pipeline itself.
    ds = make_ds(WindowCenter=2048, WindowWidth=1000)
    np.testing.assert_array_equal(frame_to_float(ds, 1), radiograph_to_float(ds))


@pytest.mark.parametrize("number", [0, 4, -1, True, 2.0])
def test_a_frame_that_does_not_exist_names_the_range(number):
    header, source = _multi_frame_file(np.zeros((3, 8, 8), np.uint16))
    with pytest.raises(InputError, match="ask for a frame from 1 to 3"):
        frame_to_float(header, number, source=source)


def test_only_the_asked_frame_is_decoded():
    """Memory grows by about one frame, not the volume (40 frames of 256 x 256 x 16 bit)."""
    volume = np.random.default_rng(2).integers(0, 4096, (40, 256, 256), dtype=np.uint16)
    header, source = _multi_frame_file(volume)
    del volume
    tracemalloc.start()
    try:
        out = frame_to_float(header, 17, source=source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.shape == (256, 256)
    # One frame: 128 KiB stored, a few float64 copies of it (512 KiB each) on the way to
    # float32; the whole volume would be 5 MiB stored and 20 MiB as float32.
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_functional_groups_give_each_frame_its_rescale_and_window():
    """Enhanced CT: rescale and window in the Shared and Per-frame Functional Groups, none at
    the top level; a frame's own item overrides the shared one (PS3.3 C.7.6.16)."""
    header, source = _multi_frame_file(np.stack([RAMP, RAMP]))
    header.SharedFunctionalGroupsSequence = [_group(
        PixelValueTransformationSequence=[_group(RescaleIntercept=-1024, RescaleSlope=1,
                                                 RescaleType="HU")],
        FrameVOILUTSequence=[_group(WindowCenter=40, WindowWidth=400)])]
    header.PerFrameFunctionalGroupsSequence = [
        _group(), _group(FrameVOILUTSequence=[_group(WindowCenter=1000, WindowWidth=2000)])]
    soft, bone = (frame_to_float(header, n, source=source) for n in (1, 2))
    # Frame 1, shared window 40/400 on HU (= stored - 1024): stored 864 (HU -160) is black,
    # stored 1264 (HU 240) white; frame 2's own window 1000/2000 spans stored 1024 to 3024.
    assert at(soft, 864) == 0.0 and at(soft, 1264) == 1.0 and 0.45 < at(soft, 1064) < 0.55
    assert at(bone, 1024) == 0.0 and at(bone, 3024) == 1.0 and 0.45 < at(bone, 2024) < 0.55
    view = frame_view(header, 2)
    assert (view.WindowCenter, view.RescaleIntercept) == (1000, -1024)


def test_radiograph_pipeline_refuses_a_volume_with_its_frame_count():
    with pytest.raises(MultiFrameError, match="3 frames") as caught:
        radiograph_to_float(make_ds(np.zeros((3, 8, 8), np.uint16)))
    assert caught.value.frames == 3


@pytest.mark.parametrize("value", [b"0 ", b"1A", b"-2"])
@pytest.mark.filterwarnings("ignore:Invalid value for VR IS")
def test_an_unreadable_frame_count_names_the_field(value):
    ds = make_ds()
    # As read from a file: pydicom converts the raw bytes (with a warning) when it is read.
    ds[0x00280008] = RawDataElement(Tag(0x00280008), "IS", len(value), value, 0, False, True)
    with pytest.raises(InputError, match=r"Number of Frames \(0028,0008\)"):
        frame_count(ds)
