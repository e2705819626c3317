"""The web database under attack (#15 points 7, 12, 13), over HTTP against the real app and a
real PostgreSQL: NUL bytes in every parameter, password guessing, a planted CSRF cookie."""

from __future__ import annotations

import io
from urllib.parse import quote

from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from PIL import Image
from psycopg.types.json import Jsonb

from bonebase.db.engine import connect
from tests.web import conftest as web
from tests.web.conftest import PASSWORD, csrf_of, make_app, sign_in

# The web tests' fixtures: a seeded database (per module), an app client factory.
synth_root, seeded, app_client = web.synth_root, web.seeded, web.app_client

NUL = "a\x00b"
# Parameters that routes read from request.query_params themselves (not declared to FastAPI).
EXTRA_QUERY = {
    "/cases": ["site", "diagnosis", "behaviour", "location", "age_min", "age_max", "sex",
               "modality", "dataset", "after", "before"],
    "/quarantine": ["done"],
    "/cases/{case_id}": ["prediction"],
}


def _names(dependant, kind: str) -> set[str]:
    out = {f.alias for f in getattr(dependant, kind)}
    for sub in dependant.dependencies:
        out |= _names(sub, kind)
    return out


def _ids(url: str) -> dict[str, str]:
    with connect(url) as conn:
        one = conn.execute(
            "SELECT c.id AS case_id, i.id AS instance_id, c.submission_id FROM cases c"
            " JOIN studies st ON st.case_id = c.id JOIN series se ON se.study_id = st.id"
            " JOIN instances i ON i.series_id = se.id WHERE c.is_current ORDER BY c.id LIMIT 1"
        ).fetchone()
        item = conn.execute("SELECT min(id) AS id FROM quarantine_items"
                            " WHERE status = 'open'").fetchone()["id"]
    # the champion watch's check, a reader study (its name, session number, case position)
    return {**{k: str(v) for k, v in one.items()}, "item_id": str(item), "model_id": "1",
            "prediction_id": "1", "path": "index.html", "check_id": "1", "study": "a-study",
            "name": "a-study", "number": "1", "position": "1"}


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    return buf.getvalue()


def _routes() -> list[APIRoute]:
    """Every route of every router in web.routes (as tests/web/test_commit_scope.py finds them)."""
    import importlib
    import pkgutil

    import web.routes

    return [r for info in pkgutil.iter_modules(web.routes.__path__)
            for r in importlib.import_module(f"web.routes.{info.name}").router.routes
            if isinstance(r, APIRoute)]


def _requests(ids: dict[str, str]):
    """(what, method, url, form, files) with a NUL in one parameter, for every route."""
    routes = _routes()
    # Sign-out last: it would end the session the other requests need.
    routes.sort(key=lambda r: r.path == "/logout")
    for route in routes:
        dep = route.dependant
        path_names = _names(dep, "path_params")
        query = sorted(_names(dep, "query_params") | set(EXTRA_QUERY.get(route.path, [])) | {"probe"})
        form = sorted(_names(dep, "body_params") - {"file"})
        files = {"file": ("x.png", _png(), "image/png")} if "file" in _names(dep, "body_params") \
            else None

        def url(bad: str | None = None, route=route, path_names=path_names) -> str:
            path = route.path
            for name in path_names:
                value = quote(NUL) if name == bad else ids[name]
                path = path.replace(f"{{{name}:path}}", value).replace(f"{{{name}}}", value)
            return path

        for method in sorted(route.methods - {"HEAD"}):
            # Form fields first and otherwise-valid: on main the NUL reaches the database
            # (a release with reason "ok" would close the item for the cases after it).
            base = {n: "ok" for n in form}
            for name in form:
                yield f"{method} {route.path} form {name}", method, url(), {**base, name: NUL}, files
            for name in path_names:
                yield f"{method} {route.path} path {name}", method, url(name), {}, files
            for name in query:
                yield (f"{method} {route.path} query {name}", method,
                       f"{url()}?{name}={quote(NUL)}", {}, files)


def test_nul_in_any_parameter_of_any_route_is_a_400_naming_it(seeded):
    """A NUL reaches PostgreSQL (which refuses it in text) from a query string or a form: each
    must be refused up front with a 400 that names the parameter, never a 500."""
    app = make_app(seeded)
    with TestClient(app, follow_redirects=False, raise_server_exceptions=False) as client:
        sign_in(client, "ada")
        token = csrf_of(client.get("/cases").text)
        wrong = []
        count = 0
        for what, method, url, form, files in _requests(_ids(seeded["url"])):
            count += 1
            if method == "GET":
                resp = client.get(url)
            else:
                resp = client.post(url, data={**form, "csrf_token": token}, files=files)
            name = what.rsplit(" ", 1)[1]
            if resp.status_code != 400 or name not in resp.text \
                    or "control character" not in resp.text:
                wrong.append(f"{what}: {resp.status_code}")
    assert count > 40
    assert not wrong, "\n".join(wrong)


