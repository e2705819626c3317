"""Controlled vocabularies: primary bone tumour diagnoses and anatomical sites.

Diagnoses follow the WHO Classification of Tumours, Soft Tissue and Bone Tumours, 5th edition (2020),
chapter "Bone tumours", with its behaviour classes benign / intermediate (locally aggressive or rarely
metastasising) / malignant. Sites write diagnoses their own way: every accepted spelling, in English
or Chinese, is listed as a synonym, and adding one is a one-line change to ``_DIAGNOSES``.

A normal radiograph (no tumour) is the diagnosis ``normal`` with behaviour ``normal``. Public
datasets' own terms (BTXRD's subtypes and sites, #20) are mapped in ``BTXRD_SUBTYPES`` and
``btxrd_location``.

Task labels (``benign_vs_malignant``, ``os_vs_gct``, ``tumour_vs_normal``,
``normal_benign_malignant``) are derived here so that export, training,
evaluation and validation all use one mapping.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class Behaviour(StrEnum):
    BENIGN = "benign"
    INTERMEDIATE = "intermediate"
    MALIGNANT = "malignant"
    # No tumour: a normal radiograph (BTXRD's 1,879 images without tumour, #20). Not a WHO
    # behaviour class; it sits here so that a normal image is a case like any other (diagnosis
    # "normal", behaviour "normal") for the database, the statistics page and the tasks.
    NORMAL = "normal"


@dataclass(frozen=True)
class Diagnosis:
    code: str
    name: str
    behaviour: Behaviour
    family: str  # WHO 2020 group, e.g. "osteogenic"
    synonyms: tuple[str, ...] = ()


B, I, M = Behaviour.BENIGN, Behaviour.INTERMEDIATE, Behaviour.MALIGNANT  # noqa: E741 (table brevity)
N = Behaviour.NORMAL

# code, preferred name, behaviour, WHO family, synonyms (any case/spacing/punctuation is accepted).
_DIAGNOSES: tuple[Diagnosis, ...] = (
    # Chondrogenic tumours
    Diagnosis("osteochondroma", "Osteochondroma", B, "chondrogenic",
              ("exostosis", "osteocartilaginous exostosis", "骨软骨瘤")),
    Diagnosis("multiple_osteochondromas", "Multiple osteochondromas", B, "chondrogenic",
              ("hereditary multiple exostoses", "multiple exostoses", "多发性骨软骨瘤")),
    # WHO 2020 ICD-O 9220/1: locally aggressive. BTXRD's "synovial osteochondroma" is this entity.
    Diagnosis("synovial_chondromatosis", "Synovial chondromatosis", I, "chondrogenic",
              ("synovial osteochondromatosis", "synovial osteochondroma", "滑膜软骨瘤病")),
    Diagnosis("enchondroma", "Enchondroma", B, "chondrogenic", ("内生软骨瘤",)),
    Diagnosis("periosteal_chondroma", "Periosteal chondroma", B, "chondrogenic", ()),
    Diagnosis("chondroblastoma", "Chondroblastoma", B, "chondrogenic", ("软骨母细胞瘤",)),
    Diagnosis("chondromyxoid_fibroma", "Chondromyxoid fibroma", B, "chondrogenic",
              ("cmf", "软骨黏液样纤维瘤")),
    Diagnosis("atypical_cartilaginous_tumour", "Atypical cartilaginous tumour", I, "chondrogenic",
              ("act", "atypical cartilaginous tumor")),
    Diagnosis("chondrosarcoma", "Chondrosarcoma", M, "chondrogenic",
              ("central chondrosarcoma", "chondrosarcoma grade 1", "chondrosarcoma grade 2",
               "chondrosarcoma grade 3", "软骨肉瘤")),
    Diagnosis("dedifferentiated_chondrosarcoma", "Dedifferentiated chondrosarcoma", M,
              "chondrogenic", ()),
    Diagnosis("clear_cell_chondrosarcoma", "Clear cell chondrosarcoma", M, "chondrogenic", ()),
    Diagnosis("mesenchymal_chondrosarcoma", "Mesenchymal chondrosarcoma", M, "chondrogenic", ()),
    # Osteogenic tumours
    Diagnosis("osteoma", "Osteoma", B, "osteogenic", ("骨瘤",)),
    Diagnosis("osteoid_osteoma", "Osteoid osteoma", B, "osteogenic", ("骨样骨瘤",)),
    Diagnosis("osteoblastoma", "Osteoblastoma", I, "osteogenic", ("骨母细胞瘤", "成骨细胞瘤")),
    Diagnosis("osteosarcoma", "Osteosarcoma, conventional", M, "osteogenic",
              ("conventional osteosarcoma", "osteosarcoma nos", "osteogenic sarcoma",
               "high-grade osteosarcoma", "骨肉瘤", "成骨肉瘤")),
    Diagnosis("telangiectatic_osteosarcoma", "Telangiectatic osteosarcoma", M, "osteogenic",
              ("毛细血管扩张型骨肉瘤",)),
    Diagnosis("small_cell_osteosarcoma", "Small cell osteosarcoma", M, "osteogenic", ()),
    Diagnosis("low_grade_central_osteosarcoma", "Low-grade central osteosarcoma", M, "osteogenic",
              ()),
    Diagnosis("parosteal_osteosarcoma", "Parosteal osteosarcoma", M, "osteogenic",
              ("骨旁骨肉瘤",)),
    Diagnosis("periosteal_osteosarcoma", "Periosteal osteosarcoma", M, "osteogenic", ()),
    Diagnosis("high_grade_surface_osteosarcoma", "High-grade surface osteosarcoma", M,
              "osteogenic", ()),
    # Fibrogenic tumours
    Diagnosis("desmoplastic_fibroma", "Desmoplastic fibroma", I, "fibrogenic", ()),
    Diagnosis("fibrosarcoma", "Fibrosarcoma of bone", M, "fibrogenic", ("fibrosarcoma", "纤维肉瘤")),
    # Vascular tumours
    Diagnosis("haemangioma", "Haemangioma of bone", B, "vascular",
              ("hemangioma", "haemangioma", "血管瘤")),
    Diagnosis("epithelioid_haemangioma", "Epithelioid haemangioma", I, "vascular",
              ("epithelioid hemangioma",)),
    Diagnosis("epithelioid_haemangioendothelioma", "Epithelioid haemangioendothelioma", M,
              "vascular", ("epithelioid hemangioendothelioma",)),
    Diagnosis("angiosarcoma", "Angiosarcoma of bone", M, "vascular", ("angiosarcoma", "血管肉瘤")),
    # Osteoclastic giant cell-rich tumours
    Diagnosis("aneurysmal_bone_cyst", "Aneurysmal bone cyst", B, "osteoclastic giant cell-rich",
              ("abc", "动脉瘤样骨囊肿")),
    Diagnosis("non_ossifying_fibroma", "Non-ossifying fibroma", B,
              "osteoclastic giant cell-rich", ("nof", "nonossifying fibroma", "非骨化性纤维瘤")),
    Diagnosis("giant_cell_tumour", "Giant cell tumour of bone", I, "osteoclastic giant cell-rich",
              ("giant cell tumor", "giant cell tumour", "giant cell tumor of bone", "gct",
               "gctb", "osteoclastoma", "骨巨细胞瘤", "巨细胞瘤")),
    Diagnosis("malignant_giant_cell_tumour", "Giant cell tumour of bone, malignant", M,
              "osteoclastic giant cell-rich",
              ("malignant giant cell tumor", "malignant giant cell tumour", "恶性骨巨细胞瘤")),
    # Notochordal tumours
    Diagnosis("chordoma", "Chordoma", M, "notochordal", ("conventional chordoma", "脊索瘤")),
    # Other mesenchymal tumours of bone
    Diagnosis("simple_bone_cyst", "Simple bone cyst", B, "other mesenchymal",
              ("unicameral bone cyst", "solitary bone cyst", "ubc", "单纯性骨囊肿",
               "孤立性骨囊肿", "骨囊肿")),
    Diagnosis("fibrous_dysplasia", "Fibrous dysplasia", B, "other mesenchymal",
              ("纤维结构不良", "骨纤维异常增殖症")),
    # "Osteofibroma" (BTXRD) is an older name of osteofibrous dysplasia (ossifying fibroma of
    # long bones, Kempson-Campanacci lesion); WHO 2020 uses osteofibrous dysplasia.
    Diagnosis("osteofibrous_dysplasia", "Osteofibrous dysplasia", B, "other mesenchymal",
              ("osteofibroma", "ossifying fibroma of long bones", "campanacci lesion",
               "骨纤维结构不良")),
    Diagnosis("lipoma_of_bone", "Lipoma of bone", B, "other mesenchymal",
              ("intraosseous lipoma", "骨内脂肪瘤")),
    Diagnosis("langerhans_cell_histiocytosis", "Langerhans cell histiocytosis", I,
              "other mesenchymal", ("lch", "eosinophilic granuloma", "朗格汉斯细胞组织细胞增生症")),
    Diagnosis("adamantinoma", "Adamantinoma", M, "other mesenchymal", ("釉质瘤",)),
    Diagnosis("undifferentiated_pleomorphic_sarcoma", "Undifferentiated pleomorphic sarcoma", M,
              "other mesenchymal", ("ups", "malignant fibrous histiocytoma", "未分化多形性肉瘤")),
    # Haematopoietic neoplasms of bone
    Diagnosis("plasmacytoma", "Solitary plasmacytoma of bone", M, "haematopoietic",
              ("plasmacytoma", "浆细胞瘤")),
    Diagnosis("lymphoma_of_bone", "Primary non-Hodgkin lymphoma of bone", M, "haematopoietic",
              ("bone lymphoma", "primary bone lymphoma", "骨淋巴瘤")),
    # Undifferentiated small round cell sarcomas of bone and soft tissue
    Diagnosis("ewing_sarcoma", "Ewing sarcoma", M, "small round cell",
              ("ewing's sarcoma", "ewings sarcoma", "尤文肉瘤", "尤因肉瘤")),
    # Datasets that label only the behaviour of some tumours (BTXRD's "other bt" / "other mt"):
    # kept as such, never guessed into a WHO entity.
    Diagnosis("other_benign", "Other benign bone tumour", B, "unspecified",
              ("other benign tumour", "other benign tumor", "other bt")),
    Diagnosis("other_malignant", "Other malignant bone tumour", M, "unspecified",
              ("other malignant tumour", "other malignant tumor", "other mt")),
    # No tumour: a normal radiograph.
    Diagnosis("normal", "No tumour (normal radiograph)", N, "none",
              ("no tumour", "no tumor", "normal radiograph", "no lesion", "无肿瘤", "正常")),
)

# The osteosarcoma family for the os_vs_gct task (the multi-centre study's positive class).
OSTEOSARCOMA_CODES = frozenset(d.code for d in _DIAGNOSES if d.code.endswith("osteosarcoma"))
GCT_CODES = frozenset({"giant_cell_tumour"})

TASKS = ("benign_vs_malignant", "os_vs_gct", "tumour_vs_normal", "normal_benign_malignant")
# Class names by label value; binary tasks name 0 and 1.
CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "benign_vs_malignant": ("benign", "malignant"),
    "os_vs_gct": ("giant cell tumour", "osteosarcoma"),
    "tumour_vs_normal": ("normal", "tumour"),
    "normal_benign_malignant": ("normal", "benign", "malignant"),
}


def _norm(text: str) -> str:
    """Case-, width-, accent- and punctuation-insensitive key for a free-text term."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = re.sub(r"[\s_\-,;:/()'’.]+", " ", text)
    return text.strip()


DIAGNOSES: dict[str, Diagnosis] = {d.code: d for d in _DIAGNOSES}
_DIAGNOSIS_INDEX: dict[str, Diagnosis] = {}
for _d in _DIAGNOSES:
    for _term in (_d.code, _d.name, *_d.synonyms):
        _key = _norm(_term)
        if _key in _DIAGNOSIS_INDEX and _DIAGNOSIS_INDEX[_key] is not _d:
            raise RuntimeError(f"vocabulary: {_term!r} names two diagnoses")
        _DIAGNOSIS_INDEX[_key] = _d


def lookup_diagnosis(term: str | None) -> Diagnosis | None:
    """The diagnosis a site's term names, or None when the term is not in the vocabulary."""
    if not term:
        return None
    return _DIAGNOSIS_INDEX.get(_norm(str(term)))


# ---------------------------------------------------------------------------------------------
# Anatomical sites: a bone plus, for long bones, a segment; the joint region is derived.

LONG_BONES = ("femur", "tibia", "fibula", "humerus", "radius", "ulna")
# A joint stands for a location when an image shows a joint region but not which bone holds the
# tumour (BTXRD marks joints beside bones); it takes no segment, like the other bones.
JOINTS = ("shoulder_joint", "elbow_joint", "wrist_joint", "hip_joint", "knee_joint", "ankle_joint")
OTHER_BONES = ("pelvis", "sacrum", "spine", "rib", "scapula", "clavicle", "skull", "mandible",
               "hand", "foot", "patella", "calcaneus", *JOINTS)
# "unspecified": the bone is known, its segment is not (BTXRD gives bones without segments).
SEGMENTS = ("proximal", "diaphysis", "distal", "unspecified")

# Which joint a long-bone end belongs to; "knee" defines the os_vs_gct task's population.
_JOINT = {
    ("femur", "distal"): "knee", ("tibia", "proximal"): "knee", ("fibula", "proximal"): "knee",
    ("femur", "proximal"): "hip",
    ("humerus", "proximal"): "shoulder",
    ("humerus", "distal"): "elbow", ("radius", "proximal"): "elbow", ("ulna", "proximal"): "elbow",
    ("radius", "distal"): "wrist", ("ulna", "distal"): "wrist",
    ("tibia", "distal"): "ankle", ("fibula", "distal"): "ankle",
}

_BONE_SYNONYMS = {
    "femur": ("femoral", "股骨"), "tibia": ("tibial", "胫骨"), "fibula": ("fibular", "腓骨"),
    "humerus": ("humeral", "肱骨"), "radius": ("radial", "桡骨"), "ulna": ("ulnar", "尺骨"),
    "pelvis": ("pelvic", "ilium", "ischium", "pubis", "骨盆", "髂骨"), "sacrum": ("骶骨",),
    "spine": ("vertebra", "vertebral", "脊柱", "椎体"), "rib": ("肋骨",), "scapula": ("肩胛骨",),
    "clavicle": ("锁骨",), "skull": ("颅骨",), "mandible": ("下颌骨",), "hand": ("手",),
    "foot": ("足",), "patella": ("髌骨",), "calcaneus": ("跟骨",),
    **{j: (j.replace("_", " "),) for j in JOINTS},
}
_SEGMENT_SYNONYMS = {
    "proximal": ("近端", "upper"), "distal": ("远端", "lower"),
    "diaphysis": ("shaft", "diaphyseal", "midshaft", "骨干"),
    "unspecified": ("segment unspecified", "whole"),
}


@dataclass(frozen=True)
class Location:
    bone: str
    segment: str | None

    @property
    def code(self) -> str:
        return f"{self.segment}_{self.bone}" if self.segment else self.bone

    @property
    def region(self) -> str:
        """Joint region (knee, hip, …) for long-bone ends, "diaphysis", or the bone itself."""
        if self.segment is None:
            return self.bone.removesuffix("_joint")
        if self.segment == "unspecified":
            return self.bone
        return _JOINT.get((self.bone, self.segment), self.segment)


_BONE_INDEX = {_norm(s): bone for bone, syns in _BONE_SYNONYMS.items() for s in (bone, *syns)}
_SEGMENT_INDEX = {_norm(s): seg for seg, syns in _SEGMENT_SYNONYMS.items() for s in (seg, *syns)}


def lookup_location(text: str | None) -> Location | None:
    """Parse "distal_femur", "Distal femur", "femur, distal" or "股骨远端" into a Location.

    Long bones need a segment; other bones take none. None means "not in the vocabulary".
    """
    if not text:
        return None
    key = _norm(str(text))
    bone = segment = None
    # Chinese terms come without spaces: match the known bone and segment words as substrings.
    for term, b in _BONE_INDEX.items():
        if re.search(rf"(^|\s){re.escape(term)}($|\s)", key) or (not term.isascii() and term in key):
            bone = b
    for term, s in _SEGMENT_INDEX.items():
        if re.search(rf"(^|\s){re.escape(term)}($|\s)", key) or (not term.isascii() and term in key):
            segment = s
    if bone is None:
        return None
    if bone in LONG_BONES:
        return Location(bone, segment) if segment else None
    return Location(bone, None) if segment is None else None


# ---------------------------------------------------------------------------------------------
# Task labels


def task_label(
    task: str,
    diagnosis: Diagnosis | None,
    location: Location | None = None,
    *,
    intermediate_as: Behaviour = Behaviour.BENIGN,
) -> int | None:
    """Class of a case for a task (1 = positive), or None when the case is outside the task.

    ``benign_vs_malignant``: malignant = 1; intermediate tumours count as ``intermediate_as``;
    a normal image is outside the task.
    ``os_vs_gct``: osteosarcoma family = 1, giant cell tumour = 0, knee region only.
    ``tumour_vs_normal``: any tumour = 1, a normal image = 0.
    ``normal_benign_malignant``: 0 normal, 1 benign (intermediate as ``intermediate_as``),
    2 malignant (BTXRD's three classes; names in ``CLASS_NAMES``).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if diagnosis is None:
        return None
    behaviour = diagnosis.behaviour
    if behaviour is Behaviour.INTERMEDIATE:
        behaviour = intermediate_as
    if task == "tumour_vs_normal":
        return int(behaviour is not Behaviour.NORMAL)
    if task == "normal_benign_malignant":
        return {Behaviour.NORMAL: 0, Behaviour.BENIGN: 1, Behaviour.MALIGNANT: 2}[behaviour]
    if behaviour is Behaviour.NORMAL:
        return None
    if task == "benign_vs_malignant":
        return int(behaviour is Behaviour.MALIGNANT)
    # os_vs_gct
    if location is None or location.region != "knee":
        return None
    if diagnosis.code in OSTEOSARCOMA_CODES:
        return 1
    if diagnosis.code in GCT_CODES:
        return 0
    return None


# ---------------------------------------------------------------------------------------------
# BTXRD (Scientific Data, 2025): its subtype and site columns in this vocabulary (#20).

BTXRD_SUBTYPES: dict[str, str] = {
    "osteochondroma": "osteochondroma",
    "multiple osteochondromas": "multiple_osteochondromas",
    "simple bone cyst": "simple_bone_cyst",
    "giant cell tumor": "giant_cell_tumour",
    "osteofibroma": "osteofibrous_dysplasia",
    "synovial osteochondroma": "synovial_chondromatosis",
    "other bt": "other_benign",
    "osteosarcoma": "osteosarcoma",
    "other mt": "other_malignant",
}
BTXRD_BONES: dict[str, str] = {
    "hand": "hand", "ulna": "ulna", "radius": "radius", "humerus": "humerus", "foot": "foot",
    "tibia": "tibia", "fibula": "fibula", "femur": "femur", "hip bone": "pelvis",
}
BTXRD_JOINTS: dict[str, str] = {
    "ankle-joint": "ankle_joint", "knee-joint": "knee_joint", "hip-joint": "hip_joint",
    "wrist-joint": "wrist_joint", "elbow-joint": "elbow_joint", "shoulder-joint": "shoulder_joint",
}


def btxrd_location(marked: Sequence[str]) -> Location | None:
    """The location of a BTXRD row from its marked site columns (in the CSV's column order).

    One bone: that bone; a long bone takes its segment from the one marked joint at one of its
    ends (femur + knee-joint = distal femur), else segment "unspecified". Several bones: the one
    marked joint (femur + tibia + knee-joint = knee joint), else the first long bone in the
    CSV's order with segment "unspecified" (else the first bone). No bone: the first marked
    joint. Nothing marked: None.
    """
    bones = [BTXRD_BONES[c] for c in marked if c in BTXRD_BONES]
    joints = [BTXRD_JOINTS[c] for c in marked if c in BTXRD_JOINTS]
    if len(bones) == 1:
        bone = bones[0]
        if bone not in LONG_BONES:
            return Location(bone, None)
        segments = {seg for (b, seg), joint in _JOINT.items()
                    if b == bone and f"{joint}_joint" in joints}
        return Location(bone, segments.pop() if len(segments) == 1 else "unspecified")
    if bones:
        if len(joints) == 1:
            return Location(joints[0], None)
        long_bones = [b for b in bones if b in LONG_BONES]
        return Location(long_bones[0], "unspecified") if long_bones else Location(bones[0], None)
    return Location(joints[0], None) if joints else None
