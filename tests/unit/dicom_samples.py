"""Realistic DICOM instances for the de-identification tests: the PHI a site really sends."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from bonebase.dicom import stream
from bonebase.dicom.deid import Deidentifier

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"

# Every identifying value put into the sample; none of them may survive de-identification.
PHI = {
    "name": "Müller^Johanna^Maria",
    "family": "Müller",
    "given": "Johanna",
    "patient_id": "MRN-0042731",
    "other_id": "AHV7561234987",
    "birth_date": "19710304",
    "birth_name": "Schneider^Johanna",
    "address": "Rosenweg 12, 8001 Zürich",
    "phone": "+41 44 123 45 67",
    "accession": "ACC99817263",
    "institution": "Kantonsspital Nordwest",
    "institution_address": "Spitalstrasse 21, 4031 Basel",
    "department": "Orthopaedic Radiology Dept 4",
    "referring": "Huber^Thomas^^Dr",
    "performing": "Keller^Annabelle",
    "operator": "Rossi^Marcello",
    "reader": "Bianchi^Lucia",
    "station": "XRAY-ROOM-3B",
    "serial": "SN-4471-XR",
    "study_id": "S77123",
    "requested_procedure_id": "RP-5531-77",
    "private_text": "Johanna Müller knee 2023",
}


def study_uids(n: int) -> dict[str, str]:
    """Deterministic source UIDs for study ``n``."""
    return {
        "study": f"1.3.6.1.4.1.99999.1.{n}",
        "frame": f"1.3.6.1.4.1.99999.4.{n}",
        "previous": f"1.3.6.1.4.1.99999.3.{n}.9",
    }


def make_instance(
    *,
    patient_id: str = PHI["patient_id"],
    study: int = 1,
    series: int = 1,
    instance: int = 1,
    burned_in: str = "NO",
    sop_class: str = DX_FOR_PRESENTATION,
) -> FileDataset:
    """A DX instance with names, IDs, dates, institution, private tags and nested references."""
    uids = study_uids(study)
    sop_uid = f"1.3.6.1.4.1.99999.2.{study}.{series}.{instance}"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.SourceApplicationEntityTitle = "KSNW_PACS"
    ds = FileDataset("sample.dcm", {}, file_meta=meta, preamble=b"\x00" * 128)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = f"1.3.6.1.4.1.99999.2.{study}.{series}"
    ds.FrameOfReferenceUID = uids["frame"]
    ds.InstanceCreationDate = "20230514"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20230514"
    ds.StudyTime = ds.ContentTime = "093015"
    ds.AcquisitionDateTime = "20230514093015.123456+0100"
    ds.AccessionNumber = PHI["accession"]
    ds.Modality = "DX"
    ds.Manufacturer = "ACME Medical"
    ds.InstitutionName = PHI["institution"]
    ds.InstitutionAddress = PHI["institution_address"]
    ds.InstitutionalDepartmentName = PHI["department"]
    ds.ReferringPhysicianName = PHI["referring"]
    ds.StationName = PHI["station"]
    ds.StudyDescription = f"Knee AP {PHI['given']} {PHI['family']}"
    ds.SeriesDescription = "AP knee left"
    ds.PerformingPhysicianName = PHI["performing"]
    ds.NameOfPhysiciansReadingStudy = PHI["reader"]
    ds.OperatorsName = PHI["operator"]
    ds.PatientName = PHI["name"]
    ds.PatientID = patient_id
    ds.OtherPatientIDs = PHI["other_id"]
    ds.PatientBirthDate = PHI["birth_date"]
    ds.PatientBirthName = PHI["birth_name"]
    ds.PatientSex = "F"
    ds.PatientAge = "052Y"
    ds.PatientSize = "1.68"
    ds.PatientWeight = "61"
    ds.PatientAddress = PHI["address"]
    ds.PatientTelephoneNumbers = PHI["phone"]
    ds.AdditionalPatientHistory = f"{PHI['given']} fell at home"
    ds.BodyPartExamined = "KNEE"
    ds.DeviceSerialNumber = PHI["serial"]
    ds.StudyID = PHI["study_id"]
    ds.SeriesNumber = series
    ds.InstanceNumber = instance
    ds.BurnedInAnnotation = burned_in
    ds.PatientOrientation = ["A", "F"]
    request = Dataset()
    request.RequestedProcedureID = PHI["requested_procedure_id"]
    request.AccessionNumber = PHI["accession"]
    request.StudyInstanceUID = uids["study"]
    ds.RequestAttributesSequence = Sequence([request])
    purpose = Dataset()
    purpose.CodeValue, purpose.CodingSchemeDesignator = "121311", "DCM"
    purpose.CodeMeaning = "Localizer"
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = uids["previous"]
    ref.PurposeOfReferenceCodeSequence = Sequence([purpose])
    ds.ReferencedImageSequence = Sequence([ref])
    source = Dataset()
    source.ReferencedSOPClassUID = sop_class
    source.ReferencedSOPInstanceUID = uids["previous"]
    ds.SourceImageSequence = Sequence([source])
    ds.add_new(0x00090010, "LO", "ACME PRIVATE 1.0")  # private creator of block 0x10
    ds.add_new(0x00091001, "LO", PHI["private_text"])
    ds.add_new(0x00091002, "DA", PHI["birth_date"])
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelSpacing = [0.139, 0.139]
    ds.add_new(0x60000010, "US", 8)  # overlay plane rows
    ds.add_new(0x60000011, "US", 8)
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 4)
    ds.add_new(0x60004000, "LT", f"{PHI['family']} overlay")
    ds.PixelData = b"\x00\x00" * 64
    return ds


def streamed_output(path: Path, deid: Deidentifier) -> bytes:
    """The bytes ingestion stores for ``path``: the header de-identified and encoded as in
    bonebase.ingest.process, Pixel Data copied from the source between head and tail."""
    with stream.open_parts(path, path.name) as parts:
        out = deid.deidentify(parts.dataset, site="HX", scan=False)  # encode_parts scans
        if parts.pixels is None:  # Pixel Data read into the data set (deflated files)
            return out.to_bytes()
        head, tail = out.encode_parts()
        buf = io.BytesIO()
        buf.write(head)
        parts.copy_pixels(buf, hashlib.sha256())
        buf.write(tail)
        return buf.getvalue()
