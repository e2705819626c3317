"""Prefect flow `watch-champion`: score new radiographs with the deployed model, check sites.

Thin by design: the work is in ``bonebase.monitor``. One task scores (batches of
``monitor.batch`` radiographs per forward pass, stored batch by batch), one task per site checks
performance and drift; a breach raises the alert (audit event, Prefect event
``bonebase.monitor.alert``, open alert on the models page) and, with ``monitor.retrain_on_alert``,
starts the `retrain` flow. Triggered after ingest (``watch_after_ingest``) or by
`bonebase monitor run`. Nothing identifying is a parameter: ids and paths only.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from bonebase.config import get_settings
from bonebase.flow_run import in_process
from bonebase.monitor import policy as policies
from bonebase.monitor import watch
from bonebase.monitor.db import deployed

#: The session-level advisory lock a background watch holds (one at a time; see _main).
_BACKGROUND_LOCK = 0x77617462  # "watb"



def _connect():
    from bonebase.db.engine import connect, database_url

    return connect(database_url(get_settings()))


def _store():
    from bonebase.storage import open_store

    s = get_settings()
    return open_store(s.object_store_url, endpoint_url=s.s3_endpoint_url, region=s.s3_region)


def _with_model(model_id: int, params_path: str, work):
    """``work(conn, store, model, policy)`` with the registered model loaded (once per process)
    and the policy of ``params_path``; committed."""
    from bonebase.db.models import get_model

    policy = policies.load(params_path)
    store = _store()
    with _connect() as conn:
        model = watch.load(store, get_model(conn, model_id))
        result = work(conn, store, model, policy)
        conn.commit()
    return result


@task(name="score-radiographs", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def score_task(model_id: int, submission_id: int | None, params_path: str) -> dict:
    """Score the champion's reference (once) and the new radiographs, batched."""
    return _with_model(model_id, params_path, lambda conn, store, model, policy: watch.score(
        conn, store, model, policy=policy, submission_id=submission_id))


@task(name="check-site", cache_policy=NO_CACHE)
def check_task(model_id: int, site: str, params_path: str) -> dict:
    """Performance and drift of one site; the alert on a breach."""
    result = _with_model(model_id, params_path, lambda conn, store, model, policy:
                         watch.check_site(conn, store, model, site=site, policy=policy))
    return {"site": site, "alerts": result["alerts"], "drift_share": result["drift"]["share"],
            "auc": result["performance"]["all"]["auc"], "n": result["performance"]["all"]["n"],
            "report_key": result["report_key"]}


@flow(name="watch-champion", log_prints=True)
def watch_flow(submission_id: int | None = None, params_path: str = "params.yaml",
               task_name: str = "benign_vs_malignant", sites: list[str] | None = None) -> dict:
    """Score what the deployed model of ``task_name`` has not scored (of ``submission_id``, or
    all), then check the submission's site (or ``sites``, or every site with new scores)."""
    with _connect() as conn:
        model = watch.champion(conn, task=task_name)
        if sites is None and submission_id is not None:
            row = conn.execute("SELECT s.code FROM submissions u JOIN sites s ON s.id = u.site_id"
                               " WHERE u.id = %s", (submission_id,)).fetchone()
            sites = [row["code"]] if row else []
    counts = score_task(model["id"], submission_id, params_path)
    print(f"model {model['id']}: scored {counts['reference']} reference and {counts['watch']} "
          f"new radiographs ({counts['unreadable']} unreadable)")
    if sites is None:
        with _connect() as conn:
            sites = watch.sites_with_scores(conn, model["id"])
    checks = [check_task(model["id"], site, params_path) for site in sites]
    alerts = [a for c in checks for a in c["alerts"]]
    lines = [f"| {c['site']} | {c['n']} | {_auc(c['auc'])} | {_share(c['drift_share'])} | "
             f"{'ALERT' if c['alerts'] else 'ok'} |" for c in checks]
    create_markdown_artifact(
        key=f"watch-m{model['id']}",
        markdown="| site | n | AUC (95% CI) | drift share | alert |\n|---|---|---|---|---|\n"
                 + "\n".join(lines), description=f"champion watch of model {model['id']}")
    retrain = None
    if alerts and policies.load(params_path).retrain_on_alert:
        from flows.retrain import retrain_flow

        print(f"{len(alerts)} alert(s): monitor.retrain_on_alert is true, starting retrain")
        retrain = retrain_flow(str(Path(params_path).resolve()),
                               project_dir=str(Path(params_path).resolve().parent))
    return {"model": model["id"], "scored": counts, "checks": checks, "alerts": alerts,
            "retrain": retrain}


def _auc(a: dict | None) -> str:
    return "–" if not a else f"{a['value']:.2f} ({a['lo']:.2f}–{a['hi']:.2f})"


def _share(s: float | None) -> str:
    return "–" if s is None else f"{s:.2f}"


