"""The deferred watch (``monitor.defer: true``): the ingest hook returns once a background
process is started, and that process scores the submission as the in-process watch does."""

from __future__ import annotations

from tests.monitor.world import LIKE


def _status(watched) -> dict:
    import json

    from typer.testing import CliRunner

    from bonebase.cli import app

    res = CliRunner(env={"DATABASE_URL": watched["url"]}).invoke(
        app, ["monitor", "status", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_deferred_watch_scores_the_submission_in_the_background(watched):
    from bonebase.db.engine import connect
    from flows.monitor import watch_after_ingest

    def scores(conn, sid):
        return {r["instance_id"]: r["probability"] for r in conn.execute(
            "SELECT instance_id, probability FROM watch_scores WHERE model_id = %s AND"
            " submission_id = %s", (watched["model"], sid)).fetchall()}

    with connect(watched["url"]) as conn:
        sid = conn.execute("SELECT u.id FROM submissions u JOIN sites s ON s.id = u.site_id"
                           " WHERE s.code = %s", (LIKE,)).fetchone()["id"]
        before = scores(conn, sid)
        conn.execute("DELETE FROM watch_scores WHERE submission_id = %s", (sid,))
        conn.commit()
    assert len(before) >= 10
    assert _status(watched)["unscored"] == len(before)  # what `bonebase monitor status` says
    params = watched["tmp"] / "params-deferred.yaml"
    params.write_text(watched["params"].read_text() + "  defer: true\n")
    started = watch_after_ingest({"submission": sid, "status": "done"}, params_path=str(params))
    assert started["deferred"] and started["submission"] == sid
    child = started["process"]
    assert child.wait(timeout=600) == 0, open(started["log"]).read()[-3000:]
    with connect(watched["url"]) as conn:
        after = scores(conn, sid)
        check = conn.execute("SELECT w.kind, w.breached FROM watch_checks w JOIN sites s ON"
                             " s.id = w.site_id WHERE s.code = %s ORDER BY w.id DESC LIMIT 1",
                             (LIKE,)).fetchone()
    # The same radiographs, the same scores (the background process loads the same checkpoint).
    assert after.keys() == before.keys()
    assert max(abs(after[k] - before[k]) for k in before) < 1e-5
    assert check["breached"] is False  # and the site was checked again, as after an ingest
    assert _status(watched)["unscored"] == 0
    log = open(started["log"]).read()
    assert f"scored 0 reference and {len(before)} new radiographs" in log


def test_one_background_watch_at_a_time(watched):
    """A background watch that finds another running leaves its submission to it (a burst of
    submissions must not hold N models in memory); the holder scores what is left unscored."""
    import os
    import subprocess
    import sys

    from bonebase.db.engine import connect
    from flows.monitor import _BACKGROUND_LOCK

    with connect(watched["url"]) as conn:
        sid = conn.execute("SELECT u.id FROM submissions u JOIN sites s ON s.id = u.site_id"
                           " WHERE s.code = %s", (LIKE,)).fetchone()["id"]
        n = conn.execute("DELETE FROM watch_scores WHERE submission_id = %s", (sid,)).rowcount
        conn.commit()
    assert n >= 10

    def background() -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "flows.monitor", "--submission", str(sid), "--params",
             str(watched["params"])], env=dict(os.environ), capture_output=True, text=True,
            timeout=600, cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))

    with connect(watched["url"]) as holder:
        holder.autocommit = True
        holder.execute("SELECT pg_advisory_lock(%s)", (_BACKGROUND_LOCK,))
        run = background()
        holder.execute("SELECT pg_advisory_unlock(%s)", (_BACKGROUND_LOCK,))
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "another background watch is running" in run.stdout
    assert _status(watched)["unscored"] == n  # it scored nothing
    run = background()
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert _status(watched)["unscored"] == 0
