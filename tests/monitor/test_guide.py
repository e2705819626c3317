"""docs/monitoring.md walked line by line (tests/e2e/guide_table_monitoring.py), each line a real
`bonebase` process against the watch's world, its Prefect flows on the test session's server."""

from __future__ import annotations

from tests.doc_shell import ROOT, shell_lines
from tests.e2e.guide_table_monitoring import DOC, TABLE
from tests.e2e.guide_walk import Entry, Walk, coverage_problems, locate, scratch_env
from tests.monitor.world import LIKE


def _recheck(watched):
    def check(site: str) -> list[dict]:
        from bonebase.db.engine import connect
        from bonebase.db.models import get_model
        from bonebase.monitor import watch
        from bonebase.monitor.policy import load

        with connect(watched["url"]) as conn:
            model = watch.load(watched["store"], get_model(conn, watched["model"]))
            out = watch.check_site(conn, watched["store"], model, site=site,
                                   policy=load(watched["params"]))
            conn.commit()
        return out["alerts"]

    return check


def test_walk_docs_monitoring(watched, tmp_path):
    from prefect.settings import PREFECT_API_URL

    lines = shell_lines((ROOT / DOC).read_text(encoding="utf-8"), DOC)
    assert not coverage_problems(TABLE, lines)
    from bonebase.db.engine import connect

    with connect(watched["url"]) as conn:
        like = conn.execute("SELECT u.id FROM submissions u JOIN sites s ON s.id = u.site_id"
                            " WHERE s.code = %s", (LIKE,)).fetchone()["id"]
    env = scratch_env(tmp_path, {"home": str(watched["home"]), "prefect_port": 0})
    env["DATABASE_URL"] = watched["url"]
    env["PREFECT_API_URL"] = PREFECT_API_URL.value()  # the session's server: no start per line
    (tmp_path / "params.yaml").write_text(watched["params"].read_text())
    (tmp_path / "logs").mkdir()
    walk = Walk(env=env, cwd=tmp_path, logs=tmp_path / "logs",
                values={"like_submission": str(like), "recheck": _recheck(watched)})
    where = locate(TABLE, lines)
    for item in TABLE:
        walk.run(item, where.get(id(item), "step") if isinstance(item, Entry) else "step")
