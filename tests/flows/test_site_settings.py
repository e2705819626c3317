"""A site's de-identification settings (#19: keep_descriptors, burned_in) reach the processing of
its files, on the path `bonebase validate` runs (runner.run_here) as on the flow's."""

from __future__ import annotations

import shutil

import pydicom
import pytest
from pydicom.data import get_testdata_file

from bonebase.config import Settings
from bonebase.ingest import runner
from bonebase.ingest.scan import find_manifest, scan_files


@pytest.mark.parametrize(("keep", "stored"), [(False, None), (True, "femur follow-up")])
def test_keep_descriptors_reaches_the_de_identification(tmp_path, keep, stored):
    sub = tmp_path / "sub"
    sub.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.StudyDescription = "femur follow-up"
    ds.save_as(sub / "ct.dcm")
    (sub / "manifest.csv").write_text("case_id\n")
    entries = scan_files(sub, find_manifest(sub))
    settings = Settings(home=tmp_path / "home", secret="s" * 40, env="test", ingest_workers=1)
    args = {"uid_root": settings.uid_root, "site": "HX", "staging": str(tmp_path / "staging"),
            "keep_descriptors": keep, "burned_in": "quarantine"}
    [result] = runner.run_here(entries, args, settings, None)
    assert result.extra["study_description"] == stored  # removed, or kept (nothing to clean)
    if not keep:
        assert result.extra["free_text"]["StudyDescription"] == "removed"
    shutil.rmtree(tmp_path / "staging", ignore_errors=True)
