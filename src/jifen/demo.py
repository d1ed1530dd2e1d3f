"""The demo programme: the brief's retail chain, with members whose history spans a year.

`seed_demo(db, clock)` creates programme `demo-retail` (积分超市（演示）) from the shipped
`retail-chain` example programme (its stores, channels and earning rules: 1 元 = 1 积分,
double points on fresh food and dairy, a member day on the 8th, 满额送积分; its four
tiers and its rewards mall), with demo
settings of its own (100 积分 = 10 元, a 7-day return window, points expiring 12 months
after earning rounded up to the end of the month, transfers allowed), five members and an
admin API key, all in one write transaction: either the whole demo is there or none of
it. It does nothing when the programme already exists, so it is safe to run on every
start.

The history is written through the services themselves — purchases through the earning
service and its rules (the members who cross 2,000 growth value become 银卡 on that
purchase), redemptions through the rewards mall (vouchers, a parcel shipped and
delivered, a points + cash order still pending, a donation, a cancelled redemption),
returns, spends, holds and transfers through the ledger — with the
clock moved back in time (purchases 14 months, 6 months, 3 days ago…), and then the due
jobs run at "now", so what a member has is exact relative to `clock.now()`: some lots
have already expired, one expires within 30 days, some points are still pending, one
member has an open hold, one a cancelled redemption, one a partly returned order, one
is frozen.

What each member should have is worked out alongside, by a small independent model of
lots (`_Wallet`: spend earliest expiry first, pending until the return window closes,
expire at the policy's date), not read back from the ledger, so a test that compares the
ledger (or the HTTP API) with `DemoInfo` checks the ledger against a second opinion. The
points each purchase earns come from the pure rules evaluator (`jifen.rules`), which has
tests of its own.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.access.service import Scope, create_key
from jifen.core.clock import Clock
from jifen.db.uow import Database
from jifen.earning import purchases
from jifen.earning.returns import record_return
from jifen.earning.schemas import PurchaseIn, ReturnIn
from jifen.jobs.runner import JOBS
from jifen.ledger import service as ledger
from jifen.ledger.expiry import expires_at
from jifen.ledger.posting import Book
from jifen.ledger.queries import EXPIRING_SOON_DAYS
from jifen.members import service as members
from jifen.members.schemas import MemberCreate, MemberStatus
from jifen.programs import examples
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file
from jifen.programs.models import Program
from jifen.programs.schemas import ProgramCreate
from jifen.programs.service import book_for, get_program
from jifen.rewards import fulfilment, redemptions
from jifen.rewards.schemas import RedemptionIn

DEMO_CODE = "demo-retail"
DEMO_ACTOR = "demo:seed"
DEMO_SETTINGS: dict[str, Any] = {
    "code": DEMO_CODE,
    "name": "积分超市（演示）",
    "currency": "CNY",
    "timezone": "Asia/Shanghai",
    "points_name": "积分",
    "point_value_points": 100,
    "point_value_amount": Decimal("10"),
    "pending_days": 7,
    "expiry_policy": {"kind": "after_months", "months": 12, "round_to": "month"},
    "allow_transfers": True,
    "allow_negative_balance": False,
}
SOON_MARGIN = timedelta(hours=6)
"""The lot meant to show under "expiring soon" expires at least this long after seeding."""


@dataclass(frozen=True)
class ExpectedBalance:
    available: int
    pending: int
    held: int
    lifetime_earned: int
    growth_value: int
    expiring_soon: list[tuple[date, int]]
    """(programme-local last valid day, points), as `Balance.expiring_soon` lists them."""

    def to_json(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "pending": self.pending,
            "held": self.held,
            "lifetime_earned": self.lifetime_earned,
            "growth_value": self.growth_value,
            "expiring_soon": [
                {"date": day.isoformat(), "points": points} for day, points in self.expiring_soon
            ],
        }


@dataclass(frozen=True)
class DemoMember:
    id: int
    name: str
    phone: str
    status: str
    story: str
    expected: ExpectedBalance

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "phone": self.phone,
            "status": self.status,
            "story": self.story,
            "expected": self.expected.to_json(),
        }


@dataclass(frozen=True)
class DemoInfo:
    program_id: int
    program_code: str
    seeded: bool
    """False when the programme was already there and nothing was written."""
    as_of: datetime
    api_key: str | None = None
    """The admin key's plaintext: only when seeded just now (only its hash is stored)."""
    members: list[DemoMember] = field(default_factory=list)
    """Empty unless seeded just now."""

    def to_json(self) -> dict[str, Any]:
        """Everything but the key, for `<data dir>/demo-seed.json`."""
        return {
            "program_id": self.program_id,
            "program_code": self.program_code,
            "as_of": self.as_of.isoformat(),
            "members": [member.to_json() for member in self.members],
        }


