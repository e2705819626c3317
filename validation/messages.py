"""Plain failure records and the sentences a site reads in its validation receipt.

GX results are rich but written for data engineers; a site needs "row 17, case HX-0042: age 214
is outside 0–100; correct the manifest and resubmit". Each reason code has one sentence template
here, filled from the failing record's own values, so wording stays consistent across suites.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bonebase.ingest.receipt_text import N_  # the templates are translated in receipts (#25)

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Failure:
    """One failed check on one record (manifest row, DICOM file) or on the whole submission."""

    suite: str
    expectation: str
    severity: Severity
    reason: str
    message: str
    row: int | None = None
    case_id: str | None = None
    file: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ValidationReport:
    """Outcome of validating a submission or the database: failures, counts, Data Docs index."""

    failures: list[Failure] = field(default_factory=list)
    data_docs_index: Path | None = None
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    # Which manifest row each DICOM file joined to, so ingest can quarantine a rejected row's
    # images with it.
    file_rows: dict[str, int] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """True when no failure has severity ``error`` (warnings are accepted and reported)."""
        return not self.errors

    @property
    def errors(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "error"]

    @property
    def warnings(self) -> list[Failure]:
        return [f for f in self.failures if f.severity == "warning"]

    def errors_for_row(self, row: int) -> list[Failure]:
        """Errors that quarantine manifest row ``row`` (1-based data row)."""
        return [f for f in self.errors if f.row == row]

    def errors_for_file(self, file: str) -> list[Failure]:
        """Errors that quarantine the DICOM file ``file`` (as named in the header frame)."""
        return [f for f in self.errors if f.file == file]

    def reasons(self) -> set[str]:
        return {f.reason for f in self.failures}


# Templates take the failing record's columns by name ({age}, {sex}, ...) plus {where}.
_TEMPLATES: dict[str, str] = {
    "missing_column": N_("{where}: column {field} is missing; add it to the frame and resubmit"),
    "missing_value": N_("{where}: {field} is empty; fill it in and resubmit"),
    "duplicate_case_id": N_(
        "{where}: case id {case_id} repeats an earlier row of the manifest; give every case its "
        "own id (a corrected case is resubmitted under the same id in a later submission)"
    ),
    "unknown_sex": N_("{where}: sex {sex!r} is not one of M, F, O; correct the manifest and resubmit"),
    "impossible_age": N_(
        "{where}: age {age!r} is not a whole number of years within 0–100; correct the manifest "
        "and resubmit"
    ),
    "unknown_location": N_(
        "{where}: tumour location {location!r} is not in the anatomical vocabulary (write e.g. "
        "'distal femur', 'proximal tibia', 'pelvis'); correct the manifest and resubmit"
    ),
    "unknown_diagnosis": N_(
        "{where}: diagnosis {diagnosis!r} is not in the WHO bone tumour vocabulary; use a listed "
        "term or ask the consortium to add your synonym, then resubmit"
    ),
    "label_contradicts_diagnosis": N_(
        "{where}: behaviour {behaviour!r} contradicts the diagnosis {diagnosis!r}, which is "
        "{diagnosis_behaviour}; correct either column and resubmit"
    ),
    "unknown_modality": N_(
        "{where}: modalities {modalities!r} must be XR, CT or MR separated by ';'; correct the "
        "manifest and resubmit"
    ),
    "pathology_unconfirmed": N_(
        "{where}: pathology_confirmed is {pathology_confirmed!r}, not 'yes'; the case is accepted "
        "but excluded from labelled training sets until pathology confirms it"
    ),
    "implausible_age_for_diagnosis": N_(
        "{where}: {diagnosis!r} at age {age} is unusual; please check the age and diagnosis "
        "(accepted, reported for review)"
    ),
    "unsupported_modality": N_(
        "{where}: modality {modality!r} is not CR, DX, CT or MR; remove the file or export the "
        "study as one of those"
    ),
    "missing_pixel_spacing": N_(
        "{where}: radiograph has neither PixelSpacing nor ImagerPixelSpacing; sizes cannot be "
        "measured (accepted); export with spacing if your system can"
    ),
    "image_dimensions": N_(
        "{where}: image size {rows}x{columns} is outside 64–8192 pixels; export the original "
        "image and resubmit"
    ),
    "bad_pixel_format": N_(
        "{where}: pixel format (BitsAllocated {bits_allocated}, BitsStored {bits_stored}, "
        "PhotometricInterpretation {photometric_interpretation!r}) is not supported; export "
        "uncompressed greyscale (MONOCHROME1/2, 8 or 16 bits) and resubmit"
    ),
    "undecodable_transfer_syntax": N_(
        "{where}: transfer syntax {transfer_syntax_uid} cannot be decoded here; export "
        "uncompressed or JPEG/JPEG 2000 and resubmit"
    ),
    "identity_not_removed": N_(
        "{where}: PatientIdentityRemoved is {patient_identity_removed!r} after de-identification; "
        "the file is held back (possible identity leak) for the data steward"
    ),
    "blank_image": N_(
        "{where}: the radiograph's pixels are (nearly) constant (std {pixel_std:.2f}); export "
        "the real image and resubmit"
    ),
    "saturated_image": N_(
        "{where}: {saturated_pct:.0f} per cent of pixels sit at the extreme values (over/under-exposed "
        "or burnt-in mask); accepted, please check the export"
    ),
    "extreme_aspect_ratio": N_(
        "{where}: aspect ratio {aspect_ratio:.1f}:1 is extreme for a radiograph; accepted, "
        "please check it is not a stitched or cropped image"
    ),
    "tiny_image": N_(
        "{where}: radiograph is only {rows}x{columns} pixels (a thumbnail?); export the "
        "full-resolution image and resubmit"
    ),
    "row_without_images": N_(
        "{where}: no image of the submission matches the row by {match_why}; send the case's "
        "images, or correct the row or the match rule (docs/manifest.md, 'Matching images to "
        "rows'), then resubmit"
    ),
    "images_without_row": N_(
        "{where}: matches no manifest row by {match_why}; add the case to the manifest, correct "
        "the ids, or declare the match rule your images need (docs/manifest.md, 'Matching images "
        "to rows')"
    ),
    "no_radiograph": N_(
        "{where}: the case has no radiograph (CR/DX); every case needs at least one X-ray, add "
        "it and resubmit"
    ),
    "wrong_modality": N_(
        "{where}: the manifest declares {modalities!r} but the images are {image_modalities!r}; "
        "correct the modalities column or the images, then resubmit"
    ),
    "image_in_two_cases": N_(
        "{where}: the image (SOP Instance UID {sop_instance_uid}) belongs to {n_cases} cases; "
        "each image may belong to one case only, fix the ids and resubmit"
    ),
    "inconsistent_sex": N_(
        "{where}: patient {patient_id!r} has different sexes across cases; correct the manifest "
        "so all the patient's cases agree, then resubmit"
    ),
    "duplicate_sop_instance": N_(
        "{where}: SOP Instance UID {sop_instance_uid} is stored {copies} times; the data "
        "steward must merge the copies (one image, one instance row)"
    ),
    "validation_error": N_("{where}: the check could not run ({detail}); this is a bonebase bug"),
}


class _Missing(dict):
    """Format mapping that prints '?' for a column the record lacks instead of raising."""

    def __missing__(self, key: str) -> str:
        return "?"


def where(*, row: Any = None, case_id: Any = None, file: Any = None) -> str:
    """ "row 17, case HX-0042" or "file x/y.dcm": the place a site looks to fix a failure."""
    parts = []
    if row is not None:
        parts.append(f"row {row}")
    if case_id not in (None, ""):
        parts.append(f"case {case_id}")
    if file is not None:
        parts.append(f"file {file}")
    return ", ".join(parts) or "submission"


def render(reason: str, record: dict[str, Any], *, place: str, fallback: str = "") -> str:
    """The site-facing sentence for ``reason`` filled from ``record``'s values."""
    template = _TEMPLATES.get(reason)
    if template is None:
        return f"{place}: {fallback or reason}"
    values = _Missing({k: _quoted(k, v) for k, v in record.items()})
    values["where"] = place
    if "field" not in values and values.get("empty_fields"):
        values["field"] = values["empty_fields"]  # the column a missing_value names
    try:
        return template.format_map(values)
    except (ValueError, TypeError):
        # A numeric format spec met a missing value ("?"): fall back to plain formatting.
        return f"{place}: {reason.replace('_', ' ')} ({fallback})"


# A message quotes a site's manifest value so it can find and fix it ("age '214'"); a longer
# value is not a vocabulary term but pasted text (a note, a key file's line): described instead.
_QUOTE_MAX = 40
_FREE_TEXT = {"sex", "age", "location", "diagnosis", "behaviour", "modalities",
              "pathology_confirmed"}


def _quoted(key: str, value: Any) -> Any:
    if key in _FREE_TEXT and isinstance(value, str) and len(value) > _QUOTE_MAX:
        return f"<{len(value)} characters, not shown>"
    return _plain(value)


def _plain(value: Any) -> Any:
    """Numpy scalars and NaN print as plain Python values in messages."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and value != value:
        return None
    return value
