"""The walk's table of docs/stewards.zh.md, the data stewards' guide in Chinese (#25).

It is walked by tests/e2e/test_guides.py right after the English stewards' guide, in the same
demo home (``IN_MAIN_WALK``): the Chinese guide's commands are the English ones with
`bonebase --lang zh-Hans`, and each line that shows translated output is run and its Chinese
text asserted (site registration, validate, submit, the receipt in the site's language, the
quarantine); the lines that are the English guide's own commands (the synthetic hospitals, the
JSON outputs) are the same commands, run once by the English guide.
"""

from __future__ import annotations

import json

from tests.e2e.guide_walk import RUN, SAME, Entry

DOC, EN = "docs/stewards.zh.md", "docs/stewards.md"
#: test_guides.py walks this table in its own TABLE (other_tables() must skip it).
IN_MAIN_WALK = True


def zh(text: str, **kw) -> Entry:
    return Entry(DOC, text, RUN, **kw)


def same(text: str, english: str, note: str, **kw) -> Entry:
    return Entry(DOC, text, SAME, same_as=(EN, english), note=note, **kw)


def _pick_open_items(walk, out: str) -> None:
    """Two open items of HX that the English guide's lines neither released, discarded nor
    looked at."""
    used = {walk.values.get(k) for k in ("held_file_id", "release_id", "discard_id")}
    items = json.loads(out)
    free = [i["id"] for i in items if i["status"] == "open" and i["id"] not in used]
    assert len(free) >= 2, items
    walk.values["zh_release_id"], walk.values["zh_discard_id"] = free[:2]


TABLE = [
    zh("bonebase --lang zh-Hans site add NN01 --name \"南宁市第一人民医院\" --country CN --contact "
       "data@nn01.example --language zh-Hans", expect="已添加中心 NN01：南宁市第一人民医院"),
    zh("bonebase --lang zh-Hans site list", expect=r"代码[\s\S]*\bNN01\W+南宁市第一人民医院\W+CN"),
    zh("bonebase --lang zh-Hans site show NN01              # 详情和最近的审计事件",
       expect=r"语言\s+zh-Hans[\s\S]*site\.add"),
    zh("bonebase --lang zh-Hans site update NN01 --contact new-contact@nn01.example",
       expect="中心 NN01 已更新"),
    zh("bonebase --lang zh-Hans site update HX --language zh-Hans   # 已登记的中心改用中文回执",
       expect="中心 HX 已更新"),
    zh("bonebase --lang zh-Hans site import sites.json", expect="中心 RJH01 已存在，保持不变"),
    same("bonebase synth --sites 4 --cases-per-site 100 --seed 8 --out synth",
         "bonebase synth --sites 4 --cases-per-site 100 --seed 8 --out synth",
         "the English guide's synthetic hospitals, generated once",
         subs=(("--sites 4 --cases-per-site 100", "--sites 2 --cases-per-site 22"),)),
    same("cp -r synth/HX/submission submission    # HX 的导出：下面例子发送的文件夹",
         "cp -r synth/HX/submission submission    # HX's export: the folder the examples below "
         "send", "the English guide's copy of HX's export"),
    zh("bonebase --lang zh-Hans validate submission --site HX --open    # 并打印 Data Docs 的 "
       "index.html 路径", rc=1, note="exit 1: the synthetic submission has injected faults",
       expect=r"中心 HX：22 行，\d+ 个文件：提交后将接收病例 \d+ 例[\s\S]*隔离 +[a-z_]+ [\s\S]*"
       r"处理方法：请[\s\S]*Data Docs 校验报告：\S+index\.html"),
    same("bonebase validate submission --site HX --json    # 完整的预测（JSON，代码同英文），供脚本使用",
         "bonebase validate submission --site HX --json    # the whole prediction, for scripts",
         "the JSON prediction does not depend on the language: run by the English guide"),
    zh("bonebase --lang zh-Hans submit submission --site HX",
       expect="提交 {submission} 已入库过：没有任何改动"),
    same("bonebase submit submission.zip --site HX                      # 同一提交的 zip 包",
         "bonebase submit submission.zip --site HX",
         "the English guide's command (the same submission: 'already ingested'), run once there"),
    same("bonebase submit s3://bucket/incoming/HX/2026-11/ --site HX     # 或 S3 前缀下的同一提交",
         "bonebase submit s3://bucket/incoming/HX/2026-11/ --site HX",
         "the English guide's command (the same submission: 'already ingested'), run once there",
         subs=(("s3://bucket/", "s3://{bucket}/"),)),
    same("bonebase submit submission --site HX --json      # 完整的 JSON 回执",
         "bonebase submit submission --site HX --json      # the whole receipt as JSON",
         "the JSON receipt does not depend on the language: run by the English guide"),
    zh("bonebase --lang zh-Hans submissions list --site HX",
       expect=r"接收时间[\s\S]*\b{submission}\W+HX\W+done"),
    zh("bonebase submissions show 12           # Markdown 回执，使用中心的语言（HX 已设为中文）",
       subs=(("show 12", "show {submission}"),),
       expect=r"# 回执：中心 HX 的提交 {submission}[\s\S]*接收病例：\d+ 例[\s\S]*## 隔离项"),
    same("bonebase submissions show 12 --json    # JSON 回执：字段和原因代码与英文回执相同",
         "bonebase submissions show 12 --json    # the JSON receipt",
         "the JSON receipt does not depend on the language: run by the English guide",
         subs=(("show 12", "show {submission}"),)),
    zh("bonebase --lang en submissions show 12    # --lang 优先：同一份回执的英文版",
       subs=(("show 12", "show {submission}"),),
       expect="# Receipt: submission {submission} from site HX"),
    zh("bonebase --lang zh-Hans quarantine list --site HX                 # 待处理的隔离项（默认 "
       "--status open）", expect=r"原因[\s\S]*待处理"),
    zh("bonebase quarantine list --site HX --status all --json", then=_pick_open_items,
       note="run again (the English guide's items are taken): two open items for the lines below"),
    zh("bonebase --lang zh-Hans quarantine show 345", subs=(("show 345", "show {held_file_id}"),),
       expect=r"隔离项 {held_file_id}：中心 HX，提交 \d+[\s\S]*原因：[\s\S]*处理方法："),
    zh("bonebase --lang zh-Hans quarantine release 347 --reason \"中心已在提交 13 中重新提交更正后的行\"",
       subs=(("release 347", "release {zh_release_id}"),),
       expect="隔离项 {zh_release_id} 已放行"),
    zh("bonebase --lang zh-Hans quarantine discard 348 --reason \"屏幕截图，不是图像\" --by steward-ann",
       subs=(("discard 348", "discard {zh_discard_id}"),),
       expect="隔离项 {zh_discard_id} 已弃用"),
    zh("bonebase --lang zh-Hans site quality            # 所有医院", expect=r"接收率[\s\S]*\bHX\b"),
    same("bonebase site quality HX --json", "bonebase site quality HX --json",
         "the JSON scorecard does not depend on the language: run by the English guide"),
    zh("bonebase --lang zh-Hans site update HX --language en   # 练习结束：HX 的回执改回英文",
       expect="中心 HX 已更新"),
]
