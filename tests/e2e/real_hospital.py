"""A hospital's submission made of real DICOM files that nobody here wrote: pydicom's own test
files (pydicom/data/test_files and the pydicom-data package) and deid-data's PHI-shaped ones,
taken from the installed packages (nothing is downloaded), laid out in folders as a PACS export
names them (patient, then study date) with a manifest written as docs/manifest.md says.

Vendors and encodings: CR from two vendors as JPEG 2000 (lossy and lossless), MR as JPEG 2000,
a multi-frame MR, a CT with a Japanese character set (ISO 2022 IR 87) in JPEG 2000, an
ultrasound marked BurnedInAnnotation YES, a truncated MR. Three of the patients have no
AccessionNumber. Only what the story needs is changed: a PatientID set where a file has none or
belongs to the same patient, an AccessionNumber removed, and, for the copy of a radiograph given
to another patient, new UIDs (one image cannot belong to two patients).
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from bonebase.formats import MANIFEST_COLUMNS


def _source(name: str) -> Path:
    """A test file installed with pydicom, pydicom-data or deid-data (never downloaded)."""
    if name.startswith("deid:"):
        import deid_data

        return Path(deid_data.__file__).parent / "data" / name.removeprefix("deid:")
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name, download=False)
    if found is None:
        raise FileNotFoundError(f"{name}: not installed (pydicom-data is a test dependency)")
    return Path(found)


@dataclass(frozen=True)
class Placed:
    source: str  # the test file
    patient: str  # PatientID in the copy
    accession: str | None  # AccessionNumber in the copy (None: removed, "": kept empty)
    new_uids: bool = False


#: Folder (patient, study date as the PACS names it) -> files. Patients 9RG1 and 11RG3 have
#: accession numbers; 5MR2, 4MR1 and JXD191021006 do not.
LAYOUT: dict[str, list[Placed]] = {
    "9RG1/2004-08-26": [Placed("RG1_J2KI.dcm", "9RG1", "exam Number")],
    "11RG3/2004-08-26": [Placed("RG3_J2KR.dcm", "11RG3", "FUJI95706")],
    "5MR2/2004-08-26": [Placed("MR2_J2KI.dcm", "5MR2", None),
                        Placed("RG3_J2KI.dcm", "5MR2", None, new_uids=True)],
    "5MR2/2000-01-01": [Placed("emri_small.dcm", "5MR2", None)],  # multi-frame MR, 10 frames
    "JXD191021006/2019-10-19": [Placed("J2K_pixelrep_mismatch.dcm", "JXD191021006", None)],
    "4MR1/2004-08-26": [Placed("MR_small.dcm", "4MR1", None),
                        Placed("MR_truncated.dcm", "4MR1", None)],
    "1CT1/2004-01-19": [Placed("CT_small.dcm", "1CT1", None)],
    "2020202020202/2017-03-02": [Placed("deid:ultrasounds/GREYSCALE_IMAGE.dcm", "2020202020202",
                                        "104111149")],
}

#: The manifest: case_id, patient_id, accession_number, sex, age, location, diagnosis,
#: behaviour, modalities, pathology_confirmed (+ study_date and folder for other match rules).
ROWS = [
    ("JP-001", "9RG1", "exam Number", "F", "15", "distal femur", "osteosarcoma", "malignant",
     "XR", "yes", "2004-08-26", "9RG1/2004-08-26"),
    ("JP-002", "11RG3", "FUJI95706", "M", "34", "proximal tibia", "giant cell tumour of bone",
     "intermediate", "XR", "yes", "2004-08-26", "11RG3/2004-08-26"),
    # No accession number: matches the patient's images that have none (by the default rule).
    ("JP-003", "5MR2", "", "M", "12", "proximal humerus", "osteosarcoma", "malignant", "XR;MR",
     "yes", "2004-08-26", "5MR2"),
    # A CT alone: every case needs a radiograph.
    ("JP-004", "JXD191021006", "", "F", "41", "pelvis", "chondrosarcoma", "malignant", "CT",
     "yes", "2019-10-19", "JXD191021006/2019-10-19"),
    # An accession number the images do not carry.
    ("JP-005", "4MR1", "ACC-77", "M", "17", "distal femur", "osteosarcoma", "malignant", "MR",
     "yes", "2004-08-26", "4MR1/2004-08-26"),
]
EXTRA_COLUMNS = ("study_date", "folder")


def build(root: Path, *, extra_columns: bool = False, rename: dict[str, str] | None = None
          ) -> Path:
    """Write the submission under ``root`` and return it. ``rename`` maps a patient's top
    folder (``9RG1``) to the name written instead, in the tree and in the folder column."""
    rename = rename or {}

    def renamed(folder: str) -> str:
        top, _, rest = folder.partition("/")
        return "/".join(p for p in (rename.get(top, top), rest) if p)

    for folder, files in LAYOUT.items():
        target = root / renamed(folder)
        target.mkdir(parents=True, exist_ok=True)
        for placed in files:
            src = _source(placed.source)
            dest = target / Path(placed.source.removeprefix("deid:")).name
            if placed.source == "MR_truncated.dcm":
                shutil.copyfile(src, dest)  # as it is: its Pixel Data ends early
                continue
            ds = pydicom.dcmread(src)
            ds.PatientID = placed.patient
            if placed.accession is None:
                if "AccessionNumber" in ds:
                    del ds.AccessionNumber
            else:
                ds.AccessionNumber = placed.accession
            if placed.new_uids:
                for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
                    setattr(ds, keyword, generate_uid(entropy_srcs=[placed.patient, keyword]))
                ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(dest)
    columns = [*MANIFEST_COLUMNS, *(EXTRA_COLUMNS if extra_columns else ())]
    with (root / "manifest.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(columns)
        for row in ROWS:
            values = list(row[:len(MANIFEST_COLUMNS)])
            if extra_columns:
                values += [row[-2], renamed(row[-1])]
            writer.writerow(values)
    return root
