"""Purchases: record an order, award its points and growth value, explain and simulate it.

One purchase is one transaction's worth of work:
1. the member's points account is locked first (so caps, first-purchase and budgets are
   decided one purchase at a time per member), then budget rows in key order;
2. the current rule-set version is evaluated (pure, `jifen.rules`) on the basket and the
   member's facts, once to see which capped rules fire, then again with what their caps
   and budgets leave;
3. the purchase, its lines and its breakdown are written, the ledger credits the points
   (pending until the return window closes) and the growth value, and the counters of
   capped rules move — all or nothing. Where points paid part of the order
   (`points_payment`), its checkout hold is captured first and the award is on each
   line's cash part (`jifen.rewards.checkout`).
`simulate` runs steps 2 without locks or writes, so it gives the same answer a real
purchase would get at that moment.

An order id is unique per programme: sending it again returns the first result (a retried
till never earns twice, and an order cancelled and completed again is not awarded again).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, NoReturn, Protocol

from sqlalchemy import Exists, bindparam, exists, inspect, select
from sqlalchemy.orm import Session

from jifen.core.errors import (
    AlreadyClaimed,
    InvalidInput,
    NotFound,
    OrderConflict,
    OutsideClaimWindow,
    UnknownCode,
)
from jifen.db.bulk import among_bound
from jifen.db.dml import as_read, insert_many_returning, insert_returning
from jifen.db.outbox import emit_many, event
from jifen.earning import caps
from jifen.earning.models import Purchase, PurchaseLine, PurchaseReturn, PurchaseStatus
from jifen.earning.schemas import (
    BreakdownItem,
    ClaimIn,
    Earned,
    LineOut,
    PurchaseIn,
    PurchaseOut,
    ReturnSummary,
)
from jifen.ledger import service as ledger
from jifen.ledger.models import Account, AccountKind, Lot
from jifen.ledger.posting import Book, MemberAccounts, ensure_writable, lock_member, lot_created
from jifen.members import service as members
from jifen.members.models import Member
from jifen.programs.models import Channel, Program, Store
from jifen.programs.rulesets import VersionedRules, current_rules
from jifen.rewards import checkout
from jifen.rules.evaluator import (
    Award,
    BasketError,
    CompiledRule,
    compile_rules,
    evaluate,
    evaluate_lean,
)
from jifen.rules.facts import Basket, Line, MemberFacts
from jifen.rules.schemas import EarningRule, Stacking
from jifen.tiers import service as tiers
from jifen.tiers.models import MemberTier
from jifen.tiers.standing import policy_of

CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a till's clock may be before its purchase is refused."""

GROWTH_PREFIX = "growth:"


@dataclass(frozen=True)
class Evaluation:
    rules: VersionedRules
    points: Award
    growth: Award
    usage: dict[str, int]
    """Counter key → points the award uses of it."""


@dataclass(frozen=True)
class Recorded:
    purchase: Purchase
    created: bool
    """False when the order id was already recorded (the first result is returned)."""


# ---------------------------------------------------------------- recording


def record(
    session: Session,
    program: Program,
    book: Book,
    data: PurchaseIn,
    *,
    now: datetime,
    actor: str,
) -> Recorded:
    member = members.resolve(session, program.id, data.member) if data.member else None
    # The order id is claimed first (INSERT … ON CONFLICT DO NOTHING): a repeat, or a
    # concurrent request for the same order once it commits, inserts nothing and gets the
    # first result, whatever the member is now; a refusal below rolls the row back.
    purchase = _insert(session, program, data, member, now=now, actor=actor)
    if purchase is None:
        existing = _by_external_id(session, program.id, data.external_id)
        assert existing is not None
        return Recorded(_same_order(existing, data, member), created=False)
    accounts = _lock_member(session, book, member, now) if member is not None else None
    _check(session, program, data, now, attach=member is not None)
    _insert_lines(session, program, purchase, data)
    if data.points_payment is not None:
        # Points paid part of it: the hold is captured now, before the award, which then
        # sees each line's cash part only (jifen.rewards.checkout).
        checkout.capture(
            session,
            program,
            book,
            purchase,
            _lines_of(session, purchase.id),
            data.points_payment.hold_id,
            member,
            now=now,
            actor=actor,
        )
    # The award's events (points and growth credited, a tier change) and the purchase's
    # own go in with one statement, in the order they happened.
    outbox: list[dict[str, Any]] = []
    if member is not None:
        assert accounts is not None
        _award(session, program, book, purchase, member, accounts, outbox, now=now, actor=actor)
    outbox.append(
        purchase_event(
            "purchase.recorded", program.id, purchase.member_id, purchase.id, purchase.points, now
        )
    )
    emit_many(session, outbox)
    return Recorded(purchase, created=True)


