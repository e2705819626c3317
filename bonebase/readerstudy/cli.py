"""`bonebase reader-study`: run reader studies (#22) and analyse them (Obuchowski-Rockette)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from bonebase.cli_common import console, db_and_store

reader_app = typer.Typer(help="Reader studies (MRMC) of radiologists with and without the model.",
                         no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _ctx():
    return db_and_store()


@reader_app.command("create")
def reader_create(
    name: Annotated[str, typer.Argument(help="The study's name (letters, digits, . _ -).")],
    dataset_version: Annotated[int, typer.Option("--dataset-version", help="Dataset version N.")],
    task: Annotated[str, typer.Option(help="benign_vs_malignant, os_vs_gct or tumour_vs_normal.")],
    model: Annotated[int, typer.Option(help="The registered model (id) whose answers the aided "
                                            "arm shows; stored with the study.")],
    readers: Annotated[str, typer.Option(help="Comma-separated user names of role reader.")],
    split: Annotated[str, typer.Option(help="test, external, val or train.")] = "test",
    washout_days: Annotated[int, typer.Option("--washout-days",
                                              help="Days between a reader's two sessions.")] = 28,
    seed: Annotated[int | None, typer.Option(help="Seed of arms and reading orders "
                                                  "(default: random, stored).")] = None,
    max_cases: Annotated[int | None, typer.Option("--max-cases",
                                                  help="Only the first N cases.")] = None,
    allow_corrections: Annotated[bool, typer.Option(
        "--allow-corrections", help="Let readers change a submitted answer (audited).")] = False,
    workspace: Annotated[Path | None, typer.Option(
        help="A clone of the dataset workspace (default: the version's own).")] = None,
) -> None:
    """Create a crossover reader study: cases, the model's stored answers, readers, sessions."""
    from bonebase.db.audit import current_actor
    from bonebase.readerstudy.create import create_study, parse_readers

    conn, store = _ctx()
    with conn:
        study = create_study(conn, store, name=name, dataset_version=dataset_version, split=split,
                             task=task, model_id=model, readers=parse_readers(readers),
                             washout_days=washout_days, seed=seed, max_cases=max_cases,
                             allow_corrections=allow_corrections, actor=current_actor(),
                             workspace=workspace)
        n = conn.execute("SELECT count(*) AS n FROM reader_study_cases WHERE study_id = %s",
                         (study["id"],)).fetchone()["n"]
    console.print(f"reader study {study['name']}: {n} cases, readers {readers}, seed "
                  f"{study['seed']}, washout {study['washout_days']} days; readers sign in to "
                  "the web database and open /read")


@reader_app.command("list")
def reader_list(as_json: AsJson = False) -> None:
    """The reader studies with their size."""
    from rich.table import Table

    from bonebase.readerstudy.store import list_studies

    conn, _ = _ctx()
    with conn:
        rows = list_studies(conn)
    if as_json:
        print(json.dumps(rows, default=str, indent=2))
        return
    table = Table("name", "task", "dataset", "model", "cases", "readers", "washout", "created")
    for r in rows:
        table.add_row(r["name"], r["task"], f"v{r['dataset_version']} {r['split']}",
                      str(r["model_id"]), str(r["n_cases"]), str(r["n_readers"]),
                      f"{r['washout_days']} d", f"{r['created_at']:%Y-%m-%d}")
    console.print(table if rows else "no reader studies yet: `bonebase reader-study create`")


@reader_app.command("results")
def reader_results(name: Annotated[str, typer.Argument(help="The study.")],
                   as_json: AsJson = False) -> None:
    """Per reader and arm AUC, sensitivity/specificity and time; the OR analysis."""
    from bonebase.readerstudy.report import format_results
    from bonebase.readerstudy.results import results

    conn, _ = _ctx()
    with conn:
        out = results(conn, name)
    if as_json:
        print(json.dumps(out, indent=2, default=float))
    else:
        console.print(format_results(out), highlight=False)


@reader_app.command("export")
def reader_export(name: Annotated[str, typer.Argument(help="The study.")],
                  out: Annotated[Path, typer.Option("--out", help="CSV file to write.")]) -> None:
    """The scores of the complete readers and the model, as `reader-study analyze` reads them."""
    from bonebase.readerstudy.results import export_csv, study_threshold
    from bonebase.readerstudy.store import get_study

    conn, _ = _ctx()
    with conn:
        study = get_study(conn, name)
        text = export_csv(conn, study)
    out.write_text(text)
    console.print(f"{out}: {text.count(chr(10)) - 1} scores; analyse with `bonebase reader-study "
                  f"analyze {out} --threshold {study_threshold(study)!r}`", highlight=False)


@reader_app.command("analyze")
def reader_analyze(
    scores: Annotated[Path, typer.Argument(help="CSV with reader,modality,case,truth,score.")],
    covariance: Annotated[str, typer.Option(help="jackknife or delong.")] = "jackknife",
    threshold: Annotated[float | None, typer.Option(help="Score threshold for sens/spec.")] = None,
    as_json: AsJson = False,
) -> None:
    """Obuchowski-Rockette MRMC analysis of a reader study (RRRC, FRRC, RRFC)."""
    from bonebase.stats.mrmc import analyze_csv, format_report

    result = analyze_csv(scores, covariance=covariance, threshold=threshold)
    if as_json:
        print(json.dumps(result, indent=2, default=float))
    else:
        console.print(format_report(result))
