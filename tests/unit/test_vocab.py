import pytest

from bonebase.vocab import (
    DIAGNOSES,
    Behaviour,
    lookup_diagnosis,
    lookup_location,
    task_label,
)


@pytest.mark.parametrize(
    ("term", "code"),
    [
        ("Osteosarcoma", "osteosarcoma"),
        ("osteosarcoma, conventional", "osteosarcoma"),
        ("骨肉瘤", "osteosarcoma"),
        ("Giant Cell Tumor", "giant_cell_tumour"),
        ("骨巨细胞瘤", "giant_cell_tumour"),
        ("GCTB", "giant_cell_tumour"),
        ("unicameral bone cyst", "simple_bone_cyst"),
        ("  Ewing's   sarcoma ", "ewing_sarcoma"),
        ("osteochondroma", "osteochondroma"),
    ],
)
def test_synonyms_map_to_one_term(term, code):
    assert lookup_diagnosis(term).code == code


@pytest.mark.parametrize("term", ["", None, "tumour", "osteosarcom", "metastasis"])
def test_unknown_terms(term):
    assert lookup_diagnosis(term) is None


def test_behaviour_classes_follow_who_2020():
    assert DIAGNOSES["giant_cell_tumour"].behaviour is Behaviour.INTERMEDIATE
    assert DIAGNOSES["osteoblastoma"].behaviour is Behaviour.INTERMEDIATE
    assert DIAGNOSES["chondrosarcoma"].behaviour is Behaviour.MALIGNANT
    assert DIAGNOSES["osteochondroma"].behaviour is Behaviour.BENIGN
    assert DIAGNOSES["malignant_giant_cell_tumour"].behaviour is Behaviour.MALIGNANT


@pytest.mark.parametrize(
    ("text", "code", "region"),
    [
        ("distal femur", "distal_femur", "knee"),
        ("distal_femur", "distal_femur", "knee"),
        ("Femur, distal", "distal_femur", "knee"),
        ("股骨远端", "distal_femur", "knee"),
        ("proximal tibia", "proximal_tibia", "knee"),
        ("proximal humerus", "proximal_humerus", "shoulder"),
        ("tibial shaft", "diaphysis_tibia", "diaphysis"),
        ("pelvis", "pelvis", "pelvis"),
        # BTXRD's sites (#20): a joint region, and a long bone whose segment is not known.
        ("elbow joint", "elbow_joint", "elbow"),
        ("knee_joint", "knee_joint", "knee"),
        ("unspecified_femur", "unspecified_femur", "femur"),
    ],
)
def test_locations(text, code, region):
    loc = lookup_location(text)
    assert (loc.code, loc.region) == (code, region)


@pytest.mark.parametrize("text", ["femur", "distal pelvis", "knee", "", "elbow", "distal knee joint"])
def test_incomplete_or_unknown_locations(text):
    assert lookup_location(text) is None


def test_task_labels():
    os_, gct = lookup_diagnosis("osteosarcoma"), lookup_diagnosis("gct")
    knee, hip = lookup_location("distal femur"), lookup_location("proximal femur")
    assert task_label("benign_vs_malignant", os_) == 1
    assert task_label("benign_vs_malignant", gct) == 0
    assert task_label("benign_vs_malignant", gct, intermediate_as=Behaviour.MALIGNANT) == 1
    assert task_label("os_vs_gct", os_, knee) == 1
    assert task_label("os_vs_gct", gct, knee) == 0
    assert task_label("os_vs_gct", gct, hip) is None
    assert task_label("os_vs_gct", lookup_diagnosis("osteochondroma"), knee) is None
    assert task_label("benign_vs_malignant", None) is None
    with pytest.raises(ValueError, match="unknown task"):
        task_label("nope", os_)
