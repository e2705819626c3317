"""The champion watch end to end on real parts: a hospital with a strong site effect fires the
drift alert, a hospital like the training one does not (#23, done-when 1)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from tests.monitor.world import LIKE, SHIFTED


def test_shifted_hospital_fires_the_drift_alert_and_a_like_one_does_not(watched):
    like, shifted = watched["runs"][LIKE], watched["runs"][SHIFTED]
    print({c: (r["checks"], r["scored"]) for c, r in watched["runs"].items()})
    assert shifted["scored"]["watch"] >= 10 and like["scored"]["watch"] >= 10
    assert like["scored"]["reference"] >= 30  # HX's radiographs, scored once
    assert shifted["scored"]["reference"] == 0
    assert [a["kind"] for a in shifted["alerts"]] == ["drift"]
    assert like["alerts"] == []
    drift = {c["site"]: c["drift_share"] for r in watched["runs"].values() for c in r["checks"]}
    assert drift[SHIFTED] > 0.25 >= drift[LIKE]


def test_alert_is_audited_and_open(watched):
    from bonebase.db import audit
    from bonebase.db.engine import connect
    from bonebase.monitor import db

    with connect(watched["url"]) as conn:
        alerts = db.open_alerts(conn)
        events = [e for e in audit.events(conn, entity="model") if e["action"] == "monitor.alert"]
    assert [(a["site"], a["kind"]) for a in alerts] == [(SHIFTED, "drift")]
    # One event per breached check (the guide's walk checks HXD again): never another site.
    assert {e["details"]["site"] for e in events} == {SHIFTED}
    assert "mean" in json.dumps(events[-1]["details"]["reasons"])


def test_status_shows_each_site_apart(watched, monkeypatch):
    from bonebase.cli import app

    monkeypatch.setenv("DATABASE_URL", watched["url"])
    runner = CliRunner()
    res = runner.invoke(app, ["monitor", "status", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    sites = {r["site"]: r for r in out["sites"]}
    assert set(sites) == {LIKE, SHIFTED}
    assert sites[SHIFTED]["alerts"] and not sites[LIKE]["alerts"]
    assert sites[LIKE]["n"] >= 10 and sites[LIKE]["auc"] is not None
    assert "mean" in sites[SHIFTED]["drifted"]
    res = runner.invoke(app, ["monitor", "status", "--site", SHIFTED])
    assert res.exit_code == 0 and "ALERT" in res.output and LIKE not in res.output
    report = watched["tmp"] / "drift.html"
    res = runner.invoke(app, ["monitor", "report", str(sites[SHIFTED]["drift_check"]),
                              "--out", str(report)])
    assert res.exit_code == 0, res.output
    html = report.read_text()
    assert "<svg" in html and "Alert" in html and "http" not in html.split("<body>")[1]


def test_ask_the_model_answers_count_on_cases_with_a_diagnosis(watched):
    """The web's stored answers join the case's diagnosis: figures per site, like the watch's."""
    from bonebase.db.engine import connect
    from bonebase.db.models import get_model
    from bonebase.db.predictions import add_prediction
    from bonebase.monitor import status

    with connect(watched["url"]) as conn:
        rows = conn.execute(
            "SELECT w.case_id, w.instance_id, w.label, w.probability FROM watch_scores w"
            " JOIN sites s ON s.id = w.site_id WHERE s.code = %s AND w.label IS NOT NULL"
            " ORDER BY w.id", (LIKE,)).fetchall()
        for r in rows:
            add_prediction(conn, case_id=r["case_id"], instance_id=r["instance_id"],
                           result={"model_version": "bonebase-diagnosis:m1", "task":
                                   "benign_vs_malignant", "predicted_class": "benign",
                                   "probabilities": {"benign": 1 - r["probability"],
                                                     "malignant": r["probability"]}},
                           gradcam_png=None, requested_by="rhea")
        figs = status.ask_the_model(conn, model_row=get_model(conn, watched["model"]),
                                    positive_class="malignant")
        conn.rollback()
    assert set(figs) == {LIKE}
    assert figs[LIKE]["all"]["n"] == len(rows)
    watched_auc = watched["runs"][LIKE]["checks"][0]["auc"]["value"]
    assert abs(figs[LIKE]["all"]["auc"]["value"] - watched_auc) < 1e-9
