"""The case list's filters: parsed from the query string, checked against the vocabularies.

A bad value never reaches SQL: it becomes a message that names the field, the value and what
is accepted, shown above an empty list (HTTP 400), never a 500. The messages are ``web`` gettext
msgids (#25): the caller passes ``tr``, the translation into the page's language.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields

from bonebase.i18n import N_
from bonebase.vocab import DIAGNOSES, LONG_BONES, OTHER_BONES, SEGMENTS, Behaviour

LOCATIONS = tuple(sorted([f"{s}_{b}" for b in LONG_BONES for s in SEGMENTS] + list(OTHER_BONES)))
SEXES = {"M": "male", "F": "female", "O": "other"}
MODALITIES = ("XR", "CR", "DX", "CT", "MR")
BEHAVIOURS = tuple(b.value for b in Behaviour)
SITE_RE = re.compile(r"^[A-Z0-9]{2,8}$")
MAX_AGE = 120
Translate = Callable[[str], str]


def _untranslated(message: str) -> str:
    return message


def _say(tr: Translate, message: str, **values) -> str:
    return tr(message) % values


@dataclass(frozen=True)
class CaseFilters:
    site: str | None = None
    diagnosis: str | None = None
    behaviour: str | None = None
    location: str | None = None
    age_min: int | None = None
    age_max: int | None = None
    sex: str | None = None
    modality: str | None = None
    dataset: int | None = None

    def query(self) -> dict[str, str]:
        """The non-empty filters as query-string parameters (for paging links)."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) is not None}

    @property
    def active(self) -> bool:
        return bool(self.query())


def _int(name: str, raw: str, errors: list[str], lo: int, hi: int,
         tr: Translate = _untranslated) -> int | None:
    if not re.fullmatch(r"\d{1,9}", raw):
        errors.append(_say(tr, N_("%(name)s=%(value)s is not a whole number; use %(lo)s to %(hi)s"),
                           name=name, value=repr(raw), lo=lo, hi=hi))
        return None
    value = int(raw)
    if not lo <= value <= hi:
        errors.append(_say(tr, N_("%(name)s=%(value)s is out of range; use %(lo)s to %(hi)s"),
                           name=name, value=value, lo=lo, hi=hi))
        return None
    return value


def _choice(name: str, raw: str, allowed, errors: list[str], tr: Translate) -> str | None:
    if raw in allowed:
        return raw
    shown = ", ".join(list(allowed)[:12]) + (", …" if len(allowed) > 12 else "")
    errors.append(_say(tr, N_("%(name)s=%(value)s is not known; choose one of %(shown)s"),
                       name=name, value=repr(raw), shown=shown))
    return None


def parse_filters(params, tr: Translate = _untranslated) -> tuple[CaseFilters, list[str]]:
    """Filters from query parameters (a mapping of str → str) and the messages for bad ones,
    in the language of ``tr`` (a msgid's translation)."""
    errors: list[str] = []
    raw = {k: (params.get(k) or "").strip() for k in (f.name for f in fields(CaseFilters))}
    out: dict[str, object] = {}
    if raw["site"]:
        site = raw["site"].upper()
        if SITE_RE.match(site):
            out["site"] = site
        else:
            errors.append(_say(tr, N_("site=%(value)s is not a site code (2-8 letters or digits)"),
                               value=repr(raw["site"])))
    if raw["diagnosis"]:
        out["diagnosis"] = _choice("diagnosis", raw["diagnosis"], DIAGNOSES, errors, tr)
    if raw["behaviour"]:
        out["behaviour"] = _choice("behaviour", raw["behaviour"], BEHAVIOURS, errors, tr)
    if raw["location"]:
        out["location"] = _choice("location", raw["location"], LOCATIONS, errors, tr)
    if raw["sex"]:
        out["sex"] = _choice("sex", raw["sex"].upper(), SEXES, errors, tr)
    if raw["modality"]:
        out["modality"] = _choice("modality", raw["modality"].upper(), MODALITIES, errors, tr)
    for name in ("age_min", "age_max"):
        if raw[name]:
            out[name] = _int(name, raw[name], errors, 0, MAX_AGE, tr)
    if raw["dataset"]:
        out["dataset"] = _int("dataset", raw["dataset"], errors, 1, 10**9, tr)
    lo, hi = out.get("age_min"), out.get("age_max")
    if lo is not None and hi is not None and lo > hi:
        errors.append(_say(tr, N_("age_min=%(lo)s is above age_max=%(hi)s; swap them"), lo=lo, hi=hi))
    return CaseFilters(**{k: v for k, v in out.items() if v is not None}), errors


def parse_cursor(params, errors: list[str],
                 tr: Translate = _untranslated) -> tuple[int | None, int | None]:
    """Keyset position: ``after`` (next page) or ``before`` (previous page), a case id."""
    after = before = None
    if params.get("after"):
        after = _int("after", params["after"].strip(), errors, 0, 2**62, tr)
    if params.get("before"):
        before = _int("before", params["before"].strip(), errors, 0, 2**62, tr)
    return after, before
