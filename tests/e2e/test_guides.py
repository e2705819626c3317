"""The guide walk: every shell line of the guides (docs/*.md, README.md) is run by this test.

`TABLE` maps each line, by its doc and its text, to what the walk does with it (see
tests/e2e/guide_walk.py for the kinds); `test_every_guide_line_has_an_entry` fails for a new line
until it has one, and for an entry whose line is gone. `test_the_guides_walk` then runs the table
in order, each command a real process (`bonebase`, `dvc`, `prefect`, `bentoml`, `curl`, `bash`
for `export`): first the operator's machines (an embedded laptop; the consortium's, with a fresh
database on the test server, the moto S3 server over HTTP and a real `prefect server start`),
then, as a user would after `make demo`, docs/stewards.md and docs/mlops.md in the demo's home
and project (the demo's story, smaller, runs once in tests/e2e/conftest.py and is shared with
tests/e2e/test_demo.py), with the diagnosis API, the dataset reference and the web database,
and the operator's upgrade last.

Placeholders stay readable in the guides (HX, 12, 3, PATH); the table substitutes the values the
walk found (`{name}` below). `bonebase synth` is shrunk from 4 x 100 to 2 x 22 cases.
"""

from __future__ import annotations

import csv
import json
import re
import resource
import secrets
import shlex
import shutil
import subprocess
import warnings
import zipfile
from pathlib import Path

import psycopg
import pytest

from tests.doc_shell import guide_lines
from tests.e2e.guide_table_stewards_zh import TABLE as STEWARDS_ZH
from tests.e2e.guide_table_web_zh import TABLE as WEB_ZH
from tests.e2e.guide_walk import (
    ELSEWHERE,
    EXPORT,
    NOT_A_COMMAND,
    NOT_RUN,
    RUN,
    SAME,
    SERVE,
    Entry,
    Step,
    Walk,
    coverage_problems,
    free_port,
    http_ok,
    locate,
    scratch_env,
    url_of,
)

STEWARDS, OPERATORS, MLOPS = "docs/stewards.md", "docs/operators.md", "docs/mlops.md"
QUARANTINE, GATEWAY = "docs/quarantine.md", "docs/gateway.md"
DATASETS, API, WEB, README = "docs/datasets.md", "docs/diagnosis-api.md", "docs/web.md", "README.md"


def run(doc, text, **kw) -> Entry:
    return Entry(doc, text, RUN, **kw)


def not_a_command(doc, texts, note) -> list[Entry]:
    return [Entry(doc, t, NOT_A_COMMAND, note=note) for t in texts]


def sh_step(what: str, cmd: str, expect: str = "", then=None) -> Step:
    """A command the walk runs that no guide line holds (``what`` says why)."""

    def do(walk: Walk) -> None:
        out = walk.sh(cmd.format_map(walk.values), expect=expect, where=f"step: {what}")
        if then is not None:
            then(walk, out)

    return Step(what, do)


def _ddp_checkpoint(walk) -> None:
    """The torchrun line wrote one checkpoint, trained by two processes."""
    from bonebase.model.checkpoint import load_checkpoint

    ckpt = load_checkpoint(Path(walk.cwd) / "models-ddp" / "model.pt")
    assert ckpt.train_params.get("world_size") == 2, ckpt.train_params


def record(name: str, pattern: str):
    """A `then` that stores the first group of ``pattern`` in the output as walk value ``name``."""

    def then(walk: Walk, out: str) -> None:
        found = re.search(pattern, out)
        assert found, f"/{pattern}/ not in:\n{out[-2000:]}"
        walk.values[name] = found.group(1)

    return then


def query(walk: Walk, sql: str, *args):
    """``sql`` on the database of the walk's current home."""
    with psycopg.connect(walk.env["DATABASE_URL"]) as conn:
        return conn.execute(sql, args).fetchall()


# --- probes of the servers the guides start -------------------------------------------------
def prefect_up(walk):
    return http_ok(f"http://127.0.0.1:{walk.values['prefect_port']}/api/health")


