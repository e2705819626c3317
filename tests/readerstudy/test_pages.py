"""The reading pages and the admins' study pages over HTTP (TestClient on the real app)."""

from __future__ import annotations

import re

import pytest

from tests.readerstudy.world import OUTSIDER, READERS
from tests.web.conftest import csrf_of, sign_in


@pytest.fixture(scope="module")
def studies(world):
    from bonebase.db.engine import connect
    from bonebase.readerstudy.create import create_study

    with connect(world["url"]) as conn:
        for name, washout in (("pages-study", 0), ("later-study", 14)):
            create_study(conn, world["store"], name=name, dataset_version=1, split="test",
                         task="benign_vs_malignant", model_id=world["model_id"],
                         readers=list(READERS), washout_days=washout, seed=4, max_cases=6,
                         actor="test")
        conn.commit()
        arms = {r["username"]: r["first_arm"] for r in conn.execute(
            "SELECT u.username, r.first_arm FROM reader_study_readers r JOIN users u ON u.id ="
            " r.user_id JOIN reader_studies s ON s.id = r.study_id WHERE s.name = 'pages-study'")}
    return arms


def _client(app_client, name):
    client = app_client()
    assert sign_in(client, name).status_code == 303
    return client


def _aided_reader(arms) -> str:
    return next(r for r, arm in arms.items() if arm == "aided")


def test_roles_keep_their_rights_and_readers_see_only_reading(app_client, studies):
    reader = _client(app_client, READERS[0])
    assert reader.get("/").headers["location"] == "/read"
    assert reader.get("/read").status_code == 200
    for path in ("/cases", "/stats", "/models", "/sites", "/reader-studies", "/diagnose"):
        assert reader.get(path).status_code == 403, path
    assert "reading list" in reader.get("/cases").text
    viewer = _client(app_client, "vera")
    assert viewer.get("/cases").status_code == 200
    assert viewer.get("/models").status_code == 403
    assert viewer.get("/read").status_code == 403
    researcher = _client(app_client, "rhea")
    assert researcher.get("/models").status_code == 200
    admin = _client(app_client, "ada")
    assert admin.get("/sites").status_code == 200
    assert admin.get("/reader-studies").status_code == 200
    assert admin.get("/read/pages-study/1").status_code == 403  # an admin is no reader


def test_other_readers_and_early_sessions_are_refused(app_client, studies):
    outsider = _client(app_client, OUTSIDER)
    for path in ("/read/pages-study/1", "/read/pages-study/1/1", "/read/pages-study/1/1/image.png"):
        page = outsider.get(path)
        assert page.status_code == 403 and "not a reader of study" in page.text, path
    reader = _client(app_client, READERS[0])
    page = reader.get("/read/later-study/2")
    assert page.status_code == 403 and "14 days after you finish session 1" in page.text


def test_the_page_is_blinded(app_client, studies, world):
    from bonebase.db.engine import connect

    reader = _client(app_client, READERS[0])
    with connect(world["url"]) as conn:
        rows = conn.execute(
            "SELECT sc.case_id, c.case_pseudonym, c.diagnosis_code, s.code, s.name"
            " FROM reader_order o JOIN reader_sessions se ON se.id = o.session_id"
            " JOIN users u ON u.id = se.user_id JOIN reader_studies st ON st.id = se.study_id"
            " JOIN reader_study_cases sc ON sc.id = o.study_case_id JOIN cases c ON c.id ="
            " sc.case_id JOIN sites s ON s.id = c.site_id WHERE u.username = %s AND"
            " st.name = 'pages-study' AND se.number = 1 ORDER BY o.position",
            (READERS[0],)).fetchall()
    for position, row in enumerate(rows, start=1):
        html = reader.get(f"/read/pages-study/1/{position}").text
        # The vocabulary's options are the only place a diagnosis may appear.
        outside = re.sub(r'<select id="diagnosis".*?</select>', "", html, flags=re.S)
        assert row["diagnosis_code"] not in outside
        for secret in (row["case_pseudonym"][:16], row["code"], row["name"], READERS[1],
                       f"/cases/{row['case_id']}"):
            assert secret not in html, secret


