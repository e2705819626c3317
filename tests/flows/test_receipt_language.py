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