def claim(
    session: Session, program: Program, book: Book, data: ClaimIn, *, now: datetime, actor: str
) -> Recorded:
    """Attach an unclaimed order to a member and award it (retro-claim, PRODUCT.md E6)."""
    member = members.resolve(session, program.id, data.member)
    accounts = _lock_member(session, book, member, now)
    purchase = session.execute(
        select(Purchase)
        .where(Purchase.program_id == program.id, Purchase.external_id == data.external_id)
        .with_for_update()
    ).scalar_one_or_none()
    if purchase is None:
        raise NotFound(what="order", key=data.external_id)
    if purchase.member_id is not None:
        if purchase.member_id == member.id:
            return Recorded(purchase, created=False)  # a retried claim: the first result
        raise AlreadyClaimed(external_id=data.external_id, member_id=purchase.member_id)
    check_window(program, purchase.occurred_at, now)
    purchase.member_id = member.id
    purchase.claimed_at = now
    outbox: list[dict[str, Any]] = []
    _award(session, program, book, purchase, member, accounts, outbox, now=now, actor=actor)
    outbox.append(
        purchase_event("purchase.claimed", program.id, member.id, purchase.id, purchase.points, now)
    )
    emit_many(session, outbox)
    return Recorded(purchase, created=True)


def purchase_event(
    kind: str, program_id: int, member_id: int | None, purchase_id: int, points: int, at: datetime
) -> dict[str, Any]:
    """The outbox row of a purchase recorded or claimed (`emit_many` writes it; a batch
    too, with its other rows)."""
    return event(
        program_id=program_id,
        member_id=member_id,
        type=kind,
        payload={"purchase_id": purchase_id, "points": points},
        at=at,
    )


def simulate(
    session: Session, program: Program, book: Book, data: PurchaseIn, *, now: datetime
) -> Earned:
    """What recording `data` now would award, without writing or locking anything (and
    refused as the purchase would be, a frozen or closed member's included)."""
    member = members.resolve(session, program.id, data.member) if data.member else None
    if member is not None:
        ensure_writable(_account(session, program.id, member.id))
    _check(session, program, data, now, attach=member is not None)
    lines = [_line(i, line) for i, line in enumerate(data.lines)]
    if data.points_payment is not None:  # what the capture would leave: the cash parts
        lines = checkout.preview(
            session, program, data.points_payment.hold_id, member, lines, now=now
        )
    basket = basket_of(book, data.occurred_at, data.channel, data.store, data.payment_method, lines)
    rules = current_rules(session, program.id)
    facts = _facts(session, program, member, rules)
    result = evaluate_purchase(
        session, program.id, member.id if member else 0, rules, basket, facts, lock=False
    )
    return _earned(result)


def evaluate_purchase(
    session: Session,
    program_id: int,
    member_id: int,
    rules: VersionedRules,
    basket: Basket,
    facts: MemberFacts,
    *,
    lock: bool,
) -> Evaluation:
    """Evaluate with the caps and budgets as the database has them (budget rows locked
    first, in key order, with `lock`)."""
    return evaluate_with(
        rules,
        member_id,
        basket,
        facts,
        lambda bounds: caps.room(session, program_id, bounds, lock=lock),
    )


Room = Callable[[list[caps.Bound]], int]
"""What the tightest of a capped rule's counters still allows (never below 0)."""


def evaluate_with(
    rules: VersionedRules, member_id: int, basket: Basket, facts: MemberFacts, room: Room
) -> Evaluation:
    """The award of `basket`, asking `room` what each capped rule that fires may still
    give. Pure but for `room`: a bulk import answers it from counters read in advance."""
    day = basket.at.date()
    points, usage = _bounded(rules.earning, basket, facts, member_id, day, room, prefix="")
    growth, growth_usage = _bounded(
        rules.growth, basket, facts, member_id, day, room, prefix=GROWTH_PREFIX
    )
    for key, n in growth_usage.items():
        usage[key] = usage.get(key, 0) + n
    return Evaluation(rules, points, growth, usage)


def evaluate_at_once(
    rules: VersionedRules, member_id: int, basket: Basket, facts: MemberFacts, room: Room
) -> Evaluation:
    """`evaluate_with`, the points and the growth value in one call: for a rule set
    without caps or budgets (most), each award straight from the evaluator
    (`evaluate_lean`: in whole numbers, in one pass, where it can) — with
    no counter to find there is nothing to bound, so `evaluate_with` evaluates each once
    and asks `room` nothing. A bulk import prices every order with it
    (`jifen.earning.batch`)."""
    if capped(rules):
        return evaluate_with(rules, member_id, basket, facts, room)
    try:
        points = evaluate_lean(rules.earning, basket, facts)
        growth = evaluate_lean(rules.growth, basket, facts)
    except BasketError as exc:  # as `_evaluate` says it
        raise InvalidInput(
            field=f"lines[{exc.line}].attributes.{exc.attribute}", reason=exc.reason
        ) from exc
    return Evaluation(rules, points, growth, {})


