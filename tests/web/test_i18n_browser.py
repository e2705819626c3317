"""The web database in Chinese, in a real headless Chromium (#25).

A steward whose language is zh-Hans signs in (the browser itself asks for English) and sees the
case list, a case, the statistics and a submission's receipt in Chinese, then switches to
English with the switch on the page. Uses the module's copy of the seeded web database
(tests/worlds.py); no model is needed. Skipped only when Debian's chromium is not installed.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from tests.web.conftest import make_app
from tests.web.live import CHROMIUM, chromium, served
from tests.web.test_browser import _navigate, _sign_in

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium and chromium-driver "
                       "(apt-get install chromium chromium-driver)"),
]
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def world(seeded) -> dict:
    """stan (the steward) reads Chinese; his site's submission has a receipt."""
    from bonebase.db.engine import connect
    from bonebase.db.users import set_language

    with connect(seeded["url"]) as conn:
        set_language(conn, "stan", "zh-Hans", actor="test")
        sid = conn.execute(
            "SELECT s.id FROM submissions s JOIN sites t ON t.id = s.site_id WHERE t.code = %s",
            (seeded["steward_site"],)).fetchone()["id"]
        receipt = {
            "site": seeded["steward_site"], "submission": sid, "status": "done",
            "source": "[redacted]/sub",
            "counts": {"rows": 3, "files": 9, "cases_accepted": 2, "cases_new": 2,
                       "cases_updated": 0, "cases_unchanged": 0, "files_accepted": 8,
                       "files_stored": 8, "files_duplicate": 0, "quarantined": 1, "warnings": 0},
            "cases": [], "warnings": [], "notes": [],
            "quarantine": [{"reason": "unsupported_modality", "row": 2, "file": "x/img4.dcm",
                            "message": "modality US is not accepted", "fix": ""}],
        }
        conn.execute("UPDATE submissions SET receipt = %s WHERE id = %s", (Jsonb(receipt), sid))
        conn.commit()
    with served(make_app(seeded)) as url:
        yield {"url": url, "submission": sid, "db": seeded["url"]}


def _text(browser, css: str) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, css).text


def _lang(browser) -> str:
    return browser.execute_script("return document.documentElement.lang")


def test_a_chinese_reader_sees_the_pages_in_chinese_then_switches_to_english(world):
    from selenium.webdriver.common.by import By

    from bonebase.db.engine import connect
    from bonebase.db.users import get_user

    root = os.environ.get("BONEBASE_TEST_ARTIFACTS")
    shots = Path(root) / "web-i18n" if root else Path(tempfile.mkdtemp(prefix="bonebase-i18n-"))
    shots.mkdir(parents=True, exist_ok=True)
    url = world["url"]
    with chromium("--lang=en-US", "--accept-lang=en-US,en") as browser:
        browser.get(f"{url}/login")
        assert _lang(browser) == "en" and _text(browser, "h1") == "Sign in"  # the browser's
        _sign_in(browser, url, "stan")

        # The case list: headings, filters and the vocabulary's terms in Chinese
        assert browser.current_url.endswith("/cases") and _lang(browser) == "zh-Hans"
        assert _text(browser, "#whoami").startswith("stan (数据管理员")
        assert _text(browser, "h1") == "病例"
        heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#case-table th")]
        assert heads == ["病例", "中心", "年龄", "性别", "发病部位", "诊断", "生物学行为", "检查方式"]
        diagnoses = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#case-table td.dx")]
        assert diagnoses and all(CJK.search(d) for d in diagnoses), diagnoses
        assert re.fullmatch(r"\d+ 例病例", _text(browser, "#count"))
        browser.save_screenshot(str(shots / "cases-zh.png"))

        # A case
        _navigate(browser, browser.find_element(By.CSS_SELECTOR, "a.case-link"))
        assert _text(browser, "h1").startswith("病例 ")
        rows = {tr.find_element(By.TAG_NAME, "th").text: tr.find_element(By.TAG_NAME, "td").text
                for tr in browser.find_elements(By.CSS_SELECTOR, "#clinical tr")}
        assert {"中心", "患者", "年龄", "性别", "发病部位", "诊断", "生物学行为", "病理确诊",
                "版本"} <= set(rows)
        assert CJK.search(rows["诊断"]) and rows["病理确诊"] in ("是", "否", "未知")
        browser.save_screenshot(str(shots / "case-zh.png"))

        # The statistics: the charts' titles and the diagnoses on their bars
        browser.get(f"{url}/stats")
        assert _text(browser, "h1") == "统计"
        titles = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.chart .chart-title")]
        assert titles[:2] == ["按诊断统计病例", "按生物学行为统计病例"]
        bars = browser.find_elements(By.CSS_SELECTOR, "svg.chart")[1].text
        assert set(bars.split()) & {"良性", "恶性", "中间型", "正常"}, bars
        browser.save_screenshot(str(shots / "stats-zh.png"))

        # The submission page and its receipt
        browser.get(f"{url}/submissions/{world['submission']}")
        assert _text(browser, "h1").startswith(f"提交 {world['submission']}")
        receipt = _text(browser, "#receipt")
        assert receipt.startswith("回执") and "unsupported_modality" in receipt, receipt
        browser.save_screenshot(str(shots / "receipt-zh.png"))

        # The switch: English on the same page, stored with the user
        _navigate(browser, browser.find_element(By.ID, "lang-en"))
        assert browser.current_url.endswith(f"/submissions/{world['submission']}")
        assert _lang(browser) == "en"
        assert _text(browser, "h1").startswith(f"Submission {world['submission']}")
        assert _text(browser, "#receipt").startswith("Receipt: submission")
        assert not CJK.search(_text(browser, "header nav") + _text(browser, "footer"))
        assert _text(browser, "#whoami").startswith("stan (steward")
        browser.save_screenshot(str(shots / "receipt-en.png"))
        browser.get(f"{url}/cases")
        assert _text(browser, "h1") == "Cases"
    with connect(world["db"]) as conn:
        assert get_user(conn, "stan").language == "en"
    print(f"\ni18n screenshots: {shots}")
