"""Lesion annotations (#20): LabelMe parsed against its image, stored per instance, read back."""

import json

import psycopg
import pytest

from bonebase.ingest.annotations import (
    AnnotationError,
    Shape,
    annotations_for,
    for_instance,
    parse_labelme,
    store_annotations,
    store_for_instances,
)


def _doc(points, kind="polygon", label="osteosarcoma", width=200, height=100):
    return json.dumps({"imagePath": "x.jpeg", "imageWidth": width, "imageHeight": height,
                       "shapes": [{"label": label, "points": points, "shape_type": kind}]}).encode()


def test_polygon_and_rectangle_are_parsed_in_image_pixels():
    doc = json.loads(_doc([[10, 10], [50, 12], [30, 60]]))
    doc["shapes"].append({"label": "Patient Smith", "points": [[5, 5], [60, 70]],
                          "shape_type": "rectangle"})
    shapes = parse_labelme(json.dumps(doc).encode(), name="a.json", rows=100, columns=200)
    assert shapes[0] == Shape("polygon", "osteosarcoma", ((10.0, 10.0), (50.0, 12.0), (30.0, 60.0)))
    # Free text that is not a vocabulary term (it could name someone) is never kept.
    assert shapes[1].label == "lesion" and shapes[1].bounds == (5.0, 5.0, 60.0, 70.0)


@pytest.mark.parametrize(("data", "reason", "says"), [
    (b"{not json", "bad_annotation", "not a JSON file"),
    (b'{"imagePath": "x"}', "bad_annotation", "no 'shapes' list"),
    (_doc([[1, 1], [2, 2]], kind="circle"), "bad_annotation", "shape_type"),
    (_doc([[1, 1], [2, 2]]), "bad_annotation", "3 points"),
    (_doc([[1, 1], [2, 2], [3, 3]], kind="rectangle"), "bad_annotation", "2 corner points"),
    (_doc([[1, 1], ["a", 2], [3, 3]]), "bad_annotation", "point 1"),
    (_doc([[1, 1], [2, 2], [3, 3]], width=300), "bad_annotation", "300 x 100"),
    (_doc([[1, 1], [250, 20], [3, 3]]), "annotation_outside_image", "point 1 lies outside"),
    (_doc([[1, 1], [2, -4], [3, 3]]), "annotation_outside_image", "point 1 lies outside"),
])
def test_bad_annotations_have_a_reason_naming_file_and_shape(data, reason, says):
    with pytest.raises(AnnotationError) as exc:
        parse_labelme(data, name="Annotations/IMG1.json", rows=100, columns=200)
    assert exc.value.reason == reason
    assert says in exc.value.message and "Annotations/IMG1.json" in exc.value.message


def _instance(db, sha="s1"):
    site = db.execute("INSERT INTO sites (code, name) VALUES ('BX', 'B') RETURNING id").fetchone()["id"]
    patient = db.execute("INSERT INTO patients (site_id, pseudonym) VALUES (%s, 'p') RETURNING id",
                         (site,)).fetchone()["id"]
    case = db.execute(
        "INSERT INTO cases (site_id, patient_id, case_pseudonym, row_hash, diagnosis_code, behaviour)"
        " VALUES (%s, %s, 'c', 'h', 'normal', 'normal') RETURNING id", (site, patient)).fetchone()["id"]
    study = db.execute("INSERT INTO studies (case_id, study_uid) VALUES (%s, '1.2') RETURNING id",
                       (case,)).fetchone()["id"]
    series = db.execute("INSERT INTO series (study_id, series_uid, modality) VALUES (%s, '1.3', 'DX')"
                        " RETURNING id", (study,)).fetchone()["id"]
    return db.execute(
        "INSERT INTO instances (series_id, sop_instance_uid, sha256, source_sha256, object_key,"
        " size_bytes, modality) VALUES (%s, '1.4', %s, 'src', 'k', 1, 'DX') RETURNING id",
        (series, sha)).fetchone()["id"]


def test_stored_shapes_are_replaced_not_doubled_and_read_back(db):
    """A normal image is a case (behaviour 'normal' passes the schema); its instance's shapes
    are stored once however often the store runs."""
    instance = _instance(db)
    poly = Shape("polygon", "osteosarcoma", ((1.0, 2.0), (3.0, 4.0), (5.0, 1.0)))
    box = Shape("rectangle", "lesion", ((1.0, 1.0), (5.0, 4.0)))
    store_annotations(db, instance_id=instance, shapes=[poly, box])
    assert store_for_instances(db, shapes_by_sha256={"s1": [poly, box], "unknown": [box]}) == 2
    db.commit()
    assert for_instance(db, instance) == [poly, box]
    assert annotations_for(db, instance_shas=["s1", "nope"]) == {"s1": [poly, box]}
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("UPDATE cases SET behaviour = 'none'")
