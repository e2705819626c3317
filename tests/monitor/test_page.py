"""The monitoring page in a real headless Chromium over real HTTP (#23, done-when 2): a
researcher sees the sites, the AUC chart with CI bands, drift per feature and the output
distributions; the alert is shown; a viewer is refused. Screenshot under
BONEBASE_TEST_ARTIFACTS/monitor (default: a temp folder, printed)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.monitor.world import LIKE, SHIFTED
from tests.web.live import CHROMIUM, chromium, served

PASSWORD = "correct horse battery"
SECRET = b"monitor-test-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def site_url(watched):
    from bonebase.db.engine import connect
    from bonebase.db.users import add_user
    from web.app import create_app
    from web.settings import WebSettings

    with connect(watched["url"]) as conn:
        add_user(conn, username="rhea", role="researcher", password=PASSWORD, actor="test")
        add_user(conn, username="vera", role="viewer", password=PASSWORD, actor="test")
        conn.commit()
    app = create_app(db_url=watched["url"], store=watched["store"], secret=SECRET,
                     web=WebSettings(), pool_size=2)
    with served(app) as url:
        yield url


def _signed_in(client, user: str):
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text).group(1)
    client.post("/login", data={"username": user, "password": PASSWORD, "next": "/",
                                "csrf_token": token})
    return client


def test_page_over_http_for_researchers_only(site_url):
    import httpx

    with httpx.Client(base_url=site_url, follow_redirects=False) as client:
        assert client.get("/monitor").status_code in (302, 303, 401)
        assert _signed_in(client, "vera").get("/monitor").status_code == 403
    with httpx.Client(base_url=site_url, follow_redirects=False) as client:
        page = _signed_in(client, "rhea").get("/monitor")
        assert page.status_code == 200
        assert page.text.count("<svg") >= 4 and f"{SHIFTED} (drift)" in page.text
        check = page.text.split("/monitor/checks/")[1].split("/")[0]
        report = client.get(f"/monitor/checks/{check}/report")
        assert report.status_code == 200 and "Input drift" in report.text
        assert report.headers["content-security-policy"] == "script-src 'none'"
        assert client.get("/monitor/checks/999999/report").status_code == 404
        assert client.get("/monitor?task=nope").status_code == 404


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium and chromium-driver")
def test_monitoring_page_in_chromium(site_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    root = os.environ.get("BONEBASE_TEST_ARTIFACTS")
    shots = Path(root) / "monitor" if root else Path(tempfile.mkdtemp(prefix="bonebase-monitor-"))
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nmonitoring screenshots: {shots}")
    with chromium() as browser:
        browser.get(f"{site_url}/login")
        browser.find_element(By.ID, "username").send_keys("rhea")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.ID, "sign-in").click()
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "whoami"))
        browser.get(f"{site_url}/monitor")
        alert = browser.find_element(By.ID, "alerts").text
        assert SHIFTED in alert and "drift" in alert and LIKE not in alert
        sites = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#sites tr")]
        assert any(r.startswith(SHIFTED) and "ALERT" in r for r in sites)
        assert any(r.startswith(LIKE) and r.rstrip().endswith("ok drift report") for r in sites)
        charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
        labels = [c.get_attribute("aria-label") for c in charts]
        assert any(label.startswith("AUC per site") for label in labels)
        assert sum(label.startswith("P(positive)") for label in labels) == 2
        # The AUC chart draws a CI band (one polygon per site with two or more months, else a bar).
        auc = next(c for c in charts if c.get_attribute("aria-label").startswith("AUC"))
        assert auc.find_elements(By.CSS_SELECTOR, "polygon, rect")
        drifted = browser.find_elements(By.CSS_SELECTOR, "#drift td.drifted")
        assert drifted, "no drifting feature is marked"
        browser.save_screenshot(str(shots / "monitor.png"))
        browser.find_element(By.LINK_TEXT, "drift report").click()
        WebDriverWait(browser, 30).until(lambda b: "Input drift" in b.page_source)
        browser.save_screenshot(str(shots / "drift-report.png"))
