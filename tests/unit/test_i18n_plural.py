"""Plural messages (``ngettext``) keep their English like ``_``'s: a person reads the form of
their language, records keep the English form for the same count."""

from __future__ import annotations

import pickle
import re

import pytest

from bonebase.i18n import Message, english, language, ngettext

ZH = "zh-Hans"
_HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize(("n", "english_form"), [(1, "1 case"), (3, "3 cases")])
def test_a_plural_message_in_chinese_keeps_its_english(n, english_form):
    with language(ZH):
        shown = ngettext("%(n)s case", "%(n)s cases", n, domain="web") % {"n": n}
    assert isinstance(shown, Message)
    assert shown == f"{n} 例病例"  # Chinese has one form, translated from the catalogue
    assert shown.english == english_form and not _HAN.search(english(shown))
    copy = pickle.loads(pickle.dumps(shown))
    assert (str(copy), copy.english) == (str(shown), shown.english)


def test_format_and_concatenation_carry_a_plurals_english():
    with language(ZH):
        count = ngettext("%(count)s image", "%(count)s images", 2, domain="web") % {"count": 2}
        line = ngettext("{n} case matches", "{n} cases match", 2).format(n=2) + "; " + count
    assert _HAN.search(line)
    assert line.english == "2 cases match; 2 images"


def test_percent_formatting_takes_a_tuple_a_single_value_and_messages_as_values():
    with language(ZH):
        shown = ngettext("%(n)s case", "%(n)s cases", 2, domain="web")
    assert Message("%s of %d", "%s of %d") % ("a", 2) == "a of 2"
    assert (Message("%s", "%s") % shown).english == "%(n)s cases"
    assert (Message("%s, %s", "%s, %s") % (shown, "x")).english == "%(n)s cases, x"


def test_english_itself_follows_englishs_rule():
    assert ngettext("{n} file", "{n} files", 0, lang="en").english == "{n} files"
    assert ngettext("{n} file", "{n} files", 1, lang="en") == "{n} file"


def test_a_form_that_shows_no_number_formats_to_itself():
    """English's singular "one file" (no placeholder) with a count: itself, in the text and in
    its English, as gettext allows; a form with placeholders and wrong values still raises."""
    one = ngettext("one file", "%d files", 1, lang="en") % 1
    assert (str(one), one.english) == ("one file", "one file")
    many = ngettext("one file", "%d files", 3, lang="en") % 3
    assert (str(many), many.english) == ("3 files", "3 files")
    shown = Message("%d 个文件", "one file") % 1
    assert (str(shown), shown.english) == ("1 个文件", "one file")
    assert (Message("100%% sure", "100%% sure") % ()).english == "100% sure"
    with pytest.raises(TypeError):
        Message("%s and %s", "%s and %s") % 1