def test_bad_characters_in_the_sign_in_form_and_filters_are_400_with_a_message(app_client):
    client = app_client()
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"username": NUL, "password": "x", "csrf_token": token})
    assert resp.status_code == 400
    assert "username" in resp.text and "control character" in resp.text
    assert "\x00" not in resp.text
    sign_in(client, "ada")
    for path in ("/submissions?site=%00", "/quarantine?site=AB%00"):
        resp = client.get(path)
        assert resp.status_code == 400 and "site" in resp.text, path
    # A non-ASCII token is a wrong token (403), not a crash of the comparison.
    resp = client.post("/logout", data={"csrf_token": "é" * 64})
    assert resp.status_code == 403


def test_a_data_docs_path_too_long_for_the_file_system_is_a_404(app_client, seeded, tmp_path):
    (tmp_path / "index.html").write_text("<p>docs</p>")
    with connect(seeded["url"]) as conn:
        sub = conn.execute(
            "UPDATE submissions SET receipt = %s WHERE id = (SELECT min(s.id) FROM submissions s"
            " JOIN sites t ON t.id = s.site_id WHERE t.code = %s) RETURNING id",
            (Jsonb({"data_docs": str(tmp_path / "index.html")}), seeded["steward_site"]),
        ).fetchone()["id"]
        conn.commit()
    client = app_client()
    sign_in(client, "stan")
    assert client.get(f"/submissions/{sub}/docs/index.html").text == "<p>docs</p>"
    assert client.get(f"/submissions/{sub}/docs/{'a' * 300}.html").status_code == 404


# -- point 12: password guessing ------------------------------------------------------------

def _try(client, username: str, password: str):
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": username, "password": password,
                                       "next": "/cases", "csrf_token": token})


def _clear_failures(url: str) -> None:
    """Each test starts with no failures recorded (the seeded database is shared by the module)."""
    with connect(url) as conn:
        if conn.execute("SELECT to_regclass('sign_in_failures') AS t").fetchone()["t"]:
            conn.execute("DELETE FROM sign_in_failures")
            conn.commit()


def test_thirty_wrong_passwords_then_the_right_one_is_refused(app_client, seeded):
    _clear_failures(seeded["url"])
    attacker = app_client(address="203.0.113.5")
    statuses = [_try(attacker, "rhea", f"guess-{i:04d}-wrong").status_code for i in range(30)]
    assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
    refused = _try(attacker, "rhea", PASSWORD)
    assert refused.status_code == 429 and "too many failed sign-ins" in refused.text
    assert "bb_session" not in refused.cookies and int(refused.headers["retry-after"]) > 0
    # Another worker (another app on the same database) sees the same lock, from any address.
    other_worker = app_client(address="198.51.100.7")
    assert _try(other_worker, "rhea", PASSWORD).status_code == 429
    # Another account is unaffected, from another address and from the attacker's too.
    assert _try(other_worker, "vera", PASSWORD).status_code == 303
    assert _try(attacker, "stan", PASSWORD).status_code == 303

    with connect(seeded["url"]) as conn:
        events = conn.execute(
            "SELECT actor, action, entity_id, details::text AS details FROM audit_events"
            " WHERE action LIKE 'user.sign_in%%' AND details->>'address' = '203.0.113.5'"
            " ORDER BY id").fetchall()
        # The window has passed: the failures are older than it.
        conn.execute("UPDATE sign_in_failures SET at = at - interval '1 day'")
        conn.commit()
    actions = [e["action"] for e in events]
    assert actions.count("user.sign_in_failed") == 5
    assert actions.count("user.sign_in_refused") == 26
    assert actions[-1] == "user.sign_in" and events[-1]["entity_id"] == "stan"
    assert {e["entity_id"] for e in events[:-1]} == {"rhea"}
    # Never the password, wrong or right.
    assert not any("guess-" in e["details"] or PASSWORD in e["details"] for e in events)
    assert _try(attacker, "rhea", PASSWORD).status_code == 303


