"""Data Docs that work offline, and the summary of a run that the web database shows.

Neither imports Great Expectations (the web app reads the summary and rewrites old pages).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

# --- offline pages --------------------------------------------------------------------------
# GX's page templates link their CSS/JS from public CDNs; hospital networks cannot reach them.
# Each link is pointed at the copy under web/static/vendor (see its README: npm packages, the
# versions GX links), or dropped when bonebase's pages do not use the library.

VENDOR = Path(__file__).resolve().parents[1] / "web" / "static" / "vendor"
_CDN: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap-4.3.1/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap-4.3.1/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js-1.12.9/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table-1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table-1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.1/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free-6.6.0/css/all.min.css",
    # bootstrap-table's filter control calls it while building every table
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js": "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css": "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css",
}
# <script ...></script>, <link ...> and <img ...> tags (GX writes attributes over several lines).
_TAG = re.compile(r"<(script|link|img)\b([^>]*)>(?:\s*</script>)?", re.IGNORECASE)
_URL = re.compile(r"""\b(src|href)\s*=\s*(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_SRI = re.compile(r"""\s(?:integrity|crossorigin)\s*=\s*(["']).*?\1""", re.IGNORECASE)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
_GX_LOGO = "great-expectations-web-assets"
_GX_STATIC = re.compile(r"^((?:\.\./)*|\./)static/(images/.*)$")


def offline_html(html: str, vendor: str, static: str) -> str:
    """``html`` with every asset a browser would fetch from elsewhere pointed at ``vendor``
    (a URL prefix ending in "/") or at GX's own ``static`` folder (the logo), or removed."""

    def tag(match: re.Match) -> str:
        name, attrs = match.group(1).lower(), match.group(2)
        found = _URL.search(attrs)
        if found is None:
            return match.group(0)
        url = found.group(3).strip()
        if not _EXTERNAL.match(url):
            # GX's own static files, named from the page's depth (its validation pages climb
            # one level short for the favicon): from the docs folder's static/ instead.
            own = _GX_STATIC.match(url)
            if own is None or own.group(1) + "static/" == static:
                return match.group(0)
            local = static + own.group(2)
        elif name == "img" and _GX_LOGO in url:
            local = f"{static}images/logo-long.png"
        elif _CDN.get(url):
            local = vendor + _CDN[url]
        else:
            return ""  # a library bonebase's reports do not use, or an unknown host: not loaded
        attrs = _SRI.sub("", attrs[: found.start(3)] + local + attrs[found.end(3):])
        return f"<{match.group(1)}{attrs}>" + ("</script>" if name == "script" else "")

    return _TAG.sub(tag, html)


def link_tree(source: Path, target: Path, *, skip: set[str] = frozenset()) -> None:
    """The files under ``source`` at the same places under ``target``: hard links (no bytes
    copied), or copies where the file system refuses links. Files already there are kept."""
    for item in source.rglob("*"):
        dest = target / item.relative_to(source)
        if item.is_dir() or item.name in skip or dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(item, dest)
        except OSError:  # another file system, or links not allowed
            shutil.copyfile(item, dest)


def make_offline(docs_dir: Path) -> None:
    """Rewrite the Data Docs pages under ``docs_dir`` to load only files beside them, and put
    the vendored assets in ``docs_dir/static/vendor`` (hard links where the file system allows).
    Idempotent: pages already rewritten are left as they are."""
    target = docs_dir / "static" / "vendor"
    link_tree(VENDOR, target, skip={"README.md"})
    for page in docs_dir.rglob("*.html"):
        if page.is_relative_to(target):
            continue
        up = "../" * (len(page.relative_to(docs_dir).parts) - 1)
        text = page.read_text(encoding="utf-8")
        # GX 1.x reads a data asset name from legacy batch kwargs a pandas batch lacks.
        new = offline_html(text, f"{up}static/vendor/", f"{up}static/").replace(
            "<br> Data asset: None<br>", "<br>")
        if new != text:
            page.write_text(new, encoding="utf-8")


# --- bonebase's own report ------------------------------------------------------------------
# The web database renders validation results in its own page (web/templates/validation.html)
# from this summary of GX's suite results: what every expectation checked, its verdict and a
# few failing records. GX validated masked copies (validation/gx_view.py), so the values here
# are tokens and redacted paths, as in the Data Docs pages.

SUMMARY = "validation.json"
_EXAMPLES = 20  # failing records shown per expectation
_TEXT = 80  # characters of one value shown


def _short(value: Any) -> Any:
    """A value for the page: numbers and short text as they are, long text cut."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= _TEXT else f"{text[:_TEXT]}… ({len(text)} characters)"


def _expectation(res: Any) -> dict:
    config, result = res.expectation_config, res.result or {}
    meta, kwargs = config.meta or {}, config.kwargs or {}
    column = kwargs.get("column") or ", ".join(kwargs.get("column_list") or ()) or None
    error = None
    if (res.exception_info or {}).get("raised_exception") or any(
        isinstance(v, dict) and v.get("raised_exception")
        for v in (res.exception_info or {}).values()
    ):
        error = "the check could not run (see the Data Docs page for GX's message)"
    records = result.get("unexpected_index_list") or []
    examples = [{k: _short(v) for k, v in r.items()} if isinstance(r, dict) else _short(r)
                for r in records[:_EXAMPLES]]
    if not examples:
        examples = [_short(v) for v in (result.get("partial_unexpected_list") or [])[:_EXAMPLES]]
    observed = result.get("observed_value")
    return {
        "expectation": config.type,
        "column": column,
        "field": meta.get("field"),
        "reason": meta.get("reason"),
        "severity": meta.get("severity", "error"),
        "success": bool(res.success),
        "checked": result.get("element_count"),
        "unexpected": result.get("unexpected_count"),
        "observed": None if observed is None else _short(observed),
        "examples": examples,
        "error": error,
    }


def summary(results: dict[Any, Any]) -> dict:
    """The JSON-ready summary of one run's suite results (validation result id -> result)."""
    suites = []
    for suite_result in results.values():
        stats = suite_result.statistics or {}
        suites.append({
            "suite": suite_result.suite_name,
            "success": bool(suite_result.success),
            "evaluated": stats.get("evaluated_expectations", 0),
            "failed": stats.get("unsuccessful_expectations", 0),
            "expectations": [_expectation(r) for r in suite_result.results],
        })
    return {"suites": suites}


def write_summary(docs_dir: Path, results: dict[Any, Any]) -> Path:
    """Write :func:`summary` to ``docs_dir/validation.json`` (whole or not at all)."""
    path = docs_dir / SUMMARY
    part = path.with_name(f".{SUMMARY}.part")
    part.write_text(json.dumps(summary(results), indent=1, default=str), encoding="utf-8")
    part.replace(path)
    return path
