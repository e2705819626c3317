"""Vocabulary terms in the reader's language (#25): the ``term`` filter of the templates.

The database stores canonical codes (``osteosarcoma``, ``distal_femur``, ``malignant``). In
English a page shows them as stored (the codes are what the filters and exports use); in
Simplified Chinese it shows the Chinese name that ``bonebase/vocab.py`` already accepts as a
synonym in manifests (its first Chinese synonym), composed for locations (bone + segment:
``distal_femur`` -> 股骨远端). :data:`ZH_EXTRA` names the few entities that vocab.py has no
Chinese synonym for yet. A term no table knows is shown as stored, never dropped.
"""

from __future__ import annotations

from functools import cache

from bonebase.vocab import DIAGNOSES, LONG_BONES, lookup_diagnosis

# WHO 2020 names in Chinese (人民卫生出版社's translation of the WHO classification of bone
# tumours) for the entities without a Chinese synonym in bonebase/vocab.py.
ZH_EXTRA = {
    "periosteal_chondroma": "骨膜软骨瘤",
    "atypical_cartilaginous_tumour": "非典型软骨性肿瘤",
    "dedifferentiated_chondrosarcoma": "去分化软骨肉瘤",
    "clear_cell_chondrosarcoma": "透明细胞软骨肉瘤",
    "mesenchymal_chondrosarcoma": "间叶性软骨肉瘤",
    "small_cell_osteosarcoma": "小细胞骨肉瘤",
    "low_grade_central_osteosarcoma": "低级别中心性骨肉瘤",
    "periosteal_osteosarcoma": "骨膜骨肉瘤",
    "high_grade_surface_osteosarcoma": "高级别表面骨肉瘤",
    "desmoplastic_fibroma": "促结缔组织增生性纤维瘤",
    "epithelioid_haemangioma": "上皮样血管瘤",
    "epithelioid_haemangioendothelioma": "上皮样血管内皮瘤",
    "other_benign": "其他良性骨肿瘤",
    "other_malignant": "其他恶性骨肿瘤",
    "shoulder_joint": "肩关节", "elbow_joint": "肘关节", "wrist_joint": "腕关节",
    "hip_joint": "髋关节", "knee_joint": "膝关节", "ankle_joint": "踝关节",
}
ZH_BEHAVIOUR = {"benign": "良性", "intermediate": "中间型", "malignant": "恶性", "normal": "正常"}
ZH_SEX = {"M": "男", "F": "女", "O": "其他"}
# Class names of the tasks (bonebase.vocab.CLASS_NAMES), as a model answers.
ZH_CLASS = {**ZH_BEHAVIOUR, "giant cell tumour": "骨巨细胞瘤", "osteosarcoma": "骨肉瘤",
            "tumour": "肿瘤"}
ZH_SEGMENT = {"proximal": "近端", "distal": "远端", "diaphysis": "骨干", "unspecified": "（节段未明）"}


def _chinese(synonyms) -> str | None:
    return next((s for s in synonyms if not s.isascii()), None)


@cache
def _zh_bones() -> dict[str, str]:
    from bonebase.vocab import _BONE_SYNONYMS  # the one table of bone names, Chinese included

    return {bone: ZH_EXTRA.get(bone) or _chinese(syns) or bone
            for bone, syns in _BONE_SYNONYMS.items()}


def zh_diagnosis(value: str) -> str | None:
    d = DIAGNOSES.get(value) or lookup_diagnosis(value)
    if d is None:
        return None
    return ZH_EXTRA.get(d.code) or _chinese(d.synonyms)


def zh_location(code: str) -> str | None:
    bones = _zh_bones()
    if code in bones:
        return bones[code]
    segment, _, bone = code.partition("_")
    if bone in LONG_BONES and segment in ZH_SEGMENT:
        return bones[bone] + ZH_SEGMENT[segment]
    return None


_ZH = {
    "diagnosis": zh_diagnosis,
    "location": zh_location,
    "behaviour": ZH_BEHAVIOUR.get,
    "sex": ZH_SEX.get,
    "class": ZH_CLASS.get,
}


def term(value, kind: str = "diagnosis", lang: str = "en"):
    """``value`` (a stored code of ``kind``: diagnosis, location, behaviour, sex or class) as
    the page of language ``lang`` shows it."""
    if value is None or value == "" or lang != "zh-Hans":
        return value
    if kind not in _ZH:
        raise ValueError(f"term kind {kind!r} is unknown: use one of {', '.join(_ZH)}")
    return _zh(str(value), kind)


@cache  # a page names the same few hundred terms again and again
def _zh(value: str, kind: str) -> str:
    return _ZH[kind](value) or value
