"""A detector of identifying text in free-text attributes (descriptions, comments, histories).

Used when a site keeps descriptors (the Clean Descriptors option of PS3.15; off by default, when
the Basic Profile removes them). What it removes from a text:

- every value read from the file's own identifying attributes (the patient's and other people's
  names, IDs, dates, the institution...), as whole words, case- and punctuation-tolerant
  (``deid_scan.Matcher``: "DOE^JOHN", "john doe" and "Doe, John" all match);
- other people's names: a title followed by a capitalised word ("Dr. Miller", "Mrs Kowalski"),
  a first name from Faker's person providers (about 20,000 first names in Latin script
  from every locale, romanised Chinese and Japanese ones too; MIT, shipped in the package,
  nothing is downloaded) followed by a capitalised word
  ("John Miller"), the same reversed ("Miller, John") and DICOM person-name notation
  ("MILLER^JOHN");
- record numbers ("MRN 555-1234", "ID: A12345", "#448812") and any token with five or more
  digits; telephone numbers; e-mail addresses; street addresses ("12 Baker Street",
  "Hauptstr. 5"); dates in numeric and written forms ("03/04/2019", "4 March 2019").

Clinical text without those ("non-ossifying fibroma of distal tibia", "T1 FSE 3 mm") passes
unchanged. Presidio's analyzer was not used: its name recogniser is a spaCy model, which would
have to come from outside the package registries, and its pattern recognisers are regular
expressions like these.
"""

from __future__ import annotations

import re
from functools import cache

from bonebase.dicom import deid_scan

# Kinds of identifying text the detector names (counts, never the text, are reported).
NAME, RECORD, PHONE, EMAIL, ADDRESS, DATE, OWN = (
    "name", "record number", "telephone number", "e-mail", "address", "date", "own value")

_MONTHS = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
           r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|"
           r"j[äa]n(?:ner)?|m[äa]rz|mai|okt(?:ober)?|dez(?:ember)?|janvier|f[ée]vrier|mars|avril|"
           r"juin|juillet|ao[uû]t|septembre|octobre|novembre|d[ée]cembre)\.?")
