"""Many orders priced and booked in one transaction: the engine of bulk imports
(`jifen.imports.purchases`) and of grouped purchase writes over HTTP
(`jifen.api.grouped`). It gives exactly what recording the same orders one by one with
`jifen.earning.purchases.record` gives (tests/imports/test_equals_api.py,
tests/api/test_grouped.py).

The orders are booked in rounds. In a round each member has a run of their next orders,
priced one after the other in Python with the facts derived (no longer a first purchase
after the first; caps and budgets counted in memory) and booked together with the other
members' — accounts locked and facts read with one query each per round, every table
written once (`COPY` on PostgreSQL; `jifen.db.bulk`, `jifen.ledger.bulk`). A run ends
where one-by-one recording would have seen something the derivation does not cover — a
tier move or near-upgrade notice, a lot due at once, a debt (`jifen.earning.runs`) — and
the member's next orders go to the next round. With budgets (shared by all members) a
round stops at the first order left over, so a budget runs out at the same order as it
would one by one.

The caller checks each order first (the member, the codes, the time, the order id not
recorded yet) and gives them in the order they are to be made.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, literal, select, union_all
from sqlalchemy.orm import Session

from jifen.core.errors import (
    InvalidInput,
    JifenError,
    MemberClosed,
    MemberFrozen,
    NotFound,
    OrderConflict,
    UnknownCode,
)
from jifen.db.bulk import among, among_bound, copy_rows, reserve_ids_of
from jifen.db.outbox import OutboxEvent
from jifen.db.probes import by_keys
from jifen.earning import caps
from jifen.earning.models import Purchase, PurchaseLine, PurchaseStatus
from jifen.earning.purchases import (
    CLOCK_SKEW,
    Evaluation,
    basket_of,
    bounds_of,
    capped,
    evaluate_at_once,
    facts_and_tier_rows,
    facts_json,
    line_rows,
    purchase_event,
    purchase_row,
)
from jifen.earning.runs import Standing, Tiering, due_at_once, standings, tier_moves
from jifen.earning.schemas import PurchaseIn
from jifen.ledger.bulk import Credit, LotDates, check_balanced_behind, credit_many, ids_wanted
from jifen.ledger.models import Account, AccountKind, AccountStatus
from jifen.ledger.posting import Book, lock_accounts
from jifen.members.models import Member
from jifen.members.schemas import IdentifierField, normalise_identifier
from jifen.programs.models import Channel, Program, Store
from jifen.programs.rulesets import VersionedRules, current_rules
from jifen.rules.facts import Line, MemberFacts
from jifen.tiers import service as tiers
from jifen.tiers.models import MemberTier

CENT = Decimal("0.01")
MILLI = Decimal("0.001")


@dataclass(frozen=True, slots=True)
class Named:
    """A member an order names, as the booking reads it (`named_members`): all it asks of
    the member themselves (the facts' birthday); their standing is their accounts'."""

    id: int
    birthday: date | None


@dataclass(eq=False)
class Item:
    """One order to book: the request, its member (None: unclaimed) and the caller's own
    `tag`; the booking fills in the rest (`purchase_id` once written)."""

    data: PurchaseIn
    member: Named | None
    tag: Any = None
    basket: Any = None
    facts: MemberFacts | None = None
    result: Evaluation | None = None
    purchase_id: int | None = None
    written: tuple[dict[str, Any], list[dict[str, Any]], datetime | None] | None = None
    """The purchase's row, its lines' rows and its lot's release, as written."""
    moves_tier: bool | None = None
    """Whether the tiers act on the member after this order (`runs.tier_moves`; None: not
    asked)."""


@dataclass(frozen=True)
class Plan:
    """What every round of a transaction prices with: the rule set, whether it has
    budgets, the tier policy."""

    rules: VersionedRules
    budgets: bool
    tiering: Tiering | None

    @classmethod
    def of(cls, session: Session, program: Program, now: datetime) -> Plan:
        rules = current_rules(session, program.id)
        return cls(rules, _has_budgets(rules), Tiering.of(program, now))


@dataclass
class Booked:
    """What `book` did: the orders written (each with its `purchase_id`), those refused
    (a frozen or closed member's, with the error the API gives) and the totals."""

    written: list[Item] = field(default_factory=list)
    refused: list[tuple[Item, JifenError]] = field(default_factory=list)
    unclaimed: int = 0
    points: int = 0
    growth: int = 0
    upgrades: int = 0


def book_orders(
    session: Session,
    program: Program,
    book: Book,
    plan: Plan,
    items: list[Item],
    now: datetime,
    actor: str,
) -> Booked:
    """Price and book `items` (checked by the caller, in the order they are to be made) in
    the caller's transaction, in rounds."""
    done = Booked()
    dates = LotDates(book)
    lines: list[dict[str, Any]] = []
    """The purchase lines booked and not written yet: a round's are written after the next
    round's reads, which do not read them, so that with the `COPY`s sent behind
    (`db.bulk.writing_behind`, the import) PostgreSQL writes them while Python prices the
    next round, instead of the next round's reads waiting for them. In the same order, so
    the same rows with the same ids."""
    while items:
        items = _book_round(session, program, book, dates, plan, items, now, actor, done, lines)
    copy_rows(session, PurchaseLine.__table__, lines)  # type: ignore[arg-type]
    return done


def _has_budgets(rules: VersionedRules) -> bool:
    return any(c.rule.budget is not None for c in (*rules.earning, *rules.growth))


def _book_round(
    session: Session,
    program: Program,
    book: Book,
    dates: LotDates,
    plan: Plan,
    pending: list[Item],
    now: datetime,
    actor: str,
    done: Booked,
    lines: list[dict[str, Any]],
) -> list[Item]:
    """Price and book a run of each member's next orders (see `jifen.earning.runs`);
    returns the orders left for the next round, in file order. With budgets (shared by
    all members) the round stops at the first order left over, so every order is still
    priced after every order before it in the file."""
    members = {item.member.id: item.member for item in pending if item.member is not None}
    accounts = (
        lock_accounts(session, book, sorted(members), now, AccountKind.POINTS) if members else {}
    )
    active = [m for m in members.values() if accounts[m.id].status == AccountStatus.ACTIVE]
    # (the tier rows, read with the facts under the accounts' locks, serve the tiers'
    # upgrades at the end of the round too: nothing between writes them)
    facts, tier_rows = facts_and_tier_rows(session, program, active, rules=plan.rules)
    # A run can only end before a member's next order: the tier standings (three queries)
    # are read for the members with more than one order pending. A member's only order
    # leaves `moves_tier` unasked, and the tiers look at the member at the end of the
    # round (`on_activity_many`, with its one query for all of them), as one by one.
    orders = Counter(item.member.id for item in pending if item.member is not None)
    several = [m.id for m in active if orders[m.id] > 1]
    standing = (
        standings(session, program.id, plan.tiering, several)
        if plan.tiering is not None and several
        else {}
    )
    rules = plan.rules
    used: dict[str, int] = {}
    if capped(rules):
        # Every counter the orders may use (those left for a later round included: reading
        # a counter more changes nothing), read and locked at once.
        started: set[int] = set()
        bounds = []
        for item in pending:
            if item.member is None or item.member.id not in facts:
                continue
            member_facts = _facts_for(facts, item.member.id, started)
            bounds.extend(bounds_of(rules, item.member.id, _basket_of(book, item), member_facts))
        used = caps.read(session, program.id, bounds, lock=True)
    # The round before's lines: its reads done, nothing else in the round reads them. And,
    # with the COPYs sent behind, the balance check of its entries: both written while
    # Python prices this round (every transaction so far is whole).
    copy_rows(session, PurchaseLine.__table__, lines)  # type: ignore[arg-type]
    lines.clear()
    check_balanced_behind(session)
    usage: dict[str, int] = defaultdict(int)
    kept: list[Item] = []
    left: list[Item] = []
    started = set()
    ended: set[int] = set()
    for item in pending:
        member = item.member
        if left and plan.budgets:
            left.append(item)
            continue
        if member is None:
            kept.append(item)
            continue
        account = accounts[member.id]
        if account.status != AccountStatus.ACTIVE:
            error = (MemberFrozen if account.status == AccountStatus.FROZEN else MemberClosed)(
                member_id=member.id
            )
            done.refused.append((item, error))
            continue
        if member.id in ended:
            left.append(item)
            continue
        item.facts = _facts_for(facts, member.id, started)
        result = evaluate_at_once(
            rules,
            member.id,
            _basket_of(book, item),
            item.facts,
            lambda bounds: caps.left(bounds, used),
        )
        for key, n in result.usage.items():
            used[key] = used.get(key, 0) + n
            usage[key] += n
        item.result = result
        kept.append(item)
        if _ends_run(dates, plan, account, standing.get(member.id), item, now):
            ended.add(member.id)
    if kept:
        _write(
            session, program, book, dates, accounts, tier_rows, kept, usage, now, actor, done, lines
        )
    return left


def _facts_for(facts: dict[int, MemberFacts], member_id: int, started: set[int]) -> MemberFacts:
    """The member's facts before their next order of the round: as read for the first,
    and no longer a first purchase after it."""
    found = facts[member_id]
    if member_id in started:
        return replace(found, first_purchase=False)
    started.add(member_id)
    return found


def _ends_run(
    dates: LotDates,
    plan: Plan,
    account: Account,
    standing: Standing | None,
    item: Item,
    now: datetime,
) -> bool:
    """Whether the member's run ends with this order (see `jifen.earning.runs`)."""
    result = item.result
    assert result is not None
    if account.available < 0:
        return True
    earned_at = min(item.data.occurred_at.astimezone(UTC), now)
    if result.points.points > 0 and due_at_once(dates, account, earned_at, now):
        return True
    if plan.tiering is None or standing is None:
        return False
    item.moves_tier = tier_moves(
        plan.tiering,
        standing,
        occurred_at=item.data.occurred_at.astimezone(UTC),
        total=item.data.total,
        growth=result.growth.points,
        now=now,
    )
    return item.moves_tier


def _write(
    session: Session,
    program: Program,
    book: Book,
    dates: LotDates,
    accounts: dict[int, Account],
    tier_rows: dict[int, MemberTier],
    kept: list[Item],
    usage: dict[str, int],
    now: datetime,
    actor: str,
    done: Booked,
    lines: list[dict[str, Any]],
) -> None:
    """Book the round's priced orders: credits, purchases, events, counters, and what the
    tiers make of each member's last order; the lines are left in `lines`, for the caller
    to write (`book_orders`)."""
    awards = [
        (item, item.result.points.points, item.result.growth.points)
        for item in kept
        if item.member is not None and item.result is not None
    ]
    # The purchases', transactions' and lots' ids with one query (a credit's ids do not
    # depend on its purchase's: only how many there are).
    wanted = ids_wanted(
        sum(1 for _, p, _ in awards if p > 0), sum(1 for _, _, g in awards if g > 0)
    )
    purchase_ids, txn_ids, lot_ids = reserve_ids_of(
        session, [(cast(Table, Purchase.__table__), len(kept)), *wanted]
    )
    ids_of = dict(zip(kept, purchase_ids, strict=True))
    credits: list[Credit] = []
    for item, points, growth in awards:
        if points > 0 or growth > 0:
            assert item.member is not None
            purchase_id = ids_of[item]
            credits.append(
                Credit(
                    member_id=item.member.id,
                    points=points,
                    growth=growth,
                    earned_at=min(item.data.occurred_at.astimezone(UTC), now),
                    pending=True,
                    reference=f"purchase:{purchase_id}",
                    growth_reference=f"purchase-growth:{purchase_id}",
                    details={"purchase_id": purchase_id, "order": item.data.external_id},
                )
            )
    events: list[dict[str, Any]] = []
    """The round's outbox rows, written at the end with one `COPY`: the credits', the
    purchases', the tiers' (in that order, as their own statements wrote them before)."""
    booked = credit_many(
        session,
        book,
        accounts,
        credits,
        now=now,
        actor=actor,
        dates=dates,
        outbox=events,
        ids=(txn_ids, lot_ids),
    )
    txns = {c.details["purchase_id"]: b for c, b in zip(credits, booked, strict=True)}
    purchases: list[dict[str, Any]] = []
    causes: dict[int, dict[str, Any]] = {}
    for item, purchase_id in zip(kept, purchase_ids, strict=True):
        data = item.data
        found = item.result
        credited = txns.get(purchase_id)
        points = found.points.points if found else 0
        row = purchase_row(
            program.id, data, item.member.id if item.member else None, now=now, actor=actor
        )
        row["id"] = purchase_id
        if item.member is not None:
            row["status"] = PurchaseStatus.AWARDED
        if found is not None:
            row["rule_set_version"] = found.rules.version
            row["points"] = points
            row["growth"] = found.growth.points
            row["breakdown"] = [i.as_dict() for i in found.points.items]
            row["growth_breakdown"] = [i.as_dict() for i in found.growth.items]
        if item.facts is not None:
            row["facts"] = facts_json(item.facts)
        if credited is not None:
            row["earn_txn_id"] = credited.txn_id
            row["growth_txn_id"] = credited.growth_txn_id
        purchases.append(row)
        rows = line_rows(program.id, purchase_id, data)
        lines.extend(rows)
        item.written = (purchases[-1], rows, credited.release if credited else None)
        events.append(
            purchase_event(
                "purchase.recorded",
                program.id,
                item.member.id if item.member else None,
                purchase_id,
                points,
                now,
            )
        )
        if item.member is None:
            done.unclaimed += 1
        elif item.moves_tier is False:
            causes.pop(item.member.id, None)  # the tiers would find nothing to do
        else:
            # the member's last order of the round is the one the tiers answer for
            causes[item.member.id] = {"purchase_id": purchase_id, "order": data.external_id}
        item.purchase_id = purchase_id
        done.written.append(item)
        done.points += points
        done.growth += found.growth.points if found else 0
    copy_rows(session, Purchase.__table__, purchases)  # type: ignore[arg-type]
    caps.use(session, program.id, usage)
    done.upgrades += len(
        tiers.on_activity_many(
            session, program, causes, now=now, actor=actor, rows=tier_rows, outbox=events
        )
    )
    copy_rows(session, OutboxEvent.__table__, events)  # type: ignore[arg-type]


def _basket_of(book: Book, item: Item) -> Any:
    if item.basket is None:
        item.basket = _basket(book, item.data)
    return item.basket


def _basket(book: Book, data: PurchaseIn) -> Any:
    """The basket the API's award sees: each line as it reads back from the database."""
    lines = [
        Line(
            sku=line.sku,
            quantity=line.quantity.quantize(MILLI),
            amount=(line.net).quantize(CENT),
            category=line.category,
            brand=line.brand,
            attributes={k: str(v) for k, v in line.attributes.items()},
        )
        for line in data.lines
    ]
    return basket_of(
        book, data.occurred_at.astimezone(UTC), data.channel, data.store, data.payment_method, lines
    )


# ---------------------------------------------------------------- checks
# What the caller checks before booking, a whole batch at once.


def active_codes(session: Session, program_id: int) -> tuple[list[str], list[str]]:
    """The programme's active channel codes and store codes, sorted (one query)."""
    channels: list[str] = []
    stores: list[str] = []
    for kind, code in session.execute(_CODES, {"program_id": program_id}):
        (channels if kind == "channel" else stores).append(code)
    return sorted(channels), sorted(stores)


def _active(model: type[Channel] | type[Store], kind: str) -> Any:
    return select(literal(kind), model.code).where(
        model.program_id == bindparam("program_id"), model.active.is_(True)
    )


_CODES = union_all(_active(Channel, "channel"), _active(Store, "store"))


def check_order(data: PurchaseIn, now: datetime, channels: list[str], stores: list[str]) -> None:
    if data.occurred_at > now + CLOCK_SKEW:
        raise InvalidInput(field="occurred_at", reason="is in the future")
    if data.channel not in channels:
        raise UnknownCode(field="channel", code=data.channel, known=", ".join(channels[:20]) or "—")
    if data.store is not None and data.store not in stores:
        raise UnknownCode(field="store", code=data.store, known=", ".join(stores[:20]) or "—")


@dataclass(frozen=True)
class Recorded:
    purchase_id: int | str
    member_id: int | None
    total: Decimal
    claimed: bool


def recorded_orders(
    session: Session, program_id: int, external_ids: Sequence[str]
) -> dict[str, Recorded]:
    """The orders of `external_ids` recorded already (one statement)."""
    if not external_ids:
        return {}
    wanted = sorted(set(external_ids))
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_RECORDED, {"program_id": program_id, "keys": wanted})
    else:
        rows = session.execute(
            select(Purchase.external_id, *_RECORDED_COLUMNS).where(
                Purchase.program_id == program_id, among(Purchase.external_id, wanted)
            )
        )
    return {
        ext: Recorded(purchase_id, member_id, total, claimed_at is not None)
        for ext, purchase_id, member_id, total, claimed_at in rows
    }


