"""docs/reader-study.md walked line by line (tests/e2e/guide_table_reader_study.py), each line a
real `bonebase` process against the reader-study world (its database and object store)."""

from __future__ import annotations

from tests.doc_shell import ROOT, shell_lines
from tests.e2e.guide_table_reader_study import DOC, TABLE
from tests.e2e.guide_walk import Entry, Walk, coverage_problems, locate, scratch_env, url_of
from tests.web.conftest import PASSWORD


def test_walk_docs_reader_study(world, tmp_path):
    lines = shell_lines((ROOT / DOC).read_text(encoding="utf-8"), DOC)
    assert not coverage_problems(TABLE, lines)
    env = scratch_env(tmp_path, {"home": str(tmp_path / "home"), "prefect_port": 0})
    env["DATABASE_URL"] = url_of(world["url"])
    env["BONEBASE_STORAGE_URL"] = str(world["store"].root)
    env["BONEBASE_NEW_PASSWORD"] = PASSWORD
    (tmp_path / "logs").mkdir()
    walk = Walk(env=env, cwd=tmp_path, logs=tmp_path / "logs",
                values={"model": str(world["model_id"])})
    where = locate(TABLE, lines)
    for item in TABLE:
        walk.run(item, where.get(id(item), "step") if isinstance(item, Entry) else "step")