def capped(rules: VersionedRules) -> bool:
    """Whether any rule of the set has a cap or a budget (else no counter is ever read)."""
    return any(
        c.rule.caps is not None or c.rule.budget is not None
        for c in (*rules.earning, *rules.growth)
    )


def bounds_of(
    rules: VersionedRules, member_id: int, basket: Basket, facts: MemberFacts
) -> list[caps.Bound]:
    """Every counter `evaluate_with` may ask `room` about for this basket."""
    day = basket.at.date()
    found: list[caps.Bound] = []
    for compiled, prefix in ((rules.earning, ""), (rules.growth, GROWTH_PREFIX)):
        _, bounds = _priced(compiled, basket, facts, member_id, day, prefix)
        for rule_bounds in bounds.values():
            found.extend(rule_bounds)
    return found


def _priced(
    compiled: Sequence[CompiledRule],
    basket: Basket,
    facts: MemberFacts,
    member_id: int,
    day: date,
    prefix: str,
) -> tuple[Award, dict[str, list[caps.Bound]]]:
    """The award before caps, and the counters of each capped rule that may give points
    (by rule id, in id order: the order budget rows are locked in)."""
    first = _evaluate(compiled, basket, facts, None)
    capped_rules: dict[str, EarningRule] = {
        c.rule.id: c.rule for c in compiled if c.rule.caps is not None or c.rule.budget is not None
    }
    if not capped_rules:
        return first, {}
    firing = sorted(
        rule for rule in _may_give(compiled, basket, facts, first) if rule in capped_rules
    )
    return first, {
        rule_id: caps.bounds(
            rule_id,
            member_id=member_id,
            day=day,
            caps=capped_rules[rule_id].caps,
            budget=capped_rules[rule_id].budget,
            prefix=prefix,
        )
        for rule_id in firing
    }


def _bounded(
    compiled: Sequence[CompiledRule],
    basket: Basket,
    facts: MemberFacts,
    member_id: int,
    day: date,
    room: Room,
    *,
    prefix: str,
) -> tuple[Award, dict[str, int]]:
    """Evaluate; where capped rules may give points, find what their caps leave and
    evaluate again."""
    first, bounds = _priced(compiled, basket, facts, member_id, day, prefix)
    if not bounds:
        return first, {}
    allowances = {rule_id: room(rule_bounds) for rule_id, rule_bounds in bounds.items()}
    award = _evaluate(compiled, basket, facts, allowances)
    usage: dict[str, int] = {}
    for item in award.items:
        for bound in bounds.get(item.rule, []):
            usage[bound.key] = usage.get(bound.key, 0) + item.points
    return award, usage


def _may_give(
    compiled: Sequence[CompiledRule], basket: Basket, facts: MemberFacts, first: Award
) -> set[str]:
    """The rules that may give points once allowances cut some of them. Without best_of
    groups and exclusive rules that is the rules of the unbounded award. But a best_of
    group is decided after the bounds (a rule that loses it unbounded wins it once the
    winner's cap or budget is spent, and a multiplier may then apply to other base
    rules), and an exclusive rule whose budget is spent steps aside for the rules it cut.
    So they are found by evaluating with every rule stacking, which gives every rule,
    multipliers included, at least what it could give in any outcome."""
    found = {item.rule for item in first.items}
    stacked = _all_stacking(compiled)
    if stacked is not None:
        found |= {item.rule for item in _evaluate(stacked, basket, facts, None).items}
    return found


_STACKED: dict[int, tuple[Sequence[CompiledRule], tuple[CompiledRule, ...] | None]] = {}


def _all_stacking(compiled: Sequence[CompiledRule]) -> tuple[CompiledRule, ...] | None:
    """The rules with every rule stacking (None when they all do already), compiled once
    per rule set: rule sets are cached and immutable, and each entry keeps its key alive."""
    cached = _STACKED.get(id(compiled))
    if cached is not None and cached[0] is compiled:
        return cached[1]
    stacked = None
    if any(c.rule.stacking != Stacking.STACK for c in compiled):
        stacked = compile_rules(
            [
                c.rule.model_copy(update={"stacking": Stacking.STACK, "group": None})
                if c.rule.stacking != Stacking.STACK
                else c.rule
                for c in compiled
            ]
        )
    if len(_STACKED) > 4096:
        _STACKED.clear()
    _STACKED[id(compiled)] = (compiled, stacked)
    return stacked


def _evaluate(
    compiled: Sequence[CompiledRule],
    basket: Basket,
    facts: MemberFacts,
    allowances: dict[str, int] | None,
) -> Award:
    from jifen.rules.evaluator import BasketError

    try:
        return evaluate(compiled, basket, facts, allowances=allowances)
    except BasketError as exc:
        raise InvalidInput(
            field=f"lines[{exc.line}].attributes.{exc.attribute}", reason=exc.reason
        ) from exc


