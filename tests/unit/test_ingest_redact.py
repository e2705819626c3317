"""The dict-based redactor finds what the one-regex form finds (it replaced it for speed)."""

from __future__ import annotations

import random

from bonebase.ingest.redact import MARK, Redactor, pattern


def test_whole_tokens_case_insensitive_longest_first():
    r = Redactor({"HX1505100010", "Doe^John", "Doe", "Müller", "-X9Y", "ab"})
    assert r.redact("DICOM/hx1505100010/20150510_HX1505100010/IM1") == \
        f"DICOM/{MARK}/20150510_{MARK}/IM1"
    assert r.redact("seen by DOE^JOHN and Doe") == f"seen by {MARK} and {MARK}"
    assert r.redact("DoeX Doe2 ab") == "DoeX Doe2 ab"  # inside a longer token; "ab" too short
    assert r.redact("Herr MÜLLER, id -x9y") == f"Herr {MARK}, id {MARK}"
    assert r.redact("a1b2c3d4" * 8) == "a1b2c3d4" * 8
    assert not Redactor(set())


def test_agrees_with_the_regex_on_random_text():
    rng = random.Random(7)
    alphabet = "abAB01_-^./ "
    values = {"".join(rng.choice(alphabet) for _ in range(rng.randint(3, 7))).strip()
              for _ in range(400)}
    # ASCII values starting with a letter or digit: the dict path, which must equal the regex.
    values = {v for v in values if len(v) >= 3 and v[0].isalnum()}
    redactor, regex = Redactor(values), pattern(sorted(values))
    changed = 0
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        fast = redactor.redact(text)
        assert fast == regex.sub(MARK, text), text
        changed += fast != text
    assert changed > 100  # the comparison exercised real matches
