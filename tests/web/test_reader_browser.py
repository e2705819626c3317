"""A reader study end to end in a real headless Chromium (#22).

An admin creates a 12-case study with two readers and washout 0 on the admin page; each reader
reads both arms with the keyboard (typed score + Enter, and the 0-9 / n shortcuts); the results
page shows per-reader AUCs and the OR result, and its scores.csv gives the same numbers through
`bonebase reader-study analyze`. Skipped only when Debian's chromium is not installed.
"""

from __future__ import annotations

import json
import random

import pytest

from tests.readerstudy.world import READERS, add_readers, make_version, register_model
from tests.web.conftest import make_app
from tests.web.live import CHROMIUM, chromium, served
from tests.web.test_browser import _navigate, _replaced, _sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium and chromium-driver "
                       "(apt-get install chromium chromium-driver)"),
]
N_CASES = 12


@pytest.fixture(scope="module")
def synth_root(trained):  # noqa: F811
    return trained["root"] / "synth"


@pytest.fixture(scope="module")
def world(seeded, trained, tmp_path_factory):  # noqa: F811
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        make_version(conn, tmp_path_factory.mktemp("rs-workspace"))
        model_id = register_model(conn, seeded["store"], trained["checkpoint"])
        add_readers(conn)
        conn.commit()
    with served(make_app(seeded)) as url:
        yield {**seeded, "model_id": model_id, "site": url}


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _create(browser, site, model_id):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    browser.get(f"{site}/reader-studies")
    browser.find_element(By.ID, "name").send_keys("browser-study")
    Select(browser.find_element(By.ID, "dataset_version")).select_by_visible_text("1")
    Select(browser.find_element(By.ID, "task")).select_by_visible_text("benign_vs_malignant")
    Select(browser.find_element(By.ID, "model")).select_by_value(str(model_id))
    browser.find_element(By.ID, "readers").send_keys(",".join(READERS))
    washout = browser.find_element(By.ID, "washout_days")
    washout.clear()
    washout.send_keys("0")
    browser.find_element(By.ID, "seed").send_keys("9")
    browser.find_element(By.ID, "max_cases").send_keys(str(N_CASES))
    _navigate(browser, browser.find_element(By.ID, "create"))
    assert browser.current_url.endswith("/reader-studies/browser-study"), browser.page_source[:2000]


def _rewindow(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script(
        "const l = document.getElementById('level'); l.value = 20;"
        " l.dispatchEvent(new Event('input'));")
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "const im = document.getElementById('radiograph');"
        " return im.src.includes('level=0.2') && im.complete && im.naturalWidth > 0;"))
    browser.execute_script("document.getElementById('score').focus()")


def _read_session(browser, site, number, rng):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{site}/read")
    _navigate(browser, browser.find_element(
        By.CSS_SELECTOR, f'tr[data-session="{number}"] a.start'))
    for k in range(1, N_CASES + 1):
        progress = browser.find_element(By.ID, "progress").text
        assert f"case {k} of {N_CASES}" in progress, progress
        score = browser.find_element(By.ID, "score")
        if k == 2:  # window/level: the server re-windows the stored values, the picture loads
            _rewindow(browser)
        if k % 3 == 0:  # the shortcuts: a digit key outside the score box, then n
            browser.execute_script("document.activeElement.blur()")
            ActionChains(browser).send_keys(str(rng.randint(0, 9))).send_keys("n").perform()
        else:  # the score box has the focus: type and press Enter
            WebDriverWait(browser, 20).until(lambda b, s=score: b.switch_to.active_element == s)
            score.send_keys(str(rng.randint(0, 100)) + Keys.ENTER)
        WebDriverWait(browser, 60).until(_replaced(score))
    assert browser.find_elements(By.ID, "session-done"), browser.page_source[:2000]


def test_reader_study_in_the_browser(browser, world, tmp_path):
    from selenium.webdriver.common.by import By
    from typer.testing import CliRunner

    from bonebase.readerstudy.cli import reader_app

    site = world["site"]
    _sign_in(browser, site, "ada")
    _create(browser, site, world["model_id"])
    assert browser.find_elements(By.ID, "no-analysis")
    for reader in READERS:
        rng = random.Random(reader)
        _sign_in(browser, site, reader)
        for number in (1, 2):
            _read_session(browser, site, number, rng)
    _sign_in(browser, site, "ada")
    browser.get(f"{site}/reader-studies/browser-study")
    page = {(row.get_attribute("data-reader"), row.get_attribute("data-arm")):
            row.find_element(By.CSS_SELECTOR, "td.auc").text
            for row in browser.find_elements(By.CSS_SELECTOR, "tr.reader-row")}
    assert len(page) == 2 * len(READERS) and all(v != "–" for v in page.values()), page
    p_shown = browser.find_element(By.CSS_SELECTOR, "tr.or-rrrc td.p").text
    assert browser.find_elements(By.CSS_SELECTOR, "#reader-figure circle.aided")

    import httpx

    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    csv = httpx.get(f"{site}/reader-studies/browser-study/scores.csv", cookies=cookies)
    assert csv.status_code == 200
    path = tmp_path / "scores.csv"
    path.write_text(csv.text)
    run = CliRunner().invoke(reader_app, ["analyze", str(path), "--json"])
    assert run.exit_code == 0, run.output
    out = json.loads(run.output)
    for (reader, arm), shown in page.items():
        assert f"{out['per_reader_auc'][reader][arm]:.3f}" == shown
    assert f"{out['rrrc']['p']:.4f}" == p_shown
    assert out["modalities"] == ["aided", "unaided"] and out["n_cases"] == N_CASES
    # The page timed every case (visible time, sent with the answer), and the audit has each.
    from bonebase.db.engine import connect

    with connect(world["url"]) as conn:
        times = [r["seconds"] for r in conn.execute("SELECT seconds FROM reader_answers")]
        audited = conn.execute("SELECT count(*) AS n FROM audit_events WHERE action ="
                               " 'reader_study.answer' AND entity_id = 'browser-study'"
                               ).fetchone()["n"]
    assert len(times) == audited == 2 * 2 * N_CASES and all(0 < t < 600 for t in times)