def _award(
    session: Session,
    program: Program,
    book: Book,
    purchase: Purchase,
    member: Member,
    accounts: MemberAccounts,
    outbox: list[dict[str, Any]],
    *,
    now: datetime,
    actor: str,
) -> None:
    """Award the purchase; its events are added to `outbox` for the caller to write."""
    basket = remaining_basket(book, purchase, _lines_of(session, purchase.id))
    rules = current_rules(session, program.id)
    # The member's tier row is read once, with the facts, for the rules and for the tier
    # upgrade below (the points lock held since keeps every writer of it away).
    found, tier_rows = _read_facts(session, program, [member], rules, (purchase.id,))
    facts = found[member.id]
    result = evaluate_purchase(session, program.id, member.id, rules, basket, facts, lock=True)
    # The ledger first, then every field of the purchase at once: one UPDATE of its row.
    details = {"purchase_id": purchase.id, "order": purchase.external_id}
    points, growth = result.points.points, result.growth.points
    earn_txn_id = growth_txn_id = None
    if points > 0:
        earn_txn_id = ledger.credit(
            session,
            book,
            member.id,
            points,
            now=now,
            actor=actor,
            pending=True,
            earned_at=min(purchase.occurred_at, now),
            reference=f"purchase:{purchase.id}",
            details=details,
            account=accounts.points,
            outbox=outbox,
        ).id
    if growth > 0:
        growth_txn_id = ledger.credit_growth(
            session,
            book,
            member.id,
            growth,
            now=now,
            actor=actor,
            reference=f"purchase-growth:{purchase.id}",
            details=details,
            account=accounts.growth,
            outbox=outbox,
        ).id
    caps.use(session, program.id, result.usage)
    if purchase.status != PurchaseStatus.RETURNED:  # claimed after it all came back
        purchase.status = PurchaseStatus.AWARDED
    purchase.rule_set_version = result.rules.version
    purchase.facts = facts_json(facts)
    purchase.points = points
    purchase.growth = growth
    purchase.breakdown = [item.as_dict() for item in result.points.items]
    purchase.growth_breakdown = [item.as_dict() for item in result.growth.items]
    if earn_txn_id is not None:
        purchase.earn_txn_id = earn_txn_id
    if growth_txn_id is not None:
        purchase.growth_txn_id = growth_txn_id
    session.flush()
    # The order counts towards the member's tier once awarded (it was evaluated at the
    # tier the member had before it): an upgrade it earns is in this transaction.
    tiers.on_activity(
        session,
        program,
        member.id,
        now=now,
        actor=actor,
        cause=details,
        rows=tier_rows,
        outbox=outbox,
    )


# ---------------------------------------------------------------- checks and facts


def _lock_member(session: Session, book: Book, member: Member, now: datetime) -> MemberAccounts:
    """The member's points and growth accounts, locked with one statement (points first)."""
    accounts = lock_member(session, book, member.id, now)
    ensure_writable(accounts.points)
    return accounts


def _account(session: Session, program_id: int, member_id: int) -> Account:
    """The member's points account, read without a lock."""
    return session.execute(
        select(Account).where(
            Account.program_id == program_id,
            Account.member_id == member_id,
            Account.kind == AccountKind.POINTS,
        )
    ).scalar_one()


def _by_external_id(session: Session, program_id: int, external_id: str) -> Purchase | None:
    return session.execute(
        select(Purchase).where(
            Purchase.program_id == program_id, Purchase.external_id == external_id
        )
    ).scalar_one_or_none()


def _same_order(existing: Purchase, data: PurchaseIn, member: Member | None) -> Purchase:
    """The recorded order, when `data` is the same order sent again: same member (or, from
    the till that sent it without one, a member who has since claimed it) and total."""
    member_id = member.id if member else None
    claimed_since = member_id is None and existing.claimed_at is not None
    if existing.member_id != member_id and not claimed_since:
        raise OrderConflict(
            external_id=data.external_id, purchase_id=existing.id, difference="member"
        )
    if existing.total != data.total:
        raise OrderConflict(
            external_id=data.external_id, purchase_id=existing.id, difference="total"
        )
    return existing


def _check(
    session: Session, program: Program, data: PurchaseIn, now: datetime, *, attach: bool
) -> None:
    if data.occurred_at > now + CLOCK_SKEW:
        raise InvalidInput(field="occurred_at", reason="is in the future")
    if attach:
        check_window(program, data.occurred_at, now)
    _check_codes(session, program.id, data.channel, data.store)


def check_window(program: Program, occurred_at: datetime, now: datetime) -> None:
    if occurred_at < now - timedelta(days=program.claim_days):
        raise OutsideClaimWindow(occurred_at=occurred_at.isoformat(), days=program.claim_days)


def _active(model: type[Channel] | type[Store], code: str) -> Exists:
    return exists().where(
        model.program_id == bindparam("program_id"),
        model.code == bindparam(code),
        model.active.is_(True),
    )


