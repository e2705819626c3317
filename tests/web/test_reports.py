"""Reports in the web database (#17 points 5 and 6): validation results and Data Docs that work
without the internet and hold no identifying value, receipts rendered (not raw Markdown, no markup
injected by a value), no "None" on the stewards' and models' pages, the models' headline metrics.

The browser test runs Debian's Chromium with every host name but 127.0.0.1 unresolvable.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from psycopg.types.json import Jsonb

from tests.unit.test_validation import clean_frames
from tests.web.conftest import sign_in

# Hospitals name folders after patients: planted in the paths and frames the suites see.
PATIENT_FOLDER = "Doe_Jane_PID884120"
PATIENT_ID = "PID884120"
ACCESSION = "ACC7730045"
PLANTED = (PATIENT_FOLDER, PATIENT_ID, ACCESSION, "Doe_Jane")

# A tag a browser fetches (script, stylesheet/icon link, image) whose address is on another host.
EXTERNAL_ASSET = re.compile(
    rb"""<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""",
    re.IGNORECASE)
LOCAL_ASSET = re.compile(r"""<(?:script|link|img)\b[^>]*\b(?:src|href)="([^"#?]+)""", re.I)


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    """A submission's Data Docs and summary, from the real suites, with a failing row (age 214),
    a US image and every file in a folder named after its patient."""
    from validation.runner import validate_submission

    m, h = clean_frames(3)
    m.at[1, "age"] = "214"
    m.at[0, "patient_id"], m.at[0, "accession_number"] = PATIENT_ID, ACCESSION
    h.loc[h["patient_id"] == "P000", ["patient_id", "accession_number"]] = [PATIENT_ID, ACCESSION]
    h["file"] = [f"{PATIENT_FOLDER}/{i}/img{i}.dcm" for i in range(len(h))]
    h.at[4, "modality"] = "US"  # a failing file: its (redacted) path is shown
    out = tmp_path_factory.mktemp("reports") / "datadocs" / "7"
    report = validate_submission(m, h, site="HX", submission_id="7", docs_dir=out,
                                 identifiers={PATIENT_FOLDER, "Doe_Jane"})
    assert {f.reason for f in report.errors} >= {"impossible_age", "unsupported_modality"}
    return out


def _receipt(docs: Path, message: str = "the file is fine") -> dict:
    return {
        "site": "HX", "submission": 7, "status": "done", "source": "[redacted]/sub",
        "counts": {"rows": 3, "files": 9, "cases_accepted": 2, "cases_new": 2, "cases_updated": 0,
                   "cases_unchanged": 0, "files_accepted": 8, "files_stored": 8,
                   "files_duplicate": 0, "quarantined": 1, "warnings": 0},
        "cases": [], "warnings": [], "notes": [],
        "quarantine": [{"reason": "unsupported_modality", "row": 2, "file": "x/img4.dcm",
                        "message": message, "fix": "send radiographs, CT or MR"}],
        "data_docs": str(docs / "index.html"),
    }


@pytest.fixture(scope="module")
def submission(seeded, docs) -> int:
    """The steward's site's seeded submission, with a receipt pointing at ``docs``."""
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        sid = conn.execute(
            "SELECT s.id FROM submissions s JOIN sites t ON t.id = s.site_id WHERE t.code = %s",
            (seeded["steward_site"],)).fetchone()["id"]
        conn.execute("UPDATE submissions SET receipt = %s WHERE id = %s",
                     (Jsonb(_receipt(docs)), sid))
        conn.commit()
    return sid


def _pages(docs: Path) -> list[Path]:
    return [p for p in docs.rglob("*.html")]


def test_data_docs_load_nothing_from_other_hosts_and_hold_no_planted_value(docs):
    pages = _pages(docs)
    assert len(pages) > 5
    text = b"".join(p.read_bytes() for p in pages)
    assert not EXTERNAL_ASSET.findall(text)
    assert b"impossible_age" in text or b"age_years" in text  # the findings are in the pages
    assert b"Submission 7 from site HX" in text and not re.search(rb"\bNone\b", text)
    everything = text + (docs / "validation.json").read_bytes()
    assert not [v for v in PLANTED if v.encode() in everything]
    # Every asset a page names is there, beside it (the rewritten links lead to real files).
    missing = {(p.name, ref) for p in pages for ref in LOCAL_ASSET.findall(p.read_text())
               if not (p.parent / ref).is_file()}
    assert not missing