# -- the independent model -----------------------------------------------------------------


@dataclass
class _Lot:
    amount: int
    remaining: int
    expires: datetime | None
    pending_until: datetime | None


@dataclass
class _Wallet:
    """What a member should have, by the rules of PRODUCT.md L3/L4/L5, kept by hand."""

    lots: list[_Lot] = field(default_factory=list)
    held: int = 0
    lifetime: int = 0
    growth: int = 0

    def catch_up(self, at: datetime) -> None:
        for lot in self.lots:
            if lot.pending_until is not None and lot.pending_until <= at:
                lot.pending_until = None
        for lot in self.lots:
            if lot.pending_until is None and lot.expires is not None and lot.expires <= at:
                lot.remaining = 0

    def add(self, amount: int, expires: datetime | None, pending_until: datetime | None) -> _Lot:
        lot = _Lot(amount, amount, expires, pending_until)
        self.lots.append(lot)
        return lot

    def take(self, points: int, at: datetime) -> list[tuple[_Lot, int]]:
        spendable = [
            lot
            for lot in self.lots
            if lot.pending_until is None
            and lot.remaining > 0
            and (lot.expires is None or lot.expires > at)
        ]
        spendable.sort(key=lambda lot: (lot.expires is None, lot.expires or at))  # stable: by id
        taken: list[tuple[_Lot, int]] = []
        left = points
        for lot in spendable:
            if left == 0:
                break
            part = min(lot.remaining, left)
            lot.remaining -= part
            left -= part
            taken.append((lot, part))
        if left:
            raise AssertionError(f"the demo script spends {points} points its member lacks")
        return taken

    def give_back(self, taken: list[tuple[_Lot, int]], at: datetime) -> None:
        for lot, part in taken:
            if lot.expires is None or lot.expires > at:
                lot.remaining += part

    def expected(self, book: Book, now: datetime) -> ExpectedBalance:
        self.catch_up(now)
        available = sum(lot.remaining for lot in self.lots if lot.pending_until is None)
        soon: dict[date, int] = defaultdict(int)
        horizon = now + timedelta(days=EXPIRING_SOON_DAYS)
        for lot in self.lots:
            if (
                available > 0
                and lot.pending_until is None
                and lot.remaining > 0
                and lot.expires is not None
                and now < lot.expires <= horizon
            ):
                # valid through the local day before the instant it expires
                last_day = (lot.expires.astimezone(book.tz) - timedelta(microseconds=1)).date()
                soon[last_day] += lot.remaining
        return ExpectedBalance(
            available=available,
            pending=sum(lot.amount for lot in self.lots if lot.pending_until is not None),
            held=self.held,
            lifetime_earned=self.lifetime,
            growth_value=self.growth,
            expiring_soon=sorted(soon.items()),
        )


# -- the script ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Person:
    phone: str
    name: str
    birthday: date
    story: str


PEOPLE = (
    _Person("13800138001", "张伟", date(1985, 3, 12), "老顾客：一批积分已过期，一批 30 天内到期"),
    _Person(
        "13800138002", "李娜", date(1990, 7, 25), "银卡会员：购物袋已签收，一笔代金券兑换已取消"
    ),
    _Person("13800138003", "王芳", date(1988, 11, 2), "结账中：一笔未完成的积分预授权"),
    _Person(
        "13800138004", "刘洋", date(1979, 1, 30), "积分+现金兑换的刀具待发货；可疑交易，账户已冻结"
    ),
    _Person(
        "13800138005", "陈静", date(1995, 5, 18), "新会员：收到转赠并捐给希望工程，另有待生效积分"
    ),
)
DEMO_PHONES = tuple(person.phone for person in PEOPLE)
STORES = ("sh-001", "sh-002", "bj-001")
"""Store codes of the retail-chain example."""