_CODES = {
    False: select(_active(Channel, "channel")),
    True: select(_active(Channel, "channel"), _active(Store, "store")),
}
"""Whether the channel (and the store) are active ones of the programme (built once)."""


def _check_codes(session: Session, program_id: int, channel: str, store: str | None) -> None:
    """The channel (then the store, if given) is an active one of the programme: both
    looked up in one query, the known ones listed only for a refusal."""

    params = {"program_id": program_id, "channel": channel, "store": store}
    found = session.execute(_CODES[store is not None], params).one()
    if not found[0]:
        _refuse_code(session, Channel, program_id, "channel", channel)
    if store is not None and not found[1]:
        _refuse_code(session, Store, program_id, "store", store)


def _refuse_code(
    session: Session, model: type[Channel] | type[Store], program_id: int, field: str, code: str
) -> NoReturn:
    known = session.execute(
        select(model.code)
        .where(model.program_id == program_id, model.active.is_(True))
        .order_by(model.code)
        .limit(20)
    ).scalars()
    raise UnknownCode(field=field, code=code, known=", ".join(known) or "—")


def _facts(
    session: Session, program: Program, member: Member | None, rules: VersionedRules
) -> MemberFacts:
    if member is None:
        return MemberFacts()
    return _read_facts(session, program, [member], rules, ())[0][member.id]


SEGMENTS = "segments"
FIRST_PURCHASE = "first_purchase"


def needed_facts(rules: VersionedRules) -> frozenset[str]:
    """The facts that cost a query of their own and that some rule of the set asks about
    (SEGMENTS, FIRST_PURCHASE): the others are never read."""
    needed = set()
    for compiled in (*rules.earning, *rules.growth):
        if compiled.rule.when.segment is not None:
            needed.add(SEGMENTS)
        if compiled.rule.when.first_purchase is not None:
            needed.add(FIRST_PURCHASE)
    return frozenset(needed)


@dataclass(frozen=True)
class ReadFacts(MemberFacts):
    """Member facts that know which facts were not read (no rule of the set asks them):
    `facts_json` leaves those out rather than record a default as if it had been read."""

    unread: frozenset[str] = frozenset()


_TIER_ROWS = select(MemberTier).where(
    MemberTier.program_id == bindparam("program_id"),
    among_bound(MemberTier.member_id, "member_ids"),
)
_BUYERS = (
    select(Purchase.member_id)
    .where(
        Purchase.program_id == bindparam("program_id"),
        among_bound(Purchase.member_id, "member_ids"),
        Purchase.id.not_in(bindparam("excluded", expanding=True)),
    )
    .group_by(Purchase.member_id)
)
"""Built once; an empty `excluded` list excludes nothing (SQLAlchemy renders it so)."""


class Person(Protocol):
    """What the facts read of a member themselves: a `Member`, or the row a batch reads
    of the members its orders name (`jifen.earning.batch.Named`)."""

    @property
    def id(self) -> int: ...

    @property
    def birthday(self) -> date | None: ...


def facts_of(
    session: Session,
    program: Program,
    members_: Sequence[Person],
    *,
    exclude_purchases: Collection[int] = (),
    rules: VersionedRules | None = None,
) -> dict[int, MemberFacts]:
    """What the rules know of each member before a purchase (one query per fact for the
    whole batch): the tier, segments, whether it is the first purchase (not counting
    `exclude_purchases`, the purchases being awarded) and the birthday. Segments and the
    first purchase are read only when a rule of `rules` (default: the current ones) asks."""
    rules = rules if rules is not None else current_rules(session, program.id)
    return _read_facts(session, program, members_, rules, exclude_purchases)[0]


def facts_and_tier_rows(
    session: Session, program: Program, members_: Sequence[Person], *, rules: VersionedRules
) -> tuple[dict[int, MemberFacts], dict[int, MemberTier]]:
    """`facts_of`, and the members' tier rows it read them from (by member id; a member
    without one is absent): what `tiers.service.on_activity_many` takes as its `rows` when
    it acts under the same account locks (a batch's round)."""
    return _read_facts(session, program, members_, rules, ())


