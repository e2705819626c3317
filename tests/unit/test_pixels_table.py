"""The grey pipeline run once per stored value (a table) gives the same float32 values, bit for
bit, as the per-pixel pipeline, on synthetic images of every kind of transform and on pydicom's
own test files; where it could not, the per-pixel pipeline runs."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from bonebase.dicom import pixels
from bonebase.dicom.pixels import radiograph_to_float, radiograph_windowed
from tests.unit.test_pixels import add_voi_lut, make_ds


def _image(dtype, low: int, high: int, shape=(300, 200), seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(low, high + 1, size=shape).astype(dtype)


def _both(ds: Dataset, voi=None) -> tuple[np.ndarray, np.ndarray, bool]:
    """Table and per-pixel results of the same data set, and whether the table was used."""
    stored = pixels._decoded_pixels(ds)
    used = pixels._grey_table(ds, stored, voi) is not None
    return pixels._grey_to_float(ds, stored, voi), pixels._grey_values(ds, stored, voi), used


CASES = {
    "12-bit window": lambda: make_ds(_image(np.uint16, 0, 4095), bits=12, WindowCenter=1800,
                                     WindowWidth=1500),
    "16-bit rescale + window, MONOCHROME1": lambda: make_ds(
        _image(np.uint16, 100, 60000, shape=(600, 500)), bits=16, photometric="MONOCHROME1",
        RescaleSlope=0.73, RescaleIntercept=-1024.5, WindowCenter=12000, WindowWidth=9000),
    "signed CT-like": lambda: make_ds(_image(np.int16, -2000, 3000), bits=16, RescaleSlope=1,
                                      RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400),
    "sigmoid VOI function": lambda: make_ds(_image(np.uint16, 0, 4095), bits=12,
                                            WindowCenter=2000, WindowWidth=800,
                                            VOILUTFunction="SIGMOID"),
    "linear exact": lambda: make_ds(_image(np.uint16, 0, 1023), bits=10, WindowCenter=511.5,
                                    WindowWidth=1023, VOILUTFunction="LINEAR_EXACT"),
    "8-bit": lambda: make_ds(_image(np.uint8, 3, 250), bits=8, WindowCenter=128,
                             WindowWidth=200),
    "VOI LUT sequence": lambda: add_voi_lut(
        make_ds(_image(np.uint16, 0, 4095), bits=12),
        [int(v) for v in np.linspace(0, 4095, 3000)], first=500),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_table_gives_the_per_pixel_floats(name):
    table, per_pixel, used = _both(CASES[name]())
    assert used, f"{name}: the table path was not taken, so this compares nothing"
    assert table.dtype == per_pixel.dtype == np.float32
    assert np.array_equal(table, per_pixel)
    assert table.min() < table.max()


def test_the_viewers_window_through_the_table():
    ds = CASES["16-bit rescale + window, MONOCHROME1"]()
    assert np.array_equal(radiograph_windowed(ds, level=0.4, window=0.3),
                          pixels._grey_values(ds, pixels._decoded_pixels(ds),
                                              voi=_viewer(ds, 0.4, 0.3)))


def _viewer(ds, level, window):
    def voi(values):
        lo, hi = float(values.min()), float(values.max())
        width = window * (hi - lo)
        return (values - (lo + level * (hi - lo) - width / 2)) / width
    return voi


@pytest.mark.parametrize("name,ds", [
    ("no window: robust percentiles over the pixels",
     lambda: make_ds(_image(np.uint16, 0, 4095), bits=12)),
    ("fewer pixels than 4 per stored value", lambda: make_ds(
        _image(np.uint16, 0, 60000, shape=(100, 100)), bits=16, WindowCenter=3e4,
        WindowWidth=6e4)),
])
def test_where_the_table_would_differ_the_pixels_are_used(name, ds):
    data = ds()
    stored = pixels._decoded_pixels(data)
    assert pixels._grey_table(data, stored, None) is None, name
    assert np.array_equal(radiograph_to_float(data), pixels._grey_values(data, stored))


# pydicom-data's computed radiographs (native and JPEG 2000), MR, CT-like signed, 8-bit JPEG
# lossless and a VOI LUT file: every one has a window or VOI LUT, so the table applies.
PYDICOM_FILES = ("RG1_UNCI.dcm", "RG3_J2KR.dcm", "MR2_UNCR.dcm", "693_UNCR.dcm",
                 "JPGLosslessP14SV1_1s_1f_8b.dcm", "vlut_04.dcm", "examples_overlay.dcm",
                 "J2K_pixelrep_mismatch.dcm")


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicoms_own_files_give_the_same_floats(name):
    path = get_testdata_file(name)
    assert path is not None, f"{name} is missing from pydicom-data"
    ds = pydicom.dcmread(path)
    stored = pixels._decoded_pixels(ds)
    assert pixels._grey_table(ds, stored, None) is not None
    assert np.array_equal(radiograph_to_float(ds), pixels._grey_values(ds, stored))
    assert np.array_equal(radiograph_windowed(ds, level=0.45, window=0.6),
                          pixels._grey_values(ds, stored, voi=_viewer(ds, 0.45, 0.6)))
