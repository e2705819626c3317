"""Ingest's burned-in text step on every frame (#19 goal 2, H2's find_text_frames): a name
burned into the last frame of three only is blacked out in every frame of the stored file."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from bonebase.dicom import burned_in
from bonebase.dicom.deid import Deidentifier
from bonebase.ingest.process import process_file
from tests.unit.test_burned_in import NAME_AT_EDGE, SECRET, _drawn, _entry, _instance, _write

pytestmark = pytest.mark.skipif(not burned_in.tesseract_available(), reason="needs Tesseract")


def test_text_on_the_last_frame_only_is_blacked_out_in_every_frame(tmp_path) -> None:
    clean, late = _drawn([]), _drawn(NAME_AT_EDGE)
    ds = _instance(clean, frames=3)
    ds.PixelData = np.stack([clean, clean, late]).astype("<u2").tobytes()
    path = _write(ds, tmp_path / "cine.dcm")
    result = process_file(_entry(path), deid=Deidentifier(SECRET), site="HX", staging=tmp_path,
                          burned_in="redact")
    assert result.reason is None, result.message
    assert result.extra["burned_in"]["redacted"]  # the first frame alone shows no text
    for frame in pydicom.dcmread(result.staged).pixel_array:
        assert np.ptp(frame[0:20, 0:90]) == 0  # the family name's place, black in every frame
        assert np.ptp(frame[380:398, 152:300]) == 0  # the patient ID's