def _read_facts(
    session: Session,
    program: Program,
    members_: Sequence[Person],
    rules: VersionedRules,
    exclude_purchases: Collection[int],
) -> tuple[dict[int, MemberFacts], dict[int, MemberTier]]:
    """`facts_of`, and the members' tier rows it read them from (by member id; a member
    without one is absent, as is everyone when the programme has no tiers)."""
    ids = [member.id for member in members_]
    if not ids:
        return {}, {}
    needed = needed_facts(rules)
    policy = policy_of(program)
    rows: dict[int, MemberTier] = {}
    tiers_now: dict[int, str | None] = dict.fromkeys(ids)
    if policy is not None:  # as tiers_of reads it: the base tier until another is held
        params = {"program_id": program.id, "member_ids": ids}
        rows = {row.member_id: row for row in session.execute(_TIER_ROWS, params).scalars()}
        for member_id in ids:
            row = rows.get(member_id)
            held = row is not None and policy.get(row.tier) is not None
            tiers_now[member_id] = row.tier if held and row is not None else policy.base.code
    segments: dict[int, frozenset[str]] = {}
    if SEGMENTS in needed:
        segments = members.segments_by_member(session, program.id, ids)
    buyers: set[int] = set()
    if FIRST_PURCHASE in needed:
        params = {"program_id": program.id, "member_ids": ids, "excluded": list(exclude_purchases)}
        buyers = {m for m in session.execute(_BUYERS, params).scalars() if m is not None}
    unread = frozenset({SEGMENTS, FIRST_PURCHASE} - needed)
    found: dict[int, MemberFacts] = {}
    for member in members_:
        tier = tiers_now[member.id]
        level = policy.get(tier) if policy is not None and tier is not None else None
        found[member.id] = ReadFacts(
            tier=tier,
            segments=segments.get(member.id, frozenset()),
            first_purchase=FIRST_PURCHASE in needed and member.id not in buyers,
            birthday=member.birthday,
            tier_multiplier=level.benefits.earn_multiplier if level is not None else None,
            unread=unread,
        )
    return found, rows


def facts_json(facts: MemberFacts) -> dict[str, Any]:
    """The facts as stored with the purchase; a fact that was not read (no rule of its
    rule set asks it) is left out."""
    unread = facts.unread if isinstance(facts, ReadFacts) else frozenset()
    stored: dict[str, Any] = {"tier": facts.tier}
    if SEGMENTS not in unread:
        stored[SEGMENTS] = sorted(facts.segments)
    if FIRST_PURCHASE not in unread:
        stored[FIRST_PURCHASE] = facts.first_purchase
    stored["birthday"] = facts.birthday.isoformat() if facts.birthday else None
    stored["tier_multiplier"] = str(facts.tier_multiplier) if facts.tier_multiplier else None
    return stored


def facts_from_json(stored: dict[str, Any] | None) -> MemberFacts:
    stored = stored or {}
    birthday = stored.get("birthday")
    multiplier = stored.get("tier_multiplier")
    return MemberFacts(
        tier=stored.get("tier"),
        segments=frozenset(stored.get("segments") or ()),
        first_purchase=bool(stored.get("first_purchase")),
        birthday=date.fromisoformat(birthday) if birthday else None,
        tier_multiplier=Decimal(multiplier) if multiplier else None,
    )


# ---------------------------------------------------------------- rows and baskets


NEW_LINES = "jifen.earning.new_lines"
"""`session.info` key: purchase id → the lines this session inserted for it (as ORM rows,
in line order): the lines of an order recorded in this transaction, read without a query."""


def _insert(
    session: Session,
    program: Program,
    data: PurchaseIn,
    member: Member | None,
    *,
    now: datetime,
    actor: str,
) -> Purchase | None:
    """The purchase row, or None when the programme already has this order id."""
    values = purchase_row(
        program.id, data, member.id if member is not None else None, now=now, actor=actor
    )
    return insert_returning(session, Purchase, values, unique=("program_id", "external_id"))


def purchase_row(
    program_id: int, data: PurchaseIn, member_id: int | None, *, now: datetime, actor: str
) -> dict[str, Any]:
    """The order's purchase row as first recorded: unclaimed, nothing awarded, returned or
    paid with points yet (its id left to the caller). One purchase here fills in the
    award by the ORM later; many in `jifen.earning.batch` write it awarded at once."""
    return {
        "program_id": program_id,
        "member_id": member_id,
        "external_id": data.external_id,
        "status": PurchaseStatus.UNCLAIMED,
        # in UTC, as it reads back: the first answer and its repeats render it alike
        "occurred_at": data.occurred_at.astimezone(UTC),
        "channel": data.channel,
        "store": data.store,
        "payment_method": data.payment_method,
        "total": data.total,
        "net_total": data.total,
        "rule_set_version": None,
        "facts": None,
        "points": 0,
        "growth": 0,
        "points_returned": 0,
        "growth_returned": 0,
        "breakdown": None,
        "growth_breakdown": None,
        "earn_txn_id": None,
        "growth_txn_id": None,
        "attributes": {k: str(v) for k, v in data.attributes.items()} or None,
        "hold_id": None,
        "paid_points": 0,
        "paid_points_value": Decimal("0.00"),
        "capture_txn_id": None,
        "created_at": now,
        "claimed_at": None,
        "actor": actor,
    }


