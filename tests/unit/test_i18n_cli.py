"""A data steward's commands speak the language of the locale (LANG, LC_MESSAGES, LC_ALL) or of
`bonebase --lang` (#25); English stays the default and the output's codes stay codes."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner


@pytest.fixture
def speak(monkeypatch, bonebase_env, db_url):
    """Run a `bonebase` command line under a locale: speak(args, LANG=...)."""
    from bonebase.cli import app

    monkeypatch.setenv("BONEBASE_LANG", "")  # restored at the end (--lang sets it)
    for var in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)

    def run(args: list[str], lang: str = "C.UTF-8") -> str:
        monkeypatch.setenv("LANG", lang)
        monkeypatch.setenv("BONEBASE_LANG", "")
        done = CliRunner().invoke(app, args)
        assert done.exit_code == 0, (done.output, done.exception)
        return done.output

    return run


def test_site_commands_follow_the_locale(speak):
    added = speak(["site", "add", "NN", "--name", "南宁市第一人民医院", "--language", "zh-Hans"],
                  lang="zh_CN.UTF-8")
    assert "已添加中心 NN：南宁市第一人民医院" in added
    shown = speak(["site", "show", "NN"], lang="zh_CN.UTF-8")
    assert "匹配规则" in shown and "accession（默认）" in shown and "zh-Hans" in shown
    assert "site NN updated" in speak(["site", "update", "NN", "--country", "CN"])
    listed = json.loads(speak(["site", "list", "--json"], lang="zh_CN.UTF-8"))
    assert listed[0]["language"] == "zh-Hans" and listed[0]["burned_in"] == "redact"  # codes


def test_lang_option_wins_over_the_locale(speak):
    speak(["site", "add", "HX", "--name", "Hospital X"])
    chinese = speak(["--lang", "zh-Hans", "site", "show", "HX"])
    assert re.search(r"图像内嵌文字 +涂黑", chinese)  # the burned-in policy, translated
    assert "┃ 代码 ┃ 名称" in speak(["--lang", "zh-Hans", "site", "list"])
    assert "quarantine is empty" in speak(["--lang", "en", "quarantine", "list"],
                                          lang="zh_CN.UTF-8")
    assert "隔离区为空" in speak(["quarantine", "list"], lang="zh_CN.UTF-8")
    assert "尚无提交" in speak(["--lang", "zh-Hans", "submissions", "list"])
