"""The alert rules beyond drift on the watch's world: the sensitivity rule tells the re-exposed
hospital (HXD) from the one like the training hospital (HXC), and an alert with
``monitor.retrain_on_alert`` starts the retrain flow (a check without an alert does not)."""

from __future__ import annotations

import pytest

from tests.monitor.world import LIKE, SHIFTED


def test_sensitivity_rule_fires_for_the_reexposed_hospital_only(watched):
    from bonebase.db.engine import connect
    from bonebase.db.models import get_model
    from bonebase.monitor import watch
    from bonebase.monitor.policy import Policy

    # AUC and drift rules off: the sensitivity rule alone decides. A tiny model on ~20
    # radiographs per site: the counts gate is lowered to what the world has.
    policy = Policy(auc_min=0.0, auc_ci_low_min=0.0, max_drift_share=1.0, min_cases=5,
                    sensitivity_min=0.5)
    with connect(watched["url"]) as conn:
        model = watch.load(watched["store"], get_model(conn, watched["model"]))
        out = {site: watch.check_site(conn, watched["store"], model, site=site, policy=policy)
               for site in (LIKE, SHIFTED)}
        conn.rollback()  # the world's checks and alerts stay as the other tests expect them
    sens = {site: o["performance"]["all"]["sensitivity"] for site, o in out.items()}
    print(sens)
    assert sens[SHIFTED]["value"] < 0.5 <= sens[LIKE]["value"]
    assert out[LIKE]["alerts"] == []
    (alert,) = out[SHIFTED]["alerts"]
    assert alert["kind"] == "performance" and alert["site"] == SHIFTED
    assert alert["reasons"][0].startswith(f"sensitivity {sens[SHIFTED]['value']:.3f} < 0.5")


@pytest.fixture
def retrains(monkeypatch):
    """The retrain flow's calls, the flow replaced by a stand-in Prefect flow that records its
    arguments: the retraining itself (version, dvc repro, register, gate) is tested end to end
    by tests/flows/test_retrain.py; here, that an alert starts it, with which files."""
    from prefect import flow

    import flows.retrain

    calls = []

    @flow(name="retrain")
    def stand_in(params_path: str = "params.yaml", project_dir: str | None = None) -> dict:
        calls.append({"params_path": params_path, "project_dir": project_dir})
        return {"skipped": True, "reason": "stand-in"}

    monkeypatch.setattr(flows.retrain, "retrain_flow", stand_in)
    return calls


def test_an_alert_starts_the_retrain_flow_when_asked(watched, retrains, tmp_path):
    from flows.monitor import watch_flow

    params = tmp_path / "params.yaml"
    params.write_text(watched["params"].read_text() + "  retrain_on_alert: true\n")
    quiet = watch_flow(params_path=str(params), sites=[LIKE])
    assert quiet["alerts"] == [] and quiet["retrain"] is None and retrains == []
    fired = watch_flow(params_path=str(params), sites=[SHIFTED])
    assert [a["kind"] for a in fired["alerts"]] == ["drift"]
    assert retrains == [{"params_path": str(params.resolve()), "project_dir": str(tmp_path)}]
    assert fired["retrain"] == {"skipped": True, "reason": "stand-in"}
