"""Case mix and clinical variables: diagnosis, age, sex, location, studies and identifiers.

Distributions follow the textbook epidemiology of primary bone tumours (WHO 2020; Unni's Bone
Tumors): osteosarcoma peaks in the second decade with a small late peak, giant cell tumour at
20-40 years after physeal closure, osteochondroma, simple bone cyst and non-ossifying fibroma in
children, chondrosarcoma in older adults; the knee is the commonest site. The overlap is wide on
purpose: age, sex and location alone separate benign from malignant only weakly.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

import numpy as np

from bonebase.synth.sites import SiteProfile, person_name

# Base case mix (share of cases) before a site's multipliers.
BASE_MIX: dict[str, float] = {
    "osteosarcoma": 0.27,
    "giant_cell_tumour": 0.25,
    "osteochondroma": 0.10,
    "simple_bone_cyst": 0.06,
    "chondrosarcoma": 0.08,
    "enchondroma": 0.06,
    "ewing_sarcoma": 0.06,
    "aneurysmal_bone_cyst": 0.05,
    "non_ossifying_fibroma": 0.07,
}

# Age mixtures: (weight, mean, sd) components, then clip range.
_AGE: dict[str, tuple[tuple[tuple[float, float, float], ...], tuple[int, int]]] = {
    "osteosarcoma": (((0.88, 16, 5), (0.12, 62, 10)), (5, 85)),
    "giant_cell_tumour": (((1.0, 31, 9),), (15, 70)),
    "osteochondroma": (((1.0, 16, 7),), (5, 50)),
    "simple_bone_cyst": (((1.0, 12, 5),), (3, 30)),
    "chondrosarcoma": (((1.0, 50, 14),), (18, 85)),
    "enchondroma": (((1.0, 36, 14),), (8, 75)),
    "ewing_sarcoma": (((1.0, 16, 7),), (3, 45)),
    "aneurysmal_bone_cyst": (((1.0, 16, 7),), (3, 45)),
    "non_ossifying_fibroma": (((1.0, 14, 5),), (5, 35)),
}

_SEX_M = {
    "osteosarcoma": 0.57,
    "giant_cell_tumour": 0.45,
    "osteochondroma": 0.6,
    "simple_bone_cyst": 0.62,
    "chondrosarcoma": 0.55,
    "enchondroma": 0.5,
    "ewing_sarcoma": 0.58,
    "aneurysmal_bone_cyst": 0.47,
    "non_ossifying_fibroma": 0.58,
}

# Locations as vocabulary codes (segment_bone) with weights per diagnosis.
LOCATION_MIX: dict[str, dict[str, float]] = {
    "osteosarcoma": {
        "distal_femur": 0.52,
        "proximal_tibia": 0.26,
        "proximal_humerus": 0.11,
        "proximal_fibula": 0.03,
        "proximal_femur": 0.04,
        "diaphysis_femur": 0.04,
    },
    "giant_cell_tumour": {
        "distal_femur": 0.45,
        "proximal_tibia": 0.33,
        "distal_radius": 0.12,
        "proximal_humerus": 0.04,
        "proximal_fibula": 0.03,
        "distal_tibia": 0.03,
    },
    "osteochondroma": {
        "distal_femur": 0.35,
        "proximal_tibia": 0.2,
        "proximal_humerus": 0.25,
        "proximal_femur": 0.1,
        "distal_radius": 0.05,
        "proximal_fibula": 0.05,
    },
    "simple_bone_cyst": {
        "proximal_humerus": 0.5,
        "proximal_femur": 0.35,
        "distal_femur": 0.05,
        "proximal_tibia": 0.05,
        "distal_tibia": 0.05,
    },
    "chondrosarcoma": {
        "proximal_femur": 0.33,
        "proximal_humerus": 0.3,
        "distal_femur": 0.22,
        "proximal_tibia": 0.1,
        "diaphysis_femur": 0.05,
    },
    "enchondroma": {
        "proximal_humerus": 0.35,
        "distal_femur": 0.35,
        "proximal_tibia": 0.15,
        "proximal_femur": 0.15,
    },
    "ewing_sarcoma": {
        "diaphysis_femur": 0.3,
        "diaphysis_tibia": 0.15,
        "proximal_humerus": 0.15,
        "distal_femur": 0.15,
        "proximal_tibia": 0.1,
        "diaphysis_humerus": 0.15,
    },
    "aneurysmal_bone_cyst": {
        "proximal_tibia": 0.25,
        "distal_femur": 0.25,
        "proximal_humerus": 0.25,
        "distal_tibia": 0.1,
        "proximal_fibula": 0.15,
    },
    "non_ossifying_fibroma": {
        "distal_femur": 0.45,
        "proximal_tibia": 0.3,
        "distal_tibia": 0.2,
        "proximal_fibula": 0.05,
    },
}

# How sites spell things in the manifest (every term parses with bonebase.vocab).
_ZH_BONE = {"femur": "股骨", "tibia": "胫骨", "fibula": "腓骨", "humerus": "肱骨", "radius": "桡骨"}
_ZH_SEG = {"proximal": "近端", "distal": "远端", "diaphysis": "骨干"}
_DX_TERMS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "osteosarcoma": ("Osteosarcoma", "conventional osteosarcoma", "osteogenic sarcoma"),
        "giant_cell_tumour": ("Giant cell tumour of bone", "giant cell tumor", "GCTB"),
        "osteochondroma": ("Osteochondroma", "osteocartilaginous exostosis"),
        "simple_bone_cyst": ("Simple bone cyst", "unicameral bone cyst"),
        "chondrosarcoma": ("Chondrosarcoma", "central chondrosarcoma"),
        "enchondroma": ("Enchondroma",),
        "ewing_sarcoma": ("Ewing sarcoma", "Ewing's sarcoma"),
        "aneurysmal_bone_cyst": ("Aneurysmal bone cyst", "ABC"),
        "non_ossifying_fibroma": ("Non-ossifying fibroma", "NOF"),
    },
    "zh": {
        "osteosarcoma": ("骨肉瘤", "成骨肉瘤"),
        "giant_cell_tumour": ("骨巨细胞瘤", "巨细胞瘤"),
        "osteochondroma": ("骨软骨瘤",),
        "simple_bone_cyst": ("单纯性骨囊肿", "骨囊肿"),
        "chondrosarcoma": ("软骨肉瘤",),
        "enchondroma": ("内生软骨瘤",),
        "ewing_sarcoma": ("尤文肉瘤",),
        "aneurysmal_bone_cyst": ("动脉瘤样骨囊肿",),
        "non_ossifying_fibroma": ("非骨化性纤维瘤",),
    },
}


@dataclass(frozen=True)
class CaseSpec:
    """Everything needed to render one case and to write its manifest row."""

    index: int  # position in the site's plan (also the default manifest order)
    case_id: str
    patient_id: str
    accession: str
    patient_name: str
    birth_date: str  # YYYYMMDD
    sex: str
    age: int
    study_date: str
    study_time: str
    diagnosis: str  # vocabulary code
    location: str  # vocabulary code, e.g. distal_femur
    side: str  # L or R
    views: tuple[str, ...]  # radiograph views, e.g. ("AP", "LAT"); empty for no radiograph
    ct: bool = False
    mr: bool = False
    seed: tuple[int, ...] = ()  # SeedSequence entropy of this case's rendering stream
    referring: str = ""
    performing: str = ""
    operator: str = ""
    blank_view: int | None = None  # index into views rendered as a constant image (fault)
    in_manifest: bool = True
    rendered: bool = True
    term_dx: str = ""  # diagnosis as the site writes it
    term_loc: str = ""
    behaviour: str = ""  # behaviour column as the site writes it (maybe empty)
    declared: str = ""  # modalities column
    extra: dict = field(default_factory=dict, compare=False)

    def with_(self, **changes) -> CaseSpec:
        return replace(self, **changes)


def weighted_choice(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = sorted(weights)
    p = np.array([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def sample_age(rng: np.random.Generator, diagnosis: str) -> int:
    comps, (lo, hi) = _AGE[diagnosis]
    w = np.array([c[0] for c in comps])
    _, mean, sd = comps[int(rng.choice(len(comps), p=w / w.sum()))]
    return int(np.clip(round(rng.normal(mean, sd)), lo, hi))


def location_term(code: str, lang: str, rng: np.random.Generator) -> str:
    """A site's spelling of a location code ("distal_femur" → "distal femur", "股骨远端" …)."""
    seg, bone = code.split("_", 1)
    if lang == "mixed":
        lang = ("en", "zh", "underscore")[int(rng.integers(3))]
    if lang == "zh":
        return _ZH_BONE[bone] + _ZH_SEG[seg]
    if lang == "underscore":
        return code
    if seg == "diaphysis":
        return f"{bone} shaft"
    return f"{seg} {bone}"


