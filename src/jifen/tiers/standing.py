"""Which tier a member is in: the one question other domains ask of tiers (earning rules,
reward prices and restrictions, benefits)."""

from __future__ import annotations

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
    policy = policy_of(program)
    if policy is None:
        return None
    code = session.execute(
        select(MemberTier.tier).where(
            MemberTier.program_id == program.id, MemberTier.member_id == member_id
        )
    ).scalar_one_or_none()
    if code is None or policy.get(code) is None:
        return policy.base.code
    return code
