"""What the pages' Chinese costs (#25): the case list and the statistics page rendered in
Simplified Chinese against the same pages in English, in one process.

    python benchmarks/web_i18n.py [--rows 50] [--repeats 300]

Renders the web app's own templates (web/render.py's environment: Jinja2's i18n extension, the
``web`` catalogue, the ``term`` filter) with a page of ``--rows`` cases drawn from the
vocabularies, no database and no HTTP: what is timed is only what the language changes. English
is the reference (its catalogue is empty: every message is its own msgid, the vocabulary's codes
are shown as stored); the two languages take turns. Prints the median and the range (5th-95th
percentile) of each, by wall time and by the thread's CPU time, and the ratio zh-Hans/en at the
median.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from starlette.requests import Request  # noqa: E402

from bonebase import i18n  # noqa: E402
from bonebase.vocab import DIAGNOSES  # noqa: E402
from web.charts import bar_chart  # noqa: E402
from web.filters import BEHAVIOURS, LOCATIONS, MODALITIES, SEXES, CaseFilters  # noqa: E402
from web.render import templates  # noqa: E402
from web.terms import term  # noqa: E402


def _request(path: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": path, "query_string": b"",
                    "headers": [], "scheme": "http", "server": ("bench", 80)})


def _cases_context(rows: int, rng: random.Random) -> dict:
    codes = sorted(DIAGNOSES)
    page = [{"id": i, "case_pseudonym": f"S{i % 12:02d}-{i:010x}", "site": f"S{i % 12:02d}",
             "age": rng.randint(5, 80), "sex": rng.choice("MF"),
             "location_code": rng.choice(LOCATIONS), "diagnosis_code": rng.choice(codes),
             "behaviour": rng.choice(BEHAVIOURS), "modalities": "XR;CT"} for i in range(rows)]
    return {"request": _request("/cases"), "filters": CaseFilters(), "errors": [],
            "choices": {"sites": [f"S{i:02d}" for i in range(12)],
                        "diagnoses": sorted((d.code, d.name) for d in DIAGNOSES.values()),
                        "behaviours": BEHAVIOURS, "locations": LOCATIONS, "sexes": SEXES,
                        "modalities": MODALITIES},
            "rows": page, "total": 100_000, "cap": 10_000, "newer": None, "older": {"after": 1}}


def _stats_context(lang: str, rng: random.Random) -> dict:
    counts = {kind: [(v, rng.randint(1, 900)) for v in values] for kind, values in (
        ("diagnosis", sorted(DIAGNOSES)), ("behaviour", BEHAVIOURS), ("location", LOCATIONS))}
    # The route's work: the terms in the page's language, the titles translated, the charts drawn
    charts = [bar_chart([(term(k, kind, lang), n) for k, n in items],
                        title=i18n._(f"Cases by {kind}", lang, "web"),
                        others=i18n._("%(n)d others", lang, "web"))
              for kind, items in counts.items()]
    return {"request": _request("/stats"), "charts": charts, "stats": counts,
            "total": sum(n for _, n in counts["diagnosis"])}


def _time(name: str, contexts: dict, repeats: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """Milliseconds per render of each language by ``clock``, the languages taking turns (a
    busy machine's load falls on both alike)."""
    template = templates.env.get_template(name)
    out: dict[str, list[float]] = {lang: [] for lang in contexts}
    for _ in range(repeats):
        for lang, context in contexts.items():
            common = {"user": None, "csrf_field": "csrf_token", "csrf_token": "0" * 64,
                      "open_data": True, "lang": lang, "languages": i18n.NATIVE_NAMES}
            start = clock()
            with i18n.language(lang):
                template.render({**common, **context()})
            out[lang].append((clock() - start) * 1000)
    return out


def _summary(ms: list[float]) -> tuple[float, str]:
    q = statistics.quantiles(ms, n=20)
    return statistics.median(ms), f"{q[0]:.2f}-{q[-1]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=50, help="cases on the list page (default 50)")
    ap.add_argument("--repeats", type=int, default=300, help="renders per page and language")
    args = ap.parse_args()
    rng = random.Random(25)
    cases = _cases_context(args.rows, rng)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rows} rows, {args.repeats} renders "
          "each; milliseconds: median (5th-95th percentile)")
    for name, context in (("cases.html", lambda lang: (lambda: cases)),
                          ("stats.html", lambda lang: (lambda: _stats_context(lang, rng)))):
        contexts = {lang: context(lang) for lang in ("en", "zh-Hans")}
        _time(name, contexts, 20)  # warm: compiled template, loaded catalogue, cached terms
        # Wall time, and the thread's CPU time (on a loaded machine the steadier of the two)
        for what, clock in (("wall", time.perf_counter), ("cpu", time.thread_time)):
            medians = {}
            for lang, ms in _time(name, contexts, args.repeats, clock).items():
                medians[lang], spread = _summary(ms)
                print(f"  {name:<11} {what:<4} {lang:<8} {medians[lang]:7.2f} ms  ({spread})")
            print(f"  {name:<11} {what:<4} zh-Hans/en = {medians['zh-Hans'] / medians['en']:.2f}x")


if __name__ == "__main__":
    main()
