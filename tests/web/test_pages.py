"""The web database over HTTP (FastAPI's TestClient): access, filters, paging, case pages, forms."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from tests.web.conftest import PASSWORD, csrf_of, sign_in


@pytest.fixture
def client(app_client):
    return app_client()


def _ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="case-link" href="/cases/(\d+)"', html)]


def test_anonymous_is_sent_to_sign_in_unless_open_data(app_client):
    closed = app_client()
    resp = closed.get("/cases?site=HX")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/login?next=%2Fcases%3Fsite%3DHX"
    opened = app_client(open_data=True)
    page = opened.get("/cases")
    assert page.status_code == 200 and _ids(page.text)
    case = opened.get(f"/cases/{_ids(page.text)[0]}")
    assert case.status_code == 200
    assert "Ask the model" not in case.text and "Download DICOM" not in case.text
    # Open data is de-identified browsing only: no DICOM download, no steward pages.
    assert opened.get("/images/1.dcm").status_code == 303
    assert opened.get("/quarantine").status_code == 303


def test_sign_in_wrong_password_and_csrf(client):
    page = client.get("/login")
    token = csrf_of(page.text)
    bad = client.post("/login", data={"username": "vera", "password": "nope-nope-nope",
                                      "csrf_token": token})
    assert bad.status_code == 401 and "wrong user name or password" in bad.text
    forged = client.post("/login", data={"username": "vera", "password": PASSWORD,
                                         "csrf_token": "0" * 64})
    assert forged.status_code == 403 and "security token" in forged.text
    ok = sign_in(client, "vera")
    assert ok.status_code == 303 and ok.headers["location"] == "/cases"
    assert "vera (viewer)" in client.get("/cases").text


def test_sign_in_refuses_an_outside_next(client):
    page = client.get("/login")
    resp = client.post("/login", data={"username": "vera", "password": PASSWORD,
                                       "next": "//evil.example/x", "csrf_token": csrf_of(page.text)})
    assert resp.headers["location"] == "/cases"


@pytest.mark.parametrize(("user", "path", "status"), [
    ("vera", "/quarantine", 403), ("vera", "/models", 403), ("vera", "/images/1.dcm", 403),
    ("rhea", "/submissions", 403), ("rhea", "/models", 200), ("stan", "/quarantine", 200),
    ("ada", "/sites", 200),
])
def test_roles(client, user, path, status):
    sign_in(client, user)
    resp = client.get(path)
    assert resp.status_code == status
    if status == 403:
        assert "Not allowed" in resp.text and "role" in resp.text


@pytest.mark.parametrize(("query", "message"), [
    ("age_min=abc", "age_min='abc' is not a whole number"),
    ("age_min=60&age_max=20", "age_min=60 is above age_max=20"),
    ("sex=Q", "sex='Q' is not known"),
    ("diagnosis=banana", "diagnosis='banana' is not known"),
    ("site=%27%3B+drop", "is not a site code"),
    ("after=-1", "after='-1' is not a whole number"),
    ("age_max=999", "age_max=999 is out of range"),
])
def test_bad_filters_give_a_message_not_a_500(client, query, message):
    sign_in(client, "vera")
    resp = client.get(f"/cases?{query}")
    assert resp.status_code == 400
    assert message in resp.text.replace("&#39;", "'")


def test_bad_path_values_give_a_page_not_a_500(client):
    sign_in(client, "vera")
    assert client.get("/cases/abc").status_code == 400
    assert client.get("/cases/999999").status_code == 404
    assert "no case 999999" in client.get("/cases/999999").text
    assert client.get("/images/1.png?size=13").status_code == 400


def test_filters_match_the_database(client, seeded):
    from bonebase.db.engine import connect

    sign_in(client, "vera")
    site = seeded["other_site"]
    with connect(seeded["url"]) as conn:
        row = conn.execute("SELECT diagnosis_code FROM cases c JOIN sites s ON s.id = c.site_id"
                           " WHERE s.code = %s GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
                           (site,)).fetchone()
        expected = {r["id"] for r in conn.execute(
            "SELECT c.id FROM cases c JOIN sites s ON s.id = c.site_id WHERE s.code = %s"
            " AND c.diagnosis_code = %s AND c.age BETWEEN 10 AND 60",
            (site, row["diagnosis_code"])).fetchall()}
    page = client.get(f"/cases?site={site}&diagnosis={row['diagnosis_code']}&age_min=10&age_max=60")
    assert page.status_code == 200
    assert set(_ids(page.text)) == expected
    assert f"{len(expected)} case" in page.text


def test_keyset_pages_cover_every_case_once(app_client, seeded):
    client = app_client(page_size=5)
    sign_in(client, "vera")
    seen, url = [], "/cases"
    pages = []
    while url:
        html = client.get(url).text
        ids = _ids(html)
        pages.append(ids)
        seen += ids
        nxt = re.search(r'id="older" href="([^"]+)"', html)
        url = nxt.group(1).replace("&amp;", "&") if nxt else None
    total = sum(len(v) for v in seeded["cases"].values())
    assert sorted(seen, reverse=True) == seen and len(set(seen)) == len(seen) == total
    # "newer" from the second page leads back to the first.
    second = client.get(f"/cases?after={pages[0][-1]}").text
    back = re.search(r'id="newer" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert _ids(client.get(back).text) == pages[0]


def test_case_view_images_and_download(client, seeded):
    sign_in(client, "rhea")
    case_id = seeded["cases"][seeded["steward_site"]][0]
    page = client.get(f"/cases/{case_id}")
    assert page.status_code == 200
    instance = int(re.search(r'src="/images/(\d+)\.png\?size=512"', page.text).group(1))
    png = client.get(f"/images/{instance}.png?size=256")
    assert png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as im:
        assert im.size == (256, 256) and im.mode == "L"
        assert len(set(im.getdata())) > 10  # a picture, not a blank square
    dicom = client.get(f"/images/{instance}.dcm")
    assert dicom.status_code == 200 and dicom.content[128:132] == b"DICM"


def test_render_is_the_model_pipeline(client, seeded):
    """The PNG the browser gets equals the training export of the same stored object."""
    from bonebase.dataset.export import render_png
    from bonebase.db.engine import connect

    sign_in(client, "vera")
    with connect(seeded["url"]) as conn:
        row = conn.execute("SELECT id, object_key FROM instances WHERE modality IN ('CR', 'DX')"
                           " ORDER BY id LIMIT 1").fetchone()
    expected = render_png(seeded["store"].get_bytes(row["object_key"]), size=128, bits=8)
    assert client.get(f"/images/{row['id']}.png?size=128").content == expected


def test_stats_page_has_charts(client, seeded):
    sign_in(client, "vera")
    page = client.get("/stats")
    total = sum(len(v) for v in seeded["cases"].values())
    assert page.status_code == 200 and f"{total} cases" in page.text
    assert page.text.count("<svg") == 5
    assert "Age at diagnosis" in page.text


def _quarantine_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr id="item-(\d+)">', html)]


def test_steward_sees_and_resolves_only_their_site(client, seeded):
    from bonebase.db.engine import connect

    sign_in(client, "stan")
    page = client.get("/quarantine")
    with connect(seeded["url"]) as conn:
        own = {r["id"]: r for r in conn.execute(
            "SELECT q.id, s.code FROM quarantine_items q JOIN sites s ON s.id = q.site_id"
            " WHERE q.status = 'open'").fetchall()}
    mine = {i for i, r in own.items() if r["code"] == seeded["steward_site"]}
    other = sorted(set(own) - mine)
    assert set(_quarantine_ids(page.text)) == mine and other
    token = csrf_of(page.text)
    # Another site's item: 403, and nothing changes.
    assert client.post(f"/quarantine/{other[0]}/release",
                       data={"reason": "fixed", "csrf_token": token}).status_code == 403
    # A release without a reason: a message.
    item = sorted(mine)[0]
    empty = client.post(f"/quarantine/{item}/release", data={"reason": " ", "csrf_token": token})
    assert empty.status_code == 400 and "reason is required" in empty.text
    # Without the CSRF token: refused.
    assert client.post(f"/quarantine/{item}/release", data={"reason": "x"}).status_code == 403
    done = client.post(f"/quarantine/{item}/release",
                       data={"reason": "site resent the file", "csrf_token": token})
    assert done.status_code == 303
    with connect(seeded["url"]) as conn:
        row = conn.execute("SELECT status, resolved_by, resolution FROM quarantine_items"
                           " WHERE id = %s", (item,)).fetchone()
        other_row = conn.execute("SELECT status FROM quarantine_items WHERE id = %s",
                                 (other[0],)).fetchone()
    assert (row["status"], row["resolved_by"]) == ("released", "stan")
    assert other_row["status"] == "open"


def test_admin_sees_every_site_and_submissions(client, seeded):
    sign_in(client, "ada")
    assert set(re.findall(r"<td>([A-Z0-9]+)</td><td>[a-z_]+</td>",
                          client.get("/quarantine").text)) == {seeded["steward_site"],
                                                               seeded["other_site"]}
    subs = client.get("/submissions")
    assert subs.status_code == 200 and seeded["other_site"] in subs.text


def test_steward_cannot_open_another_sites_submission(client, seeded):
    from bonebase.db.engine import connect

    sign_in(client, "stan")
    with connect(seeded["url"]) as conn:
        other = conn.execute("SELECT s.id FROM submissions s JOIN sites t ON t.id = s.site_id"
                             " WHERE t.code = %s", (seeded["other_site"],)).fetchone()["id"]
    assert client.get(f"/submissions/{other}").status_code == 403


def test_sign_out_ends_the_session(client):
    sign_in(client, "vera")
    page = client.get("/cases")
    assert client.post("/logout", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    assert client.get("/cases").status_code == 303


def test_ask_the_model_without_a_service_is_a_clear_503(client, seeded):
    sign_in(client, "vera")
    case_id = seeded["cases"][seeded["steward_site"]][0]
    page = client.get(f"/cases/{case_id}")
    assert "Ask the model" not in page.text  # no service configured: no button
    instance = int(re.search(r'src="/images/(\d+)\.png', page.text).group(1))
    resp = client.post(f"/images/{instance}/diagnose", data={"csrf_token": csrf_of(page.text)})
    assert resp.status_code == 503 and "BONEBASE_DIAGNOSIS_URL" in resp.text


def test_heat_colour_keeps_the_geometry():
    from web.imaging import heat_colour

    buf = io.BytesIO()
    Image.fromarray(__import__("numpy").tile(
        __import__("numpy").arange(64, dtype="uint8") * 4, (64, 1))).save(buf, "PNG")
    with Image.open(io.BytesIO(heat_colour(buf.getvalue()))) as im:
        assert im.size == (64, 64) and im.mode == "RGB"
        assert im.getpixel((0, 0)) != im.getpixel((63, 0))  # cold and hot differ


def test_dataset_version_filter(client, seeded):
    from bonebase.db.engine import connect

    members = seeded["cases"][seeded["other_site"]][:3]
    with connect(seeded["url"]) as conn:
        conn.execute("INSERT INTO dataset_versions (version, dvc_md5, git_rev, workspace,"
                     " remote_url, n_images, n_cases, n_patients, created_by)"
                     " VALUES (7, 'm', 'r', 'w', 'u', 0, 3, 3, 'test') ON CONFLICT DO NOTHING")
        for case_id in members:
            conn.execute("INSERT INTO dataset_version_cases VALUES (7, %s) ON CONFLICT DO NOTHING",
                         (case_id,))
        conn.commit()
    sign_in(client, "vera")
    assert sorted(_ids(client.get("/cases?dataset=7").text)) == sorted(members)
    assert _ids(client.get("/cases?dataset=8").text) == []
