"""De-identification: PS3.15 actions, keyed determinism, no identifying value left behind."""

from __future__ import annotations

import copy
import datetime as dt
import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from bonebase.dicom.deid import Deidentifier
from bonebase.dicom.deid_scan import ENCODED, Matcher, Residue, locate, scan_dataset, summary
from bonebase.dicom.deid_table import action_table, load_rows
from bonebase.errors import InputError
from tests.unit.dicom_samples import PHI, SECONDARY_CAPTURE, make_instance, study_uids

SECRET = b"consortium-test-secret-0123456789"
SITE = "KSNW"


@pytest.fixture(scope="module")
def deid() -> Deidentifier:
    return Deidentifier(SECRET)


def _write(ds: pydicom.Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def test_to_bytes_scans_encoded_header(deid: Deidentifier) -> None:
    clean = deid.deidentify(make_instance(), site=SITE)
    data = clean.to_bytes()
    assert clean.residue == [] and pydicom.dcmread(io.BytesIO(data)).PatientID == clean.pseudonym
    ds = make_instance()
    ds.add_new(0x00091001, "UN", PHI["accession"].encode())  # raw private bytes: removed
    ds.DerivationDescription = "ok"
    leaky = deid.deidentify(ds, site=SITE)
    leaky.dataset.ImageComments = PHI["institution"]  # a later step puts PHI back in
    leaky.to_bytes()
    assert leaky.residue == ["phi_residue: (0020,4000) ImageComments holds the InstitutionName"
                             " value (institution name)"]


def _phi_values() -> list[str]:
    values = []
    for value in PHI.values():
        values.extend(p for p in value.split("^") if len(p) >= 3)  # name components
        values.append(value)
    return values


def _all_uids(ds: pydicom.Dataset) -> list[tuple[str, str]]:
    found = []
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value:
            values = elem.value if isinstance(elem.value, list) else [elem.value]
            found.extend((elem.keyword, str(v)) for v in values)
    return found


def test_no_identifying_value_survives_in_dataset_or_bytes(deid: Deidentifier) -> None:
    result = deid.deidentify(make_instance(), site=SITE)
    assert result.residue == []
    data = _write(result.dataset).lower()
    for value in _phi_values():
        for codec in ("utf-8", "latin-1"):
            assert value.lower().encode(codec) not in data, value
    for value in study_uids(1).values():
        assert value.encode() not in data
    assert b"1.3.6.1.4.1.99999" not in data  # no source UID anywhere, file meta included
    assert b"KSNW_PACS" not in data.upper()  # source AE title in the file meta


def test_identifiers_collected_from_input(deid: Deidentifier) -> None:
    result = deid.deidentify(make_instance(), site=SITE)
    for key in ("patient_id", "accession", "institution", "birth_date", "phone"):
        assert PHI[key] in result.identifiers
    assert "Müller" in result.identifiers  # name components, for free-text scans


def test_input_is_not_mutated(deid: Deidentifier) -> None:
    ds = make_instance()
    before = copy.deepcopy(ds)
    deid.deidentify(ds, site=SITE)
    assert ds == before
    assert ds.file_meta == before.file_meta


def test_pseudonym_is_keyed_hmac_per_site(deid: Deidentifier) -> None:
    first = deid.deidentify(make_instance(), site=SITE)
    again = Deidentifier(SECRET).deidentify(make_instance(series=2, instance=5), site=SITE)
    assert first.pseudonym == again.pseudonym
    assert first.pseudonym.startswith(f"{SITE}-") and len(first.pseudonym) == len(SITE) + 21
    assert str(first.dataset.PatientID) == first.pseudonym == str(first.dataset.PatientName)
    assert deid.pseudonym("OTHER", PHI["patient_id"]) != first.pseudonym
    assert Deidentifier(b"another-secret-0123456789").pseudonym(SITE, PHI["patient_id"]) != (
        first.pseudonym
    )
    with pytest.raises(InputError, match="site code"):
        deid.pseudonym("bad site!", "x")


def test_uids_remapped_deterministically_everywhere(deid: Deidentifier) -> None:
    out = deid.deidentify(make_instance(), site=SITE).dataset
    again = Deidentifier(SECRET).deidentify(make_instance(), site=SITE).dataset
    assert _all_uids(out) == _all_uids(again)
    for keyword, uid in _all_uids(out):
        assert UID(uid).is_valid, (keyword, uid)
        if keyword in ("SOPClassUID", "ReferencedSOPClassUID"):
            assert uid.startswith("1.2.840.10008.")
        else:
            assert uid.startswith("2.25."), keyword
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.file_meta.MediaStorageSOPClassUID == out.SOPClassUID
    previous = deid.remap_uid(study_uids(1)["previous"])
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == previous
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == previous
    assert "RequestAttributesSequence" not in out  # Basic Profile: X (kept only when cleaned)
    kept = Deidentifier(SECRET, keep_descriptors=True).deidentify(make_instance(), site=SITE)
    assert (kept.dataset.RequestAttributesSequence[0].StudyInstanceUID
            == kept.dataset.StudyInstanceUID)
    assert len(deid.remap_uid("1.2.3." + "9" * 58)) <= 64


def test_files_of_one_patient_share_study_and_offset(deid: Deidentifier) -> None:
    a = deid.deidentify(make_instance(series=1, instance=1), site=SITE)
    b = deid.deidentify(make_instance(series=2, instance=3), site=SITE)
    assert a.date_offset_days == b.date_offset_days
    assert a.dataset.StudyInstanceUID == b.dataset.StudyInstanceUID
    assert a.dataset.SeriesInstanceUID != b.dataset.SeriesInstanceUID
    assert a.dataset.SOPInstanceUID != b.dataset.SOPInstanceUID
    other = deid.deidentify(make_instance(patient_id="MRN-0099999", study=2), site=SITE)
    assert other.pseudonym != a.pseudonym
    offsets = {deid.date_offset(SITE, f"MRN-{i}") for i in range(200)}
    assert min(offsets) >= -3650 and max(offsets) <= -365 and len(offsets) > 100


def test_dates_shifted_times_kept_birth_date_removed(deid: Deidentifier) -> None:
    result = deid.deidentify(make_instance(), site=SITE)
    out = result.dataset
    shifted = (dt.date(2023, 5, 14) + dt.timedelta(days=result.date_offset_days)).strftime("%Y%m%d")
    for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
        assert out[keyword].value == shifted, keyword
    assert out.InstanceCreationDate == shifted  # a row newer than the 2020 option columns
    assert out.AcquisitionDateTime == shifted + "093015.123456+0100"
    assert out.StudyTime == "093015"
    assert "PatientBirthDate" in out and not out.PatientBirthDate
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_patient_characteristics_kept(deid: Deidentifier) -> None:
    out = deid.deidentify(make_instance(), site=SITE).dataset
    assert (out.PatientSex, out.PatientAge) == ("F", "052Y")
    assert (float(out.PatientSize), float(out.PatientWeight)) == (1.68, 61.0)
    assert out.BodyPartExamined == "KNEE" and out.Modality == "DX"
    assert out.Rows == 8 and list(out.PixelSpacing) == [0.139, 0.139]
    assert out.PixelData == b"\x00\x00" * 64


def test_profile_actions_on_sample(deid: Deidentifier) -> None:
    out = deid.deidentify(make_instance(), site=SITE).dataset
    for keyword in ("OtherPatientIDs", "PatientAddress", "PatientBirthName", "InstitutionAddress"):
        assert keyword not in out, keyword  # X
    for keyword in ("AccessionNumber", "ReferringPhysicianName", "StudyID", "InstitutionName"):
        assert keyword in out and not out[keyword].value, keyword  # Z (or X/Z, X/Z/D -> Z)
    for keyword in ("StudyDescription", "SeriesDescription", "AdditionalPatientHistory"):
        assert not out.get(keyword), keyword  # Basic Profile: free text removed by default
    kept = Deidentifier(SECRET, keep_descriptors=True).deidentify(make_instance(), site=SITE)
    assert kept.dataset.StudyDescription == "Knee AP"  # Clean Descriptors: names scrubbed
    assert kept.dataset.SeriesDescription == "AP knee left"
    assert kept.dataset.AdditionalPatientHistory == "fell at home"
    assert not any(tag.is_private for tag in out.keys())
    assert not any(0x6000 <= tag.group <= 0x60FF for tag in out.keys())
    assert kept.dataset.RequestAttributesSequence[0].get("RequestedProcedureID") in (None, "")
    code = out.ReferencedImageSequence[0].PurposeOfReferenceCodeSequence[0]
    assert code.CodeValue == "121311"


def test_method_attributes(deid: Deidentifier) -> None:
    out = deid.deidentify(make_instance(), site=SITE).dataset
    assert out.PatientIdentityRemoved == "YES"
    method = "\\".join(out.DeidentificationMethod)
    assert "Basic Application Level Confidentiality Profile" in method
    assert all(len(part) <= 64 for part in out.DeidentificationMethod)
    codes = {
        (c.CodeValue, c.CodingSchemeDesignator) for c in out.DeidentificationMethodCodeSequence
    }
    assert codes == {("113100", "DCM"), ("113108", "DCM"), ("113107", "DCM")}
    kept = Deidentifier(SECRET, keep_descriptors=True).deidentify(make_instance(), site=SITE)
    assert ("113105", "DCM") in {(c.CodeValue, c.CodingSchemeDesignator)
                                 for c in kept.dataset.DeidentificationMethodCodeSequence}
    assert "Clean Descriptors Option" in kept.dataset.DeidentificationMethod


def test_retained_private_block(deid: Deidentifier) -> None:
    keeper = Deidentifier(SECRET, retain_private=frozenset({("ACME PRIVATE 1.0", 0x02)}))
    out = keeper.deidentify(make_instance(), site=SITE).dataset
    assert 0x00090010 in out and 0x00091002 in out and 0x00091001 not in out


def test_flags_burned_in_and_secondary_capture(deid: Deidentifier) -> None:
    assert deid.deidentify(make_instance(), site=SITE).needs_review == []
    burned = deid.deidentify(make_instance(burned_in="YES"), site=SITE)
    assert burned.needs_review == ["burned_in_annotation"]
    sc = deid.deidentify(make_instance(sop_class=SECONDARY_CAPTURE), site=SITE)
    assert "secondary_capture" in sc.needs_review


def test_residue_reported_without_the_value(deid: Deidentifier) -> None:
    ds = make_instance()
    ds.Manufacturer = f"{PHI['given']} {PHI['family']}"  # kept by the profile: must be caught
    ds.ImageComments = PHI["accession"]  # Clean Descriptors: scrubbed, no hit
    result = deid.deidentify(ds, site=SITE)
    named = "phi_residue: (0008,0070) Manufacturer holds the PatientName value (person name)"
    assert result.residue == [named]
    result.to_bytes()  # the byte scan names the same element, once
    assert result.residue == [named]
    assert result.findings == [Residue("(0008,0070) Manufacturer", "PatientName")]
    assert not any(PHI["family"] in hit or PHI["given"] in hit for hit in result.residue)
    assert not result.dataset.get("ImageComments")


def test_byte_hit_no_element_holds_is_kept(deid: Deidentifier) -> None:
    """A value the bytes hold but no element's value does (split across elements, say) is never
    cleared for lack of a place: it is named as the encoded header."""
    result = deid.deidentify(make_instance(), site=SITE)
    found = locate(result.dataset, Matcher(result.sources), ["InstitutionName"])
    assert found == [Residue(ENCODED, "InstitutionName")]
    assert str(found[0]) == ("the encoded header holds the InstitutionName value"
                             " (institution name)")


def test_summary_is_bounded() -> None:
    found = [Residue(f"(0009,10{i:02X}) private or unknown", "PatientID") for i in range(8)]
    text = summary(found, limit=5)
    assert text.count("holds the PatientID value (patient ID)") == 5
    assert text.endswith("; and 3 more")
    assert summary(found[:2]) == "; ".join(str(r) for r in found[:2])


def _vendor_named(institution: str, manufacturer: str, **more: str) -> pydicom.Dataset:
    ds = make_instance()
    ds.InstitutionName, ds.Manufacturer = institution, manufacturer
    for keyword, value in more.items():
        setattr(ds, keyword, value)
    return ds


def test_institution_inside_vendor_token_is_no_residue(deid: Deidentifier) -> None:
    """The real case (#17): InstitutionName "TOSHIBA", Manufacturer "TOSHIBA_MEC"; a station
    named like its scanner model too. Institution and station names in equipment attributes
    do not count (docs/quarantine.md)."""
    ds = _vendor_named("TOSHIBA", "TOSHIBA_MEC", StationName="Aquilion",
                       ManufacturerModelName="Aquilion ONE", SoftwareVersions="V4.51ER TOSHIBA")
    result = deid.deidentify(ds, site=SITE)
    result.to_bytes()
    assert result.residue == [] and result.findings == []
    assert result.dataset.Manufacturer == "TOSHIBA_MEC"
    assert not result.dataset.InstitutionName and not result.dataset.StationName  # emptied


def _scan(out: pydicom.Dataset, sources: dict[str, str]) -> list[str]:
    return [str(hit) for hit in scan_dataset(out, Matcher(sources))]


def test_longer_token_rule_outside_equipment_attributes() -> None:
    """Outside equipment attributes an institution's name counts unless every occurrence is
    only part of a longer token; other kinds always count, inside longer tokens too."""
    sources = {"TOSHIBA": "InstitutionName", "MRN12345": "PatientID",
               "Johanna Müller": "PatientName", "Müller": "PatientName"}
    out = pydicom.Dataset()
    out.ImageComments = "scan TOSHIBA_MEC-2 protocol"
    assert _scan(out, sources) == []
    out.ImageComments = "sent from TOSHIBA"  # the site's name on its own: residue
    assert _scan(out, sources) == [
        "(0020,4000) ImageComments holds the InstitutionName value (institution name)"]
    out.ImageComments = "TOSHIBA_MEC; sent from TOSHIBA"  # one occurrence on its own is enough
    assert len(_scan(out, sources)) == 1
    out.ImageComments = "seen by Johanna Müller"  # a patient's name always counts
    assert _scan(out, sources) == [
        "(0020,4000) ImageComments holds the PatientName value (person name)"]
    del out.ImageComments
    out.Manufacturer = "MRN12345-A"  # an ID in a longer token, even in an equipment attribute
    assert _scan(out, sources) == [
        "(0008,0070) Manufacturer holds the PatientID value (patient ID)"]
    out.Manufacturer = "Müller_Medical"  # a person's name in a vendor-like token still counts
    assert _scan(out, sources) == [
        "(0008,0070) Manufacturer holds the PatientName value (person name)"]


def test_patient_name_in_image_comments_still_holds(deid: Deidentifier) -> None:
    ds = _vendor_named("TOSHIBA", "TOSHIBA_MEC")
    result = deid.deidentify(ds, site=SITE)
    result.dataset.ImageComments = f"{PHI['given']} {PHI['family']}"  # put back after cleaning
    result.to_bytes()
    assert [str(r) for r in result.findings] == [
        "(0020,4000) ImageComments holds the PatientName value (person name)"]


def test_missing_patient_id_and_bad_dates(deid: Deidentifier) -> None:
    ds = make_instance()
    ds.PatientID = ""
    with pytest.raises(InputError, match="PatientID"):
        deid.deidentify(ds, site=SITE)
    given = deid.deidentify(ds, site=SITE, patient_id=PHI["patient_id"])
    assert given.pseudonym == deid.pseudonym(SITE, PHI["patient_id"])
    with pytest.warns(UserWarning, match="Invalid value"):
        ds.SeriesDate = "2023-13-99"
    flagged = deid.deidentify(ds, site=SITE, patient_id="X1")
    assert "unparseable_date:SeriesDate" in flagged.needs_review
    assert not flagged.dataset.SeriesDate


def test_table_rows_and_actions() -> None:
    rows = load_rows()
    assert len(rows) > 600
    table = action_table()
    expected = {
        0x00101010: "K",  # Patient's Age: Retain Patient Characteristics
        0x00100040: "K",  # Patient's Sex
        0x00101030: "K",  # Patient's Weight
        0x00100030: "Z",  # Patient's Birth Date: no option keeps it
        0x00080020: "C",  # Study Date: Modified Dates
        0x00080030: "C",  # Study Time
        0x0020000D: "U",  # Study Instance UID
        0x00080050: "Z",  # Accession Number
        0x00081030: "X",  # Study Description: Basic Profile (descriptors not kept)
        0x00101040: "X",  # Patient's Address
        0x00081140: "U",  # Referenced Image Sequence (X/Z/U*)
    }
    assert {tag: table.action(tag) for tag in expected} == expected
    assert action_table(clean_descriptors=True).action(0x00081030) == "C"  # kept: cleaned
    assert table.action(0x50020010) == "X"  # curve group 50xx
    assert table.action(0x60023000) == "X"  # overlay data 60xx


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "rtplan.dcm",
        "rtstruct.dcm",
        "test-SR.dcm",
        "JPEG2000.dcm",
    ],
)
def test_pydicom_bundled_files(deid: Deidentifier, name: str) -> None:
    ds = pydicom.dcmread(get_testdata_file(name), force=True)
    original_name = str(ds.PatientName)
    original_uids = {uid for kw, uid in _all_uids(ds) if not uid.startswith("1.2.840.10008.")}
    result = deid.deidentify(ds, site=SITE, patient_id=str(ds.get("PatientID") or "ID-1"))
    data = _write(result.dataset)
    back = pydicom.dcmread(io.BytesIO(data))
    assert back.PatientName == result.pseudonym and back.PatientIdentityRemoved == "YES"
    assert not any(tag.is_private for tag in back.keys())
    if len(original_name) >= 3:
        assert original_name.encode() not in data
    assert not original_uids & {uid for _, uid in _all_uids(back)}
    for uid in original_uids - {PYDICOM_IMPLEMENTATION_UID[: len(u)] for u in original_uids}:
        assert uid.encode() not in data  # (a prefix of pydicom's own root is no leak)