_PURCHASES = cast(Table, Purchase.__table__)
_RECORDED_COLUMNS = [_PURCHASES.c[name] for name in ("id", "member_id", "total", "claimed_at")]
_RECORDED = by_keys(_PURCHASES, _PURCHASES.c.external_id, _RECORDED_COLUMNS)
"""`recorded_orders` on PostgreSQL: a probe of the unique index per order id
(`jifen.db.probes`), built once."""


def same_order(first: Recorded, data: PurchaseIn, member: Named | None) -> None:
    """As the API (`earning.purchases._same_order`): the same order id again is the same
    order when the member (or, sent without one, a member who has since claimed it) and
    the total agree."""
    member_id = member.id if member else None
    if first.member_id != member_id and not (member_id is None and first.claimed):
        raise OrderConflict(
            external_id=data.external_id, purchase_id=first.purchase_id, difference="member"
        )
    if first.total != data.total:
        raise OrderConflict(
            external_id=data.external_id, purchase_id=first.purchase_id, difference="total"
        )


Members = dict[tuple[str, str], Named]


_IDENTIFIERS = tuple((name, name.value) for name in IdentifierField)
"""The identifier fields in `IdentifierField`'s order, with their names: iterating the enum
itself, twice an order (`named_members`, `named_member`), was a twenty-fifth of an import's
Python (12 -> 1.7 µs a call)."""


