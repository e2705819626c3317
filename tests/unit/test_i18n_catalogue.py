"""The ``bonebase`` gettext domain (#25): every message the code marks is in the catalogue,
translated into Simplified Chinese, and the compiled ``.mo`` files say what the ``.po`` files
say (a ``.po`` edited without `make i18n` would leave the program speaking the old text)."""

from __future__ import annotations

import gettext
import string
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from bonebase.i18n import LOCALE_DIR

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("bonebase", "flows", "validation")  # as `make i18n` extracts the domain


@pytest.fixture(scope="module")
def extracted() -> set[str]:
    found = set()
    for folder in FOLDERS:
        for _file, _line, message, _comments, _context in extract_from_dir(
                ROOT / folder, method_map=[("**.py", "python")], keywords=DEFAULT_KEYWORDS):
            found.add(message if isinstance(message, str) else message[0])
    return found


def _po(locale: str):
    with open(LOCALE_DIR / locale / "LC_MESSAGES" / "bonebase.po", "rb") as f:
        return read_po(f, locale=locale)


def test_every_marked_message_is_in_the_catalogues(extracted):
    assert len(extracted) > 150  # receipts, reason fixes and templates, CLI messages
    for locale in ("en", "zh_Hans"):
        ids = {m.id for m in _po(locale) if m.id}
        missing = sorted(extracted - ids)
        assert not missing, f"{locale}: run `make i18n` and translate: {missing[:5]}"


def test_chinese_translates_every_message_with_the_same_placeholders():
    for m in _po("zh_Hans"):
        if not m.id:
            continue
        assert m.string and "fuzzy" not in m.flags, f"untranslated: {m.id!r}"
        assert m.string != m.id or not any(c.isalpha() for c in m.id), m.id
        names = lambda text: {f[1] for f in string.Formatter().parse(text) if f[1]}  # noqa: E731
        assert names(m.string) == names(m.id), f"placeholders differ: {m.id!r}"


def test_the_compiled_catalogue_says_what_the_po_file_says():
    for locale in ("en", "zh_Hans"):
        compiled = gettext.translation("bonebase", LOCALE_DIR, languages=[locale])
        stale = [m.id for m in _po(locale)
                 if m.id and compiled.gettext(m.id) != (m.string or m.id)]
        assert not stale, f"{locale}: bonebase.mo is stale, run `make i18n`: {stale[:3]}"
