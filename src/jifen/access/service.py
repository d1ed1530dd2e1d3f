"""API keys: create, authenticate, list, revoke.

A key reads `jf_<prefix>_<secret>`. The prefix is public (it names the key in lists and
logs and is how we find it); only the SHA-256 of the 256-bit random secret is stored, and
it is compared in constant time. A slow password hash buys nothing for a secret this long.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from jifen.access.models import ApiKey
from jifen.core.errors import InvalidInput, NotFound, Unauthorized
from jifen.programs.models import Program


class Scope(StrEnum):
    ADMIN = "admin"
    """Everything in its programme: settings, keys, adjustments, reversals, jobs."""
    POS = "pos"
    """Tills and shops: enrol and find members, earn, spend, holds."""
    APP = "app"
    """Member-facing apps: enrol, profile, spend, holds, transfers, reads."""
    READ = "read"
    """Reads only."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's programme, scope and an actor string for the journal."""

    key_id: int
    program_id: int
    scope: Scope

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


KEY_PROGRAMME = "jifen.access.programme"
"""`session.info` key: the programme of the key authenticated in the session."""


_KEY_AND_PROGRAMME = (
    select(ApiKey, Program)
    .join(Program, Program.id == ApiKey.program_id)
    .where(ApiKey.prefix == bindparam("prefix"))
)
"""The key and its programme in one round trip (built once): nearly every request needs
the programme next, and finds it in the session (`session.get`) without a query."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(
    session: Session, program_id: int, *, name: str, scope: Scope, now: datetime, created_by: str
) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which is shown once and never stored."""
    if not name.strip():
        raise InvalidInput(field="name", reason="a key needs a name, e.g. 'store 12 POS'")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        program_id=program_id,
        name=name.strip(),
        scope=scope,
        prefix=prefix,
        secret_hash=_digest(secret),
        created_at=now,
        created_by=created_by,
    )
    session.add(key)
    session.flush()
    return key, f"jf_{prefix}_{secret}"


def token_parts(token: str | None) -> tuple[str, str] | None:
    """A bearer token's (prefix, secret), or None when it cannot be one of our keys."""
    if not token or not token.startswith("jf_") or token.count("_") < 2:
        return None
    _, prefix, secret = token.split("_", 2)
    return prefix, secret


def key_admits(secret_hash: str, revoked_at: datetime | None, secret: str) -> bool:
    """Does a stored key (its hash and revocation) admit the token's `secret`?"""
    return revoked_at is None and hmac.compare_digest(secret_hash, _digest(secret))


def authenticate(session: Session, token: str | None) -> Principal:
    parts = token_parts(token)
    if parts is None:
        raise Unauthorized()
    prefix, secret = parts
    found = session.execute(_KEY_AND_PROGRAMME, {"prefix": prefix}).one_or_none()
    if found is None:
        raise Unauthorized()
    key = found[0]
    session.info[KEY_PROGRAMME] = found[1]  # the identity map keeps it only while referenced
    if not key_admits(key.secret_hash, key.revoked_at, secret):
        raise Unauthorized()
    return Principal(key_id=key.id, program_id=key.program_id, scope=Scope(key.scope))


def list_keys(session: Session, program_id: int) -> list[ApiKey]:
    return list(
        session.execute(
            select(ApiKey).where(ApiKey.program_id == program_id).order_by(ApiKey.id)
        ).scalars()
    )


def revoke_key(session: Session, program_id: int, key_id: int, *, now: datetime) -> ApiKey:
    key = session.execute(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.program_id == program_id)
    ).scalar_one_or_none()
    if key is None:
        raise NotFound(what="API key", key=key_id)
    if key.revoked_at is None:
        key.revoked_at = now
    session.flush()
    return key
