"""A receipt for a site whose language is Chinese (#25): the real ingest flow writes its Markdown
receipt in Chinese, and its JSON receipt is the English site's, key for key and code for code.

The English side is the session's ingested world (tests/flows/conftest.py: HX ingested in
English, its receipt on disk); the Chinese side ingests the same HX folder, under the same
consortium key, for HX registered in Chinese in a database of its own: one flow run."""

from __future__ import annotations

import json
import re

import pytest

from bonebase.db.engine import connect
from bonebase.db.migrate import upgrade
from bonebase.db.sites import add_site
from bonebase.ingest.receipt_text import fix_text, to_markdown
from tests.flows.world import settings_for
from validation.messages import _TEMPLATES

pytestmark = pytest.mark.slow

ZH = "zh-Hans"
_HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def receipts(two_hospitals, ingested_template, fresh_database, tmp_path_factory,
             prefect_harness) -> dict:
    """{lang: (JSON receipt, Markdown receipt, home)} of HX's submission 1."""
    from flows.ingest import ingest_submission

    english = ingested_template.home / "receipts" / "submission-1"
    url = fresh_database()
    upgrade(url)
    settings = settings_for(url, tmp_path_factory.mktemp("zh") / "home")
    with connect(url) as conn:
        add_site(conn, code="HX", name="Hospital HX", language=ZH)
    result = ingest_submission("HX", str(two_hospitals / "HX" / "submission"), settings=settings)
    assert result["submission"] == 1
    out = {}
    for lang, stem, home in (("en", english, ingested_template.home),
                             (ZH, settings.home / "receipts" / "submission-1", settings.home)):
        out[lang] = (json.loads(stem.with_suffix(".json").read_text(encoding="utf-8")),
                     stem.with_suffix(".md").read_text(encoding="utf-8"), str(home))
    return out


def test_a_chinese_site_gets_a_chinese_receipt_with_the_same_json(receipts):
    (en, en_md, en_home), (zh, zh_md, zh_home) = receipts["en"], receipts[ZH]
    # The JSON receipt is the record: the same, key for key and code for code (the homes aside).
    assert json.loads(json.dumps(zh).replace(zh_home, en_home)) == en
    assert zh["quarantine"], "the synthetic site's faults should be quarantined"
    # ... in English (Chinese only where the site's own manifest values are quoted).
    assert all(q["fix"] == fix_text(q["reason"], "en") for q in zh["quarantine"])
    # The Markdown receipt is in the site's language, with the codes and numbers of the JSON.
    assert en_md.startswith("# Receipt: submission 1 from site HX")
    assert zh_md.startswith("# 回执：中心 HX 的提交 1")
    assert "## 隔离项" in zh_md and "| 原因 | 行 | 文件 | 发生了什么 | 处理方法 |" in zh_md
    assert f"- 隔离：{zh['counts']['quarantined']} 项" in zh_md
    for q in zh["quarantine"]:
        row = next(line for line in zh_md.splitlines()
                   if line.startswith(f"| {q['reason']} | {q['row'] or ''} | {q['file'] or ''} |"))
        assert fix_text(q["reason"], ZH) in row and _HAN.search(fix_text(q["reason"], ZH))
        # a validation sentence, or a sentence of ingest's own: rewritten in Chinese
        if q["reason"] in _TEMPLATES or q["reason"] in ("case_rejected", "duplicate_file",
                                                        "non_dicom"):
            assert q["message"] not in row and "resubmit" not in row, row
    assert to_markdown(en, "en") == en_md


def test_a_submission_failing_in_chinese_keeps_an_english_error_and_its_code(
        two_hospitals, fresh_database, tmp_path_factory, prefect_harness, monkeypatch):
    """`bonebase --lang zh-Hans submit` for a Chinese site that is marked inactive while its
    submission runs: the person who ran it reads the error in Chinese, the records (the JSON
    receipt, submissions.receipt, the audit log) keep it in English with a stable code, and
    the Markdown receipt shows it in the site's language."""
    import bonebase.ingest.store as store_module
    from bonebase.db.sites import get_site, require_active, update_site
    from bonebase.errors import BonebaseError
    from flows.ingest import ingest_submission

    url = fresh_database()
    upgrade(url)
    settings = settings_for(url, tmp_path_factory.mktemp("zh-failed") / "home")
    with connect(url) as conn:
        add_site(conn, code="HX", name="Hospital HX", language=ZH)

    def deactivated_meanwhile(*args, **kwargs):
        with connect(url) as conn:
            update_site(conn, "HX", active=False)
            conn.commit()
            require_active(get_site(conn, "HX"))

    monkeypatch.setattr(store_module, "store_quarantine", deactivated_meanwhile)
    monkeypatch.setenv("BONEBASE_LANG", ZH)  # what `bonebase --lang zh-Hans` sets
    with pytest.raises(BonebaseError) as failed:
        ingest_submission("HX", str(two_hospitals / "HX" / "submission"), settings=settings)
    # The person who ran it reads the error in the run's language; its English is English.
    assert "已标记为停用" in str(failed.value) and "marked inactive" not in str(failed.value)
    assert failed.value.code == "site_inactive"
    assert "marked inactive" in failed.value.english and not _HAN.search(failed.value.english)

    path = settings.home / "receipts" / "submission-1.json"
    raw = path.read_bytes()
    # Byte scan: no CJK in the record, neither as UTF-8 nor as a JSON \u escape.
    assert not _HAN.search(raw.decode("utf-8")), raw
    assert not re.search(rb"\\u(?:4[e-f]|[5-9][0-9a-f])[0-9a-f]{2}", raw, re.I), raw
    written = json.loads(raw)
    assert written["status"] == "failed" and written["error_code"] == "site_inactive"
    assert written["error"].startswith("site HX (Hospital HX) is marked inactive")
    with connect(url) as conn:
        stored = conn.execute("SELECT status, receipt FROM submissions").fetchone()
        event = conn.execute("SELECT details FROM audit_events WHERE action = "
                             "'submission.failed'").fetchone()
    assert stored["status"] == "failed" and stored["receipt"] == written
    assert event["details"]["error"] == written["error"]
    assert event["details"]["error_code"] == "site_inactive"
    assert not _HAN.search(json.dumps(event["details"], ensure_ascii=False))
    # The Markdown receipt: in the site's language, the error included.
    markdown = path.with_suffix(".md").read_text(encoding="utf-8")
    error_line = next(line for line in markdown.splitlines() if line.startswith("- 错误"))
    assert "已标记为停用" in error_line and "marked inactive" not in error_line, markdown
    assert to_markdown(written, "en").count("marked inactive") == 1
