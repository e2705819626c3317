"""The gateway's clinical table: read again only when its CSV files change."""

import os

from bonebase.gateway import clinical


def _write(path, rows):
    path.write_text("accession_number,sex,age\n" + "".join(f"{a},{s},{g}\n" for a, s, g in rows),
                    encoding="utf-8")


def test_clinical_table_is_reread_only_when_a_file_changes(tmp_path):
    folder = tmp_path / "clinical"
    folder.mkdir()
    _write(folder / "a.csv", [("ACC1", "F", "14")])
    first = clinical.load(folder)
    assert first.find("", "ACC1")["age"] == "14"
    assert clinical.load(folder) is first  # unchanged: the same table, not read again

    _write(folder / "a.csv", [("ACC1", "F", "15"), ("ACC2", "M", "30")])  # changed in place
    os.utime(folder / "a.csv", ns=(1, 1))  # even with an older time: the size differs
    changed = clinical.load(folder)
    assert changed is not first
    assert changed.find("", "ACC1")["age"] == "15" and changed.find("", "ACC2") is not None

    _write(folder / "b.csv", [("ACC3", "M", "40")])  # a file added
    assert clinical.load(folder).find("", "ACC3")["sex"] == "M"
    (folder / "b.csv").unlink()  # and removed
    assert clinical.load(folder).find("", "ACC3") is None


def test_unreadable_clinical_file_is_named_not_cached_wrongly(tmp_path):
    folder = tmp_path / "clinical"
    folder.mkdir()
    (folder / "bad.csv").write_bytes("accession_number,sex\nACC1,\xe9\n".encode("latin-1"))
    assert any("bad.csv" in p and "UTF-8" in p for p in clinical.load(folder).problems)
    _write(folder / "bad.csv", [("ACC1", "F", "14")])  # fixed by the steward
    fixed = clinical.load(folder)
    assert not fixed.problems and fixed.find("", "ACC1")["sex"] == "F"