def line_rows(program_id: int, purchase_id: int, data: PurchaseIn) -> list[dict[str, Any]]:
    """The rows of the order's lines, as recorded (nothing returned or paid with points
    yet): for one purchase here, for many in `jifen.earning.batch`."""
    return [
        {
            "program_id": program_id,
            "purchase_id": purchase_id,
            "line_no": i + 1,
            "sku": line.sku,
            "category": line.category,
            "brand": line.brand,
            "quantity": line.quantity,
            "unit_price": line.unit_price,
            "amount": line.amount,
            "discount": line.discount,
            "attributes": {k: str(v) for k, v in line.attributes.items()} or None,
            "returned_quantity": Decimal(0),
            "returned_amount": Decimal(0),
            "points_value": Decimal("0.00"),
        }
        for i, line in enumerate(data.lines)
    ]


def _insert_lines(
    session: Session, program: Program, purchase: Purchase, data: PurchaseIn
) -> list[PurchaseLine]:
    """The order's lines, in one INSERT … RETURNING (the persistent rows, in line order)."""
    rows = line_rows(program.id, purchase.id, data)
    lines = insert_many_returning(session, PurchaseLine, rows)
    session.info.setdefault(NEW_LINES, {})[purchase.id] = lines
    return lines


def _line(index: int, line: Any) -> Line:
    return Line(
        sku=line.sku,
        quantity=line.quantity,
        amount=line.net,
        category=line.category,
        brand=line.brand,
        attributes={k: str(v) for k, v in line.attributes.items()},
    )


def remaining_basket(book: Book, purchase: Purchase, lines: list[PurchaseLine]) -> Basket:
    """The order as it stands: what has not been returned (a line fully refunded, or
    whose every item came back, is gone), each line at its cash part (what points paid of
    what is left of it earns nothing)."""
    kept = []
    for line in lines:
        quantity = line.quantity - line.returned_quantity
        amount = line.amount - line.discount - line.returned_amount
        if quantity <= 0 or (amount <= 0 < line.amount - line.discount):
            continue
        kept.append(
            Line(
                sku=line.sku,
                quantity=quantity,
                amount=amount - checkout.points_value_left(line),
                category=line.category,
                brand=line.brand,
                attributes=line.attributes or {},
            )
        )
    return basket_of(
        book, purchase.occurred_at, purchase.channel, purchase.store, purchase.payment_method, kept
    )


def basket_of(
    book: Book,
    occurred_at: datetime,
    channel: str,
    store: str | None,
    payment_method: str | None,
    lines: list[Line],
) -> Basket:
    return Basket(
        at=occurred_at.astimezone(book.tz),
        channel=channel,
        store=store,
        payment_method=payment_method,
        lines=tuple(lines),
    )


def _lines_of(session: Session, purchase_id: int) -> list[PurchaseLine]:
    new = _new_lines(session, purchase_id)
    if new is not None:
        return new
    return list(
        session.execute(
            select(PurchaseLine)
            .where(PurchaseLine.purchase_id == purchase_id)
            .order_by(PurchaseLine.line_no)
        ).scalars()
    )


def _new_lines(session: Session, purchase_id: int) -> list[PurchaseLine] | None:
    """The lines of a purchase this session inserted, while they are still its rows (a
    rollback makes them transient): every change to them since went through these very
    objects, so they are what a query would read."""
    lines: list[PurchaseLine] | None = session.info.get(NEW_LINES, {}).get(purchase_id)
    if lines is None or not all(inspect(line).persistent for line in lines):
        return None
    return lines


# ---------------------------------------------------------------- reading


def get(session: Session, program_id: int, purchase_id: int) -> Purchase:
    purchase = session.execute(
        select(Purchase).where(Purchase.id == purchase_id, Purchase.program_id == program_id)
    ).scalar_one_or_none()
    if purchase is None:
        raise NotFound(what="purchase", key=purchase_id)
    return purchase


def list_for_member(
    session: Session, program_id: int, member_id: int, *, before: int | None, limit: int
) -> list[Purchase]:
    query = select(Purchase).where(
        Purchase.program_id == program_id, Purchase.member_id == member_id
    )
    if before is not None:
        query = query.where(Purchase.id < before)
    return list(session.execute(query.order_by(Purchase.id.desc()).limit(limit)).scalars())


def _items(stored: list[dict[str, Any]] | None) -> list[BreakdownItem]:
    return [
        BreakdownItem(
            rule=item["rule"],
            name=item["name"],
            effect=item["effect"],
            basis=Decimal(item["basis"]),
            lines=[i + 1 for i in item["lines"]],
            wanted=item["wanted"],
            points=item["points"],
            capped_by=item["capped_by"],
        )
        for item in stored or []
    ]


def _earned(result: Evaluation) -> Earned:
    return Earned(
        points=result.points.points,
        growth=result.growth.points,
        rule_set_version=result.rules.version,
        breakdown=_items([item.as_dict() for item in result.points.items]),
        growth_breakdown=_items([item.as_dict() for item in result.growth.items]),
    )


