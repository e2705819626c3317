"""The gateway blacks out identifying text burned into a radiograph's pixels before anything
leaves the hospital (#18 with #19): the same step as central ingest, on site."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
import pytest

from bonebase.dicom import burned_in
from bonebase.dicom.deid import Deidentifier
from bonebase.gateway import studies
from bonebase.synth import generate

pytestmark = pytest.mark.skipif(not burned_in.tesseract_available(),
                                reason="Tesseract is not installed (apt install tesseract-ocr)")
SECRET = b"consortium-test-secret-0123456789"


def test_burned_in_text_is_blacked_out_on_the_gateway(tmp_path) -> None:
    generate(tmp_path / "synth", sites=1, cases_per_site=22, seed=11, workers=1, burned_in=0.3)
    truth_file = next((tmp_path / "synth").glob("*/burned_in.csv"))
    site = truth_file.parent.name
    rows = list(csv.DictReader(truth_file.open(encoding="utf-8")))
    rel = next(r["file"] for r in rows if r["identifying"] == "1"
               and (truth_file.parent / "submission" / r["file"]).exists())
    source = truth_file.parent / "submission" / rel
    out = tmp_path / "out"
    out.mkdir()
    sent = studies._deidentify_file(source, out, deid=Deidentifier(SECRET), site=site,
                                    secret=SECRET, accession="A1", max_pixels=None)
    assert not isinstance(sent, str), sent  # redacted and sent, not held
    stored = pydicom.dcmread(sent[0])
    assert stored.BurnedInAnnotation == "NO"
    assert burned_in.METHOD_TEXT in stored.DeidentificationMethod
    finding = burned_in.find_text(burned_in.first_frame(stored),
                                  str(stored.PhotometricInterpretation))
    read = " ".join(r.text for r in finding.regions).casefold().replace(" ", "")
    for row in rows:
        if row["file"] == rel and row["identifying"] == "1":
            assert row["text"].casefold().replace(" ", "").removeprefix("dob") not in read
    # the pixels left the gateway once, blacked out, and central ingest will keep them as sent
    assert Path(sent[0]).stat().st_size < source.stat().st_size * 4
