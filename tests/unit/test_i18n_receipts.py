"""Receipts and quarantine reasons in the site's language (#25): the validation messages and
ingest's own sentences read back from the English into the Chinese with their values, fixes by
reason code, a failed submission's stage, a site's language setting. The flow end to end (a
Chinese site's receipt beside the English one) is tests/flows/test_receipt_language.py."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from bonebase.errors import InputError
from bonebase.ingest.receipt_text import OTHER_SENTENCES, fix_text, message_text, to_markdown
from validation.messages import _TEMPLATES, render, where

ROOT = Path(__file__).resolve().parents[2]
ZH = "zh-Hans"
_HAN = re.compile(r"[\u4e00-\u9fff]")


def _record(template: str) -> dict:
    """Values for every placeholder of ``template``: numbers where it formats numbers, else
    text that itself holds the template's separators (", " and ": ")."""
    values = {}
    for _literal, name, spec, _conv in string.Formatter().parse(template):
        if name and name != "where":
            values[name] = 12.5 if spec else f"v-{name}, x: y"
    return values


@pytest.mark.parametrize("reason", sorted(_TEMPLATES))
def test_every_validation_message_reads_back_into_chinese(reason):
    record = _record(_TEMPLATES[reason])
    message = render(reason, record, place=where(row=17, case_id="HX-0042"))
    chinese = message_text(reason, message, ZH)
    assert chinese.startswith("第 17 行，病例 HX-0042：")
    assert _HAN.search(chinese.split("：", 1)[1])
    for name, value in record.items():
        shown = f"{value:g}" if isinstance(value, float) else value
        assert shown in chinese or f"{value:.0f}" in chinese or f"{value:.2f}" in chinese, name
    assert message_text(reason, message, "en") == message


@pytest.mark.parametrize(("reason", "sentence"), [
    (reason, sentence) for reason, sentences in sorted(OTHER_SENTENCES.items())
    for sentence in sentences])
def test_the_ingest_sentences_read_back_into_chinese(reason, sentence):
    record = _record(sentence)
    message = sentence.format(**record)
    chinese = message_text(reason, message, ZH)
    assert chinese != message and _HAN.search(chinese)
    assert all(value in chinese for value in record.values())


def test_the_vocabularys_behaviour_is_named_in_chinese():
    message = render("label_contradicts_diagnosis", {
        "behaviour": "malignant", "diagnosis": "巨细胞瘤", "diagnosis_behaviour": "intermediate"},
        place=where(row=9))
    assert message_text("label_contradicts_diagnosis", message, ZH) == (
        "第 9 行：生物学行为 'malignant' 与病理诊断 '巨细胞瘤'（属于中间型）相矛盾；请更正其中一列后重新提交")


def test_a_message_of_no_template_stays_as_written():
    message = "a.dcm: the DICOM header cannot be read (truncated)"
    assert message_text("corrupt_file", message, ZH) == message
    assert message_text("impossible_age", "something else entirely", ZH) == "something else entirely"


def test_fixes_are_translated_by_reason_code():
    assert fix_text("impossible_age", ZH) == "请在清单中更正年龄（整岁，0–100）"
    assert fix_text("unparseable_date:StudyDate", ZH).startswith("请在 PACS 导出中更正日期")
    assert fix_text("impossible_age", "en") == "correct the age (whole years, 0-100) in the manifest"
    assert fix_text("no_such_reason", ZH) == "见说明"


def test_a_failed_submissions_receipt_names_its_stage_in_chinese():
    from bonebase.ingest.receipt import failure_receipt
    from bonebase.ingest.receipt_text import STAGES

    # Every stage the flow can stop at is in the catalogue (a new stage fails here).
    flow = (ROOT / "flows" / "ingest.py").read_text()
    named = set(re.findall(r'(?:\bat\(|self\.stage = )"([^"]+)"', flow))
    assert named and named == set(STAGES)
    receipt = failure_receipt(site="NN01", submission_id=7, source="incoming/7",
                              stage="storing the cases", error="an unexpected error (OSError)")
    chinese = to_markdown(receipt, ZH)
    assert chinese.startswith("# 回执：中心 NN01 的提交 7\n")
    assert "- 状态：失败，失败环节：存储病例\n" in chinese
    assert "- 处理方法：请再次运行同一提交" in chinese
    assert "storing the cases" in json.dumps(receipt)  # the JSON keeps the flow's words
    assert "FAILED while storing the cases" in to_markdown(receipt, "en")


# -- sites.language -----------------------------------------------------------------------------


def test_a_site_language_is_a_setting_with_a_clear_refusal(db):
    from bonebase.db.sites import add_site, get_site, update_site

    add_site(db, code="NN", name="Nanning hospital")
    assert get_site(db, "NN").language == "en"
    assert update_site(db, "NN", language="zh_CN").language == ZH
    with pytest.raises(InputError, match=r"language 'fr' is not offered: use one of en, zh-Hans"):
        update_site(db, "NN", language="fr")
    assert add_site(db, code="BJ", name="Beijing", language="zh").language == ZH


# -- a failure's record: English and a stable code, whatever the language -----------------------


def _inactive_site_error(lang: str) -> InputError:
    from datetime import datetime

    from bonebase.db.sites import Site, require_active
    from bonebase.i18n import language

    site = Site(id=1, code="HX", name="Hospital HX", country="", contact="", active=False,
                created_at=datetime(2026, 1, 1))
    with language(lang), pytest.raises(InputError) as raised:
        require_active(site)
    return raised.value


def test_a_translated_error_keeps_its_english_and_its_code():
    import pickle

    from bonebase.i18n import _, language

    error = _inactive_site_error(ZH)
    assert "已标记为停用" in str(error) and error.code == "site_inactive"
    assert error.english.startswith("site HX (Hospital HX) is marked inactive")
    assert error.english == str(_inactive_site_error("en"))
    copy = pickle.loads(pickle.dumps(error))  # a task's failure crosses processes pickled
    assert (str(copy), copy.english, copy.code) == (str(error), error.english, error.code)
    # `+` and `format` carry the English along; other errors are written in English.
    with language(ZH):
        joined = _("site {code} added: {name}").format(code="HX", name=_("yes")) + " " + _("no")
    assert joined.english == "site HX added: yes no" and _HAN.search(joined)
    assert InputError("plain words").english == "plain words" and InputError().english == ""
    assert InputError("x").code == "input_error" and InputError("x", code="own").code == "own"


def test_a_failed_receipt_keeps_english_and_a_code_and_reads_in_chinese():
    from bonebase.ingest.receipt import describe_failure, failure_code, failure_receipt

    error = _inactive_site_error(ZH)
    english = describe_failure(error, str)
    assert english == error.english and not _HAN.search(english)
    assert describe_failure(error, str, translated=True) == str(error)
    assert failure_code(error) == "site_inactive" and failure_code(OSError()) == "unexpected_error"
    receipt = failure_receipt(site="HX", submission_id=3, source="incoming/3",
                              stage="storing the cases", error=english,
                              error_code=failure_code(error))
    assert receipt["error_code"] == "site_inactive" and not _HAN.search(json.dumps(receipt))
    # Read from the record (the web, `bonebase submissions show`), in the reader's language.
    assert f"- 错误：{error}\n" in to_markdown(receipt, ZH)
    assert f"- error: {english}\n" in to_markdown(receipt, "en")
    # A message the catalogue does not hold stays as written.
    unexpected = {**receipt, "error": "an unexpected error (OSError in x.py:3, f)"}
    assert "- 错误：an unexpected error (OSError in x.py:3, f)\n" in to_markdown(unexpected, ZH)