ADDRESS = {
    "name": "李娜",
    "phone": "13800138002",
    "province": "上海市",
    "city": "上海市",
    "district": "徐汇区",
    "address": "漕溪北路 88 号 1201 室",
    "postcode": "200030",
}
"""Where the demo's parcels go."""

NIGHTLY = ("lapse", "release", "expire", "coupon-expiry", "tiers", "tier-benefits")
"""The jobs the demo runs at "now", once the history is written (birthdays are not due)."""


def _days(n: float, hours: float = 0) -> timedelta:
    return timedelta(days=n, hours=hours)


class _Seeder:
    """Plays the script against the ledger (one session) and the model side by side."""

    def __init__(self, session: Session, program: Program, now: datetime) -> None:
        self.session = session
        self.program = program
        self.book = book_for(session, program)
        self.now = now
        self.ids: dict[str, int] = {}
        self.wallets: dict[str, _Wallet] = {p.phone: _Wallet() for p in PEOPLE}
        self.statuses: dict[str, str] = {p.phone: MemberStatus.ACTIVE for p in PEOPLE}
        self.orders = count(1)
        self.last_purchase: dict[str, tuple[int, _Lot]] = {}
        self.last_redemption: dict[str, tuple[int, list[tuple[_Lot, int]]]] = {}

    def _wallet(self, phone: str, at: datetime) -> _Wallet:
        wallet = self.wallets[phone]
        wallet.catch_up(at)
        return wallet

    def enrol(self, at: datetime, person: _Person) -> None:
        data = MemberCreate(
            phone=person.phone,
            name=person.name,
            birthday=person.birthday,
            enrolment_channel="store",
        )
        self.ids[person.phone] = members.enrol(self.session, self.book, data, now=at).id

    def purchase(self, at: datetime, phone: str, amount: int, category: str = "grocery") -> None:
        """An order of `amount` 元 of one line of `category`, through the earning service:
        its points are pending for the return window, then available."""
        order = next(self.orders)
        data = PurchaseIn.model_validate(
            {
                "member": {"id": self.ids[phone]},
                "external_id": f"DEMO-{order:04d}",
                "occurred_at": at,
                "channel": "store",
                "store": STORES[order % len(STORES)],
                "payment_method": "wechat",
                "lines": [{"sku": f"SKU-{order:04d}", "category": category, "unit_price": amount}],
                "total": amount,
            }
        )
        done = purchases.record(
            self.session, self.program, self.book, data, now=at, actor=DEMO_ACTOR
        )
        bought = done.purchase
        wallet = self._wallet(phone, at)
        release = self.book.release_at(at)
        expiry = expires_at(self.book.expiry, earned_at=at, tz=self.book.tz)
        lot = wallet.add(
            bought.points, expiry, release if release is not None and release > at else None
        )
        wallet.lifetime += bought.points
        wallet.growth += bought.growth
        self.last_purchase[phone] = (bought.id, lot)

    def partial_return(self, at: datetime, phone: str, amount: int) -> None:
        """Refund `amount` 元 of the member's last order while its points are pending
        (one line, no threshold crossed: the points shrink by the base and category rates)."""
        purchase_id, lot = self.last_purchase[phone]
        done = record_return(
            self.session,
            self.program,
            self.book,
            purchase_id,
            ReturnIn.model_validate(
                {"external_id": f"DEMO-RETURN-{purchase_id}", "amount": amount}
            ),
            now=at,
            actor=DEMO_ACTOR,
        )
        if lot.pending_until is None or lot.pending_until <= at:
            raise AssertionError("the demo script returns an order after its points released")
        lot.amount -= done.row.points
        lot.remaining -= done.row.points
        wallet = self._wallet(phone, at)
        wallet.lifetime -= done.row.points
        wallet.growth -= done.row.growth

    def spend(self, at: datetime, phone: str, points: int, reason: str) -> None:
        ledger.debit(
            self.session,
            self.book,
            self.ids[phone],
            points,
            now=at,
            actor=DEMO_ACTOR,
            reference=f"DEMO-{next(self.orders):04d}",
            reason=reason,
        )
        self._wallet(phone, at).take(points, at)

    def redeem(self, at: datetime, phone: str, reward: str, **fields: Any) -> None:
        """A redemption in the rewards mall: its points are spent earliest-expiry first."""
        data = RedemptionIn.model_validate(
            {"member": {"id": self.ids[phone]}, "reward": reward, **fields}
        )
        done = redemptions.redeem(
            self.session, self.program, self.book, data, now=at, actor=DEMO_ACTOR
        )
        self.last_redemption[phone] = (done.id, self._wallet(phone, at).take(done.points, at))

    def cancel_last_redemption(self, at: datetime, phone: str, reason: str) -> None:
        redemption_id, taken = self.last_redemption.pop(phone)
        fulfilment.cancel(
            self.session,
            self.program,
            self.book,
            redemption_id,
            reason=reason,
            now=at,
            actor=DEMO_ACTOR,
        )
        self._wallet(phone, at).give_back(taken, at)

    def ship_and_deliver(self, at: datetime, phone: str, days: int) -> None:
        """The member's last redemption (goods) ships now and is delivered `days` later."""
        redemption_id, _ = self.last_redemption[phone]
        pid = self.program.id
        fulfilment.ship(
            self.session,
            pid,
            redemption_id,
            carrier="顺丰速运",
            tracking=f"SF{redemption_id:010d}",
            now=at,
            actor=DEMO_ACTOR,
        )
        fulfilment.deliver(self.session, pid, redemption_id, now=at + _days(days), actor=DEMO_ACTOR)

    def hold(self, at: datetime, phone: str, points: int, until: datetime) -> None:
        ledger.authorise_hold(
            self.session,
            self.book,
            self.ids[phone],
            points,
            now=at,
            actor=DEMO_ACTOR,
            expires_at=until,
            reference=f"DEMO-CHECKOUT-{next(self.orders):04d}",
        )
        wallet = self._wallet(phone, at)
        wallet.take(points, at)
        wallet.held += points

    def transfer(self, at: datetime, sender: str, receiver: str, points: int) -> None:
        ledger.transfer(
            self.session,
            self.book,
            self.ids[sender],
            self.ids[receiver],
            points,
            now=at,
            actor=DEMO_ACTOR,
            reason="转赠给家人",
        )
        by_expiry: dict[datetime | None, int] = defaultdict(int)
        for lot, part in self._wallet(sender, at).take(points, at):
            by_expiry[lot.expires] += part
        target = self._wallet(receiver, at)
        for expiry, part in sorted(by_expiry.items(), key=lambda i: (i[0] is None, i[0] or at)):
            target.add(part, expiry, None)  # the receiver's lots keep the sender's expiry

    def freeze(self, at: datetime, phone: str, reason: str) -> None:
        members.set_status(
            self.session, self.book, self.ids[phone], MemberStatus.FROZEN, reason=reason, now=at
        )
        self.statuses[phone] = MemberStatus.FROZEN

    def earned_to_expire_soon(self) -> datetime:
        """A past instant whose points expire between SOON_MARGIN and 30 days from now.

        Expiry is rounded to a month end, so no such instant exists only in the first
        hours of a 31-day month; then the next month end is taken."""
        lo, hi = self.now + SOON_MARGIN, self.now + timedelta(days=EXPIRING_SOON_DAYS)
        best: tuple[datetime, datetime] | None = None
        for days_ago in range(330, 400):
            at = self.now - timedelta(days=days_ago)
            due = expires_at(self.book.expiry, earned_at=at, tz=self.book.tz)
            assert due is not None
            if lo <= due <= hi:
                return at
            if due >= lo and (best is None or due < best[1]):
                best = (at, due)
        assert best is not None
        return best[0]

    def play(self) -> None:
        now = self.now
        zhang, li, wang, liu, chen = PEOPLE
        script: list[tuple[datetime, Callable[..., None], tuple[Any, ...], dict[str, Any]]] = []

        def at(when: datetime, action: Callable[..., None], *args: Any, **kwargs: Any) -> None:
            script.append((when, action, args, kwargs))

        # 张伟: an old lot that expired after part of it was spent, one that expires within
        # 30 days (partly spent, partly given away), one that lasts, a pending purchase.
        at(now - _days(450), self.enrol, zhang)
        at(now - _days(440), self.purchase, zhang.phone, 1200)
        at(now - _days(400), self.spend, zhang.phone, 500, "积分抵现")
        at(self.earned_to_expire_soon(), self.purchase, zhang.phone, 800)
        at(now - _days(180), self.purchase, zhang.phone, 1500)
        at(now - _days(30, hours=2), self.redeem, zhang.phone, "voucher-10", quantity=3)
        at(now - _days(25), self.transfer, zhang.phone, chen.phone, 200)
        at(now - _days(3), self.purchase, zhang.phone, 268, "fresh")
        # 李娜: 2,000 元 make her 银卡 on that purchase; a tote bag shipped and delivered,
        # then vouchers redeemed and cancelled (the points go back to their lots).
        at(now - _days(300), self.enrol, li)
        at(now - _days(270), self.purchase, li.phone, 2000)
        at(now - _days(100), self.redeem, li.phone, "tote-bag", shipping=ADDRESS)
        at(now - _days(99), self.ship_and_deliver, li.phone, 2)
        at(now - _days(20), self.purchase, li.phone, 600)
        at(now - _days(5), self.redeem, li.phone, "voucher-10", quantity=5)
        at(now - _days(4), self.cancel_last_redemption, li.phone, "会员申请取消，积分退回")
        # 王芳: points set aside for a checkout that is still open.
        at(now - _days(250), self.enrol, wang)
        at(now - _days(240), self.purchase, wang.phone, 900)
        at(now - _days(90), self.purchase, wang.phone, 400)
        at(now - timedelta(minutes=30), self.hold, wang.phone, 300, now + _days(2))
        # 刘洋: frozen after a suspicious pattern.
        at(now - _days(220), self.enrol, liu)
        at(now - _days(210), self.purchase, liu.phone, 3000)
        at(
            now - _days(120),
            self.redeem,
            liu.phone,
            "knife-set",
            shipping=ADDRESS | {"name": "刘洋", "phone": liu.phone},
            payment_reference="WX-DEMO-0001",
        )
        at(now - _days(7), self.freeze, liu.phone, "可疑交易，待核查")
        # 陈静: joined a month ago, received a gift, a purchase still pending and partly
        # returned the next day.
        at(now - _days(30), self.enrol, chen)
        at(now - _days(10), self.redeem, chen.phone, "hope-project")
        at(now - _days(2), self.purchase, chen.phone, 150, "dairy")
        at(now - _days(1), self.partial_return, chen.phone, 50)

        order = sorted(range(len(script)), key=lambda i: (script[i][0], i))
        for when, action, args, kwargs in (script[i] for i in order):
            action(when, *args, **kwargs)
        for name in NIGHTLY:  # the nightly jobs, run now
            while True:
                result = JOBS[name].batch(self.session, self.program, now, 500)
                if result.last():
                    break

    def result(self, program_id: int, api_key: str) -> DemoInfo:
        return DemoInfo(
            program_id=program_id,
            program_code=DEMO_CODE,
            seeded=True,
            as_of=self.now,
            api_key=api_key,
            members=[
                DemoMember(
                    id=self.ids[p.phone],
                    name=p.name,
                    phone=p.phone,
                    status=self.statuses[p.phone],
                    story=p.story,
                    expected=self.wallets[p.phone].expected(self.book, self.now),
                )
                for p in PEOPLE
            ],
        )


