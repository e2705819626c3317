"""`bonebase import btxrd` end to end (#20): docs/btxrd.md walked line by line
(tests/e2e/guide_table_btxrd.py), each line a real `bonebase` process on the generated
BTXRD-shaped folder through the real ingest flow (Prefect, PostgreSQL, object store); then the
database holds the right counts, vocabulary terms, outlines and quarantine reasons, re-importing
(folder and zip) added nothing, and the case page draws the outlines."""

from __future__ import annotations

import json
import re

import pytest

from bonebase.importers.btxrd_sample import generate
from tests.doc_shell import ROOT, shell_lines
from tests.e2e.guide_table_btxrd import DOC, TABLE
from tests.e2e.guide_walk import Entry, Step, Walk, coverage_problems, locate, scratch_env

pytestmark = pytest.mark.slow


def _state(db) -> dict:
    one = lambda sql: db.execute(sql).fetchone()["n"]  # noqa: E731
    return {"cases": one("SELECT count(*) AS n FROM cases"),
            "instances": one("SELECT count(*) AS n FROM instances"),
            "shapes": one("SELECT count(*) AS n FROM lesion_annotations"),
            "submissions": one("SELECT count(*) AS n FROM submissions"),
            "quarantine": one("SELECT count(*) AS n FROM quarantine_items")}


@pytest.fixture
def walked(db_url, db, tmp_path, prefect_harness):
    from prefect.settings import PREFECT_API_URL

    lines = shell_lines((ROOT / DOC).read_text(encoding="utf-8"), DOC)
    assert not coverage_problems(TABLE, lines)
    home = tmp_path / "home"
    env = scratch_env(tmp_path, {"home": str(home), "prefect_port": 0})
    env["DATABASE_URL"] = db_url
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()  # the session's server: no start per line
    (tmp_path / "logs").mkdir()
    walk = Walk(env=env, cwd=tmp_path, logs=tmp_path / "logs")
    states = []
    table = [Step("bonebase init: the home the guide starts in", lambda w: w.sh("bonebase init")),
             *TABLE[:3], Step("state after the import", lambda w: states.append(_state(db))),
             *TABLE[3:]]
    where = locate(TABLE, lines)
    for item in table:
        walk.run(item, where.get(id(item), "step") if isinstance(item, Entry) else "step")
    return walk, home, states[0]


def test_guide_import_counts_terms_outlines_reasons_and_reimport_adds_nothing(
        walked, db, tmp_path):
    walk, home, after_import = walked
    truth = generate(tmp_path / "truth", images=24, seed=20)  # what the guide's sample holds
    assert _state(db) == after_import  # re-importing the zip added nothing
    sites = {r["code"]: r["name"] for r in db.execute("SELECT code, name FROM sites")}
    assert sites == {"BTXRD1": "BTXRD centre 1 (hospital)", "BTXRD2": "BTXRD centre 2 (Radiopaedia)",
                     "BTXRD3": "BTXRD centre 3 (MedPix)"}

    reasons = sorted(q["reason"] for q in db.execute("SELECT reason FROM quarantine_items"))
    # The table's findings and the flow's own (the truncated JPEG and its row; the missing
    # image's row is the importer's, the flow never sees it).
    assert reasons == sorted(["annotation_outside_image", "corrupt_image", "image_file_missing",
                              "one_hot_group", "one_hot_group", "row_without_images",
                              "unlisted_annotation", "unlisted_image"])
    receipts = [r["receipt"] for r in db.execute("SELECT receipt FROM submissions ORDER BY id")]
    assert sorted(q["reason"] for rc in receipts for q in rc["quarantine"]) == reasons
    assert all(rc["import"]["dataset"] == "BTXRD" for rc in receipts)
    for rc in receipts:  # the receipt files say the same as the database
        written = json.loads((home / "receipts" / f"submission-{rc['submission']}.json").read_text())
        assert written["quarantine"] == rc["quarantine"]
        md = (home / "receipts" / f"submission-{rc['submission']}.md").read_text()
        assert all(q["reason"] in md for q in rc["quarantine"])

    # Every usable row is a case: all but the two one-hot rows, the missing image's and the
    # truncated JPEG's; normal images are cases with diagnosis and behaviour 'normal'.
    assert after_import["cases"] == truth.rows - 4 == walk.values["accepted"]
    by_behaviour = {r["behaviour"]: r["n"] for r in db.execute(
        "SELECT behaviour, count(*) AS n FROM cases GROUP BY 1")}
    normal_rows = truth.normal - 3  # no view; missing; truncated: all three were normal images
    assert by_behaviour["normal"] == normal_rows
    assert sum(by_behaviour.values()) == after_import["cases"]
    codes = {r["diagnosis_code"] for r in db.execute("SELECT DISTINCT diagnosis_code FROM cases")}
    assert "normal" in codes and codes <= {
        "normal", "osteochondroma", "multiple_osteochondromas", "simple_bone_cyst",
        "giant_cell_tumour", "osteofibrous_dysplasia", "synovial_chondromatosis", "other_benign",
        "osteosarcoma", "other_malignant"}
    # One polygon and one box per good annotation, on the image it was drawn on.
    outlined = set(truth.annotated)
    assert after_import["shapes"] == 2 * len(outlined)
    assert {r["kind"] for r in db.execute("SELECT kind FROM lesion_annotations")} == {
        "polygon", "rectangle"}
    # Views of one pseudo-patient share one patient row.
    assert db.execute("SELECT count(DISTINCT patient_id) AS n FROM cases").fetchone()["n"] < \
        after_import["cases"]

    # The web database shows the outlines over the image, placed on its 512 px picture.
    from fastapi.testclient import TestClient

    from bonebase.storage import open_store
    from web.app import create_app
    from web.settings import WebSettings

    row = db.execute(
        "SELECT st.case_id, i.id, i.rows, i.columns, a.points FROM lesion_annotations a"
        " JOIN instances i ON i.id = a.instance_id JOIN series se ON se.id = i.series_id"
        " JOIN studies st ON st.id = se.study_id WHERE a.kind = 'rectangle' LIMIT 1").fetchone()
    app = create_app(db_url=walk.env["DATABASE_URL"], store=open_store(str(home / "objects")),
                     secret=b"s" * 40, web=WebSettings(open_data=True), pool_size=1)
    with TestClient(app) as client:
        page = client.get(f"/cases/{row['case_id']}")
        assert page.status_code == 200, page.text
        assert 'class="outline polygon"' in page.text and 'class="outline rectangle"' in page.text
        scale = 512 / max(row["rows"], row["columns"])
        left = (512 - round(row["columns"] * scale)) // 2
        (x0, _), _ = row["points"]
        assert f'{left + x0 * scale:.1f},' in page.text
        assert client.get(f"/images/{row['id']}.png?size=512").status_code == 200
        # Normal images count on the statistics page and filter like any behaviour.
        stats = client.get("/stats")
        assert stats.status_code == 200 and "normal" in stats.text
        listed = client.get("/cases?behaviour=normal&diagnosis=normal")
        assert listed.status_code == 200
        assert len(set(re.findall(r'class="case-link" href="/cases/(\d+)"', listed.text))) == normal_rows