def test_site_code_as_issuer_is_not_residue():
    """Sites send their own code as IssuerOfPatientID; the pseudonym carries the site code too,
    which must not count as identifying residue."""
    from bonebase.dicom.deid import Deidentifier
    from tests.unit.dicom_samples import make_instance

    ds = make_instance()
    ds.PatientID = "10154104"
    ds.IssuerOfPatientID = "BOS"
    result = Deidentifier(b"k" * 32).deidentify(ds, site="BOS")
    result.to_bytes()
    assert result.residue == []
    assert result.dataset.PatientID.startswith("BOS-")


# --- the identifier matcher against its plain definition -----------------------------------------

def _reference_text(identifiers: dict[str, str], text: str) -> list[tuple[str, str]]:
    """Whole-word matching as defined: both sides as their words joined by single spaces."""
    import re

    def norm(s: str) -> str:
        return " " + " ".join(re.findall(r"[^\W_]+", s.casefold())) + " "

    words = norm(text)
    return [(v, src) for v, src in identifiers.items() if norm(v).strip() and norm(v) in words]


def _reference_bytes(identifiers: dict[str, str], data: bytes) -> list[str]:
    import re

    def norm(b: bytes) -> bytes:
        return b" " + b" ".join(re.findall(rb"[a-z0-9\x80-\xff]+", b)) + b" "

    words, found = norm(data.lower()), []
    for v, src in identifiers.items():
        if not re.findall(r"[^\W_]+", v.casefold()):
            continue
        forms = []
        for codec in ("utf-8", "latin-1"):
            try:
                forms.append(norm(v.casefold().encode(codec)))
            except UnicodeEncodeError:
                pass
        if any(f.strip() and f in words for f in forms):
            found.append(src)
    return found


