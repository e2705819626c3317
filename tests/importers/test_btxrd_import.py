"""`bonebase import btxrd` end to end (#20): the generated BTXRD-shaped folder through the real
ingest flow (Prefect, PostgreSQL, object store): counts, vocabulary terms, outlines, quarantine
reasons; re-importing adds nothing."""

from __future__ import annotations

import pytest

from bonebase.config import Settings
from bonebase.importers import btxrd_import as imp
from bonebase.importers import btxrd_run
from bonebase.importers.btxrd_sample import generate

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(tmp_path, db_url, db) -> Settings:
    s = Settings(home=tmp_path / "home", database_url=db_url, secret="t" * 40, env="test")
    s.ensure_home()
    return s


def _state(db) -> dict:
    one = lambda sql: db.execute(sql).fetchone()["n"]  # noqa: E731
    return {"cases": one("SELECT count(*) AS n FROM cases"),
            "instances": one("SELECT count(*) AS n FROM instances"),
            "shapes": one("SELECT count(*) AS n FROM lesion_annotations"),
            "submissions": one("SELECT count(*) AS n FROM submissions"),
            "quarantine": one("SELECT count(*) AS n FROM quarantine_items")}


def test_import_counts_terms_outlines_reasons_and_reimport_adds_nothing(
        settings, db, tmp_path, prefect_harness):
    root = tmp_path / "BTXRD"
    truth = generate(root, images=18, seed=4, size=(200, 240))
    results = btxrd_run.run(root, sites=imp.DEFAULT_SITES, settings=settings, say=lambda _: None)
    assert sorted(r.site for r in results) == ["BTXRD1", "BTXRD2", "BTXRD3"]
    sites = {r["code"]: r["name"] for r in db.execute("SELECT code, name FROM sites")}
    assert sites["BTXRD2"] == "BTXRD centre 2 (Radiopaedia)"

    reasons = sorted(q["reason"] for q in db.execute("SELECT reason FROM quarantine_items"))
    # The table's findings and the flow's own (the truncated JPEG; the row of the missing image
    # is the importer's, the flow never sees it).
    assert reasons == sorted(["annotation_outside_image", "corrupt_image", "image_file_missing",
                              "one_hot_group", "one_hot_group", "row_without_images",
                              "unlisted_annotation", "unlisted_image"])
    receipts = [r.receipt for r in results]
    lines = [q["reason"] for rc in receipts for q in rc["quarantine"]]
    assert sorted(lines) == reasons  # each is also a receipt line, with its message
    assert all(rc["import"]["dataset"] == "BTXRD" for rc in receipts)

    # Every usable row is a case: all rows but the two one-hot rows, the missing image's and
    # the truncated JPEG's; normal images are cases with behaviour 'normal'.
    state = _state(db)
    assert state["cases"] == truth.rows - 4
    by_behaviour = {r["behaviour"]: r["n"] for r in db.execute(
        "SELECT behaviour, count(*) AS n FROM cases GROUP BY 1")}
    assert by_behaviour.get("normal", 0) >= 1 and set(by_behaviour) <= {
        "normal", "benign", "intermediate", "malignant"}
    codes = {r["diagnosis_code"] for r in db.execute("SELECT DISTINCT diagnosis_code FROM cases")}
    assert codes <= {"normal", "osteochondroma", "multiple_osteochondromas", "simple_bone_cyst",
                     "giant_cell_tumour", "osteofibrous_dysplasia", "synovial_chondromatosis",
                     "other_benign", "osteosarcoma", "other_malignant"}
    # One polygon and one box per good annotation, on the image it was drawn on.
    outlined = set(truth.annotated) - {truth.bad["two_subtypes"]}
    assert state["shapes"] == 2 * len(outlined)
    kinds = {r["kind"] for r in db.execute("SELECT kind FROM lesion_annotations")}
    assert kinds == {"polygon", "rectangle"}
    # Views of one pseudo-patient share the patient row.
    pairs = db.execute("SELECT count(*) AS n FROM (SELECT patient_id FROM cases GROUP BY 1"
                       " HAVING count(*) > 1) t").fetchone()["n"]
    assert pairs >= 1

    again = btxrd_run.run(root, sites=imp.DEFAULT_SITES, settings=settings, say=lambda _: None)
    assert all(r.receipt["already_ingested"] for r in again)
    assert _state(db) == state

    # The web database shows the outlines over the image, placed on its 512 px picture.
    from fastapi.testclient import TestClient

    from bonebase.storage import open_store
    from web.app import create_app
    from web.settings import WebSettings

    row = db.execute(
        "SELECT st.case_id, i.id, i.rows, i.columns, a.points FROM lesion_annotations a"
        " JOIN instances i ON i.id = a.instance_id JOIN series se ON se.id = i.series_id"
        " JOIN studies st ON st.id = se.study_id WHERE a.kind = 'rectangle' LIMIT 1").fetchone()
    app = create_app(db_url=settings.database_url, store=open_store(settings.object_store_url),
                     secret=b"s" * 40, web=WebSettings(open_data=True), pool_size=1)
    with TestClient(app) as client:
        page = client.get(f"/cases/{row['case_id']}")
        assert page.status_code == 200, page.text
        assert 'class="outline polygon"' in page.text and 'class="outline rectangle"' in page.text
        scale = 512 / max(row["rows"], row["columns"])
        left = (512 - round(row["columns"] * scale)) // 2
        (x0, y0), _ = row["points"]
        assert f'{left + x0 * scale:.1f},' in page.text
        assert client.get(f"/images/{row['id']}.png?size=512").status_code == 200
