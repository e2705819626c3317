"""Sign-in throttling and the audit of every sign-in attempt.

Failures are counted per account (the name typed, as a keyed hash) and per client address in
PostgreSQL (``bonebase.db.signins``), so every web worker sees the same counts. While a key has
too many failures within the window, sign-in is refused with 429, even with the right password.
The password never reaches a log or the audit table; a name that is no account is not written
down either (it may be a password typed in the wrong box).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Request
from psycopg import Connection

from bonebase.db import audit, signins
from bonebase.db.users import user_exists


@dataclass(frozen=True)
class Refusal:
    kind: str  # "account" or "address"
    retry_after: int  # seconds

    @property
    def message(self) -> str:
        who = "this user name" if self.kind == "account" else "this address"
        minutes = max(1, math.ceil(self.retry_after / 60))
        return (f"too many failed sign-ins for {who}: sign-in is paused, try again in "
                f"{minutes} minute{'s' if minutes > 1 else ''} (or ask an administrator: "
                "`bonebase users unlock`)")


def signin_key(secret: bytes) -> bytes:
    """The HMAC key for account names in the failure table (never the consortium key itself)."""
    return hmac.new(secret, b"bonebase-web-sign-in-v1", hashlib.sha256).digest()


def account_key(key: bytes, username: str) -> str:
    """The failure table's key for a user name as typed (lower-cased): HMAC(key, name)."""
    return hmac.new(key, username.encode(), hashlib.sha256).hexdigest()


def _account(request: Request, username: str) -> str:
    return account_key(request.app.state.signin_key, username)


def client_address(host: str | None) -> str:
    """The address failures are counted for: an IPv4 address, or an IPv6 address's /64 (one
    client usually holds a whole /64, so counting single IPv6 addresses would count nothing)."""
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return host or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _address(request: Request) -> str:
    # Behind a reverse proxy this is the proxy unless uvicorn trusts its X-Forwarded-For
    # (FORWARDED_ALLOW_IPS, 127.0.0.1 by default): see docs/operators.md.
    return client_address(request.client.host if request.client else None)


def _window(request: Request) -> timedelta:
    return timedelta(minutes=request.app.state.web.signin_window_minutes)


def refusal(conn: Connection, request: Request, username: str) -> Refusal | None:
    """Why this attempt is refused before its password is checked, or None."""
    web = request.app.state.web
    account = _account(request, username)
    signins.serialize(conn, account)
    for kind, key, limit in (("account", account, web.signin_max_failures),
                             ("address", _address(request), web.signin_max_failures_per_address)):
        until = signins.locked_until(conn, kind=kind, key=key, limit=limit,
                                     window=_window(request))
        if until is not None:
            seconds = math.ceil((until - signins.now(conn)).total_seconds())
            return Refusal(kind, max(1, seconds))
    return None


def _audit(conn: Connection, request: Request, action: str, username: str, **details) -> None:
    known = user_exists(conn, username)
    audit.record(conn, action=action, entity="user", entity_id=username if known else None,
                 actor="anonymous",
                 details={"address": _address(request), "known_user": known, **details})


def refused(conn: Connection, request: Request, username: str, why: Refusal) -> None:
    _audit(conn, request, "user.sign_in_refused", username, locked=why.kind)


def failed(conn: Connection, request: Request, username: str) -> None:
    """A wrong name or password: counted for the account and the address, and audited."""
    signins.record_failure(conn, account_key=_account(request, username),
                           address=_address(request), window=_window(request))
    _audit(conn, request, "user.sign_in_failed", username)


def succeeded(conn: Connection, request: Request, username: str) -> None:
    signins.clear_account(conn, _account(request, username))
    audit.record(conn, action="user.sign_in", entity="user", entity_id=username, actor=username,
                 details={"address": _address(request)})