def test_matcher_finds_what_whole_word_matching_defines():
    """The matcher's substring pre-check and per-value search give the answers of the plain
    definition, on texts built to sit on every boundary (punctuation, underscores, case,
    non-ASCII letters, a value inside a longer word)."""
    import random

    from bonebase.dicom.deid_scan import Matcher

    identifiers = {"Doe^John": "PatientName", "ab-12345": "PatientID", "Müller": "OperatorsName",
                   "19700101": "PatientBirthDate", "ST_MARY": "InstitutionName",
                   "Straße 5": "InstitutionAddress", "ÅSE": "ReferringPhysicianName"}
    pieces = ["doe", "DOE", "john", "John", "^", " ", "_", "-", "ab", "12345", "AB", "müller",
              "MÜLLER", "mueller", "1970", "0101", "19700101", "st", "mary", "ST", "MARY",
              "strasse", "straße", "STRASSE", "5", "åse", "ÅSE", "x", "9", ".", "\\", "\n", "é"]
    rng = random.Random(7)
    texts = ["", "Doe^John", "seen by Dr DOE john", "Johnny Doe", "doe_john", "AB-12345",
             "xab-12345", "ab 12345y", "Herr Müller", "MULLER", "19700101", "st mary's",
             "ST_MARY", "Straße 5", "STRASSE 5", "Åse"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    matcher = Matcher(identifiers)
    for text in texts:
        assert matcher.in_text(text) == _reference_text(identifiers, text), text
        for codec in ("utf-8", "latin-1"):
            data = text.encode(codec, "replace")
            assert matcher.in_bytes(data) == _reference_bytes(identifiers, data), (text, codec)


def test_held_file_message_names_attributes_not_values(tmp_path) -> None:
    """The stored phi_residue message (#17): which attribute holds which kind of value; the
    TOSHIBA_MEC file of the real case is accepted."""
    from bonebase.ingest.process import process_file
    from bonebase.ingest.scan import FileEntry
    from bonebase.storage import sha256_file

    deid = Deidentifier(SECRET)
    held = make_instance()
    held.Manufacturer = f"{PHI['given']} {PHI['family']}"
    held.ManufacturerModelName = PHI["patient_id"]
    files = {"held.dcm": held, "vendor.dcm": _vendor_named("TOSHIBA", "TOSHIBA_MEC")}
    results = {}
    for name, ds in files.items():
        path = tmp_path / name
        path.write_bytes(_write(ds))
        entry = FileEntry(name, path, path.stat().st_size, sha256_file(path))
        results[name] = process_file(entry, deid=deid, site=SITE, staging=tmp_path)
    assert results["vendor.dcm"].reason is None and results["vendor.dcm"].staged is not None
    message = results["held.dcm"].message
    assert results["held.dcm"].reason == "phi_residue"
    assert message == (
        "held.dcm: identifying values remain after de-identification: (0008,0070) Manufacturer"
        " holds the PatientName value (person name); (0008,1090) ManufacturerModelName holds the"
        " PatientID value (patient ID); held for review by a data steward")
    for value in (PHI["given"], PHI["family"], PHI["patient_id"]):
        assert value not in message