def test_offline_rewrite_covers_every_cdn_tag_and_keeps_local_ones():
    from validation.docs_offline import offline_html

    html = """<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<script src="https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js" integrity="sha384-x" crossorigin="anonymous"></script>
<script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
<script src='//evil.example/x.js'></script>
<img
  class="NO-CACHE"
  src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1"
  alt="Great Expectations">
<link rel="shortcut icon" href="../static/images/favicon.ico"/>
<script>var inline = 1;</script>
<a href="https://greatexpectations.io/">a link is not loaded</a>"""
    out = offline_html(html, "../static/vendor/", "../static/")
    assert not EXTERNAL_ASSET.findall(out.encode())
    assert 'href="../static/vendor/bootstrap-4.3.1/css/bootstrap.min.css"' in out
    assert '<script src="../static/vendor/popper.js-1.12.9/popper.min.js"></script>' in out
    assert "vega" not in out and "evil" not in out and "integrity" not in out
    assert 'src="../static/images/logo-long.png"' in out
    assert 'href="../static/images/favicon.ico"' in out and "var inline = 1;" in out
    assert offline_html(out, "../static/vendor/", "../static/") == out


def test_validation_page_shows_each_expectation_and_its_verdict(app_client, submission):
    client = app_client()
    sign_in(client, "stan")
    page = client.get(f"/submissions/{submission}")
    assert f'href="/submissions/{submission}/validation"' in page.text
    page = client.get(f"/submissions/{submission}/validation")
    assert page.status_code == 200, page.text[:500]
    row = re.search(r'<tr class="failed">.*?expect_column_values_to_be_between.*?</tr>', page.text,
                    re.S)
    assert row and "impossible_age" in row.group(0) and "214" in row.group(0)
    assert "expect_column_values_to_be_in_set" in page.text and ">passed<" in page.text
    assert "[redacted]" in page.text  # the US file's path, as the checks saw it
    assert not [v for v in PLANTED if v in page.text]
    assert not re.search(r"\bNone\b", page.text)


def test_data_docs_route_serves_pages_that_stay_on_this_server(app_client, submission, docs,
                                                               tmp_path):
    client = app_client()
    sign_in(client, "stan")
    page = client.get(f"/submissions/{submission}/docs/")
    assert page.status_code == 200 and "Great Expectations" in page.text
    assert "connect-src 'none'" in page.headers["content-security-policy"]
    assert not EXTERNAL_ASSET.findall(page.content)
    asset = client.get(f"/submissions/{submission}/docs/static/vendor/jquery-3.7.1/jquery.min.js")
    assert asset.status_code == 200 and b"jQuery" in asset.content[:200]
    # A page written before the rewrite existed (CDN links) is rewritten as it is served.
    old = docs / "old.html"
    old.write_text('<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>')
    served = client.get(f"/submissions/{submission}/docs/old.html").text
    assert served == '<script src="/static/vendor/jquery-3.7.1/jquery.min.js"></script>'
    assert client.get("/static/vendor/jquery-3.7.1/jquery.min.js").status_code == 200
    old.unlink()


def test_a_submission_without_summary_says_what_to_open(app_client, seeded):
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        sid = conn.execute(
            "SELECT s.id FROM submissions s JOIN sites t ON t.id = s.site_id WHERE t.code = %s",
            (seeded["other_site"],)).fetchone()["id"]
    client = app_client()
    sign_in(client, "ada")
    page = client.get(f"/submissions/{sid}/validation")
    assert page.status_code == 404 and "no validation summary" in page.text


