"""A customer journey through a shipped example programme: the programme file applied to a
fresh database, members enrolled, and the services called the way the HTTP layer calls
them (one unit of work each), with the test's frozen clock as "now".

Times are wall-clock times in the programme's own time zone (`Journey.at`); the clock is
moved there before each step, so a purchase is recorded when it happens unless a step says
otherwise (a late upload, a retro-claim).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.earning import events, purchases, returns
from jifen.earning.event_schemas import EventIn, EventOut
from jifen.earning.schemas import (
    ClaimIn,
    Earned,
    PurchaseIn,
    PurchaseOut,
    ReturnIn,
    ReturnOut,
)
from jifen.jobs.runner import run_job
from jifen.ledger import service as ledger
from jifen.ledger.posting import Book
from jifen.ledger.queries import balance as read_balance
from jifen.ledger.schemas import Balance
from jifen.members import service as members
from jifen.members.schemas import MemberCreate
from jifen.programs import examples
from jifen.programs.apply import apply
from jifen.programs.config import load_program_file
from jifen.programs.models import Program
from jifen.programs.service import book_for, get_program
from jifen.rewards import checkout, coupons, fulfilment, reads, redemptions
from jifen.rewards.checkout_schemas import HoldIn, Quote, QuoteIn
from jifen.rewards.coupon_schemas import CouponOut, CouponUse, UseIn
from jifen.rewards.schemas import RedemptionIn, RedemptionOut
from jifen.tiers import progress
from jifen.tiers.schemas import Standing
from jifen.tiers.standing import tier_of

CENT = Decimal("0.01")
T = TypeVar("T")


def item(sku: str, unit_price: Any, quantity: Any = 1, **fields: Any) -> dict[str, Any]:
    """A purchase line as a till sends it."""
    return {"sku": sku, "unit_price": str(unit_price), "quantity": str(quantity), **fields}


@dataclass(frozen=True)
class Points:
    """A member's balance, as compared in the journeys."""

    available: int
    pending: int
    lifetime: int
    growth: int


