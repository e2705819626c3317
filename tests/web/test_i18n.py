"""The web database in Chinese and English (#25): negotiation, the switch over HTTP, the user's
setting, error pages, vocabulary terms, and the catalogue against freshly extracted messages."""

from __future__ import annotations

import gettext
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bonebase.i18n import LOCALE_DIR, negotiate, normalise
from tests.web.conftest import csrf_of, sign_in

REPO = Path(__file__).resolve().parents[2]
ZH_PO = LOCALE_DIR / "zh_Hans" / "LC_MESSAGES" / "web.po"


@pytest.mark.parametrize("header, expected", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
    ("en-GB,en;q=0.9,zh-CN;q=0.8", "en"),
    ("en;q=0.4, zh-Hans;q=0.7", "zh-Hans"),  # by q-value, not by order
    ("zh-TW,zh-Hant;q=0.9", None),  # Traditional Chinese is not offered as Simplified
    ("fr-FR,de;q=0.9", None),
    ("zh-CN;q=0, en", "en"),  # q=0: not acceptable
    ("", None),
    (None, None),
    ("zh;q=abc, en;q=0.5", "en"),  # a broken q-value counts as 0
])
def test_negotiate_accept_language(header, expected):
    assert negotiate(header) == expected


def test_normalise_tags():
    assert [normalise(t) for t in ("zh", "zh_Hans", "zh-hans-CN", "en-US", "EN", "ja", "")] == [
        "zh-Hans", "zh-Hans", "zh-Hans", "en", "en", None, None]


def test_term_filter_names_vocabulary_in_chinese():
    from web.terms import term

    assert term("osteosarcoma", "diagnosis", "zh-Hans") == "骨肉瘤"
    assert term("Giant cell tumour of bone", "diagnosis", "zh-Hans") == "骨巨细胞瘤"  # by name
    assert term("dedifferentiated_chondrosarcoma", "diagnosis", "zh-Hans") == "去分化软骨肉瘤"
    assert term("distal_femur", "location", "zh-Hans") == "股骨远端"
    assert term("knee_joint", "location", "zh-Hans") == "膝关节"
    assert term("malignant", "behaviour", "zh-Hans") == "恶性"
    assert term("F", "sex", "zh-Hans") == "女"
    assert term("osteosarcoma", "diagnosis", "en") == "osteosarcoma"  # English: as stored
    assert term("not_a_term", "diagnosis", "zh-Hans") == "not_a_term"  # shown, never dropped
    with pytest.raises(ValueError, match="kind 'colour' is unknown"):
        term("x", "colour", "zh-Hans")


def test_every_diagnosis_and_location_has_a_chinese_name():
    from bonebase.vocab import DIAGNOSES
    from web.filters import LOCATIONS
    from web.terms import term

    cjk = re.compile(r"[\u4e00-\u9fff]")
    untranslated = [c for c in DIAGNOSES if not cjk.search(term(c, "diagnosis", "zh-Hans"))]
    untranslated += [c for c in LOCATIONS if not cjk.search(term(c, "location", "zh-Hans"))]
    assert untranslated == []


def _messages(po: Path) -> dict:
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        return {m.id: m for m in read_po(f) if m.id}


def test_catalogue_matches_freshly_extracted_messages(tmp_path):
    """No untranslated or stale strings: every message extracted from web/ today has a
    Chinese translation in the committed catalogue, the catalogue holds nothing else, its
    placeholders are those of the message, and the committed .mo says what the .po says."""
    pot = tmp_path / "web.pot"
    subprocess.run([str(Path(sys.executable).with_name("pybabel")), "extract", "-F", "babel.cfg",
                    "-k", "t:2", "-o", str(pot), "web"], cwd=REPO, check=True, capture_output=True)
    extracted, po = _messages(pot), _messages(ZH_PO)
    assert len(extracted) > 250
    assert sorted(map(str, set(extracted) - set(po))) == [], "not in the catalogue: make i18n"
    assert sorted(map(str, set(po) - set(extracted))) == [], "stale: make i18n"
    untranslated = [m.id for m in po.values()
                    if not all(m.string if isinstance(m.string, tuple) else [m.string])]
    assert untranslated == [], "write their Chinese in " + str(ZH_PO)
    fuzzy = [m.id for m in po.values() if m.fuzzy]
    assert fuzzy == []
    placeholder = re.compile(r"%\(\w+\)[sd]|%%")
    for m in po.values():
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        for s in strings:
            assert sorted(placeholder.findall(s)) == sorted(placeholder.findall(ids[-1])), m.id
    compiled = gettext.GNUTranslations((ZH_PO.with_suffix(".mo")).open("rb"))
    for m in po.values():
        if isinstance(m.id, tuple):
            assert compiled.ngettext(m.id[0], m.id[1], 1) == m.string[0], m.id
        else:
            assert compiled.gettext(m.id) == m.string, f"{m.id!r}: the .mo is stale: make i18n"


