"""Returns and refunds (PRODUCT.md E5): take back the points and growth value the returned
part of an order earned, whatever order the partial returns come in.

The rule (docs/earning.md): after each return the order is re-evaluated as it now stands —
the lines and amounts not yet returned, with the rule-set version and member facts of the
original award, considering only the rules that fired then and the other rules of their
best_of groups. Each rule (each best_of group, as a whole) keeps the smaller of what it
kept so far and what it gives now; the difference is taken back. So:
- points per amount/line shrink in proportion to what was returned;
- a threshold bonus (满额送积分) is lost once the net order falls below its threshold, and
  a best_of group of thresholds falls back to the best bonus the order still reaches;
- a rule never gives more after a return than before, and returning everything takes
  back everything (partial returns in any order sum to a full return).
Where the points are still pending they are simply cancelled. Where the member has spent
them, the programme's return policy decides: `debt` takes them anyway (a negative balance
that later earnings repay), `deduct` takes only what is available, `withhold` takes what
is available and reports the rest as money to keep back from the refund.

A return with an `external_id` seen before for this purchase returns the first result,
so a retried refund never takes points twice.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from jifen.core.errors import Conflict, InvalidInput, ReturnExceedsPurchase
from jifen.db.outbox import emit
from jifen.earning import caps
from jifen.earning.models import Purchase, PurchaseLine, PurchaseReturn, PurchaseStatus
from jifen.earning.purchases import GROWTH_PREFIX, facts_from_json, get, remaining_basket
from jifen.earning.schemas import ReturnIn, ReturnOut
from jifen.ledger.clawback import Shortfall, claw_back, claw_back_growth
from jifen.ledger.posting import Book, lock_account
from jifen.programs.models import Program
from jifen.programs.rulesets import rules_at
from jifen.programs.schemas import ReturnPolicy
from jifen.programs.service import points_value
from jifen.rewards import checkout
from jifen.rules.evaluator import CompiledRule, evaluate

CENT = Decimal("0.01")


@dataclass(frozen=True)
class Recorded:
    row: PurchaseReturn
    purchase: Purchase
    created: bool


def record_return(
    session: Session,
    program: Program,
    book: Book,
    purchase_id: int,
    data: ReturnIn,
    *,
    now: datetime,
    actor: str,
) -> Recorded:
    purchase = get(session, program.id, purchase_id)
    if purchase.member_id is not None:
        # Lock order as everywhere: the member's account first (returns apply to frozen
        # and closed members too, like reversals).
        lock_account(session, book, purchase.member_id, now)
    purchase = session.execute(
        select(Purchase)
        .where(Purchase.id == purchase.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    if data.external_id is not None:
        earlier = session.execute(
            select(PurchaseReturn).where(
                PurchaseReturn.purchase_id == purchase.id,
                PurchaseReturn.external_id == data.external_id,
            )
        ).scalar_one_or_none()
        if earlier is not None:
            return Recorded(_same_return(earlier, data), purchase, created=False)

    lines = list(
        session.execute(
            select(PurchaseLine)
            .where(PurchaseLine.purchase_id == purchase.id)
            .order_by(PurchaseLine.line_no)
            .execution_options(populate_existing=True)
        ).scalars()
    )
    refunds = _refunds(lines, purchase, data)
    refunded = sum((amount for _, amount in refunds.values()), Decimal(0))
    for line in lines:
        quantity, amount = refunds.get(line.line_no, (Decimal(0), Decimal(0)))
        line.returned_quantity += quantity
        line.returned_amount += amount
    purchase.net_total -= refunded
    everything = all(
        line.returned_quantity == line.quantity and line.returned_amount == _net(line)
        for line in lines
    )

    points_loss: dict[str, int] = {}
    growth_loss: dict[str, int] = {}
    if purchase.status == PurchaseStatus.AWARDED and purchase.rule_set_version is not None:
        rules = rules_at(session, program.id, purchase.rule_set_version)
        returned = _returned_by_rule(session, purchase.id)
        points_loss = _loss(
            rules.earning, purchase, lines, purchase.breakdown, returned["points"], book, everything
        )
        growth_loss = _loss(
            rules.growth,
            purchase,
            lines,
            purchase.growth_breakdown,
            returned["growth"],
            book,
            everything,
        )
    points = sum(points_loss.values())
    growth = sum(growth_loss.values())
    # Points that paid for the order come back first (their share of what is returned),
    # so that a clawback of the award can take from them before anything is let go.
    paid_back = checkout.refund_returned(
        session,
        book,
        purchase,
        lines,
        {no: amount for no, (_, amount) in refunds.items()},
        now=now,
        actor=actor,
    )
    policy = ReturnPolicy(program.return_policy)
    taken = not_taken = 0
    clawback_id = growth_clawback_id = None
    if points and purchase.earn_txn_id is not None:
        result = claw_back(
            session,
            book,
            purchase.earn_txn_id,
            points,
            shortfall=Shortfall.DEBT if policy == ReturnPolicy.DEBT else Shortfall.FORGIVE,
            now=now,
            actor=actor,
            reason=f"return of order {purchase.external_id}",
            details={"purchase_id": purchase.id},
        )
        taken, not_taken, clawback_id = result.taken, result.not_taken, result.transaction_id
    if growth and purchase.growth_txn_id is not None:
        growth_clawback_id = claw_back_growth(
            session,
            book,
            purchase.growth_txn_id,
            growth,
            now=now,
            actor=actor,
            reason=f"return of order {purchase.external_id}",
            details={"purchase_id": purchase.id},
        )
    if purchase.member_id is not None:
        _give_back_caps(session, program.id, purchase, points_loss, growth_loss, book)
    purchase.points_returned += points
    purchase.growth_returned += growth
    if everything:
        purchase.status = PurchaseStatus.RETURNED
    row = PurchaseReturn(
        program_id=program.id,
        purchase_id=purchase.id,
        member_id=purchase.member_id,
        external_id=data.external_id,
        amount=refunded,
        lines=[
            {"line_no": no, "quantity": str(q), "amount": str(a)}
            for no, (q, a) in sorted(refunds.items())
        ],
        policy=policy.value,
        points=points,
        points_taken=taken,
        points_not_taken=not_taken,
        withhold_amount=points_value(program, not_taken)
        if policy == ReturnPolicy.WITHHOLD
        else Decimal(0),
        growth=growth,
        paid_points_refunded=paid_back.points,
        paid_points_value_refunded=paid_back.value,
        refund_txn_id=paid_back.transaction_id,
        breakdown=[{"kind": "points", "rule": rule, "points": n} for rule, n in points_loss.items()]
        + [{"kind": "growth", "rule": rule, "points": n} for rule, n in growth_loss.items()],
        clawback_txn_id=clawback_id,
        growth_clawback_txn_id=growth_clawback_id,
        created_at=now,
        actor=actor,
    )
    session.add(row)
    session.flush()
    emit(
        session,
        program_id=program.id,
        member_id=purchase.member_id,
        type="purchase.returned",
        payload={"purchase_id": purchase.id, "return_id": row.id, "points": points},
        at=now,
    )
    return Recorded(row, purchase, created=True)


def _same_return(earlier: PurchaseReturn, data: ReturnIn) -> PurchaseReturn:
    asked: Any = data.amount
    if data.lines is not None:
        asked = sorted((line.line_no, line.quantity, line.amount) for line in data.lines)
    seen: Any = earlier.amount
    if data.lines is not None:
        seen = sorted(
            (
                int(line["line_no"]),
                Decimal(line["quantity"]) or None,
                Decimal(line["amount"]),
            )
            for line in earlier.lines
        )
        # a line given by quantity only was stored with its computed amount (a line the
        # first refund did not name cannot match, whatever its amount)
        amounts = {s[0]: s[2] for s in seen}
        asked = [(no, q, a if a is not None else amounts.get(no)) for no, q, a in asked]
    if asked != seen:
        raise Conflict(
            reason=f"refund {earlier.external_id} was already recorded (return {earlier.id}) "
            "with different lines or amount"
        )
    return earlier


def _net(line: PurchaseLine) -> Decimal:
    return line.amount - line.discount


def _refunds(
    lines: list[PurchaseLine], purchase: Purchase, data: ReturnIn
) -> dict[int, tuple[Decimal, Decimal]]:
    """Line number → (quantity, money) this return takes back; checked against what is left."""
    by_no = {line.line_no: line for line in lines}
    if data.amount is not None:
        return _spread(lines, purchase, data.amount)
    refunds: dict[int, tuple[Decimal, Decimal]] = {}
    assert data.lines is not None
    for asked in data.lines:
        line = by_no.get(asked.line_no)
        if line is None:
            raise InvalidInput(
                field=f"lines[line_no={asked.line_no}]",
                reason=f"the purchase has lines 1–{len(lines)}",
            )
        qty_left = line.quantity - line.returned_quantity
        amount_left = _net(line) - line.returned_amount
        quantity = asked.quantity or Decimal(0)
        if quantity > qty_left:
            raise ReturnExceedsPurchase(
                line=line.line_no, asked=f"{quantity:f} items", left=f"{qty_left:f} items"
            )
        if asked.amount is not None:
            amount = asked.amount
        elif quantity == qty_left:
            amount = amount_left
        else:
            amount = (amount_left * quantity / qty_left).quantize(CENT, rounding=ROUND_HALF_UP)
        if amount > amount_left:
            raise ReturnExceedsPurchase(
                line=line.line_no, asked=f"{amount:f}", left=f"{amount_left:f}"
            )
        if quantity == 0 and amount == 0:
            raise InvalidInput(field=f"lines[line_no={line.line_no}]", reason="returns nothing")
        refunds[line.line_no] = (quantity, amount)
    return refunds


def _spread(
    lines: list[PurchaseLine], purchase: Purchase, amount: Decimal
) -> dict[int, tuple[Decimal, Decimal]]:
    """An order-level refund spread over the lines in proportion to what each has left
    (largest remainders get the odd cents); refunding everything returns every item."""
    left = {line.line_no: _net(line) - line.returned_amount for line in lines}
    total = sum(left.values(), Decimal(0))
    if amount > total:
        raise ReturnExceedsPurchase(line=None, asked=f"{amount:f}", left=f"{total:f}")
    if amount == total:
        return {
            line.line_no: (line.quantity - line.returned_quantity, left[line.line_no])
            for line in lines
            if left[line.line_no] > 0 or line.quantity > line.returned_quantity
        }
    cents = int(amount / CENT)
    exact = {no: Decimal(cents) * value / total for no, value in left.items()}
    shares = {no: int(value) for no, value in exact.items()}
    rest = cents - sum(shares.values())
    for no in sorted(exact, key=lambda n: (-(exact[n] - shares[n]), n))[:rest]:
        shares[no] += 1
    return {no: (Decimal(0), Decimal(n) * CENT) for no, n in shares.items() if n}


def _returned_by_rule(session: Session, purchase_id: int) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {"points": defaultdict(int), "growth": defaultdict(int)}
    for breakdown in session.execute(
        select(PurchaseReturn.breakdown).where(PurchaseReturn.purchase_id == purchase_id)
    ).scalars():
        for item in breakdown:
            totals[item["kind"]][item["rule"]] += item["points"]
    return totals


def _loss(
    compiled: tuple[CompiledRule, ...],
    purchase: Purchase,
    lines: list[PurchaseLine],
    breakdown: list[dict[str, Any]] | None,
    returned: dict[str, int],
    book: Book,
    everything: bool,
) -> dict[str, int]:
    awarded: dict[str, int] = {item["rule"]: item["points"] for item in breakdown or []}
    kept = {rule: awarded.get(rule, 0) - returned.get(rule, 0) for rule in {*awarded, *returned}}
    kept = {rule: n for rule, n in kept.items() if n > 0}
    if not kept:
        return {}
    if everything:
        order = {c.rule.id: c.position for c in compiled}
        return dict(
            sorted(kept.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
        )
    # Every rule of the award counts, also one left with nothing (a multiplier multiplies
    # the base rate of a rule whose cap or budget let it give nothing), and every rule of a
    # best_of group the award drew on: an order that falls from 满500 to 满200 keeps 满200's
    # bonus instead of losing the group's whole.
    groups = {c.rule.id: c.rule.group for c in compiled if c.rule.group is not None}
    drawn = {groups[rule] for rule in awarded if rule in groups}
    considered = set(awarded) | set(returned) | {r for r, g in groups.items() if g in drawn}
    now_gives = evaluate(
        compiled,
        remaining_basket(book, purchase, lines),
        facts_from_json(purchase.facts),
        only=considered,
    ).by_rule()
    target = {rule: min(points, now_gives.get(rule, 0)) for rule, points in kept.items()}
    for group in drawn:
        members = [rule for rule, g in groups.items() if g == group]
        kept_group = sum(kept.get(rule, 0) for rule in members)
        now_group = sum(now_gives.get(rule, 0) for rule in members)
        for rule in members:  # the group keeps the smaller of its two totals, as now split
            target[rule] = kept.get(rule, 0) if now_group >= kept_group else now_gives.get(rule, 0)
    position = {c.rule.id: c.position for c in compiled}
    ordered = sorted(target, key=lambda rule: (position.get(rule, len(position)), rule))
    loss = {rule: kept.get(rule, 0) - target[rule] for rule in ordered}
    # a rule of a group that changed hands may gain (a negative loss); the return as a
    # whole never gives more than the order kept
    return {rule: n for rule, n in loss.items() if n != 0}


def _give_back_caps(
    session: Session,
    program_id: int,
    purchase: Purchase,
    points_loss: dict[str, int],
    growth_loss: dict[str, int],
    book: Book,
) -> None:
    """Points a return took back no longer count against their rules' caps and budgets
    (and a best_of rule that took over its group counts what it now gives)."""
    if purchase.rule_set_version is None or purchase.member_id is None:
        return
    rules = rules_at(session, program_id, purchase.rule_set_version)
    day = purchase.occurred_at.astimezone(book.tz).date()
    amounts: dict[str, int] = defaultdict(int)
    for compiled, loss, prefix in (
        (rules.earning, points_loss, ""),
        (rules.growth, growth_loss, GROWTH_PREFIX),
    ):
        by_id = {c.rule.id: c.rule for c in compiled}
        for rule_id, n in loss.items():
            rule = by_id.get(rule_id)
            if rule is None or (rule.caps is None and rule.budget is None):
                continue
            for bound in caps.bounds(
                rule_id,
                member_id=purchase.member_id,
                day=day,
                caps=rule.caps,
                budget=rule.budget,
                prefix=prefix,
            ):
                amounts[bound.key] += n
    caps.give_back(session, program_id, {k: n for k, n in amounts.items() if n > 0})
    # a best_of rule that took over its group on the return now counts what it gives
    caps.use(session, program_id, {k: -n for k, n in amounts.items() if n < 0})


def describe_return(row: PurchaseReturn, purchase: Purchase) -> ReturnOut:
    return ReturnOut(
        id=row.id,
        purchase_id=row.purchase_id,
        external_id=row.external_id,
        amount=row.amount,
        lines=row.lines,
        policy=row.policy,
        points=row.points,
        points_taken=row.points_taken,
        points_not_taken=row.points_not_taken,
        withhold_amount=row.withhold_amount,
        paid_points_refunded=row.paid_points_refunded,
        paid_points_value_refunded=row.paid_points_value_refunded,
        cash_refund=row.amount - row.paid_points_value_refunded,
        growth=row.growth,
        breakdown=row.breakdown,
        purchase_status=purchase.status,
        created_at=row.created_at,
    )
