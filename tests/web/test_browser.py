"""The web database in a real headless Chromium (Selenium), against a real served model.

Signs in, filters cases, opens a case, asks the model (``bentoml serve`` of a model trained
here, from tests/e2e/test_serving.py) and sees the heat map, releases a quarantined item.
Screenshots of the main pages go to BONEBASE_TEST_ARTIFACTS (default: a temp folder); the
folder is printed. Skipped only when Debian's chromium is not installed.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.e2e.test_serving import TOKEN
from tests.web.conftest import PASSWORD, make_app
from tests.web.live import CHROMIUM, chromium, served

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium and chromium-driver "
                       "(apt-get install chromium chromium-driver)"),
]


@pytest.fixture(scope="module")
def synth_root(trained) -> Path:  # noqa: F811
    """The consortium the served model was trained on (overrides the conftest one)."""
    return trained["root"] / "synth"


@pytest.fixture(scope="module")
def artifacts() -> Path:
    root = os.environ.get("BONEBASE_TEST_ARTIFACTS")
    out = Path(root) / "web" if root else Path(tempfile.mkdtemp(prefix="bonebase-web-shots-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"\nweb screenshots: {out}")
    return out


@pytest.fixture(scope="module")
def site_url(seeded, server) -> str:  # noqa: F811
    """The app served by uvicorn on a free port, calling the served model."""
    with served(make_app(seeded, diagnosis_url=server["url"], api_token=TOKEN)) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


def _sign_in(browser, site_url, user):
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{site_url}/login")
    browser.find_element(By.ID, "username").send_keys(user)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    from selenium.webdriver.support.ui import WebDriverWait

    # argon2 verification takes a moment on a busy machine: wait longer than the implicit 5 s,
    # and for the login page to be gone (a session left by an earlier test shows "whoami" on it).
    _navigate(browser, browser.find_element(By.ID, "sign-in"))
    who = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "whoami"))
    assert who[0].text.startswith(user), browser.page_source[:3000]


def _replaced(element):
    """A wait condition: ``element``'s page is gone. Chromium answers a node of the old document
    either as stale or, mid-navigation, with "Node with given id does not belong to the
    document" (a plain WebDriverException, which Selenium's staleness_of lets through)."""
    from selenium.common.exceptions import WebDriverException

    def gone(_browser) -> bool:
        try:
            element.is_enabled()
        except WebDriverException:  # StaleElementReferenceException is one
            return True
        return False

    return gone


def _navigate(browser, element) -> None:
    """Click ``element`` and wait until its page is replaced (reading the old page races)."""
    from selenium.webdriver.support.ui import WebDriverWait

    element.click()
    WebDriverWait(browser, 60).until(_replaced(element))


def _loaded(browser, img) -> bool:
    return browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                  img)


