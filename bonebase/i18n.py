"""Languages (#25): gettext catalogues managed with Babel, Simplified Chinese and English.

Two domains, so that two parts of bonebase keep their catalogues apart:
- ``web``: the web database's templates and pages (web/);
- ``bonebase``: what reaches a data steward outside the browser: receipts, quarantine reasons,
  CLI messages (bonebase/).

Catalogues live in ``bonebase/locale/<locale>/LC_MESSAGES/<domain>.po`` with the compiled
``.mo`` beside them (both in the repository; ``make i18n`` extracts, updates and compiles).
Language codes that users and sites store are BCP 47 tags (``en``, ``zh-Hans``); gettext's
folder names are Babel locale ids (``en``, ``zh_Hans``).
"""

from __future__ import annotations

import gettext
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAINS = ("web", "bonebase")
#: stored tag -> Babel locale id (the folder name under LOCALE_DIR)
LANGUAGES = {"en": "en", "zh-Hans": "zh_Hans"}
DEFAULT = "en"
#: how each language names itself (the switch on every page, `--lang` help)
NATIVE_NAMES = {"en": "English", "zh-Hans": "简体中文"}

_current: ContextVar[str] = ContextVar("bonebase_language", default="")


def normalise(tag: str | None) -> str | None:
    """A supported stored tag for ``tag`` (``zh``, ``zh-CN``, ``zh_Hans``, ``zh-hans-CN`` ->
    ``zh-Hans``; ``en-GB`` -> ``en``), or None when bonebase has no such language."""
    if not tag:
        return None
    t = tag.strip().replace("_", "-").lower()
    if t.startswith("zh"):
        # Traditional Chinese (zh-Hant, zh-TW, zh-HK) is not Simplified: not offered as such
        if "hant" in t or t.endswith(("-tw", "-hk", "-mo")):
            return None
        return "zh-Hans"
    if t == "en" or t.startswith("en-"):
        return "en"
    return None


def negotiate(accept_language: str | None) -> str | None:
    """The best supported language of an HTTP ``Accept-Language`` header, by q-value."""
    best: tuple[float, int, str] | None = None
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = normalise(tag)
        if lang and q > 0 and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, lang)
    return best[2] if best else None


def cli_language() -> str:
    """The language of CLI messages: ``--lang`` (BONEBASE_LANG), then LC_ALL, LC_MESSAGES, LANG."""
    for var in ("BONEBASE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            lang = normalise(value.split(".")[0])
            if lang:
                return lang
            if var == "BONEBASE_LANG":
                # `bonebase --lang` refuses an unknown language; one set in the environment by
                # hand must not turn every translated message into a traceback: English, said once
                _warn_unknown(value)
                return DEFAULT
    return DEFAULT


@cache
def _warn_unknown(value: str) -> None:
    import logging

    logging.getLogger("bonebase").warning(
        "BONEBASE_LANG=%r is not a language bonebase has (%s): messages are in English",
        value, ", ".join(LANGUAGES))


@cache
def translations(lang: str, domain: str = "bonebase") -> gettext.NullTranslations:
    """The compiled catalogue of ``domain`` in ``lang`` (a stored tag); English falls back to
    the message ids themselves."""
    locale = LANGUAGES.get(normalise(lang) or DEFAULT, DEFAULT)
    return gettext.translation(domain, LOCALE_DIR, languages=[locale], fallback=True)


def current() -> str:
    """The language of the work in progress (set_language), else the CLI's."""
    return _current.get() or cli_language()


def set_language(lang: str):
    """Make ``lang`` current for this context (a request, a receipt); returns the reset token."""
    return _current.set(normalise(lang) or DEFAULT)


def N_(message: str) -> str:
    """Marks a module-level ``message`` for ``pybabel extract`` (Babel's default keywords hold
    ``N_``); it is translated where it is shown, with :func:`_`."""
    return message


@contextmanager
def language(lang: str) -> Iterator[str]:
    """``lang`` current inside the ``with`` block (a page being rendered, a receipt written)."""
    token = set_language(lang)
    try:
        yield _current.get()
    finally:
        _current.reset(token)


class Message(str):
    """A translated message that keeps its English (``.english``): people read the text in
    their language, records (a JSON receipt, the audit log, the database) keep the English.
    ``format``, ``%`` (the web catalogue's ``%(n)s`` plurals) and ``+`` carry the English along;
    anything else (``join``, f-strings, slicing) gives a plain ``str`` whose English is itself."""

    __slots__ = ("english",)

    def __new__(cls, text: str, english: str | None = None) -> Message:
        self = super().__new__(cls, text)
        self.english = str(text) if english is None else str(english)
        return self

    def format(self, *args, **kwargs) -> Message:
        return Message(str.format(self, *args, **kwargs),
                       self.english.format(*map(english, args),
                                           **{k: english(v) for k, v in kwargs.items()}))

    def __mod__(self, values) -> Message:
        if isinstance(values, tuple):
            in_english = tuple(map(english, values))
        elif isinstance(values, Mapping):
            in_english = {k: english(v) for k, v in values.items()}
        else:
            in_english = english(values)
        return Message(_fill(str(self), values), _fill(self.english, in_english))

    def __add__(self, other: str) -> Message:
        if not isinstance(other, str):
            return NotImplemented
        return Message(str.__add__(self, other), self.english + english(other))

    def __radd__(self, other: str) -> Message:
        if not isinstance(other, str):
            return NotImplemented
        return Message(str.__add__(other, self), english(other) + self.english)

    def __reduce__(self):  # pickled with its English (task results, a process pool)
        return (Message, (str(self), self.english))


def _fill(text: str, values) -> str:
    """``text % values``, where a form that shows no number (a singular "one file", or a
    language whose form leaves it out) formats to itself, as gettext's catalogues allow: plain
    ``%`` raises "not all arguments converted" there. A form with placeholders and the wrong
    values still raises."""
    try:
        return text % values
    except TypeError:
        if "%" in text.replace("%%", ""):
            raise
        return text % ()


def english(value):
    """The English of a :class:`Message` (a message of :func:`_`); any other value as it is."""
    return value.english if isinstance(value, Message) else value


def _(message: str, lang: str | None = None, domain: str = "bonebase") -> Message:
    """``message`` translated into ``lang`` (default: current()), keeping ``message`` as its
    English (:class:`Message`)."""
    return Message(translations(lang or current(), domain).gettext(message), message)


def ngettext(singular: str, plural: str, n: int, lang: str | None = None,
             domain: str = "bonebase") -> Message:
    """The form of ``singular``/``plural`` for ``n`` in ``lang`` (default: current()), keeping
    the English form for ``n`` as its English (:class:`Message`)."""
    return Message(translations(lang or current(), domain).ngettext(singular, plural, n),
                   singular if n == 1 else plural)  # English's rule, as gettext's fallback
