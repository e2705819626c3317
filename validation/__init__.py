"""Great Expectations suites of bonebase (manifest, DICOM header, image QC, cross-record,
database) and the runner that turns their results into plain failures for the receipt.

Names are imported on first use: GX takes seconds to import, and the ingest workers that need
only ``qc_metrics`` should not pay for it.
"""

from importlib import import_module

_EXPORTS = {
    "Failure": "validation.messages",
    "ValidationReport": "validation.messages",
    "load_headers": "validation.inputs",
    "load_manifest": "validation.inputs",
    "qc_metrics": "validation.image_qc",
    "validate_database": "validation.runner",
    "validate_submission": "validation.runner",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'validation' has no attribute {name!r}")
