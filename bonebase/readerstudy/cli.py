"""`bonebase reader-study`: run reader studies (#22) and analyse them (Obuchowski-Rockette)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console

reader_app = typer.Typer(help="Reader studies (MRMC) of radiologists with and without the model.",
                         no_args_is_help=True)


@reader_app.command("analyze")
def reader_analyze(
    scores: Annotated[Path, typer.Argument(help="CSV with reader,modality,case,truth,score.")],
    covariance: Annotated[str, typer.Option(help="jackknife or delong.")] = "jackknife",
    threshold: Annotated[float | None, typer.Option(help="Score threshold for sens/spec.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Obuchowski-Rockette MRMC analysis of a reader study (RRRC, FRRC, RRFC)."""
    from bonebase.stats.mrmc import analyze_csv, format_report

    result = analyze_csv(scores, covariance=covariance, threshold=threshold)
    if as_json:
        print(json.dumps(result, indent=2, default=float))
    else:
        console.print(format_report(result))