def find_demo_program(session: Session) -> Program | None:
    return session.execute(select(Program).where(Program.code == DEMO_CODE)).scalar_one_or_none()


def create_demo_key(session: Session, program_id: int, now: datetime) -> str:
    """A new admin key for the demo programme; returns its plaintext."""
    return create_key(
        session, program_id, name="demo admin", scope=Scope.ADMIN, now=now, created_by=DEMO_ACTOR
    )[1]


def seed_demo(db: Database, clock: Clock) -> DemoInfo:
    """Create the demo programme with its members and history, unless it exists."""
    now = clock.now()

    def seed(session: Session) -> DemoInfo:
        existing = find_demo_program(session)
        if existing is not None:
            return DemoInfo(program_id=existing.id, program_code=DEMO_CODE, seeded=False, as_of=now)
        # The programme and its first members date from before the oldest history.
        example = load_program_file(examples.text("retail-chain"), "retail-chain.yaml")
        demo = example.model_copy(update={"program": ProgramCreate.model_validate(DEMO_SETTINGS)})
        applied = apply(session, demo, now=now - _days(500), actor=DEMO_ACTOR)
        program = get_program(session, applied.program_id)
        seeder = _Seeder(session, program, now)
        seeder.play()
        return seeder.result(program.id, create_demo_key(session, program.id, now))

    return db.write(seed)
