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
from bonebase.errors import ConfigError

APPROVER = "Demo Steward"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; the defaults run in minutes on 2 CPU cores."""

    sites: int = 4  # ingested first; one more joins later
    cases_per_site: int = 100
    seed: int = 7
    image_size: int = 128
    export_size: int = 128
    epochs: int = 8
    bootstrap: int = 200
    port: int = 3000
    keep_serving: bool = True


def _project(home: Path, repo: Path) -> Path:
    """A clone of this checkout under HOME, where `dvc repro` may write data/, models/, dvc.lock
    without touching the developer's checkout."""
    project = home / "project"
    if not (project / ".git").exists():
        if not (repo / ".git").exists():
            raise ConfigError(
                f"{repo} is not a git checkout: the demo runs the DVC pipeline of a bonebase "
                "clone (git clone …; make demo)"
            )
        subprocess.run(["git", "clone", "-q", str(repo), str(project)], check=True)
    return project


def _params(repo: Path, project: Path, cfg: DemoConfig) -> Path:
    params = yaml.safe_load((repo / "params.yaml").read_text(encoding="utf-8"))
    params["export"]["size"] = cfg.export_size
    params["train"].update(image_size=cfg.image_size, epochs=cfg.epochs, num_workers=0)
    params["evaluate"]["bootstrap"] = cfg.bootstrap
    path = project / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def run_demo(
    *,
    repo: Path,
    cfg: DemoConfig = DemoConfig(),
    say: Callable[[str], None] = print,
) -> dict:
    """Run the story on the settings of the environment (BONEBASE_*, DATABASE_URL); returns ids
    and places (models, URLs, reports) for the summary."""
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
        say(f"== synthesising {cfg.sites + 1} hospitals × {cfg.cases_per_site} cases into {synth}")
        generate(synth, sites=cfg.sites + 1, cases_per_site=cfg.cases_per_site, seed=cfg.seed,
                 overwrite=True)  # fmt: skip
    sites = json.loads((synth / "sites.json").read_text(encoding="utf-8"))
    first, fifth = sites[: cfg.sites], sites[cfg.sites]
    docs: list[str] = []

    def ingest(site: dict) -> None:
        with connect(url) as conn:
            if site["code"] not in {s.code for s in list_sites(conn)}:
                add_site(conn, code=site["code"], name=site["name"],
                         country=site.get("country", ""), contact=site.get("contact", ""))  # fmt: skip
        r = ingest_submission(site["code"], str(synth / site["code"] / "submission"))
        c = r.get("counts", {})
        again = " (already ingested: nothing changed)" if r.get("already_ingested") else ""
        if r.get("data_docs"):
            docs.append(r["data_docs"])
        say(f"   {site['code']}: {c.get('cases_accepted', 0)} cases accepted, "
            f"{c.get('files_stored', 0)} files stored, {c.get('quarantined', 0)} quarantined, "
            f"{c.get('files_duplicate', 0)} duplicates{again}")  # fmt: skip

    say(f"== ingesting {len(first)} hospitals' submissions (with their injected faults)")
    for site in first:
        ingest(site)

    project = _project(home, repo)
    params = _params(repo, project, cfg)
    say(f"== dataset version + training + evaluation (retrain flow, DVC pipeline in {project})")
    run1 = retrain_flow(str(params), str(project), truth_dir=str(synth))
    policy = release_policy(params)
    with connect(url) as conn:
        champion = q.deployed_model(conn, task=yaml.safe_load(params.read_text())["task"])
        if champion is None:
            model_id = run1.get("model_id") or _newest_candidate(conn)
            model = q.get_model(conn, model_id)
            if model["status"] in ("candidate", "rejected"):
                gate = registry.gate(conn, store, model_id, policy=policy,
                                     data_dir=project / "data")  # fmt: skip
                reason = ("demo on synthetic data: release gate passed" if gate["passed"] else
                          "demo on synthetic data: the gate failed and is overridden on purpose, "
                          "never do this with real data")  # fmt: skip
                say(f"== approving model {model_id} as {APPROVER!r}: gate "
                    f"{'passed' if gate['passed'] else 'FAILED (override recorded)'}")  # fmt: skip
                registry.approve(conn, store, model_id, by=APPROVER, reason=reason,
                                 override=not gate["passed"], policy=policy,
                                 data_dir=project / "data")  # fmt: skip
            say(f"== deploying model {model_id} with BentoML")
            registry.deploy(conn, store, model_id, by=APPROVER)
            champion = q.get_model(conn, model_id)
        tag = q.deployments(conn, task=champion["task"])[0]["bento_tag"]
    say(f"== serving {tag} (bentoml serve, port {cfg.port})")
    served = supervisor.start(home, tag, project=repo, port=cfg.port)
    xray = _a_radiograph(synth / fifth["code"])
    with DiagnosisClient(served["url"]) as client:
        answer = client.diagnose(xray, gradcam=True)
    say(f"   POST /diagnose {xray.name}: {answer['predicted_class']} "
        f"(p = {json.dumps(answer['probabilities'])}, model {answer['model_version']}, "
        f"Grad-CAM {'yes' if answer.get('gradcam_png') else 'no'})")  # fmt: skip

    say(f"== a fifth hospital joins: {fifth['code']} ({fifth['name']})")
    ingest(fifth)
    say("== retraining (the flow the schedule runs): new version, candidate, gate vs champion")
    run2 = retrain_flow(str(params), str(project), truth_dir=str(synth))
    candidate = run2.get("model_id")
    comparison = None
    if candidate and candidate != champion["id"]:
        with connect(url) as conn:
            comparison = registry.compare(conn, store, a=candidate, b=champion["id"],
                                          data_dir=project / "data")  # fmt: skip
        say(f"   candidate {candidate} vs champion {champion['id']}: "
            f"{_comparison_line(comparison)}")  # fmt: skip
    elif run2.get("skipped"):
        say(f"   {run2['reason']}")
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


