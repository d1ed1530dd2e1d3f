"""The ledger's laws under random sequences of operations, on both stores.

A hypothesis state machine drives one fresh programme per example (3 members, a 7-day
return window, transfers allowed; expiry after 1–3 months, after 1–2 months of inactivity,
or never; debt allowed or not) through earns (some pending, some into a debt), spends,
holds (captured whole or in part, voided, lapsed at their deadline), reversals of earlier
transactions (with and without leave to run into debt), clawbacks of part or all of an
earn or growth credit (into debt or forgiving what the member lacks), expiry/release/lapse
jobs, adjustments, transfers and growth value, while the clock moves by minutes to months.

After every step it reads the programme's ledger tables straight from the database and
checks the laws in `check_laws` (see the numbered list there), once as they are and once
after `current_balance` has brought every member up to date. An operation that fails
with a domain error must leave every row exactly as it was. A Python model follows the
balances: pending, held, lifetime earned and growth value always, available points where
the programme's points never expire (where expiry makes it ambiguous, the laws suffice).

A failure prints the steps as Python calls (`state.earn(...)`, …) with the notes of each.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from factories import make_member, make_program
from jifen.core.clock import FrozenClock
from jifen.core.errors import (
    CaptureExceedsHold,
    DuplicateReference,
    HoldExpired,
    HoldNotActive,
    InsufficientPoints,
    InvalidInput,
    JifenError,
    NotReversible,
)
from jifen.db.uow import Database
from jifen.jobs.runner import run_job
from jifen.ledger import service as ledger
from jifen.ledger.clawback import Clawback, Shortfall, claw_back, claw_back_growth
from jifen.ledger.models import (
    Account,
    AccountKind,
    Hold,
    JournalEntry,
    JournalTransaction,
    Lot,
    LotAllocation,
)
from jifen.ledger.posting import Book, lock_account
from jifen.ledger.queries import current_balance

START = datetime(2026, 1, 15, 2, 0, tzinfo=UTC)  # as tests/conftest.py: 10:00 in Shanghai

SETTINGS = settings(
    max_examples=50,
    stateful_step_count=30,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

N_MEMBERS = 3
MEMBER = st.integers(0, N_MEMBERS - 1)
POINTS = st.integers(1, 300)
ALLOW_DEBT = st.sampled_from([None, True, False])
REFERENCE = st.sampled_from([None, None, None, "ref-1", "ref-2"])
ZERO = timedelta(0)
# How far the clock moves before an operation: mostly not at all, sometimes past a hold's
# deadline (30 min), a return window (7 days) or an expiry (1–3 months).
LATER = st.sampled_from(
    [ZERO, ZERO, ZERO, ZERO, ZERO]
    + [timedelta(minutes=5), timedelta(minutes=45), timedelta(hours=6)]
    + [timedelta(days=d) for d in (1, 3, 8, 20, 40, 100)]
)
JUMP = st.sampled_from(
    [timedelta(minutes=m) for m in (1, 31)]
    + [timedelta(hours=h) for h in (5, 20)]
    + [timedelta(days=d) for d in (1, 2, 7, 9, 15, 29, 31, 45, 61, 92, 200)]
)
HOLD_DEADLINE = st.sampled_from([None, timedelta(hours=2), timedelta(days=2), timedelta(days=40)])

TABLES: dict[str, Table] = {
    "accounts": Account.__table__,  # type: ignore[dict-item]
    "txns": JournalTransaction.__table__,  # type: ignore[dict-item]
    "entries": JournalEntry.__table__,  # type: ignore[dict-item]
    "lots": Lot.__table__,  # type: ignore[dict-item]
    "allocations": LotAllocation.__table__,  # type: ignore[dict-item]
    "holds": Hold.__table__,  # type: ignore[dict-item]
}

Row = dict[str, Any]


# -- reading the ledger straight from its tables ---------------------------------------------


@dataclass
class Snapshot:
    """Every ledger row of one programme, by table, in id order."""

    rows: dict[str, list[Row]]

    def __getattr__(self, name: str) -> list[Row]:
        try:
            return self.__dict__["rows"][name]
        except KeyError:
            raise AttributeError(name) from None

    def by_id(self, table: str) -> dict[int, Row]:
        return {row["id"]: row for row in self.rows[table]}


def load(session: Session, program_id: int) -> Snapshot:
    rows = {}
    for name, table in TABLES.items():
        query = select(table).where(table.c.program_id == program_id).order_by(table.c.id)
        rows[name] = [dict(row) for row in session.execute(query).mappings()]
    return Snapshot(rows)


def check_laws(snap: Snapshot, book: Book, *, up_to_date_at: datetime | None = None) -> list[str]:
    """The ledger's laws, checked on raw rows; returns what is broken.

    1. the entries of every journal transaction sum to zero;
    2. each member account's cached buckets (available, pending, held) equal Σ its entries;
    3. each lot: remaining == amount + Σ its allocations, 0 ≤ remaining ≤ amount; a pending
       lot is untouched but by clawbacks of its credit, an expired or cancelled one is empty;
    4. max(available, 0) == Σ remaining of the account's available lots (so when available
       is negative every lot is empty);
    5. available is negative only where the programme allows debt;
    6. no allocation spent a lot that was pending or past its expiry at the time (the
       lot a credit created, taken back by its reversal or clawbacks, excepted);
    7. a reversal gives back to each lot exactly what its transaction took from it (for a
       capture: what the hold still held of it); what it gives back to a cancelled lot
       passes on to the lots that lot's cancellation charged (or a new lot), never more,
       and those may be lots the transaction took from too;
    8. held == Σ amount of active holds; pending == Σ remaining of pending lots; each hold
       still holds (by its allocations: what its own transaction took, less what its later
       ones gave back, refunds they forwarded from cancelled lots aside) its amount while
       active, what it captured once captured, nothing once voided or lapsed;
    9. lifetime_earned == −Σ entries on the programme's issued account of transactions
       made for that member (points issued to the member, net of reversals);
    10. next_due_at is never later than the next expiry, release or lapse; and with
        `up_to_date_at`, nothing is left that fell due by then;
    11. clawbacks take from earns and growth credits that were not reversed, never more
        than they awarded all together; each one's points are what it took back to the
        issued (or growth issued) account plus what it let go (its details' not_taken).
    """
    problems: list[str] = []
    bad = problems.append
    txns = snap.by_id("txns")
    lots = snap.by_id("lots")
    holds = snap.by_id("holds")
    members = [a for a in snap.accounts if a["member_id"] is not None]
    points_accounts = [a for a in members if a["kind"] == AccountKind.POINTS]

    # 1
    txn_total: dict[int, int] = defaultdict(int)
    for e in snap.entries:
        txn_total[e["transaction_id"]] += e["amount"]
    for txn_id, total in txn_total.items():
        if total != 0:
            bad(f"law 1: transaction {txn_id} ({txns[txn_id]['kind']}) sums to {total}")

    # 2
    bucket_total: dict[tuple[int, str], int] = defaultdict(int)
    for e in snap.entries:
        bucket_total[(e["account_id"], e["bucket"])] += e["amount"]
    for a in members:
        for bucket in ("available", "pending", "held"):
            journal = bucket_total[(a["id"], bucket)]
            if a[bucket] != journal:
                bad(
                    f"law 2: member {a['member_id']} {a['kind']} {bucket} cached {a[bucket]}, "
                    f"journal says {journal}"
                )

    # 3
    allocated: dict[int, int] = defaultdict(int)
    for x in snap.allocations:
        allocated[x["lot_id"]] += x["amount"]
    for lot in snap.lots:
        where = f"lot {lot['id']} ({lot['status']}, amount {lot['amount']})"
        if lot["remaining"] != lot["amount"] + allocated[lot["id"]]:
            bad(
                f"law 3: {where} remaining {lot['remaining']} != amount + Σ allocations "
                f"{allocated[lot['id']]}"
            )
        if not 0 <= lot["remaining"] <= lot["amount"]:
            bad(f"law 3: {where} remaining {lot['remaining']} out of range")
        if lot["status"] == "pending" and any(
            x["lot_id"] == lot["id"] and not takes_back_own(txns[x["transaction_id"]], lot)
            for x in snap.allocations
        ):
            bad(f"law 3: pending {where} was touched by more than its clawbacks")
        if lot["status"] in ("expired", "cancelled") and lot["remaining"] != 0:
            bad(f"law 3: {where} still has {lot['remaining']} left")

    # 4, 5
    available_lots: dict[int, int] = defaultdict(int)
    pending_lots: dict[int, int] = defaultdict(int)
    for lot in snap.lots:
        if lot["status"] == "available":
            available_lots[lot["account_id"]] += lot["remaining"]
        elif lot["status"] == "pending":
            pending_lots[lot["account_id"]] += lot["remaining"]
    for a in points_accounts:
        if max(a["available"], 0) != available_lots[a["id"]]:
            bad(
                f"law 4: member {a['member_id']} available {a['available']} but its available "
                f"lots hold {available_lots[a['id']]}"
            )
        if a["available"] < 0 and not book.allow_negative:
            bad(f"law 5: member {a['member_id']} available {a['available']} without debt policy")
    for a in members:
        if a["kind"] == AccountKind.GROWTH and (a["available"] < 0 or a["pending"] or a["held"]):
            bad(f"law 5: member {a['member_id']} growth account {a}")

    # 6
    for x in snap.allocations:
        if x["amount"] >= 0 or x["expired"]:
            continue
        txn, lot = txns[x["transaction_id"]], lots[x["lot_id"]]
        if takes_back_own(txn, lot):
            continue  # a reversal or clawback taking back the credit's own lot
        at = txn["created_at"]
        if lot["available_at"] is not None and lot["available_at"] > at:
            bad(
                f"law 6: {txn['kind']} {txn['id']} took {-x['amount']} from pending lot {lot['id']}"
            )
        if txn["kind"] == "release":
            continue  # repays a debt from the lot it releases: it counts as of its release
        if lot["expires_at"] is not None and lot["expires_at"] <= at:
            bad(
                f"law 6: {txn['kind']} {txn['id']} at {at} took {-x['amount']} from lot "
                f"{lot['id']} expired at {lot['expires_at']}"
            )

    # 7
    def hold_net(hold_id: int) -> dict[int, int]:
        """What a hold still holds of each lot by its allocations: what its own transaction
        took, less what its later ones gave back (a debit of theirs repays debt)."""
        net: dict[int, int] = defaultdict(int)
        for x in snap.allocations:
            txn = txns[x["transaction_id"]]
            if x["expired"] or txn["hold_id"] != hold_id:
                continue
            if txn["kind"] == "hold" or x["amount"] > 0:
                net[x["lot_id"]] -= x["amount"]
        return {lot_id: amount for lot_id, amount in net.items() if amount != 0}

    def hold_forwarded(hold_id: int) -> int:
        """What a hold's transactions gave back to cancelled lots and those passed on to other
        lots: allocations that refund a cancellation's charge, not the hold's own."""
        ids = {t["id"] for t in snap.txns if t["hold_id"] == hold_id}
        passed = sum(
            -x["amount"]
            for x in snap.allocations
            if x["transaction_id"] in ids
            and x["expired"]
            and x["amount"] < 0
            and lots[x["lot_id"]]["status"] == "cancelled"
        )
        return passed - sum(lot["amount"] for lot in snap.lots if lot["transaction_id"] in ids)

    for reversal in snap.txns:
        original_id = reversal["reverses_id"]
        if original_id is None:
            continue
        original = txns[original_id]
        if original["kind"] == "capture":
            expected = {k: v for k, v in hold_net(original["hold_id"]).items() if v > 0}
        else:
            expected = defaultdict(int)
            for x in snap.allocations:
                if (
                    x["transaction_id"] == original_id
                    and x["amount"] < 0
                    and not x["expired"]
                    and lots[x["lot_id"]]["transaction_id"] != original_id
                ):
                    expected[x["lot_id"]] -= x["amount"]
            expected = dict(expected)
        restored: dict[int, int] = defaultdict(int)
        passed_on = 0
        for x in snap.allocations:
            if x["transaction_id"] != reversal["id"]:
                continue
            if x["amount"] > 0:
                restored[x["lot_id"]] += x["amount"]
            elif x["expired"] and lots[x["lot_id"]]["status"] == "cancelled":
                passed_on -= x["amount"]
        # Points given back to a cancelled lot pass on to the lots its cancellation
        # charged (which the original may have taken from too), or to a new lot (see
        # Posting._forward_from_cancelled).
        extra = {
            lot_id: restored.get(lot_id, 0) - expected.get(lot_id, 0)
            for lot_id in restored.keys() | expected.keys()
        }
        forwarded = sum(extra.values()) + sum(
            lot["amount"] for lot in snap.lots if lot["transaction_id"] == reversal["id"]
        )
        if any(n < 0 for n in extra.values()) or forwarded > passed_on:
            bad(
                f"law 7: reversal {reversal['id']} of {original['kind']} {original_id} gave "
                f"back {dict(restored)} (lot: points), the original took {expected}; "
                f"{forwarded} forwarded of {passed_on} passed on by cancelled lots"
            )

    # 8
    active_held: dict[int, int] = defaultdict(int)
    for hold in snap.holds:
        if hold["status"] == "active":
            active_held[hold["account_id"]] += hold["amount"]
        net, forwarded = hold_net(hold["id"]), hold_forwarded(hold["id"])
        should = {"active": hold["amount"], "captured": hold["captured"]}.get(hold["status"], 0)
        # a refund forwarded to a lot shows there as a negative share of the hold
        if sum(net.values()) + forwarded != should or (
            not forwarded and any(v < 0 for v in net.values())
        ):
            bad(
                f"law 8: {hold['status']} hold {hold['id']} of {hold['amount']} holds {net}, "
                f"{forwarded} forwarded"
            )
    for a in points_accounts:
        if a["held"] != active_held[a["id"]]:
            held = active_held[a["id"]]
            bad(f"law 8: member {a['member_id']} held {a['held']}, active holds {held}")
        if a["pending"] != pending_lots[a["id"]]:
            in_lots = pending_lots[a["id"]]
            bad(f"law 8: member {a['member_id']} pending {a['pending']}, in pending lots {in_lots}")

    # 9
    issued_account = book.accounts[AccountKind.ISSUED]
    issued: dict[int, int] = defaultdict(int)
    for e in snap.entries:
        if e["account_id"] == issued_account:
            issued[txns[e["transaction_id"]]["member_id"]] -= e["amount"]
    for a in points_accounts:
        if a["lifetime_earned"] != issued[a["member_id"]]:
            bad(
                f"law 9: member {a['member_id']} lifetime_earned {a['lifetime_earned']}, "
                f"issued to it {issued[a['member_id']]}"
            )

    # 10
    due: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    for lot in snap.lots:
        if lot["status"] == "available" and lot["remaining"] > 0 and lot["expires_at"]:
            due[lot["account_id"]].append((lot["expires_at"], f"lot {lot['id']} expires"))
        if lot["status"] == "pending":
            due[lot["account_id"]].append((lot["available_at"], f"lot {lot['id']} is released"))
    for hold in holds.values():
        if hold["status"] == "active":
            due[hold["account_id"]].append((hold["expires_at"], f"hold {hold['id']} lapses"))
    for a in points_accounts:
        if not due[a["id"]]:
            continue
        first = min(due[a["id"]])
        if a["next_due_at"] is None or a["next_due_at"] > first[0]:
            bad(
                f"law 10: member {a['member_id']} next_due_at {a['next_due_at']}, but "
                f"{first[1]} at {first[0]}"
            )
        if up_to_date_at is not None:
            late = [what for at, what in due[a["id"]] if at <= up_to_date_at]
            if late:
                bad(f"law 10: member {a['member_id']} up to date at {up_to_date_at}, yet {late}")

    # 11
    claimed: dict[int, int] = defaultdict(int)
    reversed_ids = {t["reverses_id"] for t in snap.txns if t["kind"] == "reversal"}
    issuing = {book.accounts[AccountKind.ISSUED], book.accounts[AccountKind.GROWTH_ISSUED]}
    returned: dict[int, int] = defaultdict(int)
    for e in snap.entries:
        if e["account_id"] in issuing:
            returned[e["transaction_id"]] += e["amount"]
    for clawback in snap.txns:
        if clawback["kind"] != "clawback":
            continue
        original = txns[clawback["clawback_of_id"]]
        claimed[original["id"]] += clawback["points"]
        not_taken = (clawback["details"] or {}).get("not_taken", 0)
        if original["kind"] not in ("earn", "growth") or original["id"] in reversed_ids:
            bad(f"law 11: clawback {clawback['id']} of {original['kind']} {original['id']}")
        if clawback["points"] != returned[clawback["id"]] + not_taken or not_taken < 0:
            bad(
                f"law 11: clawback {clawback['id']} of {clawback['points']} gave back "
                f"{returned[clawback['id']]} and let go {not_taken}"
            )
    for original_id, points in claimed.items():
        if points > txns[original_id]["points"]:
            bad(f"law 11: {points} clawed back of transaction {txns[original_id]}")
    return problems


def takes_back_own(txn: Row, lot: Row) -> bool:
    """Whether `txn` is a reversal or clawback of the credit that created `lot`."""
    credit = lot["transaction_id"]
    return (txn["kind"] == "reversal" and txn["reverses_id"] == credit) or (
        txn["kind"] == "clawback" and txn["clawback_of_id"] == credit
    )


# -- the model --------------------------------------------------------------------------------


@dataclass
class MemberModel:
    available: int = 0
    pending: dict[int, tuple[int, datetime]] = field(default_factory=dict)
    """Earn transaction id → (points, when they are released)."""
    lifetime: int = 0
    growth: int = 0


@dataclass
class HoldModel:
    id: int
    member: int
    amount: int
    deadline: datetime
    status: str = "active"


@dataclass
class TxnModel:
    id: int
    kind: str
    member: int
    points: int
    """Signed for an adjustment."""
    to: int | None = None
    hold: int | None = None
    reversed: bool = False
    clawed: int = 0
    """Points of an earn or growth credit claimed by clawbacks so far."""


OK = "ok"


class LedgerMachine(RuleBasedStateMachine):
    txns = Bundle("txns")
    holds = Bundle("holds")

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.clock = FrozenClock(START)
        self.book: Book | None = None

    # -- set-up ---------------------------------------------------------------------------------
    @initialize(
        expiry=st.sampled_from(["after_months", "inactivity", "never"]),
        months=st.integers(1, 3),
        round_to=st.sampled_from(["none", "none", "month", "quarter"]),
        allow_negative=st.booleans(),
    )
    def programme(self, expiry: str, months: int, round_to: str, allow_negative: bool) -> None:
        policy: dict[str, Any] = {"kind": expiry}
        if expiry == "after_months":
            policy |= {"months": months, "round_to": round_to}
        elif expiry == "inactivity":
            policy |= {"months": min(months, 2)}
        self.book = make_program(
            self.db,
            self.clock,
            pending_days=7,
            expiry_policy=policy,
            allow_transfers=True,
            allow_negative_balance=allow_negative,
        )
        self.members = [make_member(self.db, self.book, self.clock) for _ in range(N_MEMBERS)]
        self.exact = expiry == "never"
        self.model = {m: MemberModel() for m in self.members}
        self.hold_models: dict[int, HoldModel] = {}
        self.txn_models: dict[int, TxnModel] = {}
        self.references: set[str] = set()
        note(f"programme {self.book.program_id}: members {self.members}, expiry {policy}")

    # -- helpers --------------------------------------------------------------------------------
    @property
    def now(self) -> datetime:
        return self.clock.now()

    def _bk(self) -> Book:
        assert self.book is not None
        return self.book

    def _load(self) -> Snapshot:
        return self.db.read(lambda s: load(s, self._bk().program_id))

    def _advance(self, later: timedelta) -> None:
        if later:
            self.clock.advance(later)
        self._catch_up()

    def _catch_up(self) -> None:
        """What falls due by now, in the model: pending points released, holds lapsed."""
        for model in self.model.values():
            for txn_id, (points, at) in list(model.pending.items()):
                if at <= self.now:
                    del model.pending[txn_id]
                    model.available += points
        for hold in self.hold_models.values():
            if hold.status == "active" and hold.deadline <= self.now:
                hold.status = "lapsed"
                self.model[hold.member].available += hold.amount

    def _attempt(self, what: str, fn: Any, expect: set[Any]) -> Any:
        """Run one write. `expect` holds the acceptable outcomes: OK and/or error classes.

        A domain error must leave every row as it was; a success must take no lot that was
        pending or past its expiry at this instant."""
        before = self._load()
        try:
            result = self.db.write(fn)
        except JifenError as exc:
            refused = exc
        else:
            refused = None
        if refused is not None:
            name = type(refused).__name__
            note(f"{what} → {name}: {refused}")
            assert type(refused) in expect, f"{what}: got {name} ({refused}), expected {expect}"
            after = self._load()
            for table in TABLES:
                assert before.rows[table] == after.rows[table], (
                    f"{what} failed with {name} but changed {table}"
                )
            return refused
        note(f"{what} → {result}")
        assert OK in expect, f"{what} succeeded, expected {expect}"
        self._check_new_spends(before, self._load())
        return result

    def _check_new_spends(self, before: Snapshot, after: Snapshot) -> None:
        """Law 6 as of the moment: every lot this step took from was spendable right then
        (its status and expiry as they were before the step, which touch() may move)."""
        old_lots = before.by_id("lots")
        old_allocations = {x["id"] for x in before.allocations}
        txns = after.by_id("txns")
        new_txns = [t for t in after.txns if t["id"] not in before.by_id("txns")]
        for t in new_txns:
            assert t["created_at"] == self.now, f"transaction {t} not stamped {self.now}"
        for x in after.allocations:
            if x["id"] in old_allocations or x["amount"] >= 0 or x["expired"]:
                continue
            lot, txn = old_lots.get(x["lot_id"]), txns[x["transaction_id"]]
            if lot is None:
                continue  # made in this step: a credit repaying debt from its own lot
            if takes_back_own(txn, lot):
                continue
            status = lot["status"]
            if status == "pending":
                assert lot["available_at"] <= self.now, f"{txn['kind']} took pending lot {lot}"
                status = "available"  # released in this very step
            assert status == "available", f"{txn['kind']} took from {status} lot {lot}"
            if txn["kind"] != "release":
                assert lot["expires_at"] is None or lot["expires_at"] > self.now, (
                    f"{txn['kind']} at {self.now} took from lot {lot} past its expiry"
                )

    def _insufficient(self, member: int, points: int) -> set[Any]:
        if not self.exact:
            return {OK, InsufficientPoints}
        return {InsufficientPoints} if self.model[member].available < points else {OK}

    def _record(self, txn: TxnModel) -> int:
        self.txn_models[txn.id] = txn
        return txn.id

    # -- operations -----------------------------------------------------------------------------
    @rule(target=txns, m=MEMBER, points=POINTS, pending=st.booleans(), ref=REFERENCE, later=LATER)
    def earn(self, m: int, points: int, pending: bool, ref: str | None, later: timedelta) -> Any:
        self._advance(later)
        book, member, now = self._bk(), self.members[m], self.now
        expect = {DuplicateReference} if ref in self.references else {OK}
        result = self._attempt(
            f"earn {points} (pending={pending}) for {member}",
            lambda s: (
                ledger.credit(
                    s, book, member, points, now=now, actor="sm", pending=pending, reference=ref
                ).id
            ),
            expect,
        )
        if isinstance(result, JifenError):
            return multiple()
        model = self.model[member]
        release_at = book.release_at(now) if pending else None
        if release_at is not None and release_at > now:
            model.pending[result] = (points, release_at)
        else:
            model.available += points
        model.lifetime += points
        if ref is not None:
            self.references.add(ref)
        return self._record(TxnModel(result, "earn", member, points))

    @rule(target=txns, m=MEMBER, points=POINTS, ref=REFERENCE, later=LATER)
    def spend(self, m: int, points: int, ref: str | None, later: timedelta) -> Any:
        self._advance(later)
        book, member, now = self._bk(), self.members[m], self.now
        expect = self._insufficient(member, points)
        if ref in self.references:
            expect = (expect - {OK}) | {DuplicateReference}
        result = self._attempt(
            f"spend {points} of {member}",
            lambda s: ledger.debit(s, book, member, points, now=now, actor="sm", reference=ref).id,
            expect,
        )
        if isinstance(result, JifenError):
            return multiple()
        self.model[member].available -= points
        if ref is not None:
            self.references.add(ref)
        return self._record(TxnModel(result, "spend", member, points))

    @rule(target=txns, m=MEMBER, delta=st.integers(-300, 300).filter(bool), later=LATER)
    def adjust(self, m: int, delta: int, later: timedelta) -> Any:
        self._advance(later)
        book, member, now = self._bk(), self.members[m], self.now
        expect = self._insufficient(member, -delta) if delta < 0 else {OK}
        result = self._attempt(
            f"adjust {member} by {delta}",
            lambda s: (
                ledger.adjust(
                    s, book, member, delta, reason="state machine", now=now, actor="sm"
                ).id
            ),
            expect,
        )
        if isinstance(result, JifenError):
            return multiple()
        self.model[member].available += delta
        return self._record(TxnModel(result, "adjust", member, delta))

    @rule(target=txns, a=MEMBER, b=MEMBER, points=POINTS, later=LATER)
    def transfer(self, a: int, b: int, points: int, later: timedelta) -> Any:
        self._advance(later)
        if a == b:
            b = (a + 1) % N_MEMBERS
        book, sender, receiver, now = self._bk(), self.members[a], self.members[b], self.now
        result = self._attempt(
            f"transfer {points} from {sender} to {receiver}",
            lambda s: ledger.transfer(s, book, sender, receiver, points, now=now, actor="sm").id,
            self._insufficient(sender, points),
        )
        if isinstance(result, JifenError):
            return multiple()
        self.model[sender].available -= points
        self.model[receiver].available += points
        return self._record(TxnModel(result, "transfer", sender, points, to=receiver))

    @rule(target=txns, m=MEMBER, points=POINTS, later=LATER)
    def growth(self, m: int, points: int, later: timedelta) -> Any:
        self._advance(later)
        book, member, now = self._bk(), self.members[m], self.now
        result = self._attempt(
            f"growth {points} for {member}",
            lambda s: ledger.credit_growth(s, book, member, points, now=now, actor="sm").id,
            {OK},
        )
        self.model[member].growth += points
        return self._record(TxnModel(result, "growth", member, points))

    # -- holds ----------------------------------------------------------------------------------
    @rule(target=holds, m=MEMBER, points=POINTS, deadline=HOLD_DEADLINE, ref=REFERENCE, later=LATER)
    def hold(
        self, m: int, points: int, deadline: timedelta | None, ref: str | None, later: timedelta
    ) -> Any:
        self._advance(later)
        book, member, now = self._bk(), self.members[m], self.now
        expires = None if deadline is None else now + deadline
        expect = self._insufficient(member, points)
        if ref in self.references:
            expect = (expect - {OK}) | {DuplicateReference}
        result = self._attempt(
            f"hold {points} of {member} until {expires}",
            lambda s: (
                ledger.authorise_hold(
                    s, book, member, points, now=now, actor="sm", expires_at=expires, reference=ref
                ).id
            ),
            expect,
        )
        if isinstance(result, JifenError):
            return multiple()
        self.model[member].available -= points
        deadline_at = expires or now + timedelta(minutes=book.hold_minutes)
        self.hold_models[result] = HoldModel(result, member, points, deadline_at)
        if ref is not None:
            self.references.add(ref)
        return result

    def _hold_expectation(self, hold: HoldModel) -> set[Any] | None:
        if hold.status == "lapsed":
            return {HoldExpired}
        if hold.status != "active":
            return {HoldNotActive}
        return None

    @rule(
        target=txns,
        hold_id=holds,
        part=st.one_of(st.none(), st.integers(1, 320)),
        later=LATER,
    )
    def capture(self, hold_id: int, part: int | None, later: timedelta) -> Any:
        self._advance(later)
        book, now, hold = self._bk(), self.now, self.hold_models[hold_id]
        expect = self._hold_expectation(hold)
        if expect is None:
            expect = {CaptureExceedsHold} if part is not None and part > hold.amount else {OK}
        result = self._attempt(
            f"capture {part or 'all'} of hold {hold_id}",
            lambda s: ledger.capture_hold(s, book, hold_id, now=now, actor="sm", points=part).id,
            expect,
        )
        if isinstance(result, JifenError):
            return multiple()
        captured = hold.amount if part is None else part
        hold.status = "captured"
        self.model[hold.member].available += hold.amount - captured
        return self._record(TxnModel(result, "capture", hold.member, captured, hold=hold_id))

    @rule(target=txns, hold_id=holds, later=LATER)
    def void(self, hold_id: int, later: timedelta) -> Any:
        self._advance(later)
        book, now, hold = self._bk(), self.now, self.hold_models[hold_id]
        result = self._attempt(
            f"void hold {hold_id}",
            lambda s: ledger.void_hold(s, book, hold_id, now=now, actor="sm").id,
            self._hold_expectation(hold) or {OK},
        )
        if isinstance(result, JifenError):
            return multiple()
        hold.status = "voided"
        self.model[hold.member].available += hold.amount
        return self._record(TxnModel(result, "void", hold.member, hold.amount, hold=hold_id))

    @rule(hold_id=holds, how=st.sampled_from(["job", "touch", "balance", "capture", "void"]))
    def lapse(self, hold_id: int, how: str) -> None:
        """Move past the hold's deadline; then the lapse job, or any touch of the member,
        lapses it (and a capture or void finds it expired)."""
        hold = self.hold_models[hold_id]
        if self.now <= hold.deadline:
            self.clock.set(hold.deadline + timedelta(minutes=1))
        was = hold.status
        self._catch_up()
        book, now, member = self._bk(), self.now, hold.member
        if how == "job":
            run_job(self.db, "lapse", now=now, program_id=book.program_id)
        elif how == "touch":
            self.db.write(lambda s: lock_account(s, book, member, now))
        elif how == "balance":
            current_balance(self.db, book, member, now)
        elif how == "capture":
            self._attempt(
                f"capture hold {hold_id} after its deadline",
                lambda s: ledger.capture_hold(s, book, hold_id, now=now, actor="sm"),
                self._hold_expectation(hold) or {OK},
            )
        else:
            self._attempt(
                f"void hold {hold_id} after its deadline",
                lambda s: ledger.void_hold(s, book, hold_id, now=now, actor="sm"),
                self._hold_expectation(hold) or {OK},
            )
        if how in ("job", "touch", "balance"):
            status = self.db.read(lambda s: s.get(Hold, hold_id)).status
            assert status == hold.status, (
                f"hold {hold_id} was {was}, now {status}, not {hold.status}"
            )

    # -- reversal -------------------------------------------------------------------------------
    def _reverse(self, txn_id: int, allow_debt: bool | None, kind: str) -> Any:
        book, now = self._bk(), self.now
        txn = self.txn_models.get(txn_id)
        debt_ok = (
            book.allow_negative if allow_debt is None else allow_debt
        ) and book.allow_negative
        deltas: dict[int, int] = {}  # member → change of available
        pending_lot = False
        if txn is None or txn.kind not in (
            "earn",
            "spend",
            "capture",
            "adjust",
            "transfer",
            "growth",
        ):
            expect: set[Any] = {NotReversible}
        elif txn.reversed or txn.clawed:
            expect = {NotReversible}
        else:
            if txn.kind == "earn":
                pending_lot = txn.id in self.model[txn.member].pending
                deltas = {txn.member: 0 if pending_lot else -txn.points}
            elif txn.kind == "adjust":
                deltas = {txn.member: -txn.points}
            elif txn.kind in ("spend", "capture"):
                deltas = {txn.member: txn.points}
            elif txn.kind == "transfer":
                assert txn.to is not None
                deltas = {txn.member: txn.points, txn.to: -txn.points}
            # A reversal that takes points may be refused for want of them (unless debt is
            # allowed); one that only gives points back never is.
            takes = any(d < 0 for d in deltas.values())
            if not self.exact:
                expect = {OK, InsufficientPoints} if takes and not debt_ok else {OK}
            elif not debt_ok and any(
                d < 0 and self.model[m].available + d < 0 for m, d in deltas.items()
            ):
                expect = {InsufficientPoints}
            else:
                expect = {OK}
        result = self._attempt(
            f"reverse {kind} {txn_id} (allow_debt={allow_debt})",
            lambda s: (
                ledger.reverse(s, book, txn_id, now=now, actor="sm", allow_debt=allow_debt).id
            ),
            expect,
        )
        if isinstance(result, JifenError):
            return multiple()
        assert txn is not None
        txn.reversed = True
        for member, delta in deltas.items():
            self.model[member].available += delta
        if txn.kind == "earn":
            self.model[txn.member].lifetime -= txn.points
            self.model[txn.member].pending.pop(txn.id, None)
        if txn.kind == "growth":
            self.model[txn.member].growth -= txn.points
        return self._record(TxnModel(result, "reversal", txn.member, txn.points))

    @rule(target=txns, txn_id=txns, allow_debt=ALLOW_DEBT, later=LATER)
    def reverse(self, txn_id: int, allow_debt: bool | None, later: timedelta) -> Any:
        self._advance(later)
        return self._reverse(txn_id, allow_debt, self.txn_models[txn_id].kind)

    @rule(target=txns, pick=st.integers(0, 10**6), allow_debt=ALLOW_DEBT)
    def reverse_any(self, pick: int, allow_debt: bool | None) -> Any:
        """Reverse any transaction of the programme, the jobs' included."""
        self._catch_up()
        ids = [(t["id"], t["kind"]) for t in self._load().txns]
        if not ids:
            return multiple()
        txn_id, kind = ids[pick % len(ids)]
        return self._reverse(txn_id, allow_debt, kind)

    @rule(target=txns, m=MEMBER, points=POINTS, later=LATER)
    def into_debt(self, m: int, points: int, later: timedelta) -> Any:
        """Earn, spend it all, reverse the earn with leave to run into debt."""
        self._advance(later)
        earned = self.earn(m, points, False, None, ZERO)
        if not isinstance(earned, int):
            return multiple()
        self.spend(m, points, None, ZERO)
        return self._reverse(earned, True, "earn")

    # -- clawbacks ------------------------------------------------------------------------------
    @rule(
        target=txns,
        txn_id=txns,
        part=st.one_of(st.none(), st.integers(1, 320)),
        shortfall=st.sampled_from(list(Shortfall)),
        wrong=st.integers(0, 9),
        later=LATER,
    )
    def claw_back(
        self, txn_id: int, part: int | None, shortfall: Shortfall, wrong: int, later: timedelta
    ) -> Any:
        """Claw back part of any earlier transaction (`part` None: all that is left), now
        and then through the wrong function (growth for an earn and the other way round)."""
        self._advance(later)
        txn = self.txn_models[txn_id]
        left = txn.points - txn.clawed if txn.kind in ("earn", "growth") else 0
        points = max(left, 1) if part is None else part
        return self._claw_back(txn, points, shortfall, (txn.kind == "growth") != (wrong == 0))

    @rule(
        target=txns,
        pick=st.integers(0, 10**6),
        part=st.one_of(st.none(), st.integers(1, 320)),
        shortfall=st.sampled_from(list(Shortfall)),
        later=LATER,
    )
    def claw_back_some(
        self, pick: int, part: int | None, shortfall: Shortfall, later: timedelta
    ) -> Any:
        """Claw back part of an earn or growth credit that has some left to take."""
        self._advance(later)
        open_ = [
            t
            for t in self.txn_models.values()
            if t.kind in ("earn", "growth") and not t.reversed and t.clawed < t.points
        ]
        if not open_:
            return multiple()
        txn = open_[pick % len(open_)]
        left = txn.points - txn.clawed
        points = left if part is None else min(part, left)
        return self._claw_back(txn, points, shortfall, txn.kind == "growth")

    def _claw_back(self, txn: TxnModel, points: int, shortfall: Shortfall, growth: bool) -> Any:
        book, now, txn_id = self._bk(), self.now, txn.id
        model = self.model[txn.member]
        left = txn.points - txn.clawed if txn.kind in ("earn", "growth") else 0
        pending = txn.id in model.pending
        taken: int | None = None  # what the model knows will be taken, where it knows
        if txn.kind != ("growth" if growth else "earn") or txn.reversed:
            expect: set[Any] = {NotReversible}
        elif points > left:
            expect = {InvalidInput}
        elif growth or pending:
            expect, taken = {OK}, points
        elif shortfall == Shortfall.FORGIVE:
            # Where nothing expires, the member's other lots and this one hold available.
            expect, taken = {OK}, min(points, max(model.available, 0))
        elif book.allow_negative:
            expect, taken = {OK}, points
        elif not self.exact:
            expect = {OK, InsufficientPoints}
        else:
            expect = {InsufficientPoints} if model.available < points else {OK}
            taken = points

        def write(s: Session) -> Any:
            if growth:
                return claw_back_growth(s, book, txn_id, points, now=now, actor="sm")
            return claw_back(s, book, txn_id, points, shortfall=shortfall, now=now, actor="sm")

        how = "growth" if growth else shortfall
        what = f"claw back {points} of {txn.kind} {txn_id} ({how})"
        result = self._attempt(what, write, expect)
        if isinstance(result, JifenError):
            return multiple()
        txn.clawed += points
        if growth:
            model.growth -= points
            return self._record(TxnModel(result, "clawback", txn.member, points))
        assert isinstance(result, Clawback)
        assert result.taken + result.not_taken == points, f"{what}: {result}"
        assert shortfall == Shortfall.FORGIVE or result.not_taken == 0, f"{what}: {result}"
        if taken is not None and (self.exact or pending):
            assert result.taken == taken, f"{what}: {result}, model says {taken} taken"
        model.lifetime -= result.taken
        if pending:
            rest, release_at = model.pending[txn.id]
            if rest == points:
                del model.pending[txn.id]
            else:
                model.pending[txn.id] = (rest - points, release_at)
        else:
            model.available -= result.taken  # exact only where nothing expires
        return self._record(TxnModel(result.transaction_id, "clawback", txn.member, points))

    # -- time and jobs --------------------------------------------------------------------------
    @rule(job=st.sampled_from(["expire", "release", "lapse"]), later=LATER)
    def job(self, job: str, later: timedelta) -> None:
        self._advance(later)
        report = run_job(self.db, job, now=self.now, program_id=self._bk().program_id)
        note(f"{job} job → {report.totals}")

    @rule(by=JUMP)
    def advance(self, by: timedelta) -> None:
        self.clock.advance(by)
        self._catch_up()

    # -- the laws -------------------------------------------------------------------------------
    @invariant()
    def laws_hold(self) -> None:
        if self.book is None:
            return
        book, now = self.book, self.now
        problems = check_laws(self._load(), book)
        assert not problems, "\n".join(problems)
        balances = {m: current_balance(self.db, book, m, now) for m in self.members}
        snap = self._load()
        problems = check_laws(snap, book, up_to_date_at=now)
        assert not problems, "\n".join(problems)
        self._catch_up()
        for m, balance in balances.items():
            model = self.model[m]
            expected = {
                "pending": sum(points for points, _ in model.pending.values()),
                "held": sum(
                    h.amount
                    for h in self.hold_models.values()
                    if h.member == m and h.status == "active"
                ),
                "lifetime_earned": model.lifetime,
                "growth_value": model.growth,
            }
            if self.exact:
                expected["available"] = model.available
            actual = {key: getattr(balance, key) for key in expected}
            assert actual == expected, f"member {m}: balance {actual}, model {expected}"


def test_ledger_laws_hold_under_random_operations(db: Database) -> None:
    run_state_machine_as_test(lambda: LedgerMachine(db), settings=SETTINGS)
