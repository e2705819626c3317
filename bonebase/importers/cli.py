"""`bonebase import`: load a public dataset (#20)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console, db_url, err, prefect_env, settings

import_app = typer.Typer(help="Import a public dataset (BTXRD) as submissions of its centres.",
                         no_args_is_help=True)

_SITES_HELP = ("Site code and name per centre, e.g. '1=BTXRD1:Hospital,2=RADIOP'. Defaults: "
               "1=BTXRD1 (hospital), 2=BTXRD2 (Radiopaedia), 3=BTXRD3 (MedPix); docs/btxrd.md.")


@import_app.command("btxrd")
def btxrd(
    path: Annotated[Path, typer.Argument(help="BTXRD's folder (images/, Annotations/, "
                                               "dataset.csv or dataset.xlsx) or its .zip.")],
    sites: Annotated[str | None, typer.Option("--sites", help=_SITES_HELP)] = None,
    as_submission: Annotated[Path | None, typer.Option(
        "--as-submission", help="Only write each centre's submission folder (manifest.csv, "
        "images, annotations) and its findings into this folder, for `bonebase validate` or "
        "`bonebase submit`; nothing is ingested.")] = None,
    unconfirmed: Annotated[bool, typer.Option(
        "--unconfirmed", help="Mark the labels pathology_confirmed = no (default: yes, the "
        "dataset's labels as published).")] = False,
) -> None:
    """Import BTXRD: each centre a registered site, its rows one submission through the ingest
    flow (validation, quarantine with reasons, receipt); the LabelMe outlines stored with their
    images. Re-importing the same download adds nothing."""
    from bonebase.importers import btxrd_import as imp
    from bonebase.importers import btxrd_run

    site_map = imp.parse_sites(sites)
    s = settings()
    if as_submission is not None:
        scratch = as_submission.parent
        scratch.mkdir(parents=True, exist_ok=True)
        with imp.opened(path, scratch) as root:
            written = btxrd_run.write_submissions(root, as_submission, sites=site_map,
                                                  confirmed=not unconfirmed)
        for centre, folder in written:
            console.print(f"{centre.code}: {folder} ({len(centre.rows)} rows, "
                          f"{len(centre.findings)} findings in {folder.name}-findings.json)",
                          markup=False, highlight=False, soft_wrap=True)
        return
    db_url()  # a migrated database before anything is read
    prefect_env()
    scratch = s.home / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with imp.opened(path, scratch) as root:
        results = btxrd_run.run(root, sites=site_map, settings=s, say=err.print)
    for r in results:
        c = r.receipt.get("counts", {})
        again = " (already imported: nothing added)" if r.receipt.get("already_ingested") else ""
        console.print(
            f"{r.site}: submission {r.submission}, {r.rows} rows -> {c.get('cases_accepted', 0)} "
            f"cases accepted, {c.get('files_stored', 0)} images stored, {c.get('quarantined', 0)} "
            f"quarantined, {r.outlines} images with outlines{again}", markup=False, highlight=False, soft_wrap=True)
        for reason, n in sorted(c.get("by_reason", {}).items()):
            console.print(f"  {reason}: {n}", markup=False, highlight=False, soft_wrap=True)
    console.print("receipts: bonebase submissions show ID; quarantine: bonebase quarantine list",
                  markup=False, highlight=False, soft_wrap=True)


@import_app.command("btxrd-sample")
def btxrd_sample(
    out: Annotated[Path, typer.Argument(help="New folder for the sample (must be empty).")],
    images: Annotated[int, typer.Option("--images", help="Rows (images) to write.")] = 24,
    seed: Annotated[int, typer.Option("--seed")] = 20,
    width: Annotated[int, typer.Option("--width", help="Image width in pixels (±10%).")] = 320,
    height: Annotated[int, typer.Option("--height", help="Image height in pixels (±10%).")] = 400,
    clean: Annotated[bool, typer.Option("--clean", help="Without the bad inputs.")] = False,
    xlsx: Annotated[bool, typer.Option("--xlsx", help="dataset.xlsx instead of dataset.csv.")] = False,
    excel_csv: Annotated[bool, typer.Option(
        "--excel-csv", help="The CSV as Excel on Windows saves it: BOM, ';' and CRLF.")] = False,
    zip_to: Annotated[Path | None, typer.Option("--zip", help="Also pack it into this .zip.")] = None,
) -> None:
    """Write a BTXRD-shaped folder of synthetic pictures (exact 37 columns, LabelMe polygons and
    rectangles, .jpeg and .jpg) holding one of each bad input the import must survive."""
    from bonebase.importers.btxrd_sample import generate

    truth = generate(out, images=images, seed=seed, size=(width, height), faults=not clean,
                     fmt="xlsx" if xlsx else "csv", bom=excel_csv,
                     delimiter=";" if excel_csv else ",", crlf=excel_csv, zip_to=zip_to)
    console.print(f"{out}: {truth.rows} rows ({truth.normal} normal, {truth.benign} benign, "
                  f"{truth.malignant} malignant), {truth.images} image files, "
                  f"{len(truth.bad)} bad inputs", markup=False, highlight=False, soft_wrap=True)