def test_receipt_is_rendered_and_a_value_cannot_inject_markup(app_client, seeded, submission,
                                                               docs):
    from bonebase.db.engine import connect

    planted = '<script>alert(1)</script><img src=x onerror="alert(2)">[x](javascript:alert(3))'
    with connect(seeded["url"]) as conn:
        conn.execute("UPDATE submissions SET receipt = %s WHERE id = %s",
                     (Jsonb(_receipt(docs, planted)), submission))
        conn.commit()
    try:
        client = app_client()
        sign_in(client, "stan")
        page = client.get(f"/submissions/{submission}").text
    finally:
        with connect(seeded["url"]) as conn:
            conn.execute("UPDATE submissions SET receipt = %s WHERE id = %s",
                         (Jsonb(_receipt(docs)), submission))
            conn.commit()
    receipt = re.search(r'<article class="receipt" id="receipt">(.*?)</article>', page, re.S)
    assert receipt, page[:2000]
    body = receipt.group(1)
    assert "<h1>Receipt: submission 7 from site HX</h1>" in body
    assert "<th>reason</th>" in body and "<td>unsupported_modality</td>" in body
    assert "<pre" not in page and "| --- |" not in body
    assert "<script>" not in body and "<img" not in body and 'href="javascript' not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_no_none_on_the_stewards_and_models_pages(app_client, seeded):
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        site_id = conn.execute("SELECT id FROM sites WHERE code = %s",
                               (seeded["steward_site"],)).fetchone()["id"]
        # A submission still running: no receipt, its counts not known yet.
        conn.execute("INSERT INTO submissions (site_id, source, content_hash, status, counts)"
                     " VALUES (%s, 'incoming', 'running-1', 'running', %s)",
                     (site_id, Jsonb({"cases_accepted": None, "quarantined": None})))
        conn.commit()
    client = app_client()
    sign_in(client, "ada")
    for url in ("/submissions", "/sites", "/models"):
        page = client.get(url)
        assert page.status_code == 200
        assert not re.search(r"\bNone\b", page.text), (url, page.text[:3000])


def test_models_page_shows_the_aucs_with_cis_and_the_gate_verdict(app_client, seeded):
    from bonebase.db import models as db_models
    from bonebase.db.engine import connect

    metrics = {"temperature": 1.31, "pointing_game": 0.4, "threshold_youden": 0.42,
               "test": {"auc": 0.8123, "auc_delong_lo": 0.7011, "auc_delong_hi": 0.9049},
               "external": {"auc": 0.7355, "auc_delong_lo": 0.6102, "auc_delong_hi": 0.8608}}
    gate = {"passed": False, "checks": [
        {"check": "auc_ci_low[test]", "passed": True},
        {"check": "auc_ci_low[external]", "passed": False}]}
    with connect(seeded["url"]) as conn:
        model, _ = db_models.insert_model(
            conn, task="malignancy", arch="resnet18", checkpoint_key="k", checkpoint_sha256="f" * 64,
            metrics=metrics, report_key=None, dataset_version=None, code_revision=None,
            params_hash=None, threshold=None, created_by="test")
        db_models.add_approval(conn, model_id=model["id"], decision="approved", by="Dr Okafor",
                               reason="small pilot", gate=gate, override=True)
        plain, _ = db_models.insert_model(
            conn, task="malignancy", arch="resnet18", checkpoint_key="k2",
            checkpoint_sha256="e" * 64, metrics={"temperature": 1.0}, report_key=None,
            dataset_version=None, code_revision=None, params_hash=None, threshold=None,
            created_by="test")
        conn.commit()
    client = app_client()
    sign_in(client, "rhea")
    page = client.get("/models").text
    row = re.search(rf"<tr><td>{model['id']}</td>.*?</tr>", page, re.S).group(0)
    assert "internal 0.812 (95% CI 0.701–0.905)" in row
    assert "external 0.736 (95% CI 0.610–0.861)" in row
    assert "failed (auc_ci_low[external]), overridden by Dr Okafor" in row
    assert "temperature" not in row and "pointing" not in row
    other = re.search(rf"<tr><td>{plain['id']}</td>.*?</tr>", page, re.S).group(0)
    assert "not evaluated" in other and "not run yet" in other


# --- in a real browser, with no network beyond this machine ----------------------------------

