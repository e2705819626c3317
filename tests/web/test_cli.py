"""`bonebase users …` through Typer's runner, mounted as bonebase/cli.py will mount it."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from web.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("noop")(lambda: None)  # a group needs two commands to keep sub-command names
    register(app)
    return app


def test_users_add_list_set_password(bonebase_env, db_url):
    from bonebase.db.engine import connect
    from bonebase.db.sites import add_site
    from bonebase.db.users import authenticate

    with connect(db_url) as conn:
        add_site(conn, code="HX", name="Hexi")
        conn.commit()
    runner = CliRunner()
    app = _app()
    out = runner.invoke(app, ["users", "add", "stan", "--role", "steward", "--site", "HX"],
                        input="a long password\na long password\n")
    assert out.exit_code == 0, out.output
    assert "user stan added (steward, HX)" in out.output
    refused = runner.invoke(app, ["users", "add", "ann", "--role", "steward"],
                            env={"BONEBASE_NEW_PASSWORD": "a long password"})
    assert refused.exit_code != 0 and "give --site CODE" in str(refused.exception)
    listed = runner.invoke(app, ["users", "list"])
    assert "stan" in listed.output and "steward" in listed.output
    changed = runner.invoke(app, ["users", "set-password", "stan"],
                            env={"BONEBASE_NEW_PASSWORD": "another long one"})
    assert changed.exit_code == 0, changed.output
    with connect(db_url) as conn:
        assert authenticate(conn, "stan", "a long password") is None
        assert authenticate(conn, "stan", "another long one").site == "HX"


def test_users_add_checks_role_and_password(bonebase_env, db_url):
    runner = CliRunner()
    bad_role = runner.invoke(_app(), ["users", "add", "zed", "--role", "boss"],
                             env={"BONEBASE_NEW_PASSWORD": "a long password"})
    assert "role 'boss' is unknown" in str(bad_role.exception)
    short = runner.invoke(_app(), ["users", "add", "zed", "--role", "viewer"],
                          env={"BONEBASE_NEW_PASSWORD": "short"})
    assert "too short" in str(short.exception)


def test_users_unlock_lifts_a_sign_in_lockout(bonebase_env, db_url, monkeypatch):
    from datetime import timedelta

    from bonebase.db import signins
    from bonebase.db.engine import connect
    from web.throttle import account_key, signin_key

    secret = "unlock-test-secret-0123456789abcdef"
    monkeypatch.setenv("BONEBASE_SECRET", secret)
    key, hour = account_key(signin_key(secret.encode()), "stan"), timedelta(hours=1)
    with connect(db_url) as conn:
        conn.execute("DELETE FROM sign_in_failures")
        for address in ("192.0.2.1", "192.0.2.1", "192.0.2.2"):
            signins.record_failure(conn, account_key=key, address=address, window=hour)
        signins.record_failure(conn, account_key="other", address="192.0.2.1", window=hour)
        conn.commit()
        assert signins.locked_until(conn, kind="account", key=key, limit=3, window=hour)
    out = CliRunner().invoke(_app(), ["users", "unlock", "Stan", "--address", "192.0.2.1"])
    assert out.exit_code == 0, out.output
    assert "sign-in of stan unlocked (4 failed attempts forgotten)" in out.output
    with connect(db_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM sign_in_failures").fetchone()["n"] == 0
        event = conn.execute("SELECT action, entity_id FROM audit_events"
                             " ORDER BY id DESC LIMIT 1").fetchone()
    assert (event["action"], event["entity_id"]) == ("user.unlock", "stan")