def demo(
    cases_per_site: Annotated[int, typer.Option(help="Cases per synthetic hospital.")] = 100,
    epochs: Annotated[int, typer.Option(help="Training epochs (CPU: ~15 s each).")] = 8,
    port: Annotated[int, typer.Option(help="Port of the served model.")] = 3000,
    stop_serving: Annotated[bool, typer.Option(
        "--stop-serving", help="Stop the model server at the end.")] = False,
) -> None:
    """The whole consortium story on embedded defaults: ingest 4 hospitals, version, train,
    approve, deploy, diagnose, a fifth hospital joins, retrain, compare. Safe to re-run."""
    home = _settings().home
    prefect_env()
    repo = Path(__file__).resolve().parents[1]
    cfg = DemoConfig(cases_per_site=cases_per_site, epochs=epochs, port=port,
                     keep_serving=not stop_serving)
    out = run_demo(repo=repo, cfg=cfg,
                   say=lambda m: console.print(m, markup=False, soft_wrap=True))
    console.print("\n[bold]Where everything is[/]")
    rows = [
        ("diagnosis API (Swagger UI)", f"{out['serving_url']}/" if not stop_serving else
         "stopped (bonebase models server start)"),
        ("evaluation report", out["report"]),
        ("receipts (JSON + Markdown)", out["receipts"]),
        ("Data Docs (validation)", f"{Path(out['data_docs'][-1]).parents[1]}/<submission>/"
         "index.html" if out["data_docs"] else "linked from each receipt"),
        ("models", "bonebase models list / show ID / compare A B"),
        ("Prefect UI", "prefect server start (flow runs of this demo are in "
         f"{home / 'prefect'})"),
        ("schedule", "bonebase schedule enable (needs a Prefect server)"),
        ("web database", "bonebase web"),
    ]
    for what, where in rows:
        console.print(f"  {what:28} {where}", markup=False)
