"""`bonebase demo`: the whole consortium story on embedded defaults, from nothing. A CLI module:
it starts the ingest and retrain flows (flows/), as the `submit` and `retrain` commands do.

init → 4 synthetic hospitals registered and their submissions ingested (injected faults end in
quarantine) → dataset version → train + evaluate (the retrain flow) → approval by a named
person → deployment with BentoML, served and asked for a diagnosis → a fifth hospital joins →
the retrain flow again → the new candidate compared with the champion. Every step is the
library or flow the real commands use; re-running skips what is done (idempotent ingest,
"nothing changed" retrains, models already approved or deployed).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
import yaml

from bonebase.cli_common import console, prefect_env
from bonebase.cli_common import settings as _settings
from bonebase.demo_progress import DemoProgress, duration
from bonebase.errors import ConfigError

APPROVER = "Demo Steward"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo. Training and evaluation read the project's params.yaml (the
    checkout's, sized to run in minutes on 2 CPU cores); a value set here is written into the
    project's params.yaml, so that the demo and the guides followed after it use one set."""

    sites: int = 4  # ingested first; one more joins later
    cases_per_site: int = 100
    seed: int = 7
    image_size: int | None = None  # train.image_size
    export_size: int | None = None  # export.size
    epochs: int | None = None  # train.epochs
    bootstrap: int | None = None  # evaluate.bootstrap
    port: int = 3000
    keep_serving: bool = True


def _project(home: Path, repo: Path) -> Path:
    """A clone of this checkout under HOME, where `dvc repro` may write data/, models/, dvc.lock
    without touching the developer's checkout; docs/mlops.md is followed in it after the demo."""
    project = home / "project"
    if not (project / ".git").exists():
        if not (repo / ".git").exists():
            raise ConfigError(
                f"{repo} is not a git checkout: the demo runs the DVC pipeline of a bonebase "
                "clone (git clone …; make demo)"
            )
        subprocess.run(["git", "clone", "-q", str(repo), str(project)], check=True)
    return project


def _params(project: Path, cfg: DemoConfig) -> Path:
    """The project's params.yaml, with the sizes ``cfg`` sets (written only when they differ)."""
    path = project / "params.yaml"
    text = path.read_text(encoding="utf-8")
    params = yaml.safe_load(text)
    wanted = {("export", "size"): cfg.export_size, ("train", "image_size"): cfg.image_size,
              ("train", "epochs"): cfg.epochs, ("evaluate", "bootstrap"): cfg.bootstrap}  # fmt: skip
    changed = False
    for (section, key), value in wanted.items():
        if value is not None and params[section].get(key) != value:
            params[section][key] = value
            changed = True
    if changed:
        path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def diagnosis_line(answer: dict) -> str:
    """The served answer in words, naming the rule that decided it: the locked threshold on the
    positive class's probability (two classes), or the most probable class."""
    probs = answer.get("probabilities") or {}
    names = list(probs)
    shown = ", ".join(f"p({k}) = {v:.2f}" for k, v in probs.items())
    thr = answer.get("threshold")
    if thr is not None and len(names) == 2:
        pos = probs[names[1]]
        rule = (f"p({names[1]}) {pos:.2f} {'>=' if pos >= thr else '<'} the model's locked "
                f"threshold {thr:.2f} (chosen on validation)")
    else:
        rule = "the most probable class"
    ood = answer.get("out_of_distribution") or {}
    unlike = " — input unlike the training data: " + "; ".join(ood.get("reasons", [])) if ood.get(
        "flag") else ""
    return (f"{answer['predicted_class']} because {rule}; {shown}; model "
            f"{answer['model_version']}, heat map {'yes' if answer.get('gradcam_png') else 'no'}"
            f"{unlike}")