def diagnosis_term(code: str, lang: str, rng: np.random.Generator) -> str:
    if lang == "mixed":
        lang = ("en", "zh")[int(rng.integers(2))]
    terms = _DX_TERMS["zh" if lang == "zh" else "en"][code]
    return terms[int(rng.integers(len(terms)))]


def _birth_date(rng: np.random.Generator, study: dt.date, age: int) -> str:
    # Birth lies 1-364 days before the age-th anniversary, so the age at the study is exact.
    day = min(study.day, 28) if study.month == 2 else study.day
    anniversary = dt.date(study.year - age, study.month, day)
    return (anniversary - dt.timedelta(days=int(rng.integers(1, 365)))).strftime("%Y%m%d")


def plan_cases(
    site: SiteProfile, n: int, rng: np.random.Generator, seeds: list[np.random.SeedSequence]
) -> list[CaseSpec]:
    """The site's ``n`` cases; ~3% are a second accession of an earlier patient."""
    mix = dict(BASE_MIX)
    for code, mult in site.mix:
        mix[code] *= mult
    cases: list[CaseSpec] = []
    used_pids: set[str] = set()
    start = dt.date(2014, 1, 1) + dt.timedelta(days=int(rng.integers(0, 700)))
    for i in range(n):
        study = start + dt.timedelta(days=int(i * rng.uniform(6, 14)))
        time = f"{int(rng.integers(7, 19)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}"
        nviews = int(rng.choice([1, 2, 3], p=[0.2, 0.7, 0.1]))
        views = ("AP", "LAT", "OBL")[:nviews]
        accession = f"{site.code[:2]}{study:%y%m%d}{i:04d}"
        common = dict(
            index=i,
            case_id=f"{site.code}-{i + 1:04d}",
            accession=accession,
            study_date=study.strftime("%Y%m%d"),
            study_time=time,
            views=views,
            ct=bool(rng.random() < site.ct_rate),
            mr=bool(rng.random() < site.mr_rate),
            seed=tuple(int(x) for x in seeds[i].generate_state(4)),
            referring=person_name(rng, site.country),
            performing=person_name(rng, site.country),
            operator=person_name(rng, site.country),
        )
        earlier = [c for c in cases if c.extra.get("repeat") is None]
        if earlier and rng.random() < 0.03:
            # A second accession of an earlier patient: same person, same tumour, later study.
            first = earlier[int(rng.integers(len(earlier)))]
            age = first.age + int(rng.integers(0, 2))
            prev = dt.datetime.strptime(first.birth_date, "%Y%m%d").date()
            case = first.with_(**common, age=age, extra={"repeat": first.case_id})
            # Keep the birth date; move the study so the manifest age still holds.
            study = dt.date(prev.year + age, prev.month, min(prev.day, 28)) + dt.timedelta(
                days=int(rng.integers(1, 200))
            )
            case = case.with_(
                study_date=study.strftime("%Y%m%d"),
                accession=f"{site.code[:2]}{study:%y%m%d}{i:04d}",
            )
            first.extra.setdefault("repeat_of_me", []).append(case.case_id)
            cases.append(case)
            continue
        dx = weighted_choice(rng, mix)
        age = sample_age(rng, dx)
        pid = f"{int(rng.integers(10**7, 10**8))}"
        while pid in used_pids:
            pid = f"{int(rng.integers(10**7, 10**8))}"
        used_pids.add(pid)
        loc = weighted_choice(rng, LOCATION_MIX[dx])
        sex = "M" if rng.random() < _SEX_M[dx] else "F"
        cases.append(
            CaseSpec(
                **common,
                patient_id=pid,
                patient_name=person_name(rng, site.country),
                birth_date=_birth_date(rng, study, age),
                sex=sex,
                age=age,
                diagnosis=dx,
                location=loc,
                side="L" if rng.random() < 0.5 else "R",
                extra={},
            )
        )
    return [_spell(site, c, rng) for c in cases]


def _spell(site: SiteProfile, case: CaseSpec, rng: np.random.Generator) -> CaseSpec:
    from bonebase.vocab import DIAGNOSES

    behaviour = ""
    if rng.random() < site.behaviour_rate:
        behaviour = str(DIAGNOSES[case.diagnosis].behaviour)
    mods = ["XR"] + (["CT"] if case.ct else []) + (["MR"] if case.mr else [])
    return case.with_(
        term_dx=diagnosis_term(case.diagnosis, site.lang, rng),
        term_loc=location_term(case.location, site.lang, rng),
        behaviour=behaviour,
        declared=";".join(mods),
    )
