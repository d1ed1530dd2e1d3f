"""Where a member stands (PRODUCT.md T4): their tier and how they hold it, their measures,
the next tier and exactly what is missing for it, and what keeps the current one, with
the sentences a member reads in zh-CN or en ("还差 1,240 成长值，2027-03-31 前可升级为金卡").

Read-only: the same measures and thresholds the upgrade and the evaluation job use.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.members import service as members
from jifen.programs.models import Program
from jifen.programs.tiers import Measure, Threshold, Tier, TierPolicy, Window
from jifen.tiers.measures import measure, oldest
from jifen.tiers.models import TierGrant
from jifen.tiers.qualify import Measures, better, meets, next_rank, shortfall
from jifen.tiers.schemas import (
    Amount,
    CurrentTier,
    HeldBy,
    Keep,
    Missing,
    NextTier,
    Standing,
    TiersOut,
    WindowOut,
)
from jifen.tiers.service import (
    active_grants,
    best_grant,
    describe_grant,
    effective,
    require_policy,
    row_of,
    tz_of,
)
from jifen.tiers.standing import policy_of
from jifen.tiers.windows import Windows, drops_out, windows


def definition(program: Program) -> TiersOut:
    policy = policy_of(program)
    return TiersOut(configured=policy is not None, policy=policy)


def standing(
    session: Session, program: Program, member_id: int, *, now: datetime, lang: str
) -> Standing:
    policy = require_policy(program)
    members.get(session, program.id, member_id)
    tz = tz_of(program)
    win = windows(policy.window, now, tz)
    row = row_of(session, program.id, member_id)
    grants = active_grants(session, program.id, [member_id], now)[member_id]
    qualified = policy.rank(row.qualified_tier) if row is not None else 0
    current = policy.rank(row.tier) if row is not None else 0
    enter = measure(session, program.id, [member_id], win.enter)[member_id]
    if len(win.keep) == 1:
        keep_measures: Measures = enter
    else:
        keep_measures = better(
            *(measure(session, program.id, [member_id], span)[member_id] for span in win.keep)
        )
    tier = policy.levels[current]
    words = Words(lang, program.currency)
    next_tier = None
    above = next_rank(policy, current)
    if above is not None:
        next_tier = _next(
            session, program, member_id, policy, policy.levels[above], enter, win, words
        )
    keep = None
    if qualified > 0:
        keep = _keep(
            policy.levels[qualified],
            enter,
            keep_measures,
            policy.window,
            win.deadline,
            row.grace_until if row is not None else None,
            tz_date(row.grace_until, program) if row is not None else None,
            words,
        )
    return Standing(
        member_id=member_id,
        tier=CurrentTier(
            code=tier.code,
            name=tier.name,
            since=row.since if row is not None and current > 0 else None,
            held_by=_held_by(session, policy, program.id, member_id, qualified, current, grants),
            benefits=tier.benefits,
        ),
        qualified_tier=policy.levels[qualified].code,
        window=WindowOut(
            kind=policy.window.kind,
            months=policy.window.months,
            period=policy.window.period,
            start=win.enter.start.astimezone(tz).date(),
        ),
        measures={m.value: _amount(m, enter[m]) for m in Measure},
        next=next_tier,
        keep=keep,
        grants=[describe_grant(g, now) for g in grants],
    )


def tz_date(at: datetime | None, program: Program) -> date | None:
    """The last local day before the instant `at` (a grace period ends at a day's end)."""
    if at is None:
        return None
    return (at.astimezone(tz_of(program)) - timedelta(microseconds=1)).date()


def _held_by(
    session: Session,
    policy: TierPolicy,
    program_id: int,
    member_id: int,
    qualified: int,
    current: int,
    grants: list[TierGrant],
) -> HeldBy:
    if current <= qualified:
        return HeldBy(how="qualified")
    rank, grant = effective(policy, qualified, grants)
    if grant is None or rank != current:
        # A grant that has ended, until the evaluation job takes the member down.
        code = policy.levels[current].code
        grant = best_grant(
            policy,
            list(
                session.execute(
                    select(TierGrant).where(
                        TierGrant.program_id == program_id,
                        TierGrant.member_id == member_id,
                        TierGrant.tier == code,
                    )
                ).scalars()
            ),
        )
    if grant is None:
        return HeldBy(how="qualified")
    return HeldBy(how="grant", grant_id=grant.id, kind=grant.kind, ends_at=grant.ends_at)


def _amount(m: Measure, value: Decimal) -> Amount:
    return value if m == Measure.SPEND else int(value)


def _missing(threshold: Threshold, against: Measures) -> list[Missing]:
    lacking = shortfall(threshold, against)
    return [
        Missing(
            measure=m.value,
            threshold=_amount(m, need),
            current=_amount(m, against.get(m, Decimal(0))),
            missing=_amount(m, lacking[m]),
        )
        for m, need in threshold.measures().items()
    ]


def _next(
    session: Session,
    program: Program,
    member_id: int,
    policy: TierPolicy,
    tier: Tier,
    enter: Measures,
    win: Windows,
    words: Words,
) -> NextTier:
    assert tier.enter is not None
    missing = _missing(tier.enter, enter)
    drops = None
    if policy.window.kind == "rolling":
        dated = oldest(session, program.id, member_id, win.enter)
        firsts = [d for m in tier.enter.measures() if (d := dated[m]) is not None]
        if firsts:
            drops = drops_out(policy.window, min(firsts), tz_of(program))
    if meets(tier.enter, enter):
        message = words.reached(tier.name)
    else:
        message = words.to_reach(
            [item for item in missing if item.missing],
            tier.name,
            win.deadline,
            policy.window,
            drops,
        )
    return NextTier(
        code=tier.code,
        name=tier.name,
        missing=missing,
        deadline=win.deadline,
        drops_out_from=drops,
        message=message,
    )


def _keep(
    tier: Tier,
    current_period: Measures,
    keep_measures: Measures,
    window: Window,
    deadline: date | None,
    grace_until: datetime | None,
    grace_last_day: date | None,
    words: Words,
) -> Keep:
    threshold = tier.keep
    assert threshold is not None
    met = meets(threshold, keep_measures)
    missing = _missing(threshold, current_period)
    lacking = [item for item in missing if item.missing]
    going_on = met and (window.kind == "rolling" or meets(threshold, current_period))
    if going_on:
        message = words.kept(tier.name)
    elif met:
        message = words.kept_for_now(lacking, tier.name, deadline)
    else:
        message = words.to_keep(lacking, tier.name, deadline, grace_last_day)
    return Keep(
        code=tier.code,
        threshold={m.value: _amount(m, n) for m, n in threshold.measures().items()},
        met=met,
        missing=missing,
        deadline=deadline,
        grace_until=grace_until,
        message=message,
    )


class Words:
    """The sentences of a standing, in zh-CN or en."""

    def __init__(self, lang: str, currency: str) -> None:
        self.zh = lang == "zh-CN"
        self.currency = currency

    def amount(self, item: Missing) -> str:
        n = item.missing
        if item.measure == "growth":
            return f"{n:,} 成长值" if self.zh else f"{n:,} growth value"
        if item.measure == "spend":
            money = f"{Decimal(n):,.2f}"
            if self.zh:
                unit = "元" if self.currency == "CNY" else self.currency
                return f"{money} {unit}消费金额"
            return f"{money} {self.currency} of spend"
        if self.zh:
            return f"{n:,} 笔订单"
        return f"{n:,} purchase" if n == 1 else f"{n:,} purchases"

    def _items(self, missing: list[Missing]) -> str:
        # each item starts with its number, set off by a space as in "还差 1,240 成长值"
        return ("或 " if self.zh else " or ").join(self.amount(item) for item in missing)

    def reached(self, name: str) -> str:
        if self.zh:
            return f"已达到{name}的升级条件，将在下次等级评估时升级"
        return f"The record reaches {name}: the upgrade comes with the next evaluation"

    def to_reach(
        self,
        missing: list[Missing],
        name: str,
        deadline: date | None,
        window: Window,
        drops: date | None,
    ) -> str:
        items = self._items(missing)
        if deadline is not None:
            if self.zh:
                return f"还差 {items}，{deadline.isoformat()} 前可升级为{name}"
            return f"{items} more by {deadline.isoformat()} to reach {name}"
        if self.zh:
            text = f"还差 {items}即可升级为{name}（按近 {window.months} 个月累计"
            if drops is not None:
                text += f"，最早计入的部分自 {drops.isoformat()} 起不再计入"
            return text + "）"
        text = f"{items} more to reach {name} (counted over the last {window.months} months"
        if drops is not None:
            text += f"; the oldest amount counted drops out from {drops.isoformat()}"
        return text + ")"

    def kept(self, name: str) -> str:
        return f"已满足保持{name}的条件" if self.zh else f"The record keeps {name}"

    def kept_for_now(self, missing: list[Missing], name: str, deadline: date | None) -> str:
        items = self._items(missing)
        day = deadline.isoformat() if deadline else ""
        if self.zh:
            return f"本期保级条件已由上一周期满足；还差 {items}，{day} 前达成可保持{name}至下一周期"
        return (
            f"{name} is kept on the previous period's record; {items} more by {day} "
            "keeps it through the next period"
        )

    def to_keep(
        self, missing: list[Missing], name: str, deadline: date | None, grace: date | None
    ) -> str:
        items = self._items(missing)
        if self.zh:
            text = f"还差 {items}"
            text += f"，{deadline.isoformat()} 前达成" if deadline else ""
            text += f"可保持{name}"
            return text + (f"（宽限期至 {grace.isoformat()}）" if grace else "")
        text = f"{items} more" + (f" by {deadline.isoformat()}" if deadline else "")
        text += f" to keep {name}"
        return text + (f" (grace period until {grace.isoformat()})" if grace else "")
