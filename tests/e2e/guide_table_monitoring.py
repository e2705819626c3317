"""The walk's table of docs/monitoring.md: every shell line, run as a real process in the watch's
world of tests/monitor (a champion trained on HX; HXC like it, HXD re-exposed), by
tests/monitor/test_guide.py."""

from __future__ import annotations

import json

from tests.e2e.guide_walk import NOT_RUN, RUN, Entry, Step

DOC = "docs/monitoring.md"


def _check_ids(walk, out: str) -> None:
    site = json.loads(out)["sites"][0]
    assert site["site"] == "HXD" and site["alerts"], out
    walk.values["check"] = str(site["drift_check"])


def _report_is_offline(walk, out: str) -> None:
    html = (walk.cwd / "drift.html").read_text()
    assert "<svg" in html and "<script" not in html and "Alert" in html


def _ack_then_recheck(walk) -> None:
    walk.sh("bonebase monitor status", expect=r"HXD(?!.*ALERT)")
    alerts = walk.values["recheck"]("HXD")  # the test's: bonebase.monitor.watch.check_site
    assert [a["kind"] for a in alerts] == ["drift"], alerts


TABLE = [
    Entry(DOC, "bonebase monitor run                       # score what the champion has not "
          "scored, check every site", RUN, rc=1, expect=r"ALERT HXD drift"),
    Entry(DOC, "bonebase monitor run --submission 7        # one submission's radiographs and "
          "its site only", RUN, subs=(("7", "{like_submission}"),), expect="no alert"),
    Entry(DOC, "bonebase monitor status                    # one row per site: n, AUC, "
          "sensitivity, specificity, ECE, drift share, alert", RUN, expect=r"HXD.*ALERT"),
    Entry(DOC, "bonebase monitor status --site HXD --json  # one site, with the check ids and the "
          "monthly figures", RUN, then=_check_ids),
    Entry(DOC, "bonebase monitor report CHECK --out drift.html   # the drift check's HTML report "
          "(offline: no script, no CDN)", RUN, subs=(("CHECK", "{check}"),),
          then=_report_is_offline),
    Entry(DOC, 'bonebase monitor ack CHECK --by "A. Engineer" --reason "new detector at HXD; '
          'retraining with its cases"', RUN, subs=(("CHECK", "{check}"),),
          expect="acknowledged by A. Engineer"),
    Entry(DOC, "bonebase synth --out /tmp/wsynth --sites 5 --cases-per-site 40 --seed 5",
          NOT_RUN, note="the benchmark's data (128 MB); `bonebase synth` is walked in "
          "docs/stewards.md"),
    Entry(DOC, "python benchmarks/ingest.py --watch --data /tmp/wsynth --repeat 2", NOT_RUN,
          note="a benchmark of minutes; the Cost table comes from running it (early scoring "
          "itself is tested in tests/monitor/test_early.py)"),
    Step("the acknowledged alert is off the table; the next check of HXD raises it again (as the "
         "guide says; checked in process, a third `monitor run` costs a minute), leaving the "
         "world as the other tests of tests/monitor expect it", _ack_then_recheck),
]
