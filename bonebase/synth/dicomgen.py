"""DICOM writing: CR/DX radiographs and CT/MR slices with a site's vendor tags and real-looking PHI.

Every header carries the identifying data a de-identifier must handle: names (with ideographic
components for Chinese sites), birth date consistent with the age, IDs, institution, physicians,
operators, station and device serial, dates and times, private tags holding names and IDs, and
a nested sequence with a referenced UID. UIDs derive from the case's seed, so output is
byte-for-byte reproducible.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

from bonebase.synth.clinical import CaseSpec
from bonebase.synth.sites import SiteProfile

_BODY_PART = {"femur": "LEG", "tibia": "LEG", "fibula": "LEG", "humerus": "ARM", "radius": "ARM"}
_REGION = {
    "distal_femur": "KNEE",
    "proximal_tibia": "KNEE",
    "proximal_fibula": "KNEE",
    "proximal_femur": "HIP",
    "proximal_humerus": "SHOULDER",
    "distal_radius": "WRIST",
    "distal_tibia": "ANKLE",
}


def uid(case: CaseSpec, *parts: object) -> str:
    """A UID derived from the case's seed and ``parts`` (deterministic, collision-free)."""
    return generate_uid(entropy_srcs=[*map(str, case.seed), case.case_id, *map(str, parts)])


def _ascii_name(pn: str) -> str:
    return pn.split("=")[0]


def _base(
    site: SiteProfile,
    case: CaseSpec,
    *,
    sop_class: str,
    modality: str,
    series: int,
    instance: int,
    series_desc: str,
) -> Dataset:
    """Patient, study, series, equipment and PHI attributes common to every image of a case."""
    ds = Dataset()
    sop_uid = uid(case, "sop", series, instance)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    time = case.study_time
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = case.study_date
    ds.StudyTime = time
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = (
        f"{time[:4]}{(int(time[4:]) + series) % 60:02d}"
    )
    ds.AccessionNumber = case.accession
    ds.Modality = modality
    ds.Manufacturer, ds.ManufacturerModelName = site.manufacturer, site.model_name
    ds.InstitutionName, ds.InstitutionAddress = site.name, site.address
    ds.InstitutionalDepartmentName = "Radiology"
    ds.ReferringPhysicianName = case.referring
    ds.PerformingPhysicianName = case.performing
    ds.OperatorsName = case.operator
    ds.StationName = site.station
    ds.DeviceSerialNumber = site.serial
    ds.SoftwareVersions = f"{site.model_name.split()[0]} 4.{series}.2"
    region = _REGION.get(case.location, case.location.split("_", 1)[1].upper())
    ds.StudyDescription = f"{region} {case.location.split('_')[0].upper()}"
    ds.SeriesDescription = series_desc
    ds.BodyPartExamined = _BODY_PART.get(case.location.split("_", 1)[1], "EXTREMITY")
    ds.PatientName = case.patient_name
    ds.PatientID = case.patient_id
    ds.IssuerOfPatientID = site.code
    ds.OtherPatientIDs = f"MRN{case.patient_id[::-1]}"
    ds.PatientBirthDate = case.birth_date
    ds.PatientSex = case.sex
    ds.PatientAge = f"{case.age:03d}Y"
    ds.PatientAddress = f"{int(case.seed[0]) % 300 + 1} Garden Road, {site.city}"
    ds.StudyInstanceUID = uid(case, "study")
    ds.SeriesInstanceUID = uid(case, "series", series)
    ds.StudyID = case.accession[-6:]
    ds.SeriesNumber, ds.InstanceNumber = series, instance
    ds.Laterality = case.side
    ris_uid = uid(case, "ris-study")
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired)
    ref.ReferencedSOPInstanceUID = ris_uid
    ds.ReferencedStudySequence = Sequence([ref])
    req = Dataset()
    req.RequestedProcedureID = f"RP{case.accession[-8:]}"
    req.ScheduledProcedureStepID = f"SPS{case.accession[-6:]}"
    req.AccessionNumber = case.accession
    req.StudyInstanceUID = ds.StudyInstanceUID
    req.RequestedProcedureDescription = f"{modality} {region} for {_ascii_name(case.referring)}"
    inner = Dataset()
    inner.ReferencedSOPClassUID = ref.ReferencedSOPClassUID
    inner.ReferencedSOPInstanceUID = ris_uid
    req.ReferencedStudySequence = Sequence([inner])
    ds.RequestAttributesSequence = Sequence([req])
    # Vendor private block with identifying data, as real modalities leave behind.
    block = ds.private_block(
        0x0009, f"{site.manufacturer.split()[0].upper()} PRIVATE 1.0", create=True
    )
    block.add_new(0x10, "LO", _ascii_name(case.patient_name))
    block.add_new(0x11, "LO", case.patient_id)
    block.add_new(0x12, "LO", _ascii_name(case.operator))
    block.add_new(0x13, "DA", case.birth_date)
    block.add_new(0x14, "UI", ds.StudyInstanceUID)
    return ds


def _pixels(ds: Dataset, arr: np.ndarray, *, bits: int, signed: bool = False) -> None:
    ds.SamplesPerPixel = 1
    ds.Rows, ds.Columns = arr.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, bits, bits - 1
    ds.PixelRepresentation = int(signed)
    ds.PixelData = arr.astype("<i2" if signed else "<u2").tobytes()


