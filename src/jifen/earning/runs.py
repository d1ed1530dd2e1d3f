"""Where a member's run of orders in one round of a batch (`jifen.earning.batch`) must end.

A batch books its orders in rounds; in a round each member has a run of consecutive
orders (their next ones, in the batch's order), priced one after the other in Python and
booked together. Recorded one by one, each of those orders would lock the account, read
the member's facts and ask the tiers whether the order changed anything. Within a run the
batch derives the facts instead (no purchase before: only for the first order of a
run), so a run must end at the first order after which one-by-one recording would have
seen something the derivation does not cover:
- the order moves the member up a tier, or makes them near the next one when they have
  not been told yet this period (`tiers.service.on_activity_many` acts on it, and the
  next order is priced at the new tier);
- the order's lot would be due at once (released or expired by the next lock);
- the member is in debt (a credit repays it, which takes lots apart one at a time).
The tier measures are read once per round (`tiers.measures.measure`, as
`on_activity_many` reads them) and each order adds to them what the measure's query would
count of it: its growth value (dated by the credit, now), its total and one purchase
(when it occurred in the window).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.db.bulk import among
from jifen.ledger.bulk import LotDates
from jifen.ledger.models import Account
from jifen.programs.models import Program
from jifen.programs.tiers import Measure, TierPolicy
from jifen.tiers.measures import measure
from jifen.tiers.models import BenefitIssue, MemberTier
from jifen.tiers.qualify import NEAR, entered, near, needed, next_rank
from jifen.tiers.service import NEAR_PREFIX
from jifen.tiers.standing import policy_of
from jifen.tiers.windows import Span, windows


@dataclass(frozen=True)
class Tiering:
    """The programme's tiers as `on_activity_many` sees them at `now`."""

    policy: TierPolicy
    span: Span
    period: str
    floor: dict[Measure, Decimal]
    """Below these on every measure a member neither enters a tier nor is near one (the
    least of every enter threshold's measure × NEAR): most orders stop at that check."""

    @classmethod
    def of(cls, program: Program, now: datetime) -> Tiering | None:
        """None when no order can move a member (no tiers, or a single one)."""
        policy = policy_of(program)
        if policy is None or len(policy.levels) < 2:
            return None
        win = windows(policy.window, now, ZoneInfo(program.timezone))
        floor: dict[Measure, Decimal] = {}
        for tier in policy.levels:
            if tier.enter is None:
                continue
            for m, need in tier.enter.measures().items():
                least = min(need, need * NEAR)  # `meets` needs `need`, `near` need × NEAR
                floor[m] = min(floor.get(m, least), least)
        return cls(policy, win.enter, win.period, floor)

    def covers(self, at: datetime) -> bool:
        return at >= self.span.start and (self.span.end is None or at < self.span.end)


@dataclass
class Standing:
    """A member's tier record at the start of a round, and their measures as the run's
    orders add to them."""

    qualified: int
    current: int
    measures: dict[Measure, Decimal]
    told: frozenset[str]
    """The near-upgrade notices already given this period (benefit names)."""
    counted: frozenset[Measure]
    """The measures read (the others stay 0, as `on_activity_many` reads them)."""


def standings(
    session: Session, program_id: int, tiering: Tiering, member_ids: list[int]
) -> dict[int, Standing]:
    """The members whose orders `on_activity_many` may act on, with their measures; a
    member not in the answer (already at the top) never ends a run for their tier."""
    policy = tiering.policy
    rows = {
        member_id: (tier, qualified)
        for member_id, tier, qualified in session.execute(
            select(MemberTier.member_id, MemberTier.tier, MemberTier.qualified_tier).where(
                MemberTier.program_id == program_id, among(MemberTier.member_id, member_ids)
            )
        )
    }
    ranks = {
        m: (policy.rank(rows[m][0]), policy.rank(rows[m][1])) if m in rows else (0, 0)
        for m in member_ids
    }
    which = {m: needed(policy, range(ranks[m][1] + 1, len(policy.levels))) for m in member_ids}
    asked = [m for m in member_ids if which[m]]
    if not asked:
        return {}
    counted = frozenset(set().union(*which.values()))
    measured = measure(session, program_id, asked, tiering.span, counted)
    told: dict[int, set[str]] = {m: set() for m in asked}
    for member_id, benefit in session.execute(
        select(BenefitIssue.member_id, BenefitIssue.benefit).where(
            BenefitIssue.program_id == program_id,
            among(BenefitIssue.member_id, asked),
            BenefitIssue.benefit.in_([NEAR_PREFIX + tier.code for tier in policy.levels]),
            BenefitIssue.period == tiering.period,
        )
    ):
        told[member_id].add(benefit)
    return {
        m: Standing(
            qualified=ranks[m][1],
            current=ranks[m][0],
            measures=dict(measured[m]),
            told=frozenset(told[m]),
            counted=counted,
        )
        for m in asked
    }


def tier_moves(
    tiering: Tiering,
    standing: Standing,
    *,
    occurred_at: datetime,
    total: Decimal,
    growth: int,
    now: datetime,
) -> bool:
    """Add an awarded order to the member's measures; whether `on_activity_many` would act
    on the member after it (an upgrade, or a near-upgrade notice to give)."""
    policy, measures = tiering.policy, standing.measures
    counted = standing.counted
    if growth and Measure.GROWTH in counted and tiering.covers(now):
        measures[Measure.GROWTH] += Decimal(growth)
    # (the measure reads spend and purchases in one query: both, when either is asked)
    if tiering.covers(occurred_at) and counted & {Measure.SPEND, Measure.PURCHASES}:
        measures[Measure.SPEND] += total
        measures[Measure.PURCHASES] += 1
    if all(measures.get(m, Decimal(0)) < least for m, least in tiering.floor.items()):
        return False
    if entered(policy, standing.qualified, measures) > standing.qualified:
        return True
    target = next_rank(policy, standing.current)
    if target is None:
        return False
    tier = policy.levels[target]
    return near(tier.enter, measures) and NEAR_PREFIX + tier.code not in standing.told


def due_at_once(dates: LotDates, account: Account, earned_at: datetime, now: datetime) -> bool:
    """Whether the lot a credit earned at `earned_at` makes (pending for the return window)
    is due by `now`: released or expired by the next lock of the account."""
    release = dates.release_at(earned_at)
    if release is not None and release > now:
        return False  # pending: due when released
    expiry = dates.lot_expiry(account, earned_at, now)
    return expiry is not None and expiry <= now
