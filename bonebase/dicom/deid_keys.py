"""The keyed part of de-identification: pseudonyms, UID remapping and date offsets.

Everything that must link across submissions is keyed by the consortium secret:
pseudonym = HMAC-SHA256(secret, site + "\\x1f" + patient_id); every UID maps to
``<root>.<decimal of 128 bits of HMAC(secret, uid)>``; dates shift by a per-patient number of
days derived from HMAC(secret, site, patient_id). The same input always gives the same output.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from bonebase.errors import InputError

_SITE_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_OFFSET_MIN, _OFFSET_MAX = -3650, -365  # days; always into the past, by one to ten years
_PSEUDONYM_HEX = 20


class Keys:
    """Keyed, deterministic pseudonyms, UIDs and date offsets of one consortium secret."""

    def __init__(self, secret: bytes, *, uid_root: str = "2.25") -> None:
        if len(secret) < 16:
            raise InputError(
                "de-identification secret is shorter than 16 bytes; set the consortium "
                "secret (BONEBASE_DEID_SECRET) to at least 32 random bytes"
            )
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", uid_root) or len(uid_root) > 24:
            raise InputError(f"UID root {uid_root!r} is not a dotted number of <= 24 characters")
        self._secret = secret
        self._uid_root = uid_root
        self._uid_digits = 64 - len(uid_root) - 1
        self._uid_cache: dict[str, str] = {}

    def _mac(self, *parts: str) -> bytes:
        return hmac.new(self._secret, "\x1f".join(parts).encode(), hashlib.sha256).digest()

    def pseudonym(self, site: str, patient_id: str) -> str:
        """Return ``<site>-<20 hex of HMAC-SHA256(secret, site + "\\x1f" + patient_id)>``.

        A value that already is a pseudonym of ``site`` is returned as it is: a hospital's
        gateway (issue #18) sends pseudonyms, and hashing one again would make another patient.
        """
        if not _SITE_RE.match(site):
            raise InputError(
                f"site code {site!r} is invalid: use 1-16 letters, digits, '-' or '_' "
                "as registered for the site"
            )
        if self.is_pseudonym(site, patient_id):
            return patient_id
        return f"{site}-{self._mac(site, patient_id).hex()[:_PSEUDONYM_HEX]}"

    @staticmethod
    def is_pseudonym(site: str, value: str) -> bool:
        """Whether ``value`` has the form of a pseudonym of ``site``."""
        return re.fullmatch(rf"{re.escape(site)}-[0-9a-f]{{{_PSEUDONYM_HEX}}}", value) is not None

    def remap_uid(self, uid: str) -> str:
        """Map ``uid`` to ``<root>.<decimal of 128 bits of HMAC(secret, uid)>`` (<= 64 chars)."""
        uid = uid.strip().rstrip("\x00")
        found = self._uid_cache.get(uid)
        if found is None:
            number = int.from_bytes(self._mac("uid", uid)[:16], "big")
            found = f"{self._uid_root}.{number % 10**self._uid_digits}"
            if len(self._uid_cache) > 200_000:  # bounded: ingest runs over many studies
                self._uid_cache.clear()
            self._uid_cache[uid] = found
        return found

    def date_offset(self, site: str, patient_id: str) -> int:
        """Return the per-patient date shift in days, in [-3650, -365]."""
        number = int.from_bytes(self._mac("date-offset", site, patient_id)[:8], "big")
        return _OFFSET_MIN + number % (_OFFSET_MAX - _OFFSET_MIN + 1)
