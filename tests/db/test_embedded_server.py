"""The embedded server a home starts is found from a subfolder, stopped by `bonebase db stop`, and
stopped at the end of a test session when a test leaves it running (#17 point 10)."""

import os

from tests.conftest import SESSION_ROOTS, world_traversable_tmp
from tests.plugins.postgres import postmasters_under, stop_servers_under
from tests.unit.test_home import _run


def test_embedded_home_from_a_subfolder_then_stopped(tmp_path):
    root = world_traversable_tmp("bb-emb-")  # short: the socket path lives in the data folder
    assert root in SESSION_ROOTS  # the session's finaliser will look here
    project, user = root / "p", root / "u"
    (project / "sub").mkdir(parents=True)
    user.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("BONEBASE_HOME", "DATABASE_URL")}
    env.update(HOME=str(user), COLUMNS="200")
    pg = project / ".bonebase" / "pg"
    try:
        made = _run("init", env=env, cwd=project)
        assert made.returncode == 0, made.stderr
        assert [d for _, d in postmasters_under([root])] == [pg]
        listed = _run("site", "list", "--json", env=env, cwd=project / "sub")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.strip() == "[]"
        stopped = _run("db", "stop", env=env, cwd=project / "sub")
        assert f"embedded server stopped (home {project / '.bonebase'})" in stopped.stdout
        assert postmasters_under([root]) == []
        again = _run("db", "stop", env=env, cwd=project)
        assert "is not running" in again.stdout
        # A command restarts it; the session's finaliser is what stops a server a test leaves.
        assert _run("db", "status", env=env, cwd=project).returncode == 0
        assert [d for _, d in postmasters_under([root])] == [pg]
        assert stop_servers_under([root]) == [pg]
        assert postmasters_under([root]) == []
    finally:
        stop_servers_under([root])
