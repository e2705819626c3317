"""The manifest's image_file and annotation_file columns (#20 item 2): paths relative to the
manifest's folder, the rows they name, and the row problems, naming row, column and file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bonebase.ingest import match, named
from bonebase.ingest.scan import FileEntry


def _entries(*rels: str) -> list[FileEntry]:
    return [FileEntry(rel, Path("/nowhere") / rel, 10, rel.ljust(64, "0")) for rel in rels]


def _manifest(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame([{"row": n, "case_id": f"C{n}", "patient_id": f"P{n}",
                           "accession_number": "", "sex": "F", "age": "30",
                           "modalities": "XR", **row} for n, row in enumerate(rows, 1)])
    return frame.fillna("")


def test_paths_resolve_from_the_manifests_folder_and_rows_carry_their_values():
    manifest = _manifest([
        {"image_file": "img/a.jpg;img/b.png", "annotation_file": ";ann/b.json",
         "study_date": "2021-03-04"},
        {"image_file": "img/c.dcm"},
    ])
    files = named.attach(manifest, _entries("sub/img/a.jpg", "sub/img/b.png", "sub/ann/b.json",
                                            "sub/img/c.dcm", "sub/other.dcm"), base="sub")
    assert not files.problems
    assert files.rows_of == {"sub/img/a.jpg": [1], "sub/img/b.png": [1], "sub/img/c.dcm": [2]}
    assert files.annotation_of == {"sub/img/b.png": "sub/ann/b.json"}
    kept = {e.rel: e.named for e in files.entries}
    assert "sub/ann/b.json" not in kept  # an annotation is read at planning, not as an image
    assert kept["sub/other.dcm"] is None
    b = kept["sub/img/b.png"]
    assert (b.row, b.position, b.patient_id, b.study_date) == (1, 2, "P1", "20210304")


def test_missing_escaping_and_mismatched_names_are_row_problems():
    manifest = _manifest([
        {"image_file": "img/A.JPG"},  # the submission holds img/a.jpg
        {"image_file": "../../etc/passwd"},
        {"image_file": "img/b.jpg", "annotation_file": "x.json;y.json"},
        {"image_file": "img/c.jpg", "annotation_file": "gone.json"},
    ])
    files = named.attach(manifest, _entries("img/a.jpg", "img/b.jpg", "img/c.jpg"), base="")
    found = {(p.reason, p.row, p.field, p.severity) for p in files.problems}
    assert found == {("image_file_missing", 1, "image_file", "error"),
                     ("bad_file_path", 2, "image_file", "error"),
                     ("annotation_file_mismatch", 3, "annotation_file", "warning"),
                     ("annotation_file_missing", 4, "annotation_file", "warning")}
    messages = {p.reason: p.message for p in files.problems}
    assert "img/a.jpg: paths are case-sensitive" in messages["image_file_missing"]
    assert "passwd" not in messages["bad_file_path"]  # what it named is not echoed


def test_a_named_file_matches_its_row_whatever_the_rule():
    rows = [{"row": 1, "patient_id": "P1", "accession_number": "A1", "image_file": ""},
            {"row": 2, "patient_id": "P2", "accession_number": "", "image_file": "x.dcm"}]
    images = [match.Image("x.dcm", patient_id="P1", accession_number="A1"),
              match.Image("y.dcm", patient_id="P1", accession_number="A1")]
    by_rule = match.match(rows, images, named={"x.dcm": [2]})
    assert by_rule.rows_of == {"x.dcm": [2], "y.dcm": [1]}  # y by accession, x by its name
    assert by_rule.how[2] == "image_file: the files the row names"
    strict = match.match(rows, images, rule="image_file", named={"x.dcm": [2]})
    assert strict.rows_of == {"x.dcm": [2], "y.dcm": []}
    assert "no row names it in its image_file column" in strict.why_file["y.dcm"]
    assert "its image_file is empty" in strict.why_row[1]
