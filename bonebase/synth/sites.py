"""Site profiles of the synthetic consortium: identity, scanner vendor, acquisition and habits.

Each hospital differs in ways that matter for a held-out-centre test: detector vendor and tags,
image size and pixel spacing, bit depth, exposure and noise, MONOCHROME1 vs MONOCHROME2, how the
display window is stored (WindowCenter/Width, a VOI LUT Sequence or both), rescale slope and
intercept, case mix, folder layout and how the manifest spells locations and diagnoses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Fictional hospitals; the names, addresses and contacts are invented and use example.org.
_TEMPLATES: tuple[dict, ...] = (
    dict(
        code="HX",
        name="Hexi Union Hospital, Orthopaedic Oncology",
        country="CN",
        city="Chengdu",
        address="37 Guoxue Lane, Wuhou District, Chengdu",
        lang="zh",
        vendor=("Carestream Health", "DRX-Evolution"),
        modality="DX",
        size=(448, 512),
        fov_mm=(280, 340),
        bits=14,
        photometric="MONOCHROME2",
        voi="both",
        rescale=(1.0, 0.0),
        noise=0.010,
        blur=0.8,
        layout="tree",
        mix={"osteosarcoma": 1.2, "giant_cell_tumour": 1.3},
        behaviour_rate=0.3,
        ct_rate=0.08,
        mr_rate=0.06,
    ),
    dict(
        code="BJ1",
        name="Northern Capital Orthopaedic Hospital",
        country="CN",
        city="Beijing",
        address="31 Xinjiekou East Street, Xicheng District, Beijing",
        lang="mixed",
        vendor=("FUJIFILM Corporation", "FCR PROFECT CS"),
        modality="CR",
        size=(320, 384),
        fov_mm=(240, 300),
        bits=12,
        photometric="MONOCHROME1",
        voi="window",
        rescale=(1.0, 0.0),
        noise=0.018,
        blur=1.2,
        layout="numbered",
        mix={"giant_cell_tumour": 1.4, "chondrosarcoma": 1.3},
        behaviour_rate=0.0,
        ct_rate=0.05,
        mr_rate=0.10,
    ),
    dict(
        code="MUC",
        name="Isar Klinikum, Sarkomzentrum",
        country="DE",
        city="Munich",
        address="Ismaninger Strasse 22, 81675 Muenchen",
        lang="en",
        vendor=("Siemens Healthineers", "Ysio Max"),
        modality="DX",
        size=(480, 512),
        fov_mm=(300, 360),
        bits=16,
        photometric="MONOCHROME2",
        voi="lut",
        rescale=(0.5, -1024.0),
        noise=0.008,
        blur=0.6,
        layout="flat",
        mix={"chondrosarcoma": 1.8, "enchondroma": 1.5, "osteosarcoma": 0.8},
        behaviour_rate=1.0,
        ct_rate=0.10,
        mr_rate=0.08,
    ),
    dict(
        code="BOS",
        name="Harbor Sarcoma Center",
        country="US",
        city="Boston",
        address="55 Fruit Street, Boston, MA 02114",
        lang="underscore",
        vendor=("GE Healthcare", "Definium 8000"),
        modality="DX",
        size=(256, 320),
        fov_mm=(220, 280),
        bits=12,
        photometric="MONOCHROME2",
        voi="window",
        rescale=(1.0, 0.0),
        noise=0.022,
        blur=1.0,
        layout="tree",
        mix={"ewing_sarcoma": 1.6, "osteochondroma": 1.3},
        behaviour_rate=0.6,
        ct_rate=0.06,
        mr_rate=0.06,
    ),
    dict(
        code="MI",
        name="Istituto Ortopedico Lombardo",
        country="IT",
        city="Milan",
        address="Via Pini 3, 20122 Milano",
        lang="en",
        vendor=("Agfa", "CR 85-X"),
        modality="CR",
        size=(384, 448),
        fov_mm=(260, 320),
        bits=12,
        photometric="MONOCHROME1",
        voi="lut",
        rescale=(1.0, 0.0),
        noise=0.015,
        blur=1.1,
        layout="numbered",
        mix={"aneurysmal_bone_cyst": 1.6, "simple_bone_cyst": 1.4},
        behaviour_rate=0.5,
        ct_rate=0.05,
        mr_rate=0.10,
    ),
    dict(
        code="SH",
        name="Riverside Bone Tumour Centre",
        country="CN",
        city="Shanghai",
        address="600 Yishan Road, Xuhui District, Shanghai",
        lang="zh",
        vendor=("Philips Medical Systems", "DigitalDiagnost"),
        modality="DX",
        size=(416, 480),
        fov_mm=(260, 320),
        bits=14,
        photometric="MONOCHROME2",
        voi="both",
        rescale=(2.0, -500.0),
        noise=0.012,
        blur=0.9,
        layout="flat",
        mix={"osteosarcoma": 1.3, "non_ossifying_fibroma": 1.2},
        behaviour_rate=0.2,
        ct_rate=0.08,
        mr_rate=0.05,
    ),
)

_NAMES = {
    "CN": (
        ("ZHANG", "张"),
        ("WANG", "王"),
        ("LI", "李"),
        ("LIU", "刘"),
        ("CHEN", "陈"),
        ("YANG", "杨"),
        ("HUANG", "黄"),
        ("ZHAO", "赵"),
        ("WU", "吴"),
        ("ZHOU", "周"),
    ),
    "CN_GIVEN": (
        ("WEI", "伟"),
        ("FANG", "芳"),
        ("NA", "娜"),
        ("MIN", "敏"),
        ("JING", "静"),
        ("LEI", "磊"),
        ("QIANG", "强"),
        ("JUN", "军"),
        ("YAN", "艳"),
        ("TAO", "涛"),
    ),
    "DE": ("Mueller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker"),
    "DE_GIVEN": ("Lukas", "Anna", "Jonas", "Lea", "Felix", "Marie", "Paul", "Sophie"),
    "US": ("Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis"),
    "US_GIVEN": ("James", "Mary", "Robert", "Patricia", "Michael", "Jennifer", "David", "Linda"),
    "IT": ("Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci"),
    "IT_GIVEN": ("Giulia", "Marco", "Francesca", "Luca", "Chiara", "Matteo", "Sara", "Andrea"),
}


@dataclass(frozen=True)
class SiteProfile:
    """One hospital: identity, radiograph acquisition settings, habits and case mix."""

    code: str
    name: str
    country: str
    city: str
    address: str
    contact: str
    lang: str  # how the manifest spells terms: en, underscore, zh, mixed
    manufacturer: str
    model_name: str
    modality: str  # CR or DX
    size: tuple[int, int]  # (min, max) pixels per side
    fov_mm: tuple[float, float]
    bits: int
    photometric: str
    voi: str  # window, lut or both
    rescale: tuple[float, float]  # slope, intercept
    noise: float
    blur: float
    exposure: float  # relative dose: scales quantum noise and the raw signal level
    layout: str  # tree, flat or numbered
    mix: tuple[tuple[str, float], ...]  # diagnosis weight multipliers
    behaviour_rate: float  # share of rows whose behaviour column is filled
    ct_rate: float
    mr_rate: float
    serial: str
    station: str

    def json(self) -> dict[str, str]:
        """The sites.json entry."""
        return {
            "code": self.code,
            "name": self.name,
            "country": self.country,
            "contact": self.contact,
        }


def person_name(rng: np.random.Generator, country: str) -> str:
    """A DICOM PN value; Chinese names carry the ideographic component (UTF-8 file)."""
    if country == "CN":
        fam = _NAMES["CN"][rng.integers(len(_NAMES["CN"]))]
        giv = _NAMES["CN_GIVEN"][rng.integers(len(_NAMES["CN_GIVEN"]))]
        return f"{fam[0]}^{giv[0]}={fam[1]}^{giv[1]}"
    fam = _NAMES[country][rng.integers(len(_NAMES[country]))]
    giv = _NAMES[f"{country}_GIVEN"][rng.integers(len(_NAMES[f"{country}_GIVEN"]))]
    return f"{fam}^{giv}"


def make_sites(n: int, rng: np.random.Generator) -> list[SiteProfile]:
    """``n`` site profiles: the templates first, then numbered variants of them (S07, S08 …)."""
    sites = []
    for i in range(n):
        t = dict(_TEMPLATES[i % len(_TEMPLATES)])
        if i >= len(_TEMPLATES):
            # Variants keep a template's vendor and language but get new settings and a new code.
            t["code"] = f"S{i + 1:02d}"
            t["name"] = f"{t['name']} (branch {i // len(_TEMPLATES) + 1})"
            t["noise"] = float(t["noise"] * rng.uniform(0.7, 1.4))
            t["layout"] = ("tree", "flat", "numbered")[int(rng.integers(3))]
            t["photometric"] = ("MONOCHROME1", "MONOCHROME2")[int(rng.integers(2))]
        code = t["code"]
        sites.append(
            SiteProfile(
                code=code,
                name=t["name"],
                country=t["country"],
                city=t["city"],
                address=t["address"],
                contact=f"data-steward@{code.lower()}.hospital.example.org",
                lang=t["lang"],
                manufacturer=t["vendor"][0],
                model_name=t["vendor"][1],
                modality=t["modality"],
                size=t["size"],
                fov_mm=t["fov_mm"],
                bits=t["bits"],
                photometric=t["photometric"],
                voi=t["voi"],
                rescale=t["rescale"],
                noise=t["noise"],
                blur=t["blur"],
                exposure=float(rng.uniform(0.8, 1.25)),
                layout=t["layout"],
                mix=tuple(sorted(t["mix"].items())),
                behaviour_rate=t["behaviour_rate"],
                ct_rate=t["ct_rate"],
                mr_rate=t["mr_rate"],
                serial=f"{t['vendor'][0][:2].upper()}{int(rng.integers(10**6, 10**7))}",
                station=f"{code}-XR{int(rng.integers(1, 9))}",
            )
        )
    return sites
