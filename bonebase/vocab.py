"""Controlled vocabularies: primary bone tumour diagnoses and anatomical sites.

Diagnoses follow the WHO Classification of Tumours, Soft Tissue and Bone Tumours, 5th edition (2020),
chapter "Bone tumours", with its behaviour classes benign / intermediate (locally aggressive or rarely
metastasising) / malignant. Sites write diagnoses their own way: every accepted spelling, in English
or Chinese, is listed as a synonym, and adding one is a one-line change to ``_DIAGNOSES``.

Task labels (``benign_vs_malignant``, ``os_vs_gct``) are derived here so that export, training,
evaluation and validation all use one mapping.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum


class Behaviour(StrEnum):
    BENIGN = "benign"
    INTERMEDIATE = "intermediate"
    MALIGNANT = "malignant"


@dataclass(frozen=True)
class Diagnosis:
    code: str
    name: str
    behaviour: Behaviour
    family: str  # WHO 2020 group, e.g. "osteogenic"
    synonyms: tuple[str, ...] = ()


B, I, M = Behaviour.BENIGN, Behaviour.INTERMEDIATE, Behaviour.MALIGNANT  # noqa: E741 (table brevity)

# code, preferred name, behaviour, WHO family, synonyms (any case/spacing/punctuation is accepted).
_DIAGNOSES: tuple[Diagnosis, ...] = (
    # Chondrogenic tumours
    Diagnosis("osteochondroma", "Osteochondroma", B, "chondrogenic",
              ("exostosis", "osteocartilaginous exostosis", "骨软骨瘤")),
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
    Diagnosis("osteofibrous_dysplasia", "Osteofibrous dysplasia", B, "other mesenchymal", ()),
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
)

# The osteosarcoma family for the os_vs_gct task (the multi-centre study's positive class).
OSTEOSARCOMA_CODES = frozenset(d.code for d in _DIAGNOSES if d.code.endswith("osteosarcoma"))
GCT_CODES = frozenset({"giant_cell_tumour"})

TASKS = ("benign_vs_malignant", "os_vs_gct")


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
OTHER_BONES = ("pelvis", "sacrum", "spine", "rib", "scapula", "clavicle", "skull", "mandible",
               "hand", "foot", "patella", "calcaneus")
SEGMENTS = ("proximal", "diaphysis", "distal")

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
}
_SEGMENT_SYNONYMS = {
    "proximal": ("近端", "upper"), "distal": ("远端", "lower"),
    "diaphysis": ("shaft", "diaphyseal", "midshaft", "骨干"),
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

    ``benign_vs_malignant``: malignant = 1; intermediate tumours count as ``intermediate_as``.
    ``os_vs_gct``: osteosarcoma family = 1, giant cell tumour = 0, knee region only.
    """
    if diagnosis is None:
        return None
    if task == "benign_vs_malignant":
        behaviour = diagnosis.behaviour
        if behaviour is Behaviour.INTERMEDIATE:
            behaviour = intermediate_as
        return int(behaviour is Behaviour.MALIGNANT)
    if task == "os_vs_gct":
        if location is None or location.region != "knee":
            return None
        if diagnosis.code in OSTEOSARCOMA_CODES:
            return 1
        if diagnosis.code in GCT_CODES:
            return 0
        return None
    raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