def run_demo(
    *,
    repo: Path,
    cfg: DemoConfig = DemoConfig(),
    say: Callable[[str], None] = print,
    progress: DemoProgress | None = None,
) -> dict:
    """Run the story on the settings of the environment (BONEBASE_*, DATABASE_URL); returns ids
    and places (models, URLs, reports) and each stage's duration for the summary. ``progress``
    (default: plain lines through ``say``) shows stages and training epochs."""
    from bonebase.client import DiagnosisClient
    from bonebase.config import get_settings
    from bonebase.db import models as q
    from bonebase.db.engine import connect, database_url
    from bonebase.db.migrate import upgrade
    from bonebase.db.sites import add_site, list_sites
    from bonebase.release import registry, supervisor
    from bonebase.release.cli import release_policy
    from bonebase.storage import open_store
    from bonebase.synth import generate
    from flows.ingest import ingest_submission
    from flows.retrain import retrain_flow

    show = progress or DemoProgress(say, live=False)
    # The flows read the same settings from the environment: none is passed to them, since
    # Prefect stores flow parameters (a Settings holds the consortium key and DATABASE_URL).
    settings = get_settings()
    home = settings.home
    settings.ensure_home()
    settings.ensure_secret()
    url = database_url(settings)
    upgrade(url)
    store = open_store(
        settings.object_store_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region
    )
    synth = home / "demo-synth"
    if not (synth / "sites.json").is_file():
        with show.stage(f"synthesising {cfg.sites + 1} hospitals × {cfg.cases_per_site} cases "
                        f"into {synth}"):  # fmt: skip
            generate(synth, sites=cfg.sites + 1, cases_per_site=cfg.cases_per_site,
                     seed=cfg.seed, overwrite=True)  # fmt: skip
    sites = json.loads((synth / "sites.json").read_text(encoding="utf-8"))
    first, fifth = sites[: cfg.sites], sites[cfg.sites]
    docs: list[str] = []

    def ingest(site: dict) -> None:
        with connect(url) as conn:
            if site["code"] not in {s.code for s in list_sites(conn)}:
                add_site(conn, code=site["code"], name=site["name"],
                         country=site.get("country", ""), contact=site.get("contact", ""))  # fmt: skip
        r = ingest_submission(site["code"], str(synth / site["code"] / "submission"),
                              progress=show.files)  # fmt: skip
        c = r.get("counts", {})
        again = " (already ingested: nothing changed)" if r.get("already_ingested") else ""
        if r.get("data_docs"):
            docs.append(r["data_docs"])
        show.print(f"   {site['code']}: {c.get('cases_accepted', 0)} cases accepted, "
                   f"{c.get('files_stored', 0)} files stored, {c.get('quarantined', 0)} "
                   f"quarantined, {c.get('files_duplicate', 0)} duplicates{again}")  # fmt: skip

    with show.stage(f"ingesting {len(first)} hospitals' submissions (with their injected faults)"):
        for site in first:
            ingest(site)

    project = _project(home, repo)
    params = _params(project, cfg)
    recipe = yaml.safe_load(params.read_text(encoding="utf-8"))
    epochs = int(recipe["train"]["epochs"])
    with show.stage(f"dataset version + training + evaluation (retrain flow, DVC pipeline in "
                    f"{project})"), show.watch_training(epochs):  # fmt: skip
        run1 = retrain_flow(str(params), str(project), truth_dir=str(synth))
    policy = release_policy(params)
    with connect(url) as conn:
        champion = q.deployed_model(conn, task=recipe["task"])
        if champion is None:
            model_id = run1.get("model_id") or _newest_candidate(conn)
            with show.stage(f"approving and deploying model {model_id} as {APPROVER!r}"):
                model = q.get_model(conn, model_id)
                if model["status"] in ("candidate", "rejected"):
                    gate = registry.gate(conn, store, model_id, policy=policy,
                                         data_dir=project / "data")  # fmt: skip
                    reason = ("demo on synthetic data: release gate passed" if gate["passed"]
                              else "demo on synthetic data: the gate failed and is overridden on "
                              "purpose, never do this with real data")  # fmt: skip
                    show.print(f"   release gate "
                               f"{'passed' if gate['passed'] else 'FAILED (override recorded)'}")
                    registry.approve(conn, store, model_id, by=APPROVER, reason=reason,
                                     override=not gate["passed"], policy=policy,
                                     data_dir=project / "data")  # fmt: skip
                registry.deploy(conn, store, model_id, by=APPROVER)
                champion = q.get_model(conn, model_id)
        tag = q.deployments(conn, task=champion["task"])[0]["bento_tag"]
    with show.stage(f"serving {tag} (bentoml serve, port {cfg.port}) and asking it"):
        served = supervisor.start(home, tag, project=repo, port=cfg.port)
        xray = _a_radiograph(synth / fifth["code"])
        with DiagnosisClient(served["url"]) as client:
            answer = client.diagnose(xray, gradcam=True)
    show.print(f"   POST /diagnose {xray.name}: {diagnosis_line(answer)}")

    with show.stage(f"a fifth hospital joins: {fifth['code']} ({fifth['name']})"):
        ingest(fifth)
    with show.stage("retraining (the flow the schedule runs): new version, candidate, gate vs "
                    "champion"), show.watch_training(epochs):  # fmt: skip
        run2 = retrain_flow(str(params), str(project), truth_dir=str(synth))
    candidate = run2.get("model_id")
    comparison = None
    if candidate and candidate != champion["id"]:
        with show.stage(f"comparing candidate {candidate} with champion {champion['id']}"):
            with connect(url) as conn:
                comparison = registry.compare(conn, store, a=candidate, b=champion["id"],
                                              data_dir=project / "data")  # fmt: skip
        show.print(f"   {_comparison_line(comparison)}")
    elif run2.get("skipped"):
        show.print(f"   {run2['reason']}")
    if not cfg.keep_serving:
        supervisor.stop(home)
    return {
        "champion": champion["id"],
        "candidate": candidate,
        "comparison": comparison,
        "diagnosis": answer,
        "serving_url": served["url"],
        "report": str(project / "reports" / "report.html"),
        "receipts": str(home / "receipts"),
        "data_docs": docs,
        "project": str(project),
        "durations": list(show.durations),
    }