def watch_after_ingest(receipt: dict, *, params_path: str = "params.yaml",
                       defer: bool | None = None) -> dict | None:
    """The hook the ingest flow calls after a submission: the watch of its radiographs when a
    model is deployed, else None. With ``defer`` (default: ``monitor.defer``) the watch runs
    in a background process (:func:`start_deferred`) and this returns at once. A failed watch
    never fails the ingest: it says so and how to run it again."""
    from bonebase.errors import BonebaseError, NotFoundError

    sid = receipt.get("submission")
    if sid is None or receipt.get("already_ingested") or receipt.get("status") != "done":
        return None
    try:
        if defer if defer is not None else policies.load(params_path).defer:
            return start_deferred(int(sid), params_path)
        return watch_submission(int(sid), params_path)
    except NotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - the submission is stored; the watch can re-run
        what = str(exc) if isinstance(exc, BonebaseError) else type(exc).__name__
        print(f"the champion watch of submission {sid} failed ({what}); run it again with "
              f"bonebase monitor run --submission {sid}")
        return None


def watch_submission(submission_id: int, params_path: str = "params.yaml") -> dict | None:
    """The watch of one submission by every deployed two-class model (None: none deployed)."""
    with _connect() as conn:
        tasks = list(deployed(conn))
    # Nothing deployed: nothing to watch (and no flow run to show).
    with in_process():  # no heartbeat thread to wait for at the end (bonebase.flow_run)
        runs = [watch_flow(submission_id=submission_id, params_path=params_path, task_name=t)
                for t in tasks]
    return runs[0] if len(runs) == 1 else ({"tasks": runs} if runs else None)


def start_deferred(submission_id: int, params_path: str = "params.yaml") -> dict:
    """Start the watch of ``submission_id`` in a process of its own, detached (it outlives a
    `bonebase submit`), its output in ``<home>/logs/watch-submission-<id>.log``: the submission's
    wait is the start of a process, not the scoring. The child reads the database and store from
    the environment, as this process does (nothing secret on its command line), and the same
    Prefect API. Nothing is lost if it dies: the radiographs stay unscored until the next
    `bonebase monitor run`, which scores all a model has not scored."""
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    logs = get_settings().home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"watch-submission-{submission_id}.log"
    env = dict(os.environ)
    if PREFECT_API_URL.value():  # a test harness's server is a setting, not in the environment
        env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    with open(log, "ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "flows.monitor", "--submission", str(submission_id),
             "--params", str(Path(params_path).resolve())],
            cwd=str(Path(__file__).resolve().parents[1]), env=env, stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    print(f"the champion watch of submission {submission_id} runs in the background (process "
          f"{child.pid}, log {log})")
    return {"deferred": True, "submission": submission_id, "pid": child.pid, "log": str(log),
            "process": child}


def _main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m flows.monitor", description="The champion "
                                 "watch of one submission (what the deferred ingest hook runs); "
                                 "without --submission, of everything not scored yet.")
    ap.add_argument("--submission", type=int, help="submission id (default: all unscored)")
    ap.add_argument("--params", default="params.yaml", help="params.yaml with the monitor: "
                    "section (default: ./params.yaml)")
    args = ap.parse_args(argv)
    with in_process():
        return _watch_main(args)


def _watch_main(args) -> int:
    if args.submission is None:
        print(watch_flow(params_path=args.params))
        return 0
    # One background watch at a time: a burst of submissions must not hold N copies of the
    # model in memory. A watch that finds another running leaves its submission to it: the
    # holder scores, after its own, whatever is still unscored before it lets go.
    with _connect() as session:
        session.autocommit = True
        if not session.execute("SELECT pg_try_advisory_lock(%s)", (_BACKGROUND_LOCK,)
                               ).fetchone()["pg_try_advisory_lock"]:
            print(f"another background watch is running: it scores submission "
                  f"{args.submission} too")
            return 0
        try:
            done = watch_after_ingest({"submission": args.submission, "status": "done"},
                                      params_path=args.params, defer=False)
            # A watch that failed (Prefect's temporary server did not start, say) tries no
            # further passes: each would wait out the server's start again (minutes).
            left = _unscored(args.params) if done is not None else 0
            while left:
                watch_flow(params_path=args.params)
                # what one more pass does not reduce (an unreadable image) is left to monitor run
                left, before = _unscored(args.params), left
                if left >= before:
                    break
        finally:
            session.execute("SELECT pg_advisory_unlock(%s)", (_BACKGROUND_LOCK,))
    return 0 if done is not None else 1


def _unscored(params_path: str) -> int:
    """Radiographs a deployed watched model has not scored yet (submissions whose background
    watch found this one running)."""
    from bonebase.monitor import db

    modalities = list(policies.load(params_path).modalities)
    with _connect() as conn:
        return sum(db.count_unscored(conn, model_id=m["id"], modalities=modalities)
                   for m in deployed(conn).values())


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(_main())