def member_key(data: PurchaseIn) -> tuple[str, str] | None:
    ref = data.member
    if ref is None:
        return None
    if ref.id is not None:
        return ("id", str(ref.id))
    for name, field_name in _IDENTIFIERS:
        value = getattr(ref, field_name)
        if value is not None:
            try:
                return (field_name, normalise_identifier(name, value))
            except ValueError as exc:
                raise InvalidInput(field=f"member.{field_name}", reason=str(exc)) from exc
    return None


def named_members(session: Session, program_id: int, orders: list[PurchaseIn]) -> Members:
    """The members the orders name, by (field, value), one query per field: plain rows of
    the columns the booking reads (a `Member` object per row, with the JSON of its
    attributes decoded, was about a twentieth of a group's Python)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for data in orders:
        try:
            key = member_key(data)
        except InvalidInput:
            continue
        if key is not None:
            wanted[key[0]].add(key[1])
    found: Members = {}
    for name, values in wanted.items():
        keys = [int(v) for v in values] if name == "id" else list(values)
        params = {"program_id": program_id, "keys": keys}
        for member_id, birthday, value in session.connection().execute(_named(name), params):
            found[(name, str(value))] = Named(member_id, birthday)
    return found


@cache
def _named(name: str) -> Any:
    """`named_members`' statement for the field `name`, built once (a statement built per
    call, and run through the ORM's session, was most of a group of one's query's cost)."""
    column = Member.id if name == "id" else getattr(Member, name)
    return select(Member.id, Member.birthday, column).where(
        Member.program_id == bindparam("program_id"), among_bound(column, "keys")
    )


def named_member(members: Members, data: PurchaseIn) -> Named | None:
    key = member_key(data)
    if key is None:
        return None
    member = members.get(key)
    if member is None:
        raise NotFound(what="member", key=key[1] if key[0] == "id" else f"{key[0]}={key[1]}")
    return member