def _newest_candidate(conn) -> int:
    from bonebase.db import models as q

    rows = [m for m in q.list_models(conn) if m["status"] in ("candidate", "approved")]
    if not rows:
        raise ConfigError("no model to approve: the retrain flow registered none")
    return max(r["id"] for r in rows)


def _a_radiograph(site_dir: Path) -> Path:
    import csv

    bad = {f["file"] for f in json.loads((site_dir / "faults.json").read_text())}
    with (site_dir / "truth.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["modality"] in ("CR", "DX") and row["file"] not in bad:
                return site_dir / "submission" / row["file"]
    raise ConfigError(f"{site_dir}: no radiograph to send")


def _comparison_line(cmp: dict) -> str:
    a, b, d = cmp["a"], cmp["b"], cmp["delong"]
    return (
        f"AUC {a['auc']:.3f} ({a['ci_low']:.3f}–{a['ci_high']:.3f}) vs "
        f"{b['auc']:.3f} ({b['ci_low']:.3f}–{b['ci_high']:.3f}) on {cmp['n_cases']} locked "
        f"test + external cases; difference {d['diff']:+.3f}, DeLong p = {d['p']:.3f}"
    )


def summary(out: dict, *, home: Path, serving: bool) -> list[tuple[str, str]]:
    """(what, where) rows of the demo's closing summary: real paths, then each stage's time."""
    docs = [d for d in out["data_docs"] if Path(d).is_file()]
    rows = [
        ("diagnosis API (Swagger UI)", f"{out['serving_url']}/" if serving else
         "stopped (bonebase models server start)"),
        ("evaluation report", out["report"]),
        ("receipts (JSON + Markdown)", out["receipts"]),
        ("Data Docs (validation)", f"{docs[-1]} (one per submission, linked from its receipt)"
         if docs else "linked from each receipt"),
        ("project (docs/mlops.md)", f"{out['project']}: follow the guides there, with "
         f"BONEBASE_HOME={home}"),
        ("models", "bonebase models list / show ID / compare A B"),
        ("Prefect UI", "bonebase prefect ui (this demo's flow runs; `bonebase prefect command` "
         "prints the `prefect server start` line)"),
        ("schedule", "bonebase schedule enable (needs a Prefect server)"),
        ("web database", "bonebase web"),
    ]  # fmt: skip
    total = sum(seconds for _, seconds in out["durations"])
    rows += [(f"took {duration(total)}", "")]
    rows += [(f"  {duration(seconds):>12}", what) for what, seconds in out["durations"]]
    return rows


def demo(
    cases_per_site: Annotated[int, typer.Option(help="Cases per synthetic hospital.")] = 100,
    epochs: Annotated[int | None, typer.Option(
        help="Training epochs (default: train.epochs of params.yaml); written into the demo's "
        "project, whose params.yaml the guides use after the demo.")] = None,
    port: Annotated[int, typer.Option(help="Port of the served model.")] = 3000,
    stop_serving: Annotated[bool, typer.Option(
        "--stop-serving", help="Stop the model server at the end.")] = False,
) -> None:
    """The whole consortium story on embedded defaults: ingest 4 hospitals, version, train,
    approve, deploy, diagnose, a fifth hospital joins, retrain, compare. Safe to re-run.

    Its DVC project is a clone of this checkout in BONEBASE_HOME/project, with this checkout's
    params.yaml: docs/stewards.md and docs/mlops.md continue from there. A progress display
    (stage, epoch, time left) goes to stderr when it is a terminal; the summary gives each
    stage's duration."""
    home = _settings().home
    prefect_env()
    repo = Path(__file__).resolve().parents[1]
    cfg = DemoConfig(cases_per_site=cases_per_site, epochs=epochs, port=port,
                     keep_serving=not stop_serving)
    say = lambda m: console.print(m, markup=False, soft_wrap=True)  # noqa: E731
    with DemoProgress(say) as progress:
        out = run_demo(repo=repo, cfg=cfg, say=say, progress=progress)
    console.print("\n[bold]Where everything is[/]")
    for what, where in summary(out, home=home, serving=not stop_serving):
        console.print(f"  {what:28} {where}".rstrip(), markup=False)
