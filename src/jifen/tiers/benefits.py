"""The tiers' benefit jobs (PRODUCT.md T3, O1): periodic benefits and birthday gifts.

Each function does one batch for one programme in the caller's transaction; the job
runner (`jifen.jobs.runner`) commits batch after batch until one finds nothing. Members'
points accounts are locked with SKIP LOCKED, and every gift is keyed (a unique
`tier_benefit_issues` row) so that a rerun, a crash midway or two workers at once never
give anything twice.

**Periodic benefits** (`periodic_benefits`, job `tier-benefits`) — each tier's `periodic`
rewards, given (`jifen.rewards.redemptions.give`, source `benefit`) to each active member
of the tier once per local month / quarter / year. The unique `tier_benefit_issues` row
(`<tier>:<reward>:<every>`, period `2027-03` / `2027-Q1` / `2027`) is written in the
same savepoint as the gift. A reward withdrawn or out of stock is skipped without a
record, so members get it when it is back within the period; any other refusal of the
gift is recorded (details `refused`) so the job cannot loop on it.

**Birthday gifts** (`birthday_gifts`, run by the `birthday` job) — the tier's
`birthday_gift` (points, available at once, and/or a reward with source `birthday`), on
the local birthday (or any day of the birthday month when the programme's birthday rule
says `window: month`), once per member per year (`tier_benefit_issues` benefit
`birthday`, period the year), for the tier the member is in on that day.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from jifen.core.errors import JifenError
from jifen.db.outbox import emit_many
from jifen.ledger import service as ledger
from jifen.ledger.jobs import StepResult
from jifen.ledger.models import Account
from jifen.members.models import Member
from jifen.members.service import active_members, born_on
from jifen.programs.models import Program
from jifen.programs.rulesets import current_rules
from jifen.programs.service import book_for
from jifen.programs.tiers import PeriodicBenefit, Tier, TierPolicy
from jifen.rewards.errors import OutOfStock
from jifen.rewards.models import Reward
from jifen.rewards.redemptions import give
from jifen.tiers.models import BenefitIssue, MemberTier
from jifen.tiers.service import tz_of
from jifen.tiers.standing import policy_of
from jifen.tiers.windows import period_key

BENEFITS_ACTOR = "job:tier-benefits"
BIRTHDAY_ACTOR = "job:birthday"
BIRTHDAY_BENEFIT = "birthday"


# -- periodic benefits --------------------------------------------------------------------


def benefit_key(tier: Tier, benefit: PeriodicBenefit) -> str:
    return f"{tier.code}:{benefit.reward}:{benefit.every}"


def periodic_benefits(
    session: Session, program: Program, now: datetime, *, limit: int = 500
) -> StepResult:
    """Give one batch of due periodic benefits (see the module's docstring). Returns the
    members given to or refused (`accounts`) and the rewards given (`items`)."""
    policy = policy_of(program)
    if policy is None:
        return StepResult()
    book = book_for(session, program)
    today = now.astimezone(tz_of(program)).date()
    result = StepResult()
    for rank, tier in enumerate(policy.levels):
        for benefit in tier.benefits.periodic:
            left = limit - result.accounts
            if left <= 0:
                return result
            if not _givable(session, program.id, benefit):
                continue
            key = benefit_key(tier, benefit)
            period = period_key(today, benefit.every)
            due = session.execute(
                _members_of(program.id, policy, rank)
                .where(~_issued(program.id, key, period))
                .order_by(Account.id)
                .limit(left)
                .with_for_update(of=Account, skip_locked=True)
            ).scalars()
            for member_id in list(due):
                try:
                    with session.begin_nested():
                        issue = _issue(program.id, member_id, key, period, tier.code, now)
                        session.add(issue)
                        session.flush()
                        redemption = give(
                            session,
                            program,
                            book,
                            member_id,
                            benefit.reward,
                            source="benefit",
                            quantity=benefit.count,
                            now=now,
                            actor=BENEFITS_ACTOR,
                            details={"benefit": key, "period": period},
                        )
                        issue.details = {"redemption_id": redemption.id}
                        session.flush()
                except IntegrityError:  # given a moment ago by another worker
                    continue
                except OutOfStock:  # gone since the look: the rest wait for a restock
                    break
                except JifenError as refused:
                    _refused(session, program.id, member_id, key, period, tier.code, now, refused)
                    result.accounts += 1
                    continue
                result.accounts += 1
                result.items += benefit.count
    return result


def _givable(session: Session, program_id: int, benefit: PeriodicBenefit) -> bool:
    """The reward is on offer with stock enough for one member's share (so that a job
    run while it is withdrawn or sold out records nothing and gives it when it is back)."""
    reward = session.execute(
        select(Reward).where(Reward.program_id == program_id, Reward.code == benefit.reward)
    ).scalar_one_or_none()
    if reward is None or not reward.active:
        return False
    return reward.stock is None or reward.stock - reward.redeemed >= benefit.count


def _members_of(program_id: int, policy: TierPolicy, rank: int) -> Any:
    """Active members whose tier is the level at `rank` (members without a tier row, or
    whose row names a tier no longer defined, are in the base tier)."""
    codes = [tier.code for tier in policy.levels]
    query = active_members(program_id, Member.id).outerjoin(
        MemberTier,
        and_(MemberTier.program_id == program_id, MemberTier.member_id == Member.id),
    )
    if rank == 0:
        return query.where(or_(MemberTier.id.is_(None), MemberTier.tier.not_in(codes[1:])))
    return query.where(MemberTier.tier == codes[rank])


def _issued(program_id: int, benefit: str, period: str) -> ColumnElement[bool]:
    return exists().where(
        BenefitIssue.program_id == program_id,
        BenefitIssue.member_id == Member.id,
        BenefitIssue.benefit == benefit,
        BenefitIssue.period == period,
    )


def _issue(
    program_id: int, member_id: int, benefit: str, period: str, tier: str, now: datetime
) -> BenefitIssue:
    return BenefitIssue(
        program_id=program_id,
        member_id=member_id,
        benefit=benefit,
        period=period,
        tier=tier,
        details=None,
        issued_at=now,
    )


def _refused(
    session: Session,
    program_id: int,
    member_id: int,
    benefit: str,
    period: str,
    tier: str,
    now: datetime,
    refused: JifenError,
) -> None:
    """Record a gift the rewards refused, so the period's benefit is settled (and the job
    does not try it again and again)."""
    issue = _issue(program_id, member_id, benefit, period, tier, now)
    issue.details = {"refused": refused.code, "reason": refused.message("en")}
    try:
        with session.begin_nested():
            session.add(issue)
            session.flush()
    except IntegrityError:
        return
    emit_many(
        session,
        [
            {
                "program_id": program_id,
                "member_id": member_id,
                "type": "tier.benefit_refused",
                "payload": {"benefit": benefit, "period": period, "refused": refused.code},
                "occurred_at": now,
            }
        ],
    )


# -- birthday gifts ---------------------------------------------------------------------


def birthday_gifts(
    session: Session, program: Program, now: datetime, *, limit: int = 500
) -> StepResult:
    """Give one batch of due tier birthday gifts (see the module's docstring). Returns the
    members given to (`accounts`), gifts recorded (`items`) and points given."""
    policy = policy_of(program)
    if policy is None:
        return StepResult()
    gifts = {
        tier.code: tier.benefits.birthday_gift
        for tier in policy.levels
        if tier.benefits.birthday_gift is not None
    }
    if not gifts:
        return StepResult()
    rule = current_rules(session, program.id).rules.birthday
    window = rule.window if rule is not None else "day"
    today = now.astimezone(tz_of(program)).date()
    period = str(today.year)
    tier_code = func.coalesce(MemberTier.tier, policy.base.code)
    due = session.execute(
        active_members(program.id, Member.id, tier_code)
        .outerjoin(
            MemberTier,
            and_(MemberTier.program_id == program.id, MemberTier.member_id == Member.id),
        )
        .where(
            Member.birthday.is_not(None),
            born_on(window, today),
            tier_code.in_(list(gifts)),
            ~_issued(program.id, BIRTHDAY_BENEFIT, period),
        )
        .order_by(Account.id)
        .limit(limit)
        .with_for_update(of=Account, skip_locked=True)
    ).all()
    if not due:
        return StepResult()
    book = book_for(session, program)
    result = StepResult()
    for member_id, code in due:
        gift = gifts[code]
        assert gift is not None
        try:
            with session.begin_nested():
                issue = _issue(program.id, member_id, BIRTHDAY_BENEFIT, period, code, now)
                session.add(issue)
                session.flush()
                given: dict[str, Any] = {}
                if gift.points:
                    given["transaction_id"] = ledger.credit(
                        session,
                        book,
                        member_id,
                        gift.points,
                        now=now,
                        actor=BIRTHDAY_ACTOR,
                        reference=f"tier-birthday:{member_id}:{period}",
                        reason="birthday gift",
                        details={"tier": code, "year": period},
                    ).id
                if gift.reward is not None:
                    given["redemption_id"] = give(
                        session,
                        program,
                        book,
                        member_id,
                        gift.reward,
                        source="birthday",
                        now=now,
                        actor=BIRTHDAY_ACTOR,
                        details={"benefit": BIRTHDAY_BENEFIT, "tier": code, "year": period},
                    ).id
                issue.details = given
                session.flush()
        except IntegrityError:  # given a moment ago by another worker
            continue
        except JifenError as refused:
            _refused(session, program.id, member_id, BIRTHDAY_BENEFIT, period, code, now, refused)
            result.accounts += 1
            result.items += 1
            continue
        result.accounts += 1
        result.items += 1
        result.points += gift.points
    return result
