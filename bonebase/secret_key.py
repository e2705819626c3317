"""The consortium key: how to make one, how strong a production key must be, and how a key
file is written so that no other user can ever read it."""

from __future__ import annotations

import math
import os
import re
import secrets
from collections import Counter
from pathlib import Path

#: Shortest production key, counted after surrounding spaces are trimmed.
MIN_LENGTH = 32
#: Least estimated entropy of a production key. The estimate (Shannon entropy of the key's own
#: characters times its length) undercounts short random keys: 32 random hex digits (128 real
#: bits) estimate 116 on average and 92 at worst in 20,000 draws, so the bar sits below that;
#: 36 x "a" estimates 0, "ab" x 18 estimates 36.
MIN_BITS = 88
#: Least share of distinct 4-character windows: a short pattern repeated ("0123456789abcdef"
#: twice estimates 128 bits) repeats its windows; random keys almost never do.
MIN_DISTINCT_WINDOWS = 0.75
HOW_TO_MAKE = (
    "make one with `bonebase secret generate` "
    "(or: python -c \"import secrets; print(secrets.token_urlsafe(48))\")"
)

#: The password of a URL (scheme://user:PASSWORD@host) or of a libpq conninfo or URL query
#: (password=...).
URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@", re.IGNORECASE)
CONNINFO_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|[^\s&]+)", re.IGNORECASE)


def redact_passwords(text: str, mark: str = "***") -> str:
    """``text`` with the passwords of the URLs and connection strings it holds replaced."""
    text = URL_PASSWORD.sub(lambda m: m["head"] + mark + "@", text)
    return CONNINFO_PASSWORD.sub(lambda m: m["head"] + mark, text)


def generate() -> str:
    """A new random key: 48 random bytes, URL-safe base64 (64 characters, 384 bits)."""
    return secrets.token_urlsafe(48)


def estimated_bits(key: str) -> float:
    """Shannon entropy of the key's character frequencies, times its length."""
    if not key:
        return 0.0
    n = len(key)
    return abs(-n * sum(c / n * math.log2(c / n) for c in Counter(key).values()))


def weakness(value: str) -> str | None:
    """Why ``value`` is too weak for production, or None when it is strong enough."""
    key = value.strip()
    if len(key) < MIN_LENGTH:
        return f"is {len(key)} characters long (spaces trimmed); at least {MIN_LENGTH} are needed"
    bits = estimated_bits(key)
    if bits < MIN_BITS:
        return f"is too predictable (about {bits:.0f} bits estimated, {MIN_BITS} needed)"
    windows = [key[i : i + 4] for i in range(len(key) - 3)]
    if len(set(windows)) < MIN_DISTINCT_WINDOWS * len(windows):
        return "repeats a pattern"
    return None


def write_new(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text``, readable by its owner only from the first byte on;
    False (and nothing written) when the file already exists."""
    # O_EXCL: never truncate or follow a file someone else put there; mode 0600 at creation:
    # no window in which the key sits world-readable before a chmod.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
    return True
