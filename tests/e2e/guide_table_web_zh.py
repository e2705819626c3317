"""The walk's table of docs/web.zh.md, the web database's guide in Chinese (#25).

Walked by tests/e2e/test_guides.py right after the English web guide (``IN_MAIN_WALK``): the
account lines are the English guide's commands (run once there); the server line is run again and
answers a browser asking for Chinese in Chinese, and one asking for English in English.
"""

from __future__ import annotations

from tests.e2e.guide_walk import SAME, SERVE, Entry, http_ok

DOC, EN = "docs/web.zh.md", "docs/web.md"
#: test_guides.py walks this table in its own TABLE (other_tables() must skip it).
IN_MAIN_WALK = True


def _pages_in_the_browsers_language(walk, out: str) -> None:
    import httpx

    url = f"http://127.0.0.1:{walk.values['web_port']}/cases"
    try:
        chinese = httpx.get(url, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"},
                            timeout=10)
        english = httpx.get(url, headers={"Accept-Language": "en-GB,en;q=0.8"}, timeout=10)
    finally:
        walk.stop("web-zh")
    assert chinese.status_code == 200 and '<html lang="zh-Hans"' in chinese.text
    assert "病例" in chinese.text and "HX" in chinese.text  # open data: anyone sees the cases
    assert english.status_code == 200 and '<html lang="en"' in english.text


def same(text: str, english: str) -> Entry:
    return Entry(DOC, text, SAME, same_as=(EN, english),
                 note="the English guide's command, run once there (an account is made once)")


TABLE = [
    same("bonebase init", "bonebase init"),
    same("bonebase users add ada --role admin            # 提示输入密码（或设置 BONEBASE_NEW_PASSWORD）",
         "bonebase users add ada --role admin            # password prompted (or "
         "BONEBASE_NEW_PASSWORD)"),
    same("bonebase users add stan --role steward --site HX",
         "bonebase users add stan --role steward --site HX"),
    Entry(DOC, "BONEBASE_DIAGNOSIS_URL=http://127.0.0.1:3000 bonebase web --port 8000 "
          "[--open-data]", SERVE, name="web-zh",
          probe=lambda walk: http_ok(f"http://127.0.0.1:{walk.values['web_port']}/login"),
          subs=(("127.0.0.1:3000", "127.0.0.1:{model_port}"), ("--port 8000", "--port {web_port}"),
                ("[--open-data]", "--open-data")), then=_pages_in_the_browsers_language),
]
