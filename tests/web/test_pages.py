"""The web database over HTTP (FastAPI's TestClient): access, filters, paging, case pages, forms;
multi-frame images (issue #17 point 4) in the case page and the export.

The seeded database holds one case of pydicom's own multi-frame test objects
(tests/web/seed.py: Enhanced MR native and JPEG 2000, Enhanced CT with functional groups),
stored through the ingest library's own steps; they live in this module to share its database.
"""

from __future__ import annotations

import io
import json
import re
from html import unescape

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from bonebase.dicom.pixels import frame_to_float, resize_keep_aspect, to_uint
from tests.web.conftest import PASSWORD, csrf_of, sign_in
from tests.web.seed import MULTIFRAME_FILES


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


def test_a_stored_answer_keeps_its_out_of_distribution_warning(client, seeded):
    """#21: the case page warns on a stored answer the service flagged as unlike the training
    images, and not on one it did not flag or one stored without a detector (NULL)."""
    from bonebase.db import predictions as preds
    from bonebase.db.engine import connect

    sign_in(client, "vera")
    case_id = seeded["cases"][seeded["steward_site"]][1]
    page = client.get(f"/cases/{case_id}")
    instance = int(re.search(r'src="/images/(\d+)\.png', page.text).group(1))
    answer = {"model_version": "m-ood", "task": "benign_vs_malignant", "predicted_class": "benign",
              "probabilities": {"benign": 0.7, "malignant": 0.3}, "threshold": 0.5}
    flagged = {"flag": True, "score": 9.5, "threshold": 3.0,
               "reasons": ["the header says body part CHEST"]}
    with connect(seeded["url"]) as conn:
        rows = [preds.add_prediction(conn, case_id=case_id, instance_id=instance,
                                     result={**answer, **extra}, gradcam_png=None,
                                     requested_by="vera")
                for extra in ({}, {"out_of_distribution": {**flagged, "flag": False}},
                              {"out_of_distribution": flagged})]
        stored = [r["out_of_distribution"] for r in rows]
    assert stored[0] is None and stored[1]["flag"] is False and stored[2] == flagged
    html = client.get(f"/cases/{case_id}").text
    assert html.count("unlike the images the model was trained on") == 1
    assert "the header says body part CHEST" in html


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


# Multi-frame images

ENHANCED_MR, ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.4.1", "1.2.840.10008.5.1.4.1.1.2.1"


@pytest.fixture(scope="module")
def multiframe(seeded) -> dict:
    """The multi-frame case: its id and instance ids by transfer syntax / class."""
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        rows = conn.execute(
            "SELECT i.id, i.sop_class_uid, i.object_key, st.case_id FROM instances i"
            " JOIN series se ON se.id = i.series_id JOIN studies st ON st.id = se.study_id"
            " WHERE i.sop_class_uid IN (%s, %s) ORDER BY i.id", (ENHANCED_MR, ENHANCED_CT),
        ).fetchall()
    assert len(rows) == len(MULTIFRAME_FILES) and len({r["case_id"] for r in rows}) == 1
    found = {}
    for r in rows:
        ds = pydicom.dcmread(io.BytesIO(seeded["store"].get_bytes(r["object_key"])),
                             stop_before_pixels=True)
        found[ds.Modality, ds.file_meta.TransferSyntaxUID.name] = r["id"]
    return {"case": rows[0]["case_id"], "mr": found["MR", "Explicit VR Little Endian"],
            "mr_j2k": found["MR", "JPEG 2000 Image Compression (Lossless Only)"],
            "ct": found["CT", "Explicit VR Little Endian"]}


@pytest.fixture
def rhea(app_client):
    c = app_client()
    sign_in(c, "rhea")
    return c


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        assert im.mode == "L"
        return np.asarray(im)


def _expected(name: str, frame: int, size: int) -> np.ndarray:
    """Frame ``frame`` of the original test file through the model's pixel pipeline."""
    with open(get_testdata_file(name, download=False), "rb") as fh:
        header = pydicom.dcmread(fh, stop_before_pixels=True)
        return to_uint(resize_keep_aspect(frame_to_float(header, frame, source=fh), size))


def test_case_page_has_a_frame_slider_per_multi_frame_series(rhea, seeded, multiframe):
    page = rhea.get(f"/cases/{multiframe['case']}")
    assert page.status_code == 200
    stacks = [json.loads(unescape(s)) for s in re.findall(r"data-stack='([^']+)'", page.text)]
    by_first = {stack[0][0]: stack for stack in stacks}
    # One slider per series over [instance, frames]: one step per frame (the script maps a step
    # to its instance and frame; the page grows with instances, not with frames).
    assert by_first[multiframe["mr"]] == [[multiframe["mr"], 10]]
    assert by_first[multiframe["mr_j2k"]] == [[multiframe["mr_j2k"], 10]]
    assert by_first[multiframe["ct"]] == [[multiframe["ct"], 2]]
    assert page.text.count('class="frame-total">10 frames') == 2
    assert 'class="frame-total">2 frames' in page.text
    assert 'max="10"' in page.text and 'aria-valuetext="frame 1 of 10"' in page.text
    assert f'src="/images/{multiframe["mr"]}.png?size=512&amp;frame=1"' in page.text
    assert '<link rel="stylesheet" href="/static/viewer.css">' in page.text
    assert rhea.get("/static/viewer.css").status_code == 200
    # Single-frame stacks and radiographs are as before: no frame parameter.
    other = rhea.get(f"/cases/{seeded['cases'][seeded['steward_site']][0]}").text
    assert "frame=" not in other and "frame-total" not in other