def test_filter_open_case_and_ask_the_model(browser, site_url, seeded, server, artifacts):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    _sign_in(browser, site_url, "stan")
    browser.save_screenshot(str(artifacts / "cases.png"))
    site = seeded["other_site"]
    Select(browser.find_element(By.ID, "f-site")).select_by_value(site)
    browser.find_element(By.ID, "f-age_min").send_keys("5")
    _navigate(browser, browser.find_element(By.ID, "apply"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#case-table tbody tr")
    assert rows and all(r.find_elements(By.TAG_NAME, "td")[1].text == site for r in rows)
    assert f"site={site}" in browser.current_url
    browser.save_screenshot(str(artifacts / "cases-filtered.png"))

    _navigate(browser, browser.find_element(By.CSS_SELECTOR, "a.case-link"))
    assert browser.find_element(By.ID, "clinical").is_displayed()
    first = browser.find_element(By.CSS_SELECTOR, "figure.radiograph img")
    WebDriverWait(browser, 30).until(lambda b: _loaded(b, first))
    browser.save_screenshot(str(artifacts / "case.png"))

    from selenium.common.exceptions import TimeoutException

    _navigate(browser, browser.find_element(By.CSS_SELECTOR, "button.ask-model"))
    try:
        box = WebDriverWait(browser, 120).until(
            lambda b: b.find_element(By.CSS_SELECTOR, "#diagnosis .prediction"))
    except TimeoutException:
        pytest.fail("no prediction shown; the page says: "
                    + browser.find_element(By.TAG_NAME, "body").text[:2000])
    assert box.find_element(By.CSS_SELECTOR, ".model-version").text == server["tag"]
    assert box.find_element(By.CSS_SELECTOR, ".predicted-class").text in ("benign", "malignant")
    heat = box.find_element(By.CSS_SELECTOR, "img.heat")
    WebDriverWait(browser, 30).until(lambda b: _loaded(b, heat))
    assert browser.execute_script("return arguments[0].naturalWidth", heat) == 64
    # The heat map lies exactly on the radiograph (same box on the page).
    base = box.find_element(By.CSS_SELECTOR, "img.base")
    assert heat.rect == base.rect
    slider = box.find_element(By.CSS_SELECTOR, "input.opacity")
    browser.execute_script("arguments[0].value = 80; arguments[0].dispatchEvent(new Event('input'))",
                           slider)
    assert heat.value_of_css_property("opacity") == "0.8"
    browser.save_screenshot(str(artifacts / "diagnosis.png"))

    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        stored = conn.execute("SELECT model_version, requested_by FROM predictions").fetchall()
    assert [(r["model_version"], r["requested_by"]) for r in stored] == [(server["tag"], "stan")]


def test_release_a_quarantined_item(browser, site_url, seeded):
    from selenium.webdriver.common.by import By

    _sign_in(browser, site_url, "stan")
    browser.get(f"{site_url}/quarantine")
    row = browser.find_element(By.CSS_SELECTOR, "#quarantine tr[id^=item-]")
    item = row.get_attribute("id").removeprefix("item-")
    assert row.find_elements(By.TAG_NAME, "td")[1].text == seeded["steward_site"]
    row.find_element(By.NAME, "reason").send_keys("the site sent a corrected file")
    _navigate(browser, row.find_element(By.CSS_SELECTOR, "button.release"))
    assert browser.find_element(By.ID, "done").text == f"Item {item} resolved."
    browser.get(f"{site_url}/quarantine?status=released")
    status = browser.find_element(By.CSS_SELECTOR, f"#item-{item} .status").text
    assert status.startswith("released by stan")


def test_screenshots_of_the_other_pages(browser, site_url, artifacts):
    from selenium.webdriver.common.by import By

    _sign_in(browser, site_url, "ada")
    for name in ("stats", "quarantine", "submissions", "sites", "models", "diagnose"):
        browser.get(f"{site_url}/{name}")
        assert browser.find_element(By.TAG_NAME, "h1").text
        browser.save_screenshot(str(artifacts / f"{name}.png"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 0  # on /diagnose
    browser.get(f"{site_url}/stats")
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 5
    _sign_in(browser, site_url, "vera")
    browser.get(f"{site_url}/quarantine")
    assert browser.find_element(By.CSS_SELECTOR, "h1").text == "Not allowed"
    browser.save_screenshot(str(artifacts / "forbidden.png"))
    assert sorted(p.name for p in artifacts.glob("*.png")) == sorted(
        ["cases.png", "cases-filtered.png", "case.png", "diagnosis.png", "stats.png",
         "quarantine.png", "submissions.png", "sites.png", "models.png", "diagnose.png",
         "forbidden.png"])


def _pixel_sum(browser, img) -> int:
    """Sum of the shown picture's pixel values, read back through a canvas (same origin)."""
    return browser.execute_script(
        "const img = arguments[0], c = document.createElement('canvas');"
        "c.width = img.naturalWidth; c.height = img.naturalHeight;"
        "const g = c.getContext('2d'); g.drawImage(img, 0, 0);"
        "return g.getImageData(0, 0, c.width, c.height).data.reduce((a, b) => a + b, 0);", img)


def test_frame_slider_of_a_multi_frame_mr_loads_each_frame(browser, site_url, seeded, artifacts):
    """The enhanced MR seeded from pydicom's test data (tests/web/seed.py): the slider is moved
    with the keyboard and the next frame, rendered by the server, replaces the first."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        case = conn.execute(
            "SELECT st.case_id FROM instances i JOIN series se ON se.id = i.series_id"
            " JOIN studies st ON st.id = se.study_id WHERE i.sop_class_uid = %s LIMIT 1",
            ("1.2.840.10008.5.1.4.1.1.4.1",)).fetchone()["case_id"]
    _sign_in(browser, site_url, "vera")
    browser.get(f"{site_url}/cases/{case}")
    fig = next(f for f in browser.find_elements(By.CSS_SELECTOR, "figure.stack")
               if f.get_attribute("data-step") == "frame"
               and f.find_element(By.CSS_SELECTOR, "input.slice").get_attribute("max") == "10")
    img = fig.find_element(By.TAG_NAME, "img")
    slider = fig.find_element(By.CSS_SELECTOR, "input.slice")

    def shown(frame: int) -> int:
        WebDriverWait(browser, 30).until(
            lambda b: img.get_attribute("src").endswith(f"&frame={frame}") and _loaded(b, img))
        assert browser.execute_script("return arguments[0].naturalWidth", img) == 512
        assert fig.find_element(By.CSS_SELECTOR, ".slice-no").text == str(frame)
        assert slider.get_attribute("aria-valuetext") == f"frame {frame} of 10"
        return _pixel_sum(browser, img)

    first = shown(1)
    slider.send_keys(Keys.ARROW_RIGHT)
    second = shown(2)
    slider.send_keys(Keys.END)
    last = shown(10)
    browser.save_screenshot(str(artifacts / "frames.png"))
    assert len({first, second, last}) == 3  # three different pictures were loaded
    slider.send_keys(Keys.HOME)
    assert shown(1) == first