_STREET = (r"(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|way|court|ct|"
           r"place|pl|square|sq|terrace|close|crescent|highway|hwy)\.?")
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (EMAIL, re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
    (DATE, re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\.?\s+{_MONTHS}\s+\d{{2,4}}\b"
                      rf"|\b{_MONTHS}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{2,4}}\b", re.I)),
    (DATE, re.compile(r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b")),
    (ADDRESS, re.compile(rf"\b\d{{1,5}}[a-z]?,?\s+(?:[A-Za-zÀ-ÿ'-]+\s+){{0,3}}{_STREET}(?!\w)"
                         r"|\b[A-Za-zÀ-ÿ-]+(?:stra(?:ss|ß)e|str\.|weg|gasse|platz|allee)\s*\d{1,5}"
                         r"|\b\d{1,5},?\s+(?:rue|avenue|boulevard|via|viale|calle|plaza)\s+"
                         r"(?:[A-Za-zÀ-ÿ'-]+\s*){1,4}", re.I)),
    (RECORD, re.compile(r"(?:\b(?:mrn|mr|med(?:ical)?\s+rec(?:ord)?|record|rec|pat(?:ient)?|"
                        r"id|acc(?:ession)?|hosp(?:ital)?|case|file|chart|nhs|ssn|no|nr|num(?:ber)?)"
                        r"\b\.?\s*(?:no\.?|nr\.?|number|#)?\s*[:#]?\s*|#\s*)"
                        r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,}\b", re.I)),
    (PHONE, re.compile(r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,5}\)[\s.-]?)?\d{2,5}(?:[\s.-]\d{2,5}){1,4}")),
    (RECORD, re.compile(r"\b[A-Z]{0,4}\d(?:[\d-]*\d){4,}[A-Z]{0,2}\b", re.I)),
)
# Titles as written before a name ("Dr", "Mrs", "Prof."; upper case only with a full stop,
# since "MR" and "DR" are also modalities).
_TITLE = re.compile(r"\b(?:(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Sir|Herr|Frau|Mme|Mlle|Sr|Sra|Sig|Dott)\.?"
                    r"|(?:DR|MR|MRS|MS|PROF)\.)\s+(?:[A-Z][\w'’-]*\.?\s+){0,2}[A-Z][\w'’-]+")
_CAP = r"[A-ZÀ-Þ][\w'’-]+"
_PN_NOTATION = re.compile(r"\b[A-Za-zÀ-ÿ'-]+\^[A-Za-zÀ-ÿ'^-]+")
_PAIR = re.compile(rf"\b({_CAP})(,?)\s+({_CAP})")
# Words that are first names in the list but also ordinary words in radiology text.
_NOT_NAMES = frozenset("""
    ap pa lat left right bone knee chest hand foot hip spine skull femur tibia fibula humerus
    radius ulna pelvis ankle wrist elbow shoulder body head neck leg arm view series study
    image scan axial coronal sagittal contrast with without pre post follow up and the of in on
    for to at by as is are was mass lesion tumour tumor biopsy case report trauma normal
    standing supine prone scout localizer t1 t2 fat sat flair dwi adc long short april may june
    august grace will mark rose joy hope faith chance page bill sunny dawn summer autumn winter
    ray x
    ewing brodie rosenberg harris hill smith barton jones bennett rolando baker morton""".split())
# (the last line: eponyms of radiology, "Ewing Sarcoma", "Jones Fracture", "Baker Cyst", that
# are first names in some locale's list)


_FIRST_NAME_LISTS = ("first_names", "first_names_male", "first_names_female",
                     "first_names_nonbinary", "first_romanized_names")


@cache
def first_names() -> frozenset[str]:
    """Casefolded first names in Latin script (3+ letters; accented names also without their
    accents) of Faker's person providers, every locale: about 20,000 names, offline."""
    import importlib
    import pkgutil
    import unicodedata

    import faker.providers.person as person

    names: set[str] = set()
    for module in pkgutil.iter_modules(person.__path__):
        provider = getattr(importlib.import_module(f"{person.__name__}.{module.name}"),
                           "Provider", None)
        for attr in _FIRST_NAME_LISTS:
            # Class attributes only (some providers define properties of the same name).
            value = next((k.__dict__[attr] for k in getattr(provider, "__mro__", ())
                          if attr in k.__dict__), None)
            if isinstance(value, (list, tuple, dict, set, frozenset)):
                names.update(n for n in value if isinstance(n, str))
    out = set()
    for name in names:
        if len(name) >= 3 and name.isalpha() and all(ch < "\u0250" for ch in name):
            out.add(name.casefold())
            plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
            out.add(plain.casefold())
    return frozenset(out - _NOT_NAMES)


def _names(text: str) -> list[tuple[int, int]]:
    spans = [m.span() for m in _TITLE.finditer(text)]
    spans += [m.span() for m in _PN_NOTATION.finditer(text)]
    known = first_names()
    for m in _PAIR.finditer(text):
        a, comma, b = m.group(1), m.group(2), m.group(3)
        first = b if comma else a  # "Miller, John" or "John Miller"
        other = a if comma else b
        if first.casefold() in known and other.casefold() not in _NOT_NAMES:
            spans.append(m.span())
    return spans


def find(text: str, matcher: deid_scan.Matcher | None = None) -> list[tuple[int, int, str]]:
    """Spans (start, end, kind) of identifying text in ``text``, overlapping spans merged."""
    spans: list[tuple[int, int, str]] = []
    if matcher is not None:
        for value, _ in matcher.in_text(text):
            spans += [(*m.span(), OWN) for m in deid_scan.scrub_pattern(value).finditer(text)]
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(text):
            if kind == PHONE and sum(ch.isdigit() for ch in m.group()) < 7:
                continue
            spans.append((*m.span(), kind))
    spans += [(*span, NAME) for span in _names(text)]
    spans.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in spans:
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, kind))
    return merged


def clean(text: str, matcher: deid_scan.Matcher | None = None) -> tuple[str, list[str]]:
    """``text`` without the identifying parts :func:`find` finds, and the kinds removed."""
    spans = find(text, matcher)
    if not spans:
        return text, []
    for start, end, _ in reversed(spans):
        text = text[:start] + " " + text[end:]
    text = re.sub(r"\s+(?=[,;:.])", "", re.sub(r"\s{2,}", " ", text))
    text = re.sub(r"([,;:])(?:[,;:])+", r"\1", text).strip(" ,;:-")
    return text.strip(), [kind for _, _, kind in spans]
