"""`bonebase import btxrd`: BTXRD's centres as sites, its rows as submissions of the usual flow.

Per centre the import writes a submission folder (``manifest.csv`` in the format of
docs/manifest.md with the ``image_file`` and ``annotation_file`` columns, the centre's images
and annotations hard-linked, or copied across file systems) and runs it through the same
ingest flow as a hospital's submission: de-identification, validation, quarantine, receipt. The
table's own findings (a one-hot group with no 1 or two 1s, a listed image that is missing, an
image or annotation that no row lists, an annotation outside its image) are added to the
centre's submission as quarantine items and receipt lines; findings that belong to no centre
(an unlisted file) go with the first centre's submission. Re-importing the same download makes
the same submissions: the flow finds them done and adds nothing.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bonebase.errors import InputError
from bonebase.importers import btxrd
from bonebase.importers.btxrd import Finding, ImageRow
from bonebase.ingest import annotations as ann

# Centres as BTXRD's paper numbers them; `--sites 1=CODE:Name,...` overrides.
DEFAULT_SITES: dict[int, tuple[str, str]] = {
    1: ("BTXRD1", "BTXRD centre 1 (hospital)"),
    2: ("BTXRD2", "BTXRD centre 2 (Radiopaedia)"),
    3: ("BTXRD3", "BTXRD centre 3 (MedPix)"),
}
MANIFEST_COLUMNS = ("case_id", "patient_id", "accession_number", "sex", "age", "location",
                    "diagnosis", "behaviour", "modalities", "pathology_confirmed",
                    "image_file", "annotation_file")
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


@dataclass
class CentrePlan:
    centre: int
    code: str
    name: str
    rows: list[ImageRow] = field(default_factory=list)
    images: dict[str, Path] = field(default_factory=dict)  # stem -> source file
    notes: dict[str, Path] = field(default_factory=dict)  # stem -> good annotation file
    shapes: dict[str, list[ann.Shape]] = field(default_factory=dict)  # stem -> shapes
    findings: list[Finding] = field(default_factory=list)


def parse_sites(spec: str | None) -> dict[int, tuple[str, str]]:
    """``1=CODE:Name,2=CODE`` over the defaults; a code without a name keeps the default's."""
    from bonebase.db.sites import check_code

    sites = dict(DEFAULT_SITES)
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        centre, _, rest = part.partition("=")
        code, _, name = rest.partition(":")
        if not centre.strip().isdigit() or not code.strip():
            raise InputError(f"--sites {part!r}: write CENTRE=CODE or CENTRE=CODE:Name, e.g. "
                             "1=BTXRD1:Hospital")
        n = int(centre)
        sites[n] = (check_code(code.strip()), name.strip() or sites.get(n, ("", f"BTXRD centre {n}"))[1])
    codes = [c for c, _ in sites.values()]
    if len(set(codes)) != len(codes):
        raise InputError(f"--sites: two centres share a site code ({', '.join(codes)})")
    return sites


@contextmanager
def opened(path: Path, scratch: Path) -> Iterator[Path]:
    """The dataset folder: ``path`` itself, or the zip extracted under the ingest limits."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; give BTXRD's folder or its .zip")
    if path.is_dir():
        yield path
        return
    from bonebase.ingest.source import extract_zip

    root = Path(tempfile.mkdtemp(prefix="btxrd-zip-", dir=scratch))
    try:
        refused = extract_zip(path, root)
        if refused:
            raise InputError(f"{path.name}: {len(refused)} entries refused ({refused[0].reason});"
                             " unpack the archive and give the folder")
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def plan(root: Path, sites: dict[int, tuple[str, str]]) -> tuple[list[CentrePlan], list[Finding]]:
    """Read the table and the files; per centre its usable rows and findings, and the findings
    that belong to no centre."""
    table = btxrd.find_table(root)
    base = table.parent
    rel = table.name  # places are named from the dataset folder, however it was unpacked
    images = {p.stem: p for p in sorted((base / "images").glob("*"))
              if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    notes = {p.stem: p for p in sorted((base / "Annotations").glob("*.json")) if p.is_file()}
    centres = {n: CentrePlan(n, code, name) for n, (code, name) in sites.items()}
    loose: list[Finding] = []
    parsed: list[ImageRow] = []
    listed: set[str] = set()
    for n, raw in enumerate(btxrd.read_table(table), start=1):
        result = btxrd.parse_row(n, raw, table=rel)
        if isinstance(result, ImageRow):
            listed.add(result.stem)
        elif raw.get("image_id"):
            listed.add(raw["image_id"].rsplit(".", 1)[0])
        if isinstance(result, Finding):
            (centres[result.centre].findings if result.centre in centres else loose).append(result)
            continue
        if result.centre not in centres:
            loose.append(Finding("unknown_centre", f"{rel} row {n} ({result.image}): center "
                                 f"{result.centre} has no site; add it with --sites "
                                 f"{result.centre}=CODE:Name", row=n, file=rel))
            continue
        if result.stem not in images:
            centres[result.centre].findings.append(Finding(
                "image_file_missing", f"{rel} row {n}: images/{result.image} is listed but not in "
                "images/; download it again, or remove the row", row=n,
                file=f"images/{result.image}"))
            continue
        parsed.append(result)
    for row in btxrd.group_patients(parsed):
        centre = centres[row.centre]
        centre.rows.append(row)
        centre.images[row.stem] = images[row.stem]
        if row.stem in notes:
            _check_annotation(centre, row, notes[row.stem], base)
    for stem, path in images.items():
        if stem not in listed:
            loose.append(Finding("unlisted_image", f"images/{path.name}: no row of {rel} lists "
                                 "it; not imported (add its row, or remove the file)",
                                 file=f"images/{path.name}"))
    for stem, path in notes.items():
        if stem not in listed:
            loose.append(Finding("unlisted_annotation", f"Annotations/{path.name}: no image "
                                 f"{stem} is listed in {rel}; not imported",
                                 file=f"Annotations/{path.name}"))
    return [c for c in centres.values() if c.rows or c.findings], loose


def _check_annotation(centre: CentrePlan, row: ImageRow, path: Path, base: Path) -> None:
    """Parse a row's LabelMe file against its image's size (read from the header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(centre.images[row.stem]) as im:
            columns, rows = im.size
    except (UnidentifiedImageError, OSError):
        return  # the flow quarantines the image itself (corrupt_file); its outline goes with it
    try:
        centre.shapes[row.stem] = ann.parse_labelme(
            path.read_bytes(), name=path.relative_to(base).as_posix(), rows=rows, columns=columns)
        centre.notes[row.stem] = path
    except ann.AnnotationError as exc:
        centre.findings.append(Finding(exc.reason, f"{exc.message} (the image is imported "
                                       "without it)", row=row.row,
                                       file=path.relative_to(base).as_posix()))


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy
        shutil.copyfile(source, target)


def write_submission(centre: CentrePlan, folder: Path, *, confirmed: bool = True) -> Path:
    """The centre's submission folder: manifest.csv, images/ and Annotations/ of its rows."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", encoding="utf-8", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(MANIFEST_COLUMNS)
        for r in centre.rows:
            image = f"images/{centre.images[r.stem].name}"
            note = f"Annotations/{r.stem}.json" if r.stem in centre.notes else ""
            out.writerow([r.stem, r.patient, "", r.sex, r.age, r.location.code, r.diagnosis.code,
                          "", "XR", "yes" if confirmed else "no", image, note])
            _link(centre.images[r.stem], folder / image)
            if note:
                _link(centre.notes[r.stem], folder / note)
    return folder


ProgressFn = Callable[[str], None]
