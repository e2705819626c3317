"""`bonebase monitor` on bad input: an expected error (BonebaseError, which `bonebase` prints as
one line, tests/unit/test_cli.py) that names what to do, never another exception."""

from __future__ import annotations

from typer.testing import CliRunner

from bonebase.errors import BonebaseError


def _error(*args) -> str:
    from bonebase.cli import app

    res = CliRunner().invoke(app, ["monitor", *args])
    assert isinstance(res.exception, BonebaseError), (res.exception, res.output)
    return str(res.exception)


def test_errors_name_the_fix(db_url, bonebase_env, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", db_url)
    assert "no model of task benign_vs_malignant is deployed: nothing to watch; deploy one with " \
        "bonebase models deploy ID" == _error("status")
    assert "check 999 has no report" in _error("report", "999", "--out", str(tmp_path / "r.html"))
    assert "no check 999" in _error("ack", "999", "--by", "A. Engineer", "--reason", "seen")
    assert "needs --by NAME and a --reason" in _error("ack", "1", "--by", " ", "--reason", "x")
    bad = tmp_path / "params.yaml"
    bad.write_text("monitor:\n  auc_minimum: 0.7\n")
    assert "unknown key(s) auc_minimum" in _error("run", "--params", str(bad))
    bad.write_text("monitor:\n  batch: many\n")
    assert "batch: 'many' is not a whole number" in _error("run", "--params", str(bad))