def test_parallel_guesses_on_two_workers_get_no_more_than_the_limit(app_client, seeded):
    """Guesses sent at once to two workers cannot all pass the check before a failure is
    written: the account's sign-ins are taken one at a time (a PostgreSQL advisory lock)."""
    from concurrent.futures import ThreadPoolExecutor

    _clear_failures(seeded["url"])
    workers = [app_client(address=f"198.51.100.{20 + i}") for i in range(2)]
    tokens = [csrf_of(w.get("/login").text) for w in workers]

    def guess(i: int) -> int:
        return workers[i % 2].post("/login", data={"username": "rhea", "csrf_token": tokens[i % 2],
                                                   "password": f"parallel-{i}"}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(guess, range(16)))
    assert sorted(statuses) == [401] * 5 + [429] * 11


def test_spraying_many_accounts_from_one_address_locks_the_address(app_client, seeded):
    _clear_failures(seeded["url"])
    sprayer = app_client(address="192.0.2.9", signin_max_failures=3,
                         signin_max_failures_per_address=6)
    names = ["vera", "rhea", "nobody-1", "nobody-2", "nobody-3", "nobody-4"]
    assert [_try(sprayer, n, "Spring2026!!").status_code for n in names] == [401] * 6
    # Even the right password of an account with one failure: the address is locked.
    locked = _try(sprayer, "ada", PASSWORD)
    assert locked.status_code == 429 and "address" in locked.text
    # The same accounts from elsewhere are fine (each had one failure of three allowed).
    elsewhere = app_client(address="192.0.2.10", signin_max_failures=3)
    assert _try(elsewhere, "vera", PASSWORD).status_code == 303
    with connect(seeded["url"]) as conn:
        unknown = conn.execute(
            "SELECT entity_id, details FROM audit_events WHERE action = 'user.sign_in_failed'"
            " AND details->>'address' = '192.0.2.9' AND entity_id IS NULL").fetchall()
    # A name that is no account is not written down (it may be a password typed in the wrong box).
    assert len(unknown) == 4 and all(not e["details"]["known_user"] for e in unknown)


def test_ipv6_clients_are_counted_by_their_64_network():
    from web.throttle import client_address

    assert client_address("2001:db8:1:2:aaaa::1") == client_address("2001:db8:1:2:bbbb::9") \
        == "2001:db8:1:2::/64"
    assert client_address("2001:db8:1:3::1") != client_address("2001:db8:1:2::1")
    assert client_address("::ffff:192.0.2.7") == client_address("192.0.2.7") == "192.0.2.7"
    assert client_address(None) == "unknown"


# -- point 13: CSRF bound to the session --------------------------------------------------------

def _plant(client, name: str, value: str) -> None:
    """Replace a cookie in the client's jar, as an attacker who can set cookies for the site."""
    for cookie in list(client.cookies.jar):
        if cookie.name == name:
            client.cookies.jar.clear(cookie.domain, cookie.path, cookie.name)
    client.cookies.set(name, value)


def _open_item(url: str, site: str) -> int:
    with connect(url) as conn:
        return conn.execute(
            "SELECT q.id FROM quarantine_items q JOIN sites s ON s.id = q.site_id"
            " WHERE q.status = 'open' AND s.code = %s ORDER BY q.id DESC LIMIT 1",
            (site,)).fetchone()["id"]


def test_a_planted_csrf_cookie_with_its_token_is_refused_with_the_victims_session(app_client,
                                                                                 seeded):
    _clear_failures(seeded["url"])
    item = _open_item(seeded["url"], seeded["steward_site"])
    attacker = app_client()
    anonymous_token = csrf_of(attacker.get("/login").text)
    anonymous_seed = attacker.cookies["bb_csrf"]
    sign_in(attacker, "vera")  # the attacker's own account: its token is bound to its session
    own_token = csrf_of(attacker.get("/cases").text)
    own_seed = attacker.cookies["bb_csrf"]

    victim = app_client()
    assert sign_in(victim, "stan").status_code == 303
    for seed, token in ((anonymous_seed, anonymous_token), (own_seed, own_token)):
        _plant(victim, "bb_csrf", seed)
        forged = victim.post(f"/quarantine/{item}/release",
                             data={"reason": "attacker says so", "csrf_token": token})
        assert forged.status_code == 403 and "security token" in forged.text
    with connect(seeded["url"]) as conn:
        assert conn.execute("SELECT status FROM quarantine_items WHERE id = %s",
                            (item,)).fetchone()["status"] == "open"
    # The victim's own form (planted cookie or not) still works.
    token = csrf_of(victim.get("/quarantine").text)
    done = victim.post(f"/quarantine/{item}/release",
                       data={"reason": "site resent the file", "csrf_token": token})
    assert done.status_code == 303
    # A token of one session is no good in the next one of the same user.
    assert sign_in(victim, "stan").status_code == 303
    stale = victim.post("/logout", data={"csrf_token": token})
    assert stale.status_code == 403