def test_aided_arm_shows_exactly_the_stored_answer(app_client, studies, world):
    from bonebase.db.engine import connect
    from web.imaging import heat_colour

    aided = _aided_reader(studies)
    unaided = next(r for r in READERS if r != aided)
    with connect(world["url"]) as conn:
        stored = conn.execute(
            "SELECT sc.probability, sc.gradcam_png FROM reader_order o JOIN reader_sessions se"
            " ON se.id = o.session_id JOIN users u ON u.id = se.user_id JOIN reader_studies st"
            " ON st.id = se.study_id JOIN reader_study_cases sc ON sc.id = o.study_case_id"
            " WHERE u.username = %s AND st.name = 'pages-study' AND se.number = 1"
            " AND o.position = 2", (aided,)).fetchone()
    client = _client(app_client, aided)
    html = client.get("/read/pages-study/1/2").text
    shown = re.search(r'id="model-probability">([0-9.]+)<', html).group(1)
    assert shown == "%.1f" % (stored["probability"] * 100)
    assert client.get("/read/pages-study/1/2/heat.png").content == heat_colour(stored["gradcam_png"])
    plain = _client(app_client, unaided)
    html = plain.get("/read/pages-study/1/2").text
    assert "model-probability" not in html and "heat.png" not in html
    assert plain.get("/read/pages-study/1/2/heat.png").status_code == 403


def test_scores_are_checked_and_final(app_client, studies, world):
    client = _client(app_client, READERS[1])
    page = client.get("/read/pages-study/1/3")
    token = csrf_of(page.text)
    bad = client.post("/read/pages-study/1/3", data={"score": "150", "csrf_token": token})
    assert bad.status_code == 400 and "outside 0-100" in bad.text
    ok = client.post("/read/pages-study/1/3", data={"score": "64", "seconds": "3.5",
                                                    "csrf_token": token})
    assert ok.status_code == 303
    again = client.post("/read/pages-study/1/3", data={"score": "10", "csrf_token": token})
    assert again.status_code == 409 and "the first is kept" in again.text
    assert "Answered: score 64" in client.get("/read/pages-study/1/3").text


def test_admin_creates_from_the_page_and_sees_refusals(app_client, studies, world):
    admin = _client(app_client, "ada")
    page = admin.get("/reader-studies")
    form = {"csrf_token": csrf_of(page.text), "name": "page-made", "dataset_version": "1",
            "split": "test", "task": "benign_vs_malignant", "model": str(world["model_id"]),
            "readers": f"{READERS[0]}, nobody", "washout_days": "0", "max_cases": "4"}
    refused = admin.post("/reader-studies", data=form)
    assert refused.status_code == 400 and "bonebase users add nobody --role reader" in refused.text
    made = admin.post("/reader-studies", data={**form, "readers": ",".join(READERS)})
    assert made.status_code == 303 and made.headers["location"] == "/reader-studies/page-made"
    results = admin.get("/reader-studies/page-made")
    assert results.status_code == 200 and "No OR analysis yet" in results.text
    assert 'id="reader-figure"' in results.text
    csv = admin.get("/reader-studies/page-made/scores.csv")
    assert csv.text.startswith("reader,modality,case,truth,score\n")
    assert _client(app_client, "vera").get("/reader-studies/page-made").status_code == 403


def test_a_reader_who_stops_resumes_at_the_first_unanswered_case(app_client, studies):
    client = _client(app_client, READERS[0])
    listing = client.get("/read").text
    assert 'href="/read/later-study/1"' in listing and 'href="/read/later-study/2"' not in listing
    for position in (1, 2):
        page = client.get(f"/read/later-study/1/{position}")
        client.post(f"/read/later-study/1/{position}",
                    data={"score": "40", "csrf_token": csrf_of(page.text)})
    again = _client(app_client, READERS[0])  # a new sign-in, as after a break
    assert again.get("/read/later-study/1").headers["location"] == "/read/later-study/1/3"
    assert ">2 / 6<" in again.get("/read").text


def test_window_and_level_rewindow_the_stored_values(app_client, studies):
    """The reader's window is applied to the stored values, not to the 8-bit picture: a narrow
    window at the bottom of the range turns most of the radiograph white, a wide one keeps it
    grey; both keep the picture's geometry; values outside the ranges are refused."""
    import io

    import numpy as np
    from PIL import Image

    reader = _client(app_client, READERS[0])
    url = "/read/pages-study/1/1/image.png"

    def picture(query=""):
        answer = reader.get(url + query)
        assert answer.status_code == 200, answer.text
        return np.asarray(Image.open(io.BytesIO(answer.content)))

    plain, narrow, wide = picture(), picture("?level=0.05&window=0.1"), picture("?level=0.5&window=2")
    assert plain.shape == narrow.shape == wide.shape
    body = plain > 0  # the radiograph, not the square's padding

    def saturated(img):  # white, or black for MONOCHROME1 (inverted after the window)
        return ((img[body] == 255) | (img[body] == 0)).mean()

    assert saturated(narrow) > saturated(plain) + 0.3
    assert saturated(wide) < 0.01 and not np.array_equal(wide, plain)
    for bad in ("?level=1.5&window=0.5", "?level=0.5&window=0", "?level=x&window=1"):
        answer = reader.get(url + bad)
        assert answer.status_code == 400 and ("level" in answer.text or "window" in answer.text), bad
