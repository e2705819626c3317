"""The held image's preview (#17 point 3): the first frame, windowed as the case page windows it."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from bonebase.dicom.pixels import frame_to_float
from bonebase.ingest import quarantine_view
from bonebase.storage import LocalStore


def _preview(tmp_path, name: str) -> np.ndarray:
    store = LocalStore(tmp_path / "objects")
    key = f"quarantine/1/{name}.bin"
    store.put_file(key, get_testdata_file(name))
    item = {"id": 1, "object_key": key, "file": name, "site": "HX", "row_number": None}
    return np.asarray(Image.open(io.BytesIO(quarantine_view.preview_png(store, item))))


@pytest.mark.parametrize("name", ["eCT_Supplemental.dcm", "emri_small_jpeg_2k_lossless.dcm",
                                  "CT_small.dcm"])
def test_preview_is_the_first_frame_with_its_own_window(tmp_path, name):
    """Enhanced CT (window and rescale in the functional groups), multi-frame JPEG 2000, plain
    CT: the preview equals frame 1 through the web database's frame pipeline, to rounding."""
    shown = _preview(tmp_path, name)
    ds = pydicom.dcmread(get_testdata_file(name))
    expected = np.round(frame_to_float(ds, 1) * 255)
    assert shown.shape == expected.shape
    assert np.abs(shown.astype(float) - expected).max() <= 1


def test_colour_preview_stays_colour(tmp_path):
    shown = _preview(tmp_path, "SC_rgb.dcm")
    assert shown.shape == (100, 100, 3) and len(np.unique(shown.reshape(-1, 3), axis=0)) > 2
