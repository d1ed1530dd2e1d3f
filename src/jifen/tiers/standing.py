"""Which tier a member is in: the one question other domains ask of tiers (earning rules,
reward prices and restrictions, benefits)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.programs.models import Program
from jifen.programs.tiers import TierPolicy
from jifen.tiers.models import MemberTier

_POLICIES: dict[int, tuple[object, TierPolicy]] = {}


def policy_of(program: Program) -> TierPolicy | None:
    """The programme's tiers (None: it has none), parsed once per stored document."""
    if program.tiers is None:
        return None
    cached = _POLICIES.get(program.id)
    if cached is not None and cached[0] == program.tiers:
        return cached[1]
    policy = TierPolicy.model_validate(program.tiers)
    _POLICIES[program.id] = (program.tiers, policy)
    return policy


def tier_of(session: Session, program: Program, member_id: int) -> str | None:
    """The member's tier code now (the base tier until they reach another); None when the
    programme has no tiers."""
    return tiers_of(session, program, [member_id])[member_id]


def tiers_of(
    session: Session, program: Program, member_ids: Collection[int]
) -> dict[int, str | None]:
    """`tier_of` for a batch of members, in one query."""
    policy = policy_of(program)
    if policy is None:
        return dict.fromkeys(member_ids)
    found: dict[int, str | None] = dict.fromkeys(member_ids, policy.base.code)
    if not member_ids:
        return found
    for member_id, code in session.execute(
        select(MemberTier.member_id, MemberTier.tier).where(
            MemberTier.program_id == program.id, MemberTier.member_id.in_(list(member_ids))
        )
    ):
        if policy.get(code) is not None:
            found[member_id] = code
    return found