def worker_online(walk) -> bool:
    import httpx

    url = f"http://127.0.0.1:{walk.values['prefect_port']}/api/work_pools/bonebase/workers/filter"
    try:
        workers = httpx.post(url, json={}, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return any(w.get("status") == "ONLINE" for w in workers if isinstance(w, dict))


def api_ready(walk):
    return http_ok(f"http://127.0.0.1:{walk.values['api_port']}/readyz")


def web_up(port_name: str, path: str):
    return lambda walk: http_ok(f"http://127.0.0.1:{walk.values[port_name]}{path}")


# --- facts checked on the outputs -----------------------------------------------------------
def check_validate_json(walk, out):
    predicted = json.loads(out)
    assert predicted["status"] == "predicted" and predicted["quarantine"]
    assert all({"reason", "message", "fix", "row", "file"} <= set(q)
               for q in predicted["quarantine"])


def check_receipt_json(walk, out):
    receipt = json.loads(out)
    assert receipt["already_ingested"] is True and receipt["site"] == "HX"


def check_submission_json(walk, out):
    receipt = json.loads(out)
    assert receipt["counts"]["cases_accepted"] > 0 and receipt["site"] == "HX"


def pick_quarantine_items(walk, out):
    items = json.loads(out)
    assert items and {i["site"] for i in items} == {"HX"}
    open_ids = [i["id"] for i in items if i["status"] == "open"]
    assert len(open_ids) >= 2, items
    held = [i["id"] for i in items if i["status"] == "open" and i["file"]
            and i["reason"] in ("blank_image", "wrong_modality", "images_without_row")]
    assert held, items
    # a held file to look at (docs/quarantine.md), released or discarded by none of the lines
    walk.values["held_file_id"] = held[0]
    others = [i for i in open_ids if i != held[0]]
    walk.values["release_id"], walk.values["discard_id"] = others[:2]


def check_held_png(walk, out):
    assert (walk.cwd / "held.png").read_bytes().startswith(b"\x89PNG")
    rows = query(walk, "SELECT count(*) FROM audit_events WHERE action = 'quarantine.view' AND "
                 "actor = 'steward-ann' AND entity_id = %s", str(walk.values["held_file_id"]))
    assert rows[0][0] >= 1, rows


def check_quality_json(walk, out):
    (card,) = json.loads(out)
    assert card["site"] == "HX" and 0 < card["acceptance"] < 1  # the injected faults


def check_dataset_show(walk, out):
    row = json.loads(out)
    assert row["version"] == 1 and row["n_images"] > 0


def check_checkout_to(walk, out):
    dest = Path(walk.values["scratch"]) / "v1"
    assert (dest / "labels.csv").is_file() and (dest / "dataset-version.json").is_file()
    assert (Path(walk.values["scratch"]) / "v1-assignments.csv").is_file()


def split_only(walk, out):
    # the version's own lock reproduces split.csv byte for byte, so train stays cached
    assert "Running stage 'split'" in out and "Running stage 'train'" not in out, out[-2000:]


def check_override_recorded(walk, out):
    rows = query(walk, "SELECT override, by_person, reason FROM approvals WHERE model_id = %s",
                 int(walk.values["model_a"]))
    assert rows == [(True, "A. Steward", "…")]


def check_diagnosis(walk, out):
    answer = json.loads(out)
    assert answer["model_version"] == walk.values["tag_a"]
    assert set(answer["probabilities"]) == {"benign", "malignant"} and answer["gradcam_png"]
    assert answer["clinical"] == {"age": 17, "sex": "M", "location": "distal_femur"}


def diagnose_httpx(walk) -> str:
    """The curl line's request, for a machine without curl."""
    import httpx

    fields = {"age": "17", "sex": "M", "location": "distal_femur", "gradcam": "true"}
    with (walk.cwd / "knee_ap.dcm").open("rb") as f:
        answer = httpx.post(f"http://127.0.0.1:{walk.values['api_port']}/diagnose", data=fields,
                            files={"file": ("knee_ap.dcm", f)}, timeout=120,
                            headers={"Authorization": f"Bearer {walk.env['TOKEN']}"})
    assert answer.status_code == 200, answer.text
    return answer.text


def bento_named_exists(walk, out):
    """The bento `containerize` names is in the store (the line itself is not run)."""
    walk.sh("bentoml get bonebase_diagnosis:latest", expect="bonebase_diagnosis",
            where="bento named by `bentoml containerize`")
    docker = walk.sh("docker info >/dev/null 2>&1 && echo daemon || echo none", where="docker")
    walk.values["docker"] = docker.strip()


def check_open_data(walk, out):
    import httpx

    page = httpx.get(f"http://127.0.0.1:{walk.values['web_port']}/cases", timeout=10)
    assert page.status_code == 200 and "HX" in page.text  # anonymous: open data
    walk.stop("web")


def check_secure_cookie(walk, out):
    import httpx

    page = httpx.get(f"http://127.0.0.1:{walk.values['web_port2']}/login", timeout=10)
    cookies = page.headers.get_list("set-cookie")
    assert page.status_code == 200 and cookies and all("secure" in c.lower() for c in cookies)
    walk.stop("web-prod")


# --- steps between guide lines ----------------------------------------------------------------
def use_embedded_home(walk):
    walk.env["BONEBASE_HOME"] = walk.values["embedded_home"]
    walk.env.pop("DATABASE_URL", None)


def use_consortium_home(walk):
    walk.env["BONEBASE_HOME"] = walk.values["home"]


def use_demo_home(walk):
    """The reader who ran `make demo` in their checkout: its home (checkout/.bonebase), the
    demo's database and key, the local object store; the Prefect server and the S3 endpoint
    (HX also sends its export from S3) stay. The consortium machine's environment is kept for
    its return at the end."""
    walk.values["consortium_env"] = dict(walk.env)
    for name in ("BONEBASE_STORAGE_URL", "DATABASE_URL"):  # the S3 endpoint stays: HX sends from S3
        walk.env.pop(name, None)
    walk.env.update(walk.values["demo_environ"])
    walk.env["DATABASE_URL"] = url_of(walk.values["demo_environ"]["DATABASE_URL"])
    walk.cwd = Path(walk.values["demo_checkout"])


def check_demo_home(walk):
    assert walk.env["BONEBASE_HOME"] == walk.values["demo_home"], walk.env["BONEBASE_HOME"]


def enter_project(walk):
    """`cd` for the lines that follow (each line is its own bash)."""
    walk.cwd = Path(walk.values["demo_home"]) / "project"
    assert (walk.cwd / "dvc.lock").is_file(), "the demo ran its pipeline there"


def use_consortium_env(walk):
    """The consortium's settings again; the reader's shell keeps what it set since."""
    kept = {k: walk.env[k] for k in ("PREFECT_API_URL", "BONEBASE_NEW_PASSWORD", "TOKEN")}
    walk.env = {**walk.values["consortium_env"], **kept}


def write_sites_json(walk):
    sites = [{"code": "RJH01", "name": "Royal Joint Hospital", "country": "GB"},
             {"code": "LTH02", "name": "Lakeside Teaching Hospital", "country": "IE",
              "contact": "data@lth.example"}]  # fmt: skip
    (walk.cwd / "sites.json").write_text(json.dumps(sites))


def hospital_exports(walk):
    """HX's synthetic export (the guide's `cp -r` made `submission`), as a zip of it, and under
    an S3 prefix."""
    folder = walk.cwd / "submission"
    assert (folder / "manifest.csv").is_file()
    with zipfile.ZipFile(walk.cwd / "submission.zip", "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    import boto3

    s3 = boto3.client("s3", endpoint_url=walk.values["endpoint"], region_name="us-east-1")
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            key = "incoming/HX/2026-11/" + path.relative_to(folder).as_posix()
            s3.upload_file(str(path), walk.values["bucket"], key)


def radiograph_and_token(walk):
    """`$TOKEN` of the reader's shell, and knee_ap.dcm: one of HX's radiographs."""
    walk.env["TOKEN"] = "change-me"
    site = Path(walk.values["demo_checkout"]) / "synth" / "HX"
    bad = {f["file"] for f in json.loads((site / "faults.json").read_text())}
    for row in csv.DictReader((site / "truth.csv").open()):
        if row["modality"] in ("CR", "DX") and row["file"] not in bad:
            shutil.copy(site / "submission" / row["file"], walk.cwd / "knee_ap.dcm")
            return
    raise AssertionError("no radiograph in the synthetic HX submission")


def use_gateway_home(walk):
    walk.env["BONEBASE_HOME"] = str(Path(walk.values["scratch"]) / "gateway-home")


def new_password(walk):
    walk.env["BONEBASE_NEW_PASSWORD"] = "a-long-walk-password"


# ---------------------------------------------------------------------------------------------
#: The walk, in order: an operator sets up the machine, stewards onboard two hospitals, MLOps
#: versions, trains, releases and serves, the web database runs, then the operator upgrades.
TABLE: list[Entry | Step] = [
    # ---- operators §1-2: a laptop on embedded defaults (pgserver), then stopped
    Step("a laptop: embedded PostgreSQL in a fresh BONEBASE_HOME (no DATABASE_URL)",
         use_embedded_home),
    run(OPERATORS, "bonebase init          # safe to re-run: creates what is missing, migrates, "
        "prints the settings", expect=r"ready home=[\s\S]*database\s+postgresql://\S*host="),
    run(OPERATORS, "bonebase db status     # database URL (password hidden) and schema revision "
        "vs the code's", expect=r"schema\s+(\d+) \(code expects \1\)"),
    run(OPERATORS, "bonebase db stop", expect="embedded server stopped"),
    # ---- operators §2, §3, §5: the consortium's machine (server database, S3, production)
    Step("the consortium's machine: its own BONEBASE_HOME", use_consortium_home),
    Entry(OPERATORS, "export DATABASE_URL=postgresql://bonebase:PASSWORD@db.example:5432/bonebase",
          EXPORT, note="a fresh database on the test server",
          subs=(("postgresql://bonebase:PASSWORD@db.example:5432/bonebase", "{db_url}"),)),
    run(OPERATORS, "bonebase init", expect=r"ready home=[\s\S]*\(schema {head}\)"),
    Entry(OPERATORS, "export BONEBASE_STORAGE_URL=s3://bonebase-consortium/prod", EXPORT,
          note="a fresh bucket on the moto S3 server", subs=(("bonebase-consortium", "{bucket}"),)),
    Entry(OPERATORS, "export BONEBASE_S3_ENDPOINT_URL=https://minio.example:9000   # omit for AWS",
          EXPORT, note="moto's HTTP endpoint", subs=(("https://minio.example:9000", "{endpoint}"),)),
    Entry(OPERATORS, "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...", EXPORT,
          note="moto accepts any keys",
          subs=(("AWS_ACCESS_KEY_ID=...", "AWS_ACCESS_KEY_ID=testing"),
                ("AWS_SECRET_ACCESS_KEY=...", "AWS_SECRET_ACCESS_KEY=testing"))),
    run(OPERATORS, "bonebase init", expect=r"objects\s+s3://{bucket}/prod"),
    Entry(OPERATORS, "export BONEBASE_ENV=production", EXPORT),
    Entry(OPERATORS, 'export BONEBASE_SECRET="$(cat /run/secrets/bonebase_secret)"   # e.g. from '
          "a secret manager", EXPORT, note="the secret file is a scratch file of 48 characters",
          subs=(("/run/secrets/bonebase_secret", "{secret_file}"),)),
    run(OPERATORS, "bonebase init", expect=r"secret\s+present"),
    # ---- operators §4 / mlops: a Prefect server (free port via PREFECT_SERVER_API_PORT), a pool,
    # a worker (probed until it is ONLINE, then stopped), the schedule
    Entry(OPERATORS, "prefect server start                                  # UI and API on "
          "http://127.0.0.1:4200", SERVE, name="prefect", probe=prefect_up,
          note="on a free port: PREFECT_SERVER_API_PORT and a scratch PREFECT_HOME are in the "
          "walk's environment; it serves every later flow run of the walk"),
    Entry(OPERATORS, "export PREFECT_API_URL=http://127.0.0.1:4200/api", EXPORT,
          subs=(("4200", "{prefect_port}"),)),
    run(OPERATORS, "prefect work-pool create bonebase --type process",
        expect="Created work pool 'bonebase'"),
    Entry(OPERATORS, "prefect worker start --pool bonebase                  # runs the flow runs of "
          "the pool", SERVE, name="worker", probe=worker_online,
          then=lambda walk, out: walk.stop("worker")),
    run(OPERATORS, "bonebase schedule enable --pool bonebase              # retraining cron from "
        "prefect.yaml", expect=r"retrain/retrain: .*active.*cron '0 3 \* \* 1'"),
    run(OPERATORS, "bonebase schedule show", expect=r"active.*work pool bonebase"),
    # ---- after `make demo` (README): the demo's checkout, home, database and key; the guides
    # for stewards and MLOps continue there, in their order (#17)
    Step("after `make demo`: the demo's home (tests/e2e/conftest.py ran its story, smaller), in "
         "the checkout it ran from", use_demo_home),
    # ---- stewards: register, synthetic hospitals, validate, submit, receipts, quarantine
    run(STEWARDS, 'bonebase site add RJH01 --name "Royal Joint Hospital" --country GB --contact '
        "data@rjh.example", expect="site RJH01 added: Royal Joint Hospital"),
    run(STEWARDS, "bonebase site list", expect=r"\bHX\W[\s\S]*\bRJH01\W+Royal Joint Hospital\W+GB"),
    run(STEWARDS, "bonebase site show RJH01              # details and the last audit events",
        expect=r"site\.add"),
    run(STEWARDS, "bonebase site update RJH01 --contact new-contact@rjh.example",
        expect="site RJH01 updated"),
    run(STEWARDS, "bonebase site update RJH01 --inactive # a hospital that left; --active brings "
        "it back", expect="site RJH01 updated"),
    Step("sites.json: a coordinator's list of hospitals (RJH01 again and one more)",
         write_sites_json),
    run(STEWARDS, "bonebase site import sites.json",
        expect=r"site RJH01 exists, kept[\s\S]*site LTH02 added"),
    run(STEWARDS, "bonebase synth --sites 4 --cases-per-site 100 --seed 8 --out synth",
        subs=(("--sites 4 --cases-per-site 100", "--sites 2 --cases-per-site 22"),),
        note="shrunk to 2 hospitals (HX, BJ1) of 22 cases to keep the walk in minutes",
        expect=r"sites=\('HX', 'BJ1'\)"),
    run(STEWARDS, "bonebase site import synth/sites.json",
        expect=r"site HX exists, kept[\s\S]*site BJ1 exists, kept"),
    run(STEWARDS, "cp -r synth/HX/submission submission    # HX's export: the folder the examples "
        "below send", then=lambda walk, _: hospital_exports(walk)),
    *not_a_command(STEWARDS, ["submission/", "├── manifest.csv",
                              "├── 12345678/                  # any layout: per patient, per "
                              "study, flat ...", "│   ├── study1/IM0001.dcm",
                              "│   └── study1/IM0002", "└── 23456789/CT/..."],
                   "the folder tree of a submission"),
    *not_a_command(STEWARDS, ["case_id,patient_id,accession_number,sex,age,location,diagnosis,"
                              "behaviour,modalities,pathology_confirmed",
                              "HX-0001,12345678,HX2401010001,F,17,distal femur,osteosarcoma,"
                              "malignant,XR;MR,yes"], "a sample of the manifest (CSV)"),
    run(STEWARDS, "bonebase validate submission --site HX", rc=1,
        note="exit 1 as the guide says: the synthetic submission has injected faults",
        expect=r"site HX: 22 rows, \d+ files: submit would accept \d+ cases \(\d+ files\), "
        r"quarantine \d+"),
    run(STEWARDS, "bonebase validate submission --site HX --open    # prints the Data Docs "
        "index.html path", rc=1, expect=r"Data Docs: \S+/index\.html"),
    run(STEWARDS, "bonebase validate submission --site HX --json    # the whole prediction, for "
        "scripts", rc=1, then=check_validate_json),
    run(STEWARDS, "bonebase submit submission --site HX",
        expect=r"submission \d+ \(HX\): \d+ cases accepted",
        then=record("submission", r"submission (\d+) \(HX\)")),
    run(STEWARDS, "bonebase submit submission.zip --site HX",
        expect="submission {submission} was already ingested"),
    run(STEWARDS, "bonebase submit s3://bucket/incoming/HX/2026-11/ --site HX",
        subs=(("s3://bucket/", "s3://{bucket}/"),),
        expect="submission {submission} was already ingested"),
    run(STEWARDS, "bonebase submit submission --site HX --json      # the whole receipt as JSON",
        then=check_receipt_json),
    run(STEWARDS, "bonebase submissions list --site HX", expect=r"\b{submission}\W+HX\W+done"),
    run(STEWARDS, "bonebase submissions show 12           # the markdown receipt",
        subs=(("show 12", "show {submission}"),),
        expect="# Receipt: submission {submission} from site HX"),
    run(STEWARDS, "bonebase submissions show 12 --json    # the JSON receipt",
        subs=(("show 12", "show {submission}"),), then=check_submission_json),
    run(STEWARDS, "bonebase quarantine list --site HX                 # open items (default "
        "--status open)", expect=r"\bopen\b"),
    run(STEWARDS, "bonebase quarantine list --site HX --status all --json",
        then=pick_quarantine_items),
    # docs/quarantine.md: look at a held file before releasing or discarding it
    run(QUARANTINE, "bonebase quarantine show 345", subs=(("show 345", "show {held_file_id}"),),
        expect=r"quarantine item {held_file_id}: site HX"),
    run(QUARANTINE, "bonebase quarantine show 345 --header --image held.png --by steward-ann",
        subs=(("show 345", "show {held_file_id}"),), expect=r"\(0028,0010\)\W+Rows",
        then=check_held_png),
    run(STEWARDS, "bonebase quarantine list --submission 12",
        subs=(("--submission 12", "--submission {submission}"),), expect=r"\bHX\W+{submission}\W"),
    run(STEWARDS, 'bonebase quarantine release 345 --reason "site resubmitted the corrected row '
        'in submission 13"', subs=(("release 345", "release {release_id}"),),
        expect="quarantine item {release_id} released"),
    run(STEWARDS, 'bonebase quarantine discard 346 --reason "screenshot, not an image" --by '
        "steward-ann", subs=(("discard 346", "discard {discard_id}"),),
        expect="quarantine item {discard_id} discarded"),
    run(STEWARDS, "bonebase site quality            # every hospital",
        expect=r"BJ1[\s\S]*HX|HX[\s\S]*BJ1"),
    run(STEWARDS, "bonebase site quality HX --json", then=check_quality_json),
    # ---- docs/stewards.zh.md (#25): the same steward's work in Chinese, in the same home
    *STEWARDS_ZH,
    # ---- mlops after the demo and the stewards: in the demo's project, version 3 (HX's practice
    # submission), train on it, torchrun, the retrain flow (model A), the schedule, releases
    Entry(MLOPS, 'export BONEBASE_HOME="$PWD/.bonebase"   # the demo\'s home: database, object '
          "store, key", EXPORT, then=lambda walk, _: check_demo_home(walk)),
    run(MLOPS, "cd .bonebase/project                    # the demo's project: params.yaml, data/, "
        "models/, dvc.lock", then=lambda walk, _: enter_project(walk),
        note="the walk runs the next lines in that folder"),
    run(MLOPS, 'bonebase dataset version              # the next dataset version (or "no new '
        'data")', expect=r"dataset version 3: \d+ images",
        note="version 3: the demo made 1 and 2, the stewards' practice submission is new data"),
    run(MLOPS, "bonebase dataset checkout 3 --to data # train on a recorded version instead of "
        "the live database", expect="dataset version 3 .* restored in data"),
    run(MLOPS, "dvc repro --single-item train evaluate", expect="Running stage 'evaluate'",
        note="version 3 is new to the project: train and evaluate run"),
    sh_step("params for the torchrun line: train.nproc_per_node 2 (gloo on the CPU)",
            "python - <<'PY'\nimport yaml\np = yaml.safe_load(open('params.yaml'))\n"
            "p['train'].update(nproc_per_node=2, batch_size=16)\n"
            "yaml.safe_dump(p, open('params-ddp.yaml', 'w'))\nPY"),
    run(MLOPS, "python pipelines/train.py --params params.yaml --data data --out models   "
        "# train.nproc_per_node: N",
        subs=(("--params params.yaml", "--params params-ddp.yaml"),
              ("--out models", "--out models-ddp")),
        note="two training processes under torchrun; models-ddp/ keeps the pipeline's model",
        expect="2 training processes share the CPU",
        then=lambda walk, _: _ddp_checkpoint(walk)),
    run(MLOPS, "bonebase retrain --project .          # [--params params.yaml] [--force]; --project: "
        "the DVC project", note="version 3, trained above by hand but not by a retrain run: "
        "checked out, dvc repro (cached), registered as model A and gated",
        expect=r"gate \*\*failed\*\*", then=record("model_a", r"Candidate \*\*model (\d+)\*\*")),
    Entry(MLOPS, "prefect server start                                  # UI at "
          "http://127.0.0.1:4200", SAME, same_as=(OPERATORS, "prefect server start              "
          "                    # UI and API on http://127.0.0.1:4200"),
          note="the same command: the server started for docs/operators.md runs the walk"),
    Entry(MLOPS, "export PREFECT_API_URL=http://127.0.0.1:4200/api", EXPORT,
          subs=(("4200", "{prefect_port}"),)),
    Entry(MLOPS, "prefect worker start --pool bonebase                  # runs the scheduled flow "
          "runs", SAME, same_as=(OPERATORS, "prefect worker start --pool bonebase               "
          "   # runs the flow runs of the pool"), note="the same command, run for operators.md"),
    run(MLOPS, 'bonebase schedule enable [--cron "0 3 * * 1"] [--timezone Europe/Berlin]',
        subs=(('[--cron "0 3 * * 1"] [--timezone Europe/Berlin]',
               '--cron "0 3 * * 1" --timezone Europe/Berlin'),),
        expect=r"active, cron '0 3 \* \* 1' \(Europe/Berlin\)"),
    run(MLOPS, "bonebase schedule show                                # cron, active/paused, next "
        "times, recent runs", expect=r"active[\s\S]*next  "),
    run(MLOPS, "bonebase schedule disable                             # pause; enable resumes",
        expect="paused"),
    run(MLOPS, "bonebase models list", expect=r"\b{model_a}\W+benign_vs_malignant[\s\S]*candidate"),
    run(MLOPS, "bonebase models show 3", subs=(("show 3", "show {model_a}"),),
        expect=r'"id": {model_a},'),
    run(MLOPS, "bonebase models compare 3 1 --data data          # candidate vs champion: AUCs, "
        "paired DeLong test, per-site table", subs=(("compare 3 1", "compare {model_a} {champion}"),),
        expect=r"A #{model_a}: AUC [\s\S]*DeLong p="),
    run(MLOPS, 'bonebase models approve 3 --by "A. Steward" --data data --reason "external AUC up, '
        'calibration ok"', subs=(("approve 3", "approve {model_a}"),), rc=5,
        note="fails as documented: the demo's small model fails the gate",
        expect=r"model {model_a} fails the release gate .*--override and a --reason"),
    run(MLOPS, 'bonebase models approve 3 --by "A. Steward" --data data --override --reason "…"   '
        "# failed gate: recorded", subs=(("approve 3", "approve {model_a}"),),
        expect="model {model_a} approved by A. Steward", then=check_override_recorded),
    # ---- diagnosis API: deploy A, serve it with a token, ask it with curl
    run(API, 'bonebase models deploy 7 --by "Dr A. Reviewer"           # approved model → BentoML '
        "model store", subs=(("deploy 7", "deploy {model_a}"),),
        expect="model {model_a} deployed as", then=record("tag_a", r"deployed as (\S+)")),
    Entry(API, "BONEBASE_MODEL_TAG=bonebase-diagnosis:m7-3f2a9c1d0e4b BONEBASE_API_TOKEN=change-me "
          "bentoml serve serving.service:Diagnosis --host 0.0.0.0 --port 3000", SERVE, name="api",
          probe=api_ready, subs=(("bonebase-diagnosis:m7-3f2a9c1d0e4b", "{tag_a}"),
                                 ("--port 3000", "--port {api_port}"))),
    Step("the reader's $TOKEN and knee_ap.dcm (an HX radiograph)", radiograph_and_token),
    run(API, 'curl -H "Authorization: Bearer $TOKEN" -F file=@knee_ap.dcm -F age=17 -F sex=M -F '
        "location=distal_femur -F gradcam=true http://127.0.0.1:3000/diagnose",
        subs=(("3000", "{api_port}"),), then=check_diagnosis, fallback=("curl", diagnose_httpx)),
    Step("stop the `bentoml serve` above", lambda walk: walk.stop("api")),
    sh_step("B, the demo's candidate, approved too (a second approved model: deploy and roll "
            "back need two)",
            'bonebase models approve {model_b} --by "A. Steward" --override --reason "walk"',
            expect="approved by A. Steward"),
    run(OPERATORS, 'bonebase models deploy 7 --by "A. Steward"',
        subs=(("deploy 7", "deploy {model_b}"),), expect="model {model_b} deployed as",
        then=record("tag_b", r"deployed as (\S+)")),
    run(OPERATORS, "BONEBASE_MODEL_TAG=bonebase-diagnosis:m7-TAG bentoml build -f "
        "serving/bentofile.yaml .", subs=(("bonebase-diagnosis:m7-TAG", "{tag_b}"),),
        expect=r"Successfully built Bento\(tag=\"?bonebase_diagnosis:"),
    Entry(MLOPS, "BONEBASE_MODEL_TAG=bonebase-diagnosis:m7-… bentoml build -f "
          "serving/bentofile.yaml .", SAME, subs=(("bonebase-diagnosis:m7-…", "{tag_b}"),),
          same_as=(OPERATORS, "BONEBASE_MODEL_TAG=bonebase-diagnosis:m7-TAG bentoml build -f "
                   "serving/bentofile.yaml ."), note="the same build, run for operators.md"),
    Entry(API, "# packaged: BONEBASE_MODEL_TAG=... bentoml build -f serving/bentofile.yaml .", SAME,
          subs=(("# packaged: ", ""), ("=...", "={tag_b}")),
          same_as=(OPERATORS, "BONEBASE_MODEL_TAG=bonebase-diagnosis:m7-TAG bentoml build -f "
                   "serving/bentofile.yaml ."),
          note="a comment holding the same build command, run for operators.md"),
    Entry(OPERATORS, "bentoml containerize bonebase_diagnosis:latest", NOT_RUN,
          then=bento_named_exists,
          note="needs a Docker daemon and the network (base image, pip install of torch); the "
          "walk checks that the bento it names exists and reports whether a daemon answers"),
    Entry(MLOPS, "bentoml containerize bonebase_diagnosis:latest", NOT_RUN,
          note="as in operators.md (Docker daemon, network), where the bento it names is checked"),
    Entry(OPERATORS, "docker run -p 3000:3000 -e BONEBASE_API_TOKEN=... bonebase_diagnosis:TAG",
          NOT_RUN, note="needs the image `bentoml containerize` builds, and a Docker daemon"),
    # ---- mlops: deploy --serve, the supervised server, deploy B, roll back to A
    run(API, '# or: bonebase models deploy 7 --by "Dr A. Reviewer" --serve --port 3000',
        subs=(("# or: ", ""), ("deploy 7", "deploy {model_a}"), ("3000", "{model_port}")),
        note="a comment holding the other way to serve: run", expect="serving {tag_a} at"),
    run(MLOPS, "bonebase models server status | start | stop", note="all three, in turn",
        commands=(("bonebase models server status", r"ready\W*, serving {tag_a}"),
                  ("bonebase models server stop", "stopped {tag_a}"),
                  ("bonebase models server start --port {model_port}", "serving {tag_a} at"))),
    run(MLOPS, 'bonebase models deploy 3 --by "A. Steward" --serve   # BentoML model store + '
        "(re)started server", subs=(("deploy 3", "deploy {model_b}"),
                                    ("--serve", "--serve --port {model_port}")),
        note="B: A is deployed by the line above; the port: a free one, not 3000",
        expect="serving {tag_b} at"),
    run(MLOPS, 'bonebase models rollback --by "A. Steward" --serve   # the previous approved '
        "champion again", subs=(("--serve", "--serve --port {model_port}"),),
        expect=r"rolled back to model {model_a}[\s\S]*serving .*m{model_a}-"),
    # ---- datasets (the reference behind mlops): no new data; restore version 1, train on it,
    # reproduce its split
    run(DATASETS, 'bonebase dataset version [--params params.yaml] [--truth SYNTH_DIR]   # next '
        'version, or "no new data"', subs=(("[--params params.yaml] [--truth SYNTH_DIR]",
                                            "--params params.yaml --truth {demo_checkout}/synth"),),
        expect=r"dataset version 4: \d+ images",
        note="version 4: the lesion boxes of --truth change the labels of version 3"),
    run(DATASETS, "bonebase dataset list | show N", note="alternatives: list, then show 1",
        commands=(("bonebase dataset list", r"\b1\W+\d+\W+\d+"), "bonebase dataset show 1"),
        then=check_dataset_show),
    run(DATASETS, "bonebase dataset checkout N [--to DIR [--lock-to LOCK]] [--workspace DIR]",
        note="every option filled in", subs=(
            ("N [--to DIR [--lock-to LOCK]] [--workspace DIR]", "1 --to {scratch}/v1 --lock-to "
             "{scratch}/v1-assignments.csv --workspace {demo_home}/workspace"),),
        expect=r"dataset version 1 \(\d+ images\) restored in \S+/v1", then=check_checkout_to),
    run(DATASETS, "bonebase dataset checkout N --to data                # data/ = version N "
        "(images, labels, split)", subs=(("checkout N", "checkout 1"),),
        expect="restored in data"),
    run(DATASETS, "dvc repro --single-item train evaluate               # the version's split as "
        "it was recorded", expect="Running stage 'evaluate'"),
    Entry(DATASETS, "# or, re-running the split on the version's own lock (it reproduces "
          "split.csv byte for byte):", NOT_A_COMMAND, note="a comment on the next two lines"),
    run(DATASETS, "bonebase dataset checkout N --to data --lock-to splits/assignments.csv",
        subs=(("checkout N", "checkout 1"),), expect="split lock written to splits/assignments"),
    run(DATASETS, "dvc repro --downstream split                         # split → train → "
        "evaluate, never export", then=split_only),
    # ---- web database: accounts, the server with the served model, anonymous open data
    run(WEB, "bonebase init", expect="ready home="),
    Step("BONEBASE_NEW_PASSWORD instead of the prompt (the comment's other way)", new_password),
    run(WEB, "bonebase users add ada --role admin            # password prompted (or "
        "BONEBASE_NEW_PASSWORD)", expect=r"user ada added \(admin\)"),
    run(WEB, "bonebase users add stan --role steward --site HX",
        expect=r"user stan added \(steward, HX\)"),
    Entry(WEB, "BONEBASE_DIAGNOSIS_URL=http://127.0.0.1:3000 bonebase web --port 8000 "
          "[--open-data]", SERVE, name="web", probe=web_up("web_port", "/login"),
          subs=(("127.0.0.1:3000", "127.0.0.1:{model_port}"), ("--port 8000", "--port {web_port}"),
                ("[--open-data]", "--open-data")), then=check_open_data),
    # ---- docs/web.zh.md (#25): the web database in Chinese, its own server beside it
    *WEB_ZH,
    run(MLOPS, 'bonebase models reject 2 --by "A. Steward" --reason "…"',
        subs=(("reject 2", "reject {model_b}"),), expect="model {model_b} rejected by A. Steward",
        note="B, the demo's candidate (retired by the rollback above)"),
    # ---- back on the consortium's machine
    Step("the consortium's machine again: its home, database, S3 store, production key",
         use_consortium_env),
    # ---- operators §7-8: down a revision and back up, then the production web server
    run(OPERATORS, "bonebase db downgrade 0003 --yes   # back: drops the tables the later "
        "revisions made", expect="schema at 0003"),
    run(OPERATORS, "bonebase db status           # schema at N, code expects M",
        expect=r"schema\s+0003 \(code expects {head}\)"),
    run(OPERATORS, "bonebase db upgrade 0003     # or to a given revision", expect="schema at 0003"),
    run(OPERATORS, "bonebase db upgrade          # to the latest (`bonebase init` does this too)",
        expect="schema at {head}"),
    run(OPERATORS, "bonebase users add ada --role admin", expect=r"user ada added \(admin\)",
        note="the downgrade dropped the users table: ada is new again"),
    Entry(OPERATORS, "BONEBASE_COOKIE_SECURE=true BONEBASE_DIAGNOSIS_URL=http://127.0.0.1:3000 "
          "bonebase web --host 127.0.0.1 --port 8000 --workers 4", SERVE, name="web-prod",
          probe=web_up("web_port2", "/login"), then=check_secure_cookie,
          subs=(("127.0.0.1:3000", "127.0.0.1:{model_port}"),
                ("--port 8000", "--port {web_port2}"))),
    # ---- docs/gateway.md: a hospital's gateway (its own home), the peers it accepts, its state
    Step("a hospital's gateway machine: its own BONEBASE_HOME", use_gateway_home),
    run(GATEWAY, "bonebase gateway allow PACS01 --host 10.20.30.40",
        expect="allowed PACS01 from 10.20.30.40"),
    Entry(GATEWAY, "bonebase gateway serve --site HX --ae-title BONEBASE --port 11112 --deliver-to "
          "s3://consortium-deliveries/gateways", ELSEWHERE,
          note="a long-running DICOM server delivering to the consortium's S3 store: "
          "tests/gateway/test_delivery.py (serve with --deliver-to, storescu and Orthanc sending, "
          "central ingest) and tests/gateway/test_scp.py run it"),
    run(GATEWAY, "bonebase gateway status", expect="no studies received yet"),
    # ---- the README's two commands
    Entry(README, "make demo   # install into .venv, then the whole consortium story on embedded "
          "defaults (bonebase demo)", ELSEWHERE,
          note="its story, smaller, is the walk's starting point (tests/e2e/conftest.py: "
          "`run_demo`), checked by tests/e2e/test_demo.py"),
    Entry(README, "make test   # install into .venv, then run the test suite", ELSEWHERE,
          note="CI (.ci/run) is `make test` on a fresh clone"),
]


def other_tables() -> list[Entry | Step]:
    """The tables of guides walked by tests of their own (tests/e2e/guide_table_*.py, each with
    a ``TABLE`` and a test that walks it in a home of its own): their lines count as covered.
    Tables this walk holds itself (``IN_MAIN_WALK``: the Chinese guides) are not counted twice."""
    import importlib
    import pkgutil

    import tests.e2e as package

    tables: list[Entry | Step] = []
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("guide_table_"):
            module = importlib.import_module(f"tests.e2e.{info.name}")
            if not getattr(module, "IN_MAIN_WALK", False):
                tables += module.TABLE
    return tables


def test_every_guide_line_has_an_entry():
    problems = coverage_problems(TABLE + other_tables(), guide_lines())
    assert not problems, "the guide walk's table and the guides differ:\n" + "\n".join(problems)


def test_the_table_checks_itself():
    """A line without an entry, a stale entry and a SAME that is another command all fail."""
    from tests.doc_shell import Line

    lines = [Line("docs/x.md", 1, "bonebase site list"), Line("docs/x.md", 2, "bonebase init")]
    table = [run("docs/x.md", "bonebase site list"), run("docs/x.md", "bonebase db status"),
             Entry("docs/x.md", "bonebase init", SAME, same_as=("docs/x.md", "bonebase site list"),
                   note="wrong on purpose")]  # fmt: skip
    problems = "\n".join(coverage_problems(table, lines))
    assert "docs/x.md:2" not in problems  # it has an entry (a wrong one, reported below)
    assert "stale entry: docs/x.md has 0 line(s) `bonebase db status`" in problems
    assert "`bonebase init` is not the same command as `bonebase site list`" in problems
    assert coverage_problems([run("docs/x.md", "bonebase site list")], lines) == [
        "docs/x.md:2: `bonebase init` has no entry in the walk's table (1 line(s) in the guide, "
        "0 entr(y/ies))"]
    with pytest.raises(AssertionError, match="is not in the line"):
        run("docs/x.md", "bonebase site show HX", subs=(("CODE", "{site}"),))


def test_a_missing_program_takes_the_fallback_and_is_reported(tmp_path):
    walk = Walk(env={"PATH": str(tmp_path)}, cwd=tmp_path, logs=tmp_path)
    seen: list[str] = []
    entry = run("docs/x.md", "no-such-program --flag", then=lambda w, out: seen.append(out),
                fallback=("no-such-program", lambda w: "the same request"))
    walk.run(entry, "docs/x.md:1")
    assert seen == ["the same request"]
    assert walk.not_run == ["docs/x.md:1: `no-such-program --flag`: no no-such-program here; "
                            "the same request was sent from Python"]


@pytest.fixture
def walk(tmp_path, fresh_database, s3_bucket, demo_run):
    from bonebase.db.migrate import head_revision
    from tests.conftest import world_traversable_tmp

    checkout = demo_run.checkout  # where the reader ran `make demo`
    # what a reader has in the folder besides the checkout: not code, not a dirty tree
    (checkout / ".git" / "info" / "exclude").write_text(
        "/synth/\n/submission\n/submission.zip\n/sites.json\n")
    embedded = world_traversable_tmp("bb-walk-")
    secret = tmp_path / "bonebase_secret"
    secret.write_text(secrets.token_urlsafe(36))  # production refuses guessable keys
    for folder in ("logs", "scratch", "home"):
        (tmp_path / folder).mkdir()
    url = url_of(fresh_database())
    values = {
        "db_url": shlex.quote(url), "bucket": s3_bucket.bucket,
        "endpoint": s3_bucket.endpoint_url, "secret_file": str(secret),
        "home": str(tmp_path / "home"), "embedded_home": str(embedded / "h"),
        "demo_home": str(demo_run.settings.home), "demo_checkout": str(checkout),
        "demo_environ": demo_run.environ, "champion": demo_run.out["champion"],
        "model_b": demo_run.out["candidate"],
        "head": head_revision(),
        "scratch": str(tmp_path / "scratch"),
        **{name: free_port() for name in ("prefect_port", "api_port", "model_port", "web_port",
                                          "web_port2")},
    }  # fmt: skip
    env = scratch_env(tmp_path, values)
    w = Walk(env=env, cwd=checkout, logs=tmp_path / "logs", values=values)
    try:
        yield w
    finally:
        w.stop_all()
        # the supervised model servers of the demo's and the consortium's homes; the laptop's
        # embedded PostgreSQL
        demo_env = {**env, **demo_run.environ}
        leftovers = (("bonebase models server stop", values["home"], w.env),
                     ("bonebase models server stop", values["demo_home"], demo_env),
                     ("bonebase db stop", values["embedded_home"],
                      {k: v for k, v in w.env.items() if k != "DATABASE_URL"}))  # fmt: skip
        for cmd, home, env_ in leftovers:
            if Path(home).exists():
                subprocess.run(["bash", "-c", cmd], cwd=checkout, capture_output=True,
                               env={**env_, "BONEBASE_HOME": home}, timeout=120)  # fmt: skip
        shutil.rmtree(embedded, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.s3
@pytest.mark.timeout(2700)  # ~12 min quiet, 30+ under load 15 (it stopped at 1800 s then); a hang still ends
def test_the_guides_walk(walk):
    """docs/operators.md's machines, then `make demo`'s home (tests/e2e/conftest.py), where
    docs/stewards.md and docs/mlops.md follow in a user's order, with the diagnosis API, the
    dataset reference and the web database; the operator's upgrade last."""
    lines = guide_lines()
    assert not coverage_problems(TABLE + other_tables(), lines), "fix the table first (see above)"
    where = locate(TABLE, lines)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    for item in TABLE:
        walk.run(item, where.get(id(item), ""))
    walk.stop_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = sum(seconds for _, seconds in walk.timings)
    spent = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    print(f"\nguide walk: {total:.0f} s wall, {spent:.0f} s CPU of its processes "
          f"(outputs in {walk.logs})")
    for what, seconds in sorted(walk.timings, key=lambda t: -t[1]):
        print(f"  {seconds:6.1f} s  {what}")
    if walk.not_run:
        docker = walk.values.get("docker", "?")
        warnings.warn(f"guide lines not run (Docker daemon: {docker}):\n  "
                      + "\n  ".join(walk.not_run), stacklevel=1)
    runs = [item for item in TABLE if isinstance(item, Entry) and item.runs]
    assert len([t for t in walk.timings if not t[0].startswith("step:")]) == len(runs)
