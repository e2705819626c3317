"""Every route's database connection commits before its response is sent.

With FastAPI's default ("request") scope a yield dependency ends after the response is sent, so
a browser following the 303 of a sign-in or a stored answer could read the database before the
write was committed (seen as a flaky browser test under load)."""

from __future__ import annotations

from web.auth import get_conn


def _scopes(dependant):
    for dep in dependant.dependencies:
        if dep.call is get_conn:
            yield dep.scope
        yield from _scopes(dep)


def test_get_conn_is_function_scoped_everywhere():
    import importlib
    import pkgutil

    import web.routes

    scopes = []
    for info in pkgutil.iter_modules(web.routes.__path__):
        router = importlib.import_module(f"web.routes.{info.name}").router
        scopes += [s for r in router.routes for s in _scopes(r.dependant)]
    assert len(scopes) > 10 and set(scopes) == {"function"}