@pytest.fixture(scope="module")
def served(seeded):
    from tests.web.conftest import make_app
    from tests.web.live import served

    with served(make_app(seeded)) as url:
        yield url


@pytest.fixture(scope="module")
def offline_browser():
    """Headless Chromium that reaches nothing but this machine: no host name but 127.0.0.1
    resolves, and every other address goes to a proxy port where nothing listens (Chromium
    never proxies loopback)."""
    from tests.web.live import CHROMIUM, chromium

    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium and chromium-driver")
    with chromium("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                  "--proxy-server=http://127.0.0.1:9") as driver:
        yield driver


def _resources(browser) -> list[str]:
    return browser.execute_script(
        "return [location.href].concat(performance.getEntriesByType('resource').map(e => e.name))")


@pytest.mark.slow
def test_reports_render_in_a_browser_without_internet(offline_browser, served, submission,
                                                       docs):
    """Screenshots of the three pages go to BONEBASE_TEST_ARTIFACTS/reports (default: a temp
    folder), printed."""
    import os
    import tempfile

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    root = os.environ.get("BONEBASE_TEST_ARTIFACTS")
    shots = Path(root) / "reports" if root else Path(tempfile.mkdtemp(prefix="bonebase-reports-"))
    shots.mkdir(parents=True, exist_ok=True)
    print(f"\nreport screenshots: {shots}")
    browser = offline_browser
    browser.get(f"{served}/login")
    browser.find_element(By.ID, "username").send_keys("stan")
    browser.find_element(By.ID, "password").send_keys("correct horse battery")
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.ID, "whoami"))

    # The receipt: rendered HTML, its quarantine table visible.
    browser.get(f"{served}/submissions/{submission}")
    cell = browser.find_element(By.XPATH, "//article[@id='receipt']//td[.='unsupported_modality']")
    assert cell.is_displayed() and cell.size["height"] > 0
    browser.save_screenshot(str(shots / "receipt.png"))

    # bonebase's own validation page.
    browser.find_element(By.ID, "validation").click()
    WebDriverWait(browser, 30).until(lambda b: b.current_url.endswith("/validation"))
    row = browser.find_element(
        By.XPATH, "//tr[td[@class='expectation'][.='expect_column_values_to_be_between']"
                  " and td[.='impossible_age']]")
    status = row.find_element(By.CLASS_NAME, "status")
    assert status.text == "failed" and status.is_displayed() and row.size["height"] > 0
    browser.save_screenshot(str(shots / "validation.png"))

    # GX's Data Docs: styled by the vendored Bootstrap, tables made by the vendored scripts.
    browser.get(f"{served}/submissions/{submission}/docs/")
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete")
    assert browser.execute_script(
        "return typeof jQuery === 'function' && typeof jQuery.fn.bootstrapTable === 'function'")
    font = browser.execute_script("return getComputedStyle(document.body).fontFamily")
    assert "apple-system" in font  # Bootstrap 4's font stack: its CSS loaded
    # The index's tables exist only once bootstrap-table has built them from the page's data.
    shown = ("return [...document.querySelectorAll('a.ge-index-page-table-expectation-suite-link')]"
             ".filter(a => a.getBoundingClientRect().height > 0).map(a => a.textContent.trim())")
    WebDriverWait(browser, 30).until(lambda b: "manifest" in b.execute_script(shown))
    [page] = (docs / "validations" / "manifest").rglob("*.html")
    browser.get(f"{served}/submissions/{submission}/docs/{page.relative_to(docs).as_posix()}")
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.readyState") == "complete")
    expectation = browser.find_element(By.XPATH, "//*[contains(text(), 'age_years')]")
    assert expectation.is_displayed() and expectation.size["height"] > 0
    assert browser.execute_script(
        "return getComputedStyle(document.querySelector('.fa-times, .fa-check-circle'),"
        " '::before').fontFamily").find("Font Awesome") >= 0
    assert all(url.startswith(served) for url in _resources(browser)), _resources(browser)
    browser.save_screenshot(str(shots / "data-docs.png"))
