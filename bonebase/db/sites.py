"""Site registry queries: the hospitals of the consortium."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import Connection

from bonebase.db import audit
from bonebase.errors import InputError, NotFoundError
from bonebase.i18n import _
from bonebase.ingest.match import check_rule

CODE_RE = re.compile(r"^[A-Z0-9]{2,8}$")


@dataclass(frozen=True)
class Site:
    id: int
    code: str
    name: str
    country: str
    contact: str
    active: bool
    created_at: datetime
    match_rule: str | None = None  # bonebase.ingest.match.RULES; None: the default
    keep_descriptors: bool = False  # keep free-text descriptions, cleaned (#19); else removed
    burned_in: str = "redact"  # burned-in identifying text: black it out, or "quarantine"
    language: str = "en"  # its receipts' and quarantine reasons' language (#25): en, zh-Hans


def check_code(code: str) -> str:
    """A site code: 2–8 upper-case letters or digits (it appears in pseudonyms and paths)."""
    if not CODE_RE.match(code or ""):
        hint = (_(" (did you mean {upper!r}?)").format(upper=code.upper())
                if CODE_RE.match((code or "").upper()) else "")
        raise InputError(_("site code {code!r} is invalid: use 2-8 upper-case letters or digits, "
                           "e.g. 'HX' or 'BJ1'").format(code=code) + hint)
    return code


def _site(row: dict) -> Site:
    return Site(**{k: row[k] for k in Site.__dataclass_fields__ if k in row})


def add_site(conn: Connection, *, code: str, name: str, country: str = "", contact: str = "",
             actor: str | None = None, match_rule: str | None = None,
             keep_descriptors: bool = False, burned_in: str = "redact",
             language: str = "en") -> Site:
    check_code(code)
    check_burned_in(burned_in)
    language = check_language(language)
    if not name.strip():
        raise InputError(_("site {code}: --name is empty; give the hospital's name")
                         .format(code=code))
    if match_rule is not None:
        check_rule(match_rule)
    try:
        with conn.transaction():
            row = conn.execute(
                "INSERT INTO sites (code, name, country, contact, match_rule, keep_descriptors,"
                " burned_in, language) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (code, name.strip(), country.strip(), contact.strip(), match_rule,
                 keep_descriptors, burned_in, language),
            ).fetchone()
            audit.record(conn, action="site.add", entity="site", entity_id=code, actor=actor,
                         details={"name": name, "country": country, "contact": contact,
                                  "match_rule": match_rule, "keep_descriptors": keep_descriptors,
                                  "burned_in": burned_in, "language": language})
    except psycopg.errors.UniqueViolation:
        raise InputError(_("site {code} already exists; see `bonebase site show {code}`, or "
                           "choose another code").format(code=code)) from None
    return _site(row)


def get_site(conn: Connection, code: str) -> Site:
    row = conn.execute("SELECT * FROM sites WHERE code = %s", (code,)).fetchone()
    if row is None:
        raise NotFoundError(_("no site {code!r}; `bonebase site list` shows the registered sites")
                            .format(code=code))
    return _site(row)


BURNED_IN = ("redact", "quarantine")


def check_burned_in(policy: str) -> str:
    """A site's policy for burned-in identifying text: redact (black it out) or quarantine."""
    if policy not in BURNED_IN:
        raise InputError(_("burned-in policy {policy!r} is unknown: use redact (black the text "
                           "out, the default) or quarantine (hold the image for a data steward)")
                         .format(policy=policy))
    return policy


def check_language(tag: str) -> str:
    """A site's language as stored (``zh``, ``zh-CN``, ``zh_Hans`` -> ``zh-Hans``)."""
    from bonebase.i18n import LANGUAGES, normalise

    lang = normalise(tag) if isinstance(tag, str) else None  # sites.json may hold anything
    if lang is None:
        raise InputError(_("language {tag!r} is not offered: use one of {languages} (a site's "
                           "receipts and quarantine reasons are written in it)")
                         .format(tag=tag, languages=", ".join(LANGUAGES)))
    return lang


def require_active(site: Site) -> Site:
    """``site`` if it may submit; an inactive site's submissions are refused with what to do."""
    if not site.active:
        raise InputError(_(
            "site {code} ({name}) is marked inactive, so its submissions are refused; if the "
            "hospital sends data again, an operator reactivates it with `bonebase site update "
            "{code} --active`, then submit again").format(code=site.code, name=site.name),
            code="site_inactive")
    return site


def list_sites(conn: Connection) -> list[Site]:
    return [_site(r) for r in conn.execute("SELECT * FROM sites ORDER BY code").fetchall()]


def update_site(conn: Connection, code: str, *, actor: str | None = None, **changes: str | bool) -> Site:
    allowed = {"name", "country", "contact", "active", "match_rule", "keep_descriptors",
               "burned_in", "language"}
    changes = {k: v for k, v in changes.items() if v is not None}
    if "match_rule" in changes:
        # "default" clears the site's rule (NULL: the default rule applies).
        changes["match_rule"] = (None if changes["match_rule"] == "default"
                                 else check_rule(changes["match_rule"]))
    if "burned_in" in changes:
        check_burned_in(changes["burned_in"])
    if "language" in changes:
        changes["language"] = check_language(changes["language"])
    unknown = set(changes) - allowed
    if unknown:
        raise InputError(f"cannot change {', '.join(sorted(unknown))} of a site")
    site = get_site(conn, code)
    if not changes:
        return site
    sets = ", ".join(f"{k} = %s" for k in changes)
    with conn.transaction():
        row = conn.execute(
            f"UPDATE sites SET {sets}, updated_at = now() WHERE code = %s RETURNING *",
            (*changes.values(), code),
        ).fetchone()
        audit.record(conn, action="site.update", entity="site", entity_id=code, actor=actor,
                     details={k: v for k, v in changes.items()})
    return _site(row)
