"""The walk's table of docs/btxrd.md: every shell line, run as a real `bonebase` process in a home
of its own, by tests/importers/test_btxrd_import.py (which then checks the database and the
case page)."""

from __future__ import annotations

import re

from tests.e2e.guide_walk import NOT_RUN, RUN, Entry

DOC = "docs/btxrd.md"


def _imported(walk, out: str) -> None:
    counts = re.findall(r"(BTXRD\d): submission (\d+), (\d+) rows -> (\d+) cases accepted", out)
    assert [c[0] for c in counts] == ["BTXRD1", "BTXRD2", "BTXRD3"], out
    walk.values["accepted"] = sum(int(c[3]) for c in counts)


TABLE = [
    Entry(DOC, "bonebase import btxrd-sample btxrd-sample --images 24 --zip btxrd-sample.zip   # 24 "
          "rows with the bad inputs, also zipped as a download comes", RUN,
          expect=r"24 rows .* 7 bad inputs"),
    Entry(DOC, "bonebase import btxrd btxrd-sample --as-submission btxrd-check   # look first: each "
          "centre's submission folder, nothing ingested", RUN,
          expect=r"BTXRD1: btxrd-check/BTXRD1 \(\d+ rows, \d+ findings"),
    Entry(DOC, "bonebase import btxrd btxrd-sample                          # sites BTXRD1-3, one "
          "submission each, receipts", RUN, expect=r"one_hot_group: 1", then=_imported),
    Entry(DOC, "bonebase quarantine list --site BTXRD1                      # what was held, with "
          "its reason", RUN, expect=r"BTXRD1"),
    Entry(DOC, "bonebase import btxrd btxrd-sample.zip                      # the same download "
          "as a zip: already imported, nothing added", RUN,
          expect=r"(?s)BTXRD1: .*already imported: nothing added.*BTXRD3: .*already imported"),
    Entry(DOC, "bonebase import btxrd ~/Downloads/BTXRD.zip                 # or the unpacked "
          "folder", NOT_RUN,
          note="the real download is not reachable here; the line above runs the same command "
               "on the sample's zip"),
    Entry(DOC, 'bonebase import btxrd BTXRD --sites 1=HOSP1:"BTXRD hospital",2=RADIOP,3=MEDPIX   '
          "# your own site codes", NOT_RUN,
          note="the same import under other codes would ingest the sample a second time (3 more "
               "flow runs); --sites is parsed and checked by tests/importers/test_btxrd_table.py"
               "::test_sites_option and the import path is the one the lines above run"),
]
