"""A programme's rules, versioned: every change is a new immutable version.

Awards record the version that produced them, so re-evaluating a purchase (a return, an
audit) uses exactly the rules it was awarded under. Parsed versions are cached per
process: a version never changes once written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from jifen.core.errors import NotFound
from jifen.programs.models import RuleSetVersion
from jifen.rules.evaluator import CompiledRule, compile_rules
from jifen.rules.schemas import RuleSet


@dataclass(frozen=True)
class VersionedRules:
    version: int
    rules: RuleSet
    earning: tuple[CompiledRule, ...]
    growth: tuple[CompiledRule, ...]


def canonical(rules: RuleSet) -> dict[str, object]:
    """The JSON form stored and compared (defaults included, so equal rules are equal)."""
    return rules.model_dump(mode="json", by_alias=True)


def digest(document: dict[str, object]) -> str:
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def save_rules(
    session: Session, program_id: int, rules: RuleSet, *, now: datetime, actor: str
) -> tuple[int, bool]:
    """Store `rules` as the programme's new current version, unless they equal the current
    one. Returns (current version, whether a new version was made). The caller holds
    whatever lock serialises rule changes (a unique (program, version) makes a lost race
    an IntegrityError, retried by the unit of work)."""
    document = canonical(rules)
    current = session.execute(
        select(RuleSetVersion.version, RuleSetVersion.digest)
        .where(RuleSetVersion.program_id == program_id)
        .order_by(RuleSetVersion.version.desc())
        .limit(1)
    ).first()
    fingerprint = digest(document)
    if current is not None and current.digest == fingerprint:
        return current.version, False
    version = 1 if current is None else current.version + 1
    session.add(
        RuleSetVersion(
            program_id=program_id,
            version=version,
            document=document,
            digest=fingerprint,
            created_at=now,
            actor=actor,
        )
    )
    session.flush()
    return version, True


def version_row(session: Session, program_id: int, version: int | None = None) -> RuleSetVersion:
    """A stored version (the current one when `version` is None), with who made it when."""
    query = select(RuleSetVersion).where(RuleSetVersion.program_id == program_id)
    if version is None:
        query = query.order_by(RuleSetVersion.version.desc()).limit(1)
    else:
        query = query.where(RuleSetVersion.version == version)
    row = session.execute(query).scalar_one_or_none()
    if row is None:
        raise NotFound(what="rule set version", key=version if version is not None else "")
    return row


@dataclass(frozen=True)
class Reference:
    """A store or channel code a rule's conditions name (`path` is where, in a RuleSet)."""

    path: tuple[str | int, ...]
    kind: str
    """store or channel"""
    code: str


def references(rules: RuleSet) -> list[Reference]:
    """Every store and channel code the earning and growth rules' conditions name."""
    found: list[Reference] = []
    for section in ("earning_rules", "growth_rules"):
        for index, rule in enumerate(getattr(rules, section)):
            for kind in ("store", "channel"):
                for position, code in enumerate(getattr(rule.when, kind) or ()):
                    found.append(
                        Reference((section, index, "when", kind, position), kind, str(code))
                    )
    return found


_CURRENT = (
    select(RuleSetVersion.version, RuleSetVersion.digest)
    .where(RuleSetVersion.program_id == bindparam("program_id"))
    .order_by(RuleSetVersion.version.desc())
    .limit(1)
)
"""Asked on every purchase (built once)."""


def current_rules(session: Session, program_id: int) -> VersionedRules:
    row = session.execute(_CURRENT, {"program_id": program_id}).first()
    if row is None:
        raise NotFound(what="rule set", key=program_id)
    return _load(session, program_id, row.version, row.digest)


def rules_at(session: Session, program_id: int, version: int) -> VersionedRules:
    fingerprint = session.execute(
        select(RuleSetVersion.digest).where(
            RuleSetVersion.program_id == program_id, RuleSetVersion.version == version
        )
    ).scalar_one_or_none()
    if fingerprint is None:
        raise NotFound(what="rule set version", key=version)
    return _load(session, program_id, version, fingerprint)


# Parsed and compiled rules by content digest: a version never changes once written, and
# keying by content (not by programme id) stays right across databases in one process.
_CACHE: dict[tuple[int, str], VersionedRules] = {}


def _load(session: Session, program_id: int, version: int, fingerprint: str) -> VersionedRules:
    cached = _CACHE.get((version, fingerprint))
    if cached is not None:
        return cached
    document = session.execute(
        select(RuleSetVersion.document).where(
            RuleSetVersion.program_id == program_id, RuleSetVersion.version == version
        )
    ).scalar_one()
    rules = RuleSet.model_validate(document)
    versioned = VersionedRules(
        version=version,
        rules=rules,
        earning=compile_rules(rules.earning_rules),
        growth=compile_rules(rules.growth_rules),
    )
    if len(_CACHE) > 4096:
        _CACHE.clear()
    _CACHE[(version, fingerprint)] = versioned
    return versioned