# ---------------------------------------------------------------------------------------------
# Over HTTP


def _lang(html: str) -> str:
    return re.search(r'<html lang="([^"]+)">', html).group(1)


def test_anonymous_follows_accept_language_then_the_switch(app_client):
    client = app_client()
    page = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert _lang(page.text) == "zh-Hans" and "<h1>登录</h1>" in page.text
    assert client.get("/login", headers={"Accept-Language": "fr"}).text.count("<h1>Sign in</h1>")
    # The switch before sign-in: a cookie, which beats Accept-Language
    switched = client.post("/language", data={"language": "en", "next": "/login",
                                              "csrf_token": csrf_of(page.text)})
    assert switched.status_code == 303 and switched.headers["location"] == "/login"
    page = client.get("/login", headers={"Accept-Language": "zh-CN"})
    assert _lang(page.text) == "en" and "<h1>Sign in</h1>" in page.text
    offsite = client.post("/language", data={"language": "zh-Hans", "next": "//evil.example/",
                                             "csrf_token": csrf_of(page.text)})
    assert offsite.headers["location"] == "/cases"  # never an open redirect
    page = client.get("/login")
    assert _lang(page.text) == "zh-Hans" and 'id="lang-zh-Hans" lang="zh-Hans"' in page.text


def test_switch_refuses_without_token_and_unknown_languages(app_client):
    client = app_client()
    page = client.get("/login", headers={"Accept-Language": "zh-CN"})
    refused = client.post("/language", data={"language": "en"},
                          headers={"Accept-Language": "zh-CN"})
    assert refused.status_code == 403 and "无权访问" in refused.text  # the error page in Chinese
    assert "表单的安全令牌缺失或已过期" in refused.text
    bad = client.post("/language", data={"language": "fr", "csrf_token": csrf_of(page.text)},
                      headers={"Accept-Language": "zh-CN"})
    assert bad.status_code == 400 and "不提供语言 &#39;fr&#39;" in bad.text
    assert "bb_lang" not in client.cookies


def test_signed_in_users_setting_beats_the_browser(app_client, seeded):
    from bonebase.db.engine import connect
    from bonebase.db.users import get_user, set_language

    with connect(seeded["url"]) as conn:
        set_language(conn, "vera", "zh-Hans", actor="test")
        conn.commit()
    try:
        client = app_client()
        sign_in(client, "vera")
        english = {"Accept-Language": "en-GB,en"}
        cases = client.get("/cases", headers=english)
        assert _lang(cases.text) == "zh-Hans"
        assert "<h1>病例</h1>" in cases.text and "<th>诊断</th>" in cases.text
        assert re.search(r'<td class="dx">[\u4e00-\u9fff]+</td>', cases.text)  # vocabulary terms
        # The error pages too, even where no route loaded the user (a path that does not exist)
        missing = client.get("/no-such-page", headers=english)
        assert missing.status_code == 404 and _lang(missing.text) == "zh-Hans"
        assert "<h1 class=\"error-title\">未找到</h1>" in missing.text
        # The switch stores a signed-in user's choice with the user; "auto" follows the browser
        client.post("/language", data={"language": "en", "csrf_token": csrf_of(cases.text)})
        client.cookies.delete("bb_lang")
        with connect(seeded["url"]) as conn:
            assert get_user(conn, "vera").language == "en"
        page = client.get("/stats", headers={"Accept-Language": "zh-CN"})
        assert _lang(page.text) == "en" and "<h1>Statistics</h1>" in page.text
        client.post("/language", data={"language": "auto", "csrf_token": csrf_of(page.text)})
        with connect(seeded["url"]) as conn:
            assert get_user(conn, "vera").language is None
        page = client.get("/stats", headers={"Accept-Language": "zh-CN"})
        assert _lang(page.text) == "zh-Hans" and "按诊断统计病例" in page.text
    finally:
        with connect(seeded["url"]) as conn:
            set_language(conn, "vera", None, actor="test")
            conn.commit()


def test_set_language_refuses_an_unknown_tag(seeded):
    from bonebase.db.engine import connect
    from bonebase.db.users import set_language
    from bonebase.errors import InputError

    with connect(seeded["url"]) as conn, pytest.raises(InputError, match="'fr' is not offered"):
        set_language(conn, "vera", "fr")


def test_a_bad_filter_is_explained_in_the_pages_language(app_client):
    client = app_client(open_data=True)
    page = client.get("/cases?age_min=abc&sex=X", headers={"Accept-Language": "zh-CN"})
    assert page.status_code == 400
    assert "age_min=&#39;abc&#39; 不是整数；请使用 0 至 120" in page.text
    assert "sex=&#39;X&#39; 无法识别" in page.text


