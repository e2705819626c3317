"""The submission format shared by the generator, validation and ingestion (docs/manifest.md)."""

# manifest.csv columns, in file order: one row per case.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "case_id",
    "patient_id",
    "accession_number",
    "sex",
    "age",
    "location",
    "diagnosis",
    "behaviour",
    "modalities",
    "pathology_confirmed",
)
SEXES = ("M", "F", "O")