class Journey:
    def __init__(self, db: Database, clock: FrozenClock, name: str) -> None:
        self.db = db
        self.clock = clock
        file = load_program_file(examples.text(name), f"{name}.yaml")
        program_id = db.write(
            lambda s: apply(s, file, now=clock.now(), actor="example-test").program_id
        )
        self.book: Book = db.read(lambda s: book_for(s, get_program(s, program_id)))

    # -- time ---------------------------------------------------------------------------

    def at(self, year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
        """A wall-clock time in the programme's zone."""
        return datetime(year, month, day, hour, minute, tzinfo=self.book.tz)

    def move(self, year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
        """Move the clock to that local time (never backwards)."""
        when = self.at(year, month, day, hour, minute)
        assert when >= self.clock.now(), "a journey only moves forward"
        self.clock.set(when)
        return when

    # -- members ------------------------------------------------------------------------

    def enrol(self, phone: str, **fields: Any) -> int:
        data = MemberCreate.model_validate({"phone": phone} | fields)
        return self.db.write(lambda s: members.enrol(s, self.book, data, now=self.clock.now()).id)

    # -- purchases ----------------------------------------------------------------------

    def _unit(self, fn: Callable[[Session, Program], T]) -> T:
        return self.db.write(lambda s: fn(s, get_program(s, self.book.program_id)))

    def _purchase(
        self,
        member: int | None,
        external_id: str,
        lines: tuple[dict[str, Any], ...],
        channel: str,
        at: datetime | None,
        fields: dict[str, Any],
    ) -> PurchaseIn:
        total = sum(
            (
                (Decimal(line["quantity"]) * Decimal(line["unit_price"])).quantize(
                    CENT, rounding=ROUND_HALF_UP
                )
                - Decimal(str(line.get("discount", 0)))
                for line in lines
            ),
            Decimal(0),
        )
        body: dict[str, Any] = {
            "external_id": external_id,
            "occurred_at": (at or self.clock.now()).isoformat(),
            "channel": channel,
            "lines": list(lines),
            "total": str(total),
            **fields,
        }
        if member is not None:
            body["member"] = {"id": member}
        return PurchaseIn.model_validate(body)

    def buy(
        self,
        member: int | None,
        external_id: str,
        *lines: dict[str, Any],
        channel: str = "store",
        at: datetime | None = None,
        **fields: Any,
    ) -> PurchaseOut:
        """Record a purchase made now (or at `at`, uploaded now); it must be new."""
        data = self._purchase(member, external_id, lines, channel, at, fields)

        def run(s: Session, program: Program) -> PurchaseOut:
            done = purchases.record(s, program, self.book, data, now=self.clock.now(), actor="t")
            assert done.created, f"order {external_id} was already recorded"
            return purchases.describe(s, self.book, done.purchase)

        return self._unit(run)

    def simulate(
        self, member: int | None, *lines: dict[str, Any], channel: str = "store", **fields: Any
    ) -> Earned:
        """What buying now would earn (POST /v1/simulate), writing nothing."""
        data = self._purchase(member, "simulation", lines, channel, None, fields)
        return self.db.read(
            lambda s: purchases.simulate(
                s, get_program(s, self.book.program_id), self.book, data, now=self.clock.now()
            )
        )

    def give_back(self, purchase_id: int, **body: Any) -> ReturnOut:
        """A return or refund, recorded now."""
        data = ReturnIn.model_validate(body)

        def run(s: Session, program: Program) -> ReturnOut:
            done = returns.record_return(
                s, program, self.book, purchase_id, data, now=self.clock.now(), actor="t"
            )
            return returns.describe_return(done.row, done.purchase)

        return self._unit(run)

    def claim(self, external_id: str, member: int) -> PurchaseOut:
        data = ClaimIn.model_validate({"external_id": external_id, "member": {"id": member}})

        def run(s: Session, program: Program) -> PurchaseOut:
            done = purchases.claim(s, program, self.book, data, now=self.clock.now(), actor="t")
            return purchases.describe(s, self.book, done.purchase)

        return self._unit(run)

    def purchase(self, purchase_id: int) -> PurchaseOut:
        return self.db.read(
            lambda s: purchases.describe(
                s, self.book, purchases.get(s, self.book.program_id, purchase_id)
            )
        )

    # -- behaviour ----------------------------------------------------------------------

    def event(
        self,
        member: int,
        event_type: str,
        external_id: str,
        *,
        points: int | None = None,
        attributes: dict[str, str] | None = None,
    ) -> EventOut:
        """A behaviour (POST /v1/events) happening now."""
        data = EventIn.model_validate(
            {
                "type": event_type,
                "member": {"id": member},
                "external_id": external_id,
                "points": points,
                "attributes": attributes or {},
            }
        )

        def run(s: Session, program: Program) -> EventOut:
            done = events.record_event(s, program, self.book, data, now=self.clock.now(), actor="t")
            return events.describe(s, done.event, repeat=done.repeat)

        return self._unit(run)

    # -- points -------------------------------------------------------------------------

    def spend(self, member: int, points: int, reason: str) -> None:
        """Points spent on a reward (a redemption debits the ledger like this)."""
        self.db.write(
            lambda s: ledger.debit(
                s, self.book, member, points, now=self.clock.now(), actor="t", reason=reason
            )
        )

    def run(self, job: str) -> int:
        """Run a job ('release', 'expire', 'birthday') now; the points it moved."""
        report = run_job(self.db, job, now=self.clock.now(), program_id=self.book.program_id)
        return report.totals.points

    # -- tiers and the rewards mall -------------------------------------------------------

    def tier(self, member: int) -> str | None:
        return self.db.read(lambda s: tier_of(s, get_program(s, self.book.program_id), member))

    def standing(self, member: int, lang: str = "en") -> Standing:
        return self.db.read(
            lambda s: progress.standing(
                s, get_program(s, self.book.program_id), member, now=self.clock.now(), lang=lang
            )
        )

    def redeem(self, member: int, reward: str, **fields: Any) -> RedemptionOut:
        """A redemption in the rewards mall (POST /v1/redemptions) now."""
        data = RedemptionIn.model_validate({"member": {"id": member}, "reward": reward} | fields)

        def run(s: Session, program: Program) -> RedemptionOut:
            done = redemptions.redeem(s, program, self.book, data, now=self.clock.now(), actor="t")
            return reads.describe(s, done)

        return self._unit(run)

    def cancel(self, redemption_id: int, reason: str) -> RedemptionOut:
        def run(s: Session, program: Program) -> RedemptionOut:
            done = fulfilment.cancel(
                s, program, self.book, redemption_id, reason=reason, now=self.clock.now(), actor="t"
            )
            return reads.describe(s, done)

        return self._unit(run)

    def coupons(self, member: int) -> list[CouponOut]:
        """The member's coupons, oldest first."""
        return self.db.read(
            lambda s: list(
                reversed(
                    coupons.list_for_member(
                        s, self.book.program_id, member, now=self.clock.now(), limit=200
                    )
                )
            )
        )

    def use_coupon(
        self, code: str, order: str, *lines: dict[str, Any], delivery_fee: str | None = None
    ) -> CouponUse:
        """A till uses a coupon on an order (POST /v1/coupons/{code}/use)."""
        data = UseIn.model_validate(
            {"order": order, "lines": list(lines), "delivery_fee": delivery_fee}
        )
        return self.db.write(
            lambda s: coupons.use(
                s, self.book.program_id, code, data, now=self.clock.now(), actor="t"
            )
        )

    def quote(self, member: int, *lines: dict[str, Any]) -> Quote:
        """How many points may pay for this basket (POST /v1/checkout/quote)."""
        data = QuoteIn.model_validate({"member": {"id": member}, "lines": list(lines)})

        def run(s: Session, program: Program) -> Quote:
            found = checkout.quote(s, program, self.book, data, now=self.clock.now())
            assert found is not None, "something fell due: run the job first"
            return found

        return self.db.read(lambda s: run(s, get_program(s, self.book.program_id)))

    def hold(self, member: int, order: str, points: int, *lines: dict[str, Any]) -> int:
        """Points set aside for an order at the checkout (POST /v1/checkout/hold)."""
        data = HoldIn.model_validate(
            {"member": {"id": member}, "order": order, "points": points, "lines": list(lines)}
        )
        return self._unit(
            lambda s, program: (
                checkout.hold(s, program, self.book, data, now=self.clock.now(), actor="t")[0].id
            )
        )

    def balance(self, member: int) -> Balance:
        """The balance as stored: nothing due is brought up to date by reading (so a test
        sees what the jobs did)."""
        found = self.db.read(lambda s: read_balance(s, self.book, member, self.clock.now()))
        assert found is not None, "something fell due: run the job first"
        return found

    def points(self, member: int) -> Points:
        b = self.balance(member)
        return Points(b.available, b.pending, b.lifetime_earned, b.growth_value)

    def expiring(self, member: int) -> dict[date, int]:
        return {e.date: e.points for e in self.balance(member).expiring_soon}


def by_rule(shown: PurchaseOut | ReturnOut) -> dict[str, int]:
    """The award's (or the return's) points by rule."""
    if isinstance(shown, PurchaseOut):
        return {item.rule: item.points for item in shown.breakdown}
    return {item["rule"]: item["points"] for item in shown.breakdown if item["kind"] == "points"}


def growth_by_rule(shown: PurchaseOut | ReturnOut) -> dict[str, int]:
    if isinstance(shown, PurchaseOut):
        return {item.rule: item.points for item in shown.growth_breakdown}
    return {item["rule"]: item["points"] for item in shown.breakdown if item["kind"] == "growth"}