ZH_FIX = "请填写该行的必填字段（见 docs/manifest.md）"  # the bonebase domain's


def test_quarantine_messages_in_the_pages_language(app_client, seeded):
    """A message written from a validation template is shown rewritten from its Chinese
    template with the same values; the reason stays its code."""
    from bonebase.db import quarantine
    from bonebase.db.engine import connect

    with connect(seeded["url"]) as conn:
        sub = conn.execute(
            "SELECT s.id, s.site_id FROM submissions s JOIN sites t ON t.id = s.site_id"
            " WHERE t.code = %s", (seeded["steward_site"],)).fetchone()
        quarantine.add_many(conn, submission_id=sub["id"], site_id=sub["site_id"], items=[
            quarantine.QuarantineItem(reason="missing_value", row_number=3, case_ref="i18n-1",
                                      message="row 3: age is empty; fill it in and resubmit")])
        conn.commit()
    client = app_client()
    client.cookies.set("bb_lang", "zh-Hans")
    sign_in(client, "stan")
    page = client.get("/quarantine").text
    assert "第 3 行：age 为空；请填写后重新提交" in page
    assert f'<td>missing_value</td><td class="msg" title="{ZH_FIX}">第 3 行' in page


def test_models_page_lines_in_chinese():
    from bonebase.i18n import translations
    from web.routes.models import explanation_line, gate_verdict, headline_aucs, ood_line

    zh = translations("zh-Hans", "web").gettext
    metrics = {"test": {"auc": 0.8, "auc_delong_lo": 0.7, "auc_delong_hi": 0.9},
               "external": {"auc": None},
               "explanation": {"method": "gradcam", "layer": "layer3", "external": {"all": {
                   "pointing_game": 0.5, "pointing_game_lo": 0.4, "pointing_game_hi": 0.6,
                   "n": 12}}},
               "ood": {"false_alarm_external": 0.04, "detection_unrelated": 0.9}}
    assert headline_aucs(metrics, zh) == [("内部测试", "0.800（95% 置信区间 0.700–0.900）"),
                                          ("外部验证", "AUC 无法计算")]
    assert explanation_line(metrics, zh).startswith("指向游戏 0.500 (0.400–0.600)")
    assert explanation_line(metrics, zh).endswith("gradcam 作用于 layer3，外部验证 n=12")
    assert ood_line(metrics, zh).startswith("训练分布外检测器：误报率 0.040")
    gate = {"passed": False, "checks": [{"check": "auc_ci_low[test]", "passed": False}]}
    assert gate_verdict([{"gate": gate, "override": True, "by_person": "ada"}], zh) == \
        "未通过（auc_ci_low[test]），已由 ada 强制放行"
    assert gate_verdict([], zh) == "尚未运行"


def test_a_refused_role_is_explained_in_chinese(app_client):
    client = app_client()
    client.cookies.set("bb_lang", "zh-Hans")
    sign_in(client, "vera")
    page = client.get("/quarantine")
    assert page.status_code == 403
    assert "此页面需要 数据管理员 角色；您的角色是 浏览者" in page.text


def test_reading_page_in_chinese():
    """The reading page's own Chinese (its route needs a reader study; the template is
    rendered here with the context the route gives it)."""
    from starlette.requests import Request

    from bonebase.i18n import NATIVE_NAMES, language
    from bonebase.vocab import DIAGNOSES
    from web.render import templates

    request = Request({"type": "http", "method": "GET", "path": "/read/s/1/2",
                       "query_string": b"", "headers": [], "scheme": "http",
                       "server": ("test", 80)})
    case = {"position": 2, "age": 31, "sex": "F", "location_code": "proximal_tibia",
            "probability": 0.82, "predicted_class": "malignant", "score": 64, "has_heat": True}
    session = {"arm": "aided", "number": 1, "study": "s", "allow_corrections": True,
               "task": "benign_vs_malignant"}
    with language("zh-Hans"):
        page = templates.env.get_template("reader_case.html").render(
            request=request, user=None, csrf_field="csrf_token", csrf_token="0", open_data=False,
            lang="zh-Hans", languages=NATIVE_NAMES, session=session, case=case, done=1,
            total=6, location="proximal tibia", aided=True, threshold=0.5, base="/read/s/1/2",
            diagnoses=sorted((d.name, code) for code, d in DIAGNOSES.items()))
    text = re.sub(r"<[^>]+>", "", page)
    assert "第 1 轮 · 有模型辅助 · 第 2 例，共 6 例 · 已作答 1 例" in text
    assert "<td>胫骨近端</td>" in page and "<td>女</td>" in page
    assert "恶性；其阈值 50.0 %" in text and "已作答：评分 64 （可修改）" in text
    assert '<option value="osteosarcoma">骨肉瘤</option>' in page
    assert "恶性概率（0–100）" in text