def radiograph(
    site: SiteProfile,
    case: CaseSpec,
    *,
    image: np.ndarray | None,
    shape: tuple[int, int],
    view: str,
    series: int,
    instance: int,
    rng: np.random.Generator,
) -> Dataset:
    """A CR or DX image from a phantom log-signal ``image``; None writes a constant (blank) one."""
    sop = (
        ComputedRadiographyImageStorage
        if site.modality == "CR"
        else DigitalXRayImageStorageForPresentation
    )
    ds = _base(
        site,
        case,
        sop_class=sop,
        modality=site.modality,
        series=series,
        instance=instance,
        series_desc=f"{view} {case.location.replace('_', ' ')}",
    )
    maxv = 2**site.bits - 1
    if image is None:
        stored = np.full(shape, int(maxv * rng.uniform(0.2, 0.8)), dtype=np.int64)
    else:
        # A site-level calibration of log signal to detector values, with per-image exposure.
        span = maxv * 0.75 * site.exposure * rng.uniform(0.85, 1.1) / 1.6
        stored = np.clip(np.rint(maxv * 0.04 + image * span), 0, maxv).astype(np.int64)
    if site.photometric == "MONOCHROME1":
        stored = maxv - stored
    _pixels(ds, stored, bits=site.bits)
    ds.PhotometricInterpretation = site.photometric
    fov = rng.uniform(*site.fov_mm)
    spacing = round(fov / max(shape), 4)
    ds.ImagerPixelSpacing = [spacing, spacing]
    if site.modality == "DX":
        ds.PixelSpacing = [spacing, spacing]
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageLaterality = case.side
    slope, intercept = site.rescale
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "US"
    ds.ViewPosition = {"AP": "AP", "LAT": "LL", "OBL": "AP"}[view]
    ds.KVP = int(rng.integers(55, 70))
    ds.ExposureInuAs = int(rng.integers(2000, 8000) * site.exposure)
    ds.DistanceSourceToDetector = int(rng.integers(1000, 1150))
    real = stored.astype(np.float64) * slope + intercept
    lo, hi = np.percentile(real, [1.0, 99.5])
    lo, hi = float(lo), float(max(hi, lo + 2))
    if site.voi in ("window", "both"):
        ds.WindowCenter = [round((lo + hi) / 2, 1), round((lo + hi) / 2 + (hi - lo) * 0.1, 1)]
        ds.WindowWidth = [round((hi - lo) * 1.1, 1), round((hi - lo) * 0.8, 1)]
        ds.WindowCenterWidthExplanation = ["STANDARD", "CONTRAST"]
        ds.VOILUTFunction = "LINEAR"
    if site.voi in ("lut", "both"):
        first = max(int(lo), 0)
        n = int(min(max(hi - first, 2), 65535))
        x = np.arange(n, dtype=np.float64)
        lut = 4095.0 / (1.0 + np.exp(-(x - n / 2) / (n / 8)))  # S-shaped film-like curve
        item = Dataset()
        item.add_new(0x00283002, "US", [n, first, 12])  # LUTDescriptor
        item.LUTExplanation = f"{site.manufacturer.split()[0]} default"
        item.add_new(0x00283006, "OW", np.rint(lut).astype("<u2").tobytes())  # LUTData
        ds.VOILUTSequence = Sequence([item])
    return ds


def volume_slices(
    site: SiteProfile,
    case: CaseSpec,
    *,
    kind: str,
    vol: np.ndarray,
    series: int,
    rng: np.random.Generator,
) -> list[Dataset]:
    """One CT or MR (``kind`` T1/STIR) dataset per slice of ``vol``."""
    ct = kind == "CT"
    n, size, _ = vol.shape
    spacing = round(float(rng.uniform(1.2, 2.2)), 3)
    thick = float(rng.choice([3.0, 4.0, 5.0]))
    frame = uid(case, "frame", series)
    out = []
    for z in range(n):
        ds = _base(
            site,
            case,
            sop_class=CTImageStorage if ct else MRImageStorage,
            modality="CT" if ct else "MR",
            series=series,
            instance=z + 1,
            series_desc="AX BONE" if ct else f"AX {kind}",
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "FFS"
        ds.ImagePositionPatient = [-size * spacing / 2, -size * spacing / 2, round(z * thick, 2)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = thick
        ds.SpacingBetweenSlices = thick
        ds.SliceLocation = round(z * thick, 2)
        ds.PhotometricInterpretation = "MONOCHROME2"
        if ct:
            _pixels(ds, np.clip(np.rint(vol[z]) + 1024, 0, 4095), bits=12)
            ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
            ds.KVP = 120
            ds.ConvolutionKernel = "BONE"
            ds.WindowCenter, ds.WindowWidth = [500, 40], [2000, 400]
        else:
            _pixels(ds, np.clip(np.rint(vol[z]), 0, 4095), bits=12)
            ds.ScanningSequence = "SE" if kind == "T1" else ["IR", "SE"]
            ds.SequenceVariant = "NONE"
            ds.MRAcquisitionType = "2D"
            ds.RepetitionTime = 550.0 if kind == "T1" else 4500.0
            ds.EchoTime = 12.0 if kind == "T1" else 60.0
            ds.MagneticFieldStrength = 1.5
            ds.SequenceName = "se2d1" if kind == "T1" else "tir2d1"
        out.append(ds)
    return out
