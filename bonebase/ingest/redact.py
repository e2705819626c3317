"""Replace a submission's identifying values in text (paths, messages) by ``[redacted]``.

A value matches case-insensitively as a whole token run: not preceded or followed by a letter or
digit (so an ID inside "20150510_HX1505100010" is found, a digit run inside a hash is not).
Longer values win over shorter ones at the same place, as in one regex alternation ordered
longest first — which is what this replaces: compiling that regex over the thousands of values
of a submission (names, IDs, original UIDs) took a second per submission. Here plain ASCII values
starting with a letter or digit are looked up by their first token in a dict; the few others
(non-ASCII, leading punctuation) still go through a regex, applied first.
"""

from __future__ import annotations

import re

MARK = "[redacted]"
_MIN_LEN = 3
_TOKEN = re.compile(r"[^\W_]+")
_ALNUM = re.compile(r"[^\W_]")


def pattern(values: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive alternation of ``values``, longest first, as whole token runs."""
    ordered = sorted(set(values), key=len, reverse=True)
    if not ordered:
        return None
    body = "|".join(re.escape(v) for v in ordered)
    return re.compile(rf"(?<![^\W_])(?:{body})(?![^\W_])", re.IGNORECASE)


class Redactor:
    """Finds and replaces identifying values; build once per submission."""

    def __init__(self, values: set[str]) -> None:
        self._by_head: dict[str, list[str]] = {}
        odd = []
        for value in {v for v in values if len(v) >= _MIN_LEN}:
            head = _TOKEN.match(value)
            if value.isascii() and head is not None:
                self._by_head.setdefault(head.group().lower(), []).append(value.lower())
            else:
                odd.append(value)
        for group in self._by_head.values():
            group.sort(key=len, reverse=True)
        self._odd = pattern(odd)

    def __bool__(self) -> bool:
        return bool(self._by_head) or self._odd is not None

    def redact(self, text: str) -> str:
        if self._odd is not None:
            text = self._odd.sub(MARK, text)
        if not self._by_head:
            return text
        out, done = [], 0
        for token in _TOKEN.finditer(text):
            start = token.start()
            if start < done:
                continue  # inside a value replaced already
            for value in self._by_head.get(token.group().lower(), ()):
                end = start + len(value)
                if text[start:end].lower() == value and not _ALNUM.match(text, end):
                    out += (text[done:start], MARK)
                    done = end
                    break
        return "".join(out) + text[done:] if out else text