def test_each_frame_is_the_original_frame_through_the_pipeline(rhea, multiframe):
    """Every frame is served, and frame N is frame N of the submitted file (de-identification
    and storage leave the pixels alone): native and JPEG 2000 MR, and the enhanced CT, whose
    rescale and window (49/102) come from its functional groups."""
    frames = [_pixels(rhea.get(f"/images/{multiframe['mr']}.png?size=128&frame={f}").content)
              for f in range(1, 11)]
    assert len({f.tobytes() for f in frames}) == 10  # ten different pictures
    for f in (1, 6, 10):
        np.testing.assert_array_equal(frames[f - 1], _expected("emri_small.dcm", f, 128))
        j2k = rhea.get(f"/images/{multiframe['mr_j2k']}.png?size=128&frame={f}")
        np.testing.assert_array_equal(_pixels(j2k.content), frames[f - 1])  # lossless
    for f in (1, 2):
        ct = rhea.get(f"/images/{multiframe['ct']}.png?size=256&frame={f}")
        assert ct.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(_pixels(ct.content),
                                      _expected("eCT_Supplemental.dcm", f, 256))
    # No frame asked: the first.
    first = rhea.get(f"/images/{multiframe['mr']}.png?size=128").content
    np.testing.assert_array_equal(_pixels(first), frames[0])


@pytest.mark.parametrize(("frame", "message"), [
    ("0", "there is no frame 0: ask for a frame from 1 to 10"),
    ("11", "there is no frame 11: ask for a frame from 1 to 10"),
    ("-3", "there is no frame -3"),
    ("99999999999999999999", "ask for a frame from 1 to 10"),
    ("two", "frame: Input should be a valid integer"),
])
def test_a_bad_frame_is_a_400_that_says_what_to_ask(rhea, multiframe, frame, message):
    resp = rhea.get(f"/images/{multiframe['mr']}.png?frame={frame}")
    assert resp.status_code == 400, resp.text[:300]
    assert message in unescape(resp.text)


def test_a_frame_of_a_single_frame_image(rhea, seeded, multiframe):
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        single = conn.execute("SELECT id FROM instances WHERE modality IN ('CR', 'DX')"
                              " ORDER BY id LIMIT 1").fetchone()["id"]
    plain = rhea.get(f"/images/{single}.png?size=128")
    assert rhea.get(f"/images/{single}.png?size=128&frame=1").content == plain.content
    two = rhea.get(f"/images/{single}.png?frame=2")
    assert two.status_code == 400 and "has 1 frame; there is no frame 2" in two.text


def test_export_counts_multi_frame_images_it_skips(seeded, multiframe, tmp_path):
    """A radiograph task's export (here asked for CT and MR too) skips each multi-frame image
    with a counted reason, never silently; single-frame images of the same modalities go in."""
    from bonebase.dataset.export import export
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        summary = export(conn, seeded["store"], tmp_path, size=32, bits=8,
                         modalities=["CR", "DX", "CT", "MR"])
        mf_keys = {r["sha256"] for r in conn.execute(
            "SELECT sha256 FROM instances WHERE sop_class_uid IN (%s, %s)",
            (ENHANCED_MR, ENHANCED_CT)).fetchall()}
    assert summary.counts["skipped"]["multi_frame"] == len(MULTIFRAME_FILES)
    assert {i for i, k in summary.skip_kinds.items() if k == "multi_frame"} == mf_keys
    assert all("frames); the radiograph tasks take single-frame images" in summary.skipped[i]
               for i in mf_keys)
    assert f"{len(MULTIFRAME_FILES)} multi-frame" in summary.describe()
    labels = (tmp_path / "labels.csv").read_text()
    assert summary.n_images > 0 and not any(k in labels for k in mf_keys)


def test_no_none_in_the_case_pages(rhea, seeded, multiframe):
    """Headings of studies and series without a description, date or body part (the real
    multi-frame files have empty descriptions) never read "None"; nor does any case page or
    the list (#17 point 6: 'Study 1994-10-01 None', 'MR series: None (HEAD)')."""
    cases = [c for ids in seeded["cases"].values() for c in ids]
    assert multiframe["case"] in cases
    for url in ["/cases", *(f"/cases/{c}" for c in cases)]:
        page = rhea.get(url)
        assert page.status_code == 200
        text = re.sub(r"<[^>]+>", " ", page.text)  # what the reader sees, not attribute values
        assert not re.search(r"\bNone\b", text), (
            url, re.findall(r"[^\n]{0,40}\bNone\b[^\n]{0,20}", text))
    mf = rhea.get(f"/cases/{multiframe['case']}").text
    assert re.search(r"<h3>MR series \(HEAD\) · 1 image, <span", mf)