def describe(session: Session, book: Book, purchase: Purchase) -> PurchaseOut:
    """The purchase as the API shows it. One recorded in this very transaction is described
    from what the session wrote (its lines, no returns yet, its lot's release), without
    reading any of it back."""
    new = _new_lines(session, purchase.id)
    lines = new if new is not None else _lines_of(session, purchase.id)
    returns: list[PurchaseReturn] = []
    if new is None:
        returns = list(
            session.execute(
                select(PurchaseReturn)
                .where(PurchaseReturn.purchase_id == purchase.id)
                .order_by(PurchaseReturn.id)
            ).scalars()
        )
    release = None
    if purchase.earn_txn_id:
        lot = lot_created(session, purchase.earn_txn_id)
        release = (
            lot.available_at
            if lot is not None
            else session.execute(
                select(Lot.available_at).where(Lot.transaction_id == purchase.earn_txn_id)
            ).scalar_one_or_none()
        )
    return shown(purchase, lines, returns, release)


_SHOWN = (
    "id",
    "external_id",
    "member_id",
    "status",
    "occurred_at",
    "channel",
    "store",
    "payment_method",
    "total",
    "net_total",
    "points",
    "growth",
    "points_returned",
    "growth_returned",
    "rule_set_version",
    "hold_id",
    "paid_points",
    "paid_points_value",
    "created_at",
    "claimed_at",
)
"""The purchase row's columns `shown` gives as they are."""

_LINE_SHOWN = (
    "line_no",
    "sku",
    "category",
    "brand",
    "quantity",
    "unit_price",
    "amount",
    "discount",
    "attributes",
    "returned_quantity",
    "returned_amount",
    "points_value",
)
"""A line row's columns `shown` gives as they are."""


def written_json(
    purchase: dict[str, Any], lines: list[dict[str, Any]], release: datetime | None
) -> str:
    """A purchase written in bulk (`jifen.earning.batch`), as the API shows it, from the
    rows as written (`Item.written`), read as a query would read them (no query, and no
    returns yet), as JSON: the text `shown`'s model dumps, with the response's fields
    gathered in plain dicts and validated at once (pydantic's core does
    the nested lines and breakdown items in one call) instead of a model built per line
    and per item through their constructors (a grouped purchase's answer; nearly a tenth
    of a group's Python when built the other way)."""
    fields = as_read(Purchase, {name: purchase[name] for name in _SHOWN})
    fields["pending_until"] = release
    fields["breakdown"] = _item_dicts(purchase["breakdown"])
    fields["growth_breakdown"] = _item_dicts(purchase["growth_breakdown"])
    fields["lines"] = [
        as_read(PurchaseLine, {name: line[name] for name in _LINE_SHOWN}) for line in lines
    ]
    fields["returns"] = []
    return PurchaseOut.model_validate(fields).model_dump_json()


def _item_dicts(stored: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """`_items`' fields, as a dict each."""
    return [
        {
            "rule": item["rule"],
            "name": item["name"],
            "effect": item["effect"],
            "basis": Decimal(item["basis"]),
            "lines": [i + 1 for i in item["lines"]],
            "wanted": item["wanted"],
            "points": item["points"],
            "capped_by": item["capped_by"],
        }
        for item in stored or []
    ]


def shown(
    purchase: Purchase | SimpleNamespace,
    lines: Sequence[PurchaseLine | SimpleNamespace],
    returns: Sequence[PurchaseReturn],
    release: datetime | None,
) -> PurchaseOut:
    """The purchase as the API shows it, from its rows."""
    return PurchaseOut(
        id=purchase.id,
        external_id=purchase.external_id,
        member_id=purchase.member_id,
        status=purchase.status,
        occurred_at=purchase.occurred_at,
        channel=purchase.channel,
        store=purchase.store,
        payment_method=purchase.payment_method,
        total=purchase.total,
        net_total=purchase.net_total,
        points=purchase.points,
        growth=purchase.growth,
        points_returned=purchase.points_returned,
        growth_returned=purchase.growth_returned,
        pending_until=release,
        rule_set_version=purchase.rule_set_version,
        breakdown=_items(purchase.breakdown),
        growth_breakdown=_items(purchase.growth_breakdown),
        hold_id=purchase.hold_id,
        paid_points=purchase.paid_points,
        paid_points_value=purchase.paid_points_value,
        lines=[
            LineOut(
                line_no=line.line_no,
                sku=line.sku,
                category=line.category,
                brand=line.brand,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
                discount=line.discount,
                attributes=line.attributes,
                returned_quantity=line.returned_quantity,
                returned_amount=line.returned_amount,
                points_value=line.points_value,
            )
            for line in lines
        ],
        returns=[
            ReturnSummary(
                id=r.id,
                external_id=r.external_id,
                amount=r.amount,
                points=r.points,
                growth=r.growth,
                withhold_amount=r.withhold_amount,
                paid_points_refunded=r.paid_points_refunded,
                created_at=r.created_at,
            )
            for r in returns
        ],
        created_at=purchase.created_at,
        claimed_at=purchase.claimed_at,
    )
