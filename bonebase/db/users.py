"""Web users, their roles and sign-in sessions (migration 0004).

Passwords are hashed with argon2id (argon2-cffi's defaults follow RFC 9106); a hash made with
older parameters is replaced at the next successful sign-in. Sessions are random tokens of which
only the SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import psycopg
from psycopg import Connection

from bonebase.db import audit
from bonebase.errors import InputError, NotFoundError

# Ordered: each role may do what the ones before it may.
ROLES = ("viewer", "researcher", "steward", "admin")
# Outside the hierarchy: a reader of a reader study (#22) sees only the cases of the studies
# assigned to them, blinded, and no page of the others (not even the viewer's case list).
READER = "reader"
ALL_ROLES = (*ROLES, READER)
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,39}$")
MIN_PASSWORD = 10


@dataclass(frozen=True)
class User:
    id: int
    username: str
    role: str
    site: str | None  # a steward's site code
    active: bool
    #: the web pages' language (a bonebase.i18n tag); None: follow the browser (#25)
    language: str | None = None

    def can(self, role: str) -> bool:
        """Whether this user has ``role`` or a higher one (a reader has only ``reader``)."""
        if self.role == READER or role == READER:
            return self.role == role
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def is_reader(self) -> bool:
        return self.role == READER


def _hasher():
    from argon2 import PasswordHasher  # import on use: the CLI's --help stays fast

    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password is too short: use at least {MIN_PASSWORD} characters")
    return _hasher().hash(password)


def _check(username: str, role: str) -> None:
    if not USERNAME_RE.match(username or ""):
        raise InputError(
            f"user name {username!r} is invalid: 2-40 lower-case letters, digits, '.', '_' or '-'"
        )
    if role not in ALL_ROLES:
        raise InputError(f"role {role!r} is unknown: use one of {', '.join(ALL_ROLES)}")


_SELECT = ("SELECT u.id, u.username, u.role, s.code AS site, u.active, u.language FROM users u"
           " LEFT JOIN sites s ON s.id = u.site_id")


def add_user(conn: Connection, *, username: str, role: str, password: str,
             site: str | None = None, actor: str | None = None) -> User:
    """Create a user; a steward needs ``site`` (the code of their hospital)."""
    _check(username, role)
    if role == "steward" and not site:
        raise InputError("a steward acts for one hospital: give --site CODE")
    site_id = None
    if site:
        row = conn.execute("SELECT id FROM sites WHERE code = %s", (site,)).fetchone()
        if row is None:
            raise NotFoundError(f"no site {site!r}; `bonebase site list` shows the sites")
        site_id = row["id"]
    digest = hash_password(password)
    try:
        with conn.transaction():
            conn.execute(
                "INSERT INTO users (username, role, site_id, password_hash) VALUES (%s, %s, %s, %s)",
                (username, role, site_id, digest),
            )
            audit.record(conn, action="user.add", entity="user", entity_id=username, actor=actor,
                         details={"role": role, "site": site})
    except psycopg.errors.UniqueViolation:
        raise InputError(f"user {username} exists; use `bonebase users set-password`") from None
    return get_user(conn, username)


def get_user(conn: Connection, username: str) -> User:
    row = conn.execute(f"{_SELECT} WHERE u.username = %s", (username,)).fetchone()
    if row is None:
        raise NotFoundError(f"no user {username!r}; `bonebase users list` shows them")
    return User(**row)


def user_exists(conn: Connection, username: str) -> bool:
    return conn.execute("SELECT 1 FROM users WHERE username = %s", (username,)).fetchone() is not None


def list_users(conn: Connection) -> list[User]:
    return [User(**r) for r in conn.execute(f"{_SELECT} ORDER BY u.username").fetchall()]


def set_password(conn: Connection, username: str, password: str, *,
                 actor: str | None = None) -> None:
    """Replace a password and end the user's sessions (a reset must lock out an old cookie)."""
    user = get_user(conn, username)
    digest = hash_password(password)
    with conn.transaction():
        conn.execute("UPDATE users SET password_hash = %s, updated_at = now() WHERE id = %s",
                     (digest, user.id))
        conn.execute("DELETE FROM web_sessions WHERE user_id = %s", (user.id,))
        audit.record(conn, action="user.password", entity="user", entity_id=username, actor=actor)


def authenticate(conn: Connection, username: str, password: str) -> User | None:
    """The active user with this password, else None (the caller says nothing more specific)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    row = conn.execute("SELECT id, password_hash, active FROM users WHERE username = %s",
                       (username,)).fetchone()
    hasher = _hasher()
    if row is None:
        # Hash anyway so that a wrong name takes as long as a wrong password.
        hasher.hash(password or "-")
        return None
    try:
        hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    if not row["active"]:
        return None
    if hasher.check_needs_rehash(row["password_hash"]):
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s",
                     (hasher.hash(password), row["id"]))
    return get_user(conn, username)


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(conn: Connection, user: User, *, hours: float) -> str:
    """A new session token for ``user`` (the cookie's value), valid for ``hours``."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO web_sessions (token_sha256, user_id, expires_at)"
        " VALUES (%s, %s, now() + %s)",
        (_sha(token), user.id, timedelta(hours=hours)),
    )
    # Expired sessions of this user go here rather than in a background job.
    conn.execute("DELETE FROM web_sessions WHERE user_id = %s AND expires_at < now()", (user.id,))
    return token


def session_user(conn: Connection, token: str) -> User | None:
    """The active user of an unexpired session token, else None."""
    row = conn.execute(
        "SELECT u.id, u.username, u.role, s.code AS site, u.active, u.language FROM web_sessions w"
        " JOIN users u ON u.id = w.user_id LEFT JOIN sites s ON s.id = u.site_id"
        " WHERE w.token_sha256 = %s AND w.expires_at > now() AND u.active",
        (_sha(token),),
    ).fetchone()
    return None if row is None else User(**row)


def set_language(conn: Connection, username: str, language: str | None, *,
                 actor: str | None = None) -> None:
    """Set the language of ``username``'s pages (a tag of bonebase.i18n.LANGUAGES), or None to
    follow the browser's Accept-Language."""
    from bonebase.i18n import LANGUAGES

    if language is not None and language not in LANGUAGES:
        raise InputError(f"language {language!r} is not offered: use one of {', '.join(LANGUAGES)}")
    user = get_user(conn, username)
    with conn.transaction():
        conn.execute("UPDATE users SET language = %s, updated_at = now() WHERE id = %s",
                     (language, user.id))
        audit.record(conn, action="user.language", entity="user", entity_id=username, actor=actor,
                     details={"language": language})


def end_session(conn: Connection, token: str) -> None:
    conn.execute("DELETE FROM web_sessions WHERE token_sha256 = %s", (_sha(token),))


__all__ = ["ALL_ROLES", "READER", "ROLES", "User", "add_user", "authenticate", "end_session", "get_user", "list_users",
           "session_user", "set_language", "set_password", "start_session", "user_exists"]
