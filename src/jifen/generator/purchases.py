"""Orders, their lines and their returns, generated a block of whole days at a time.

The number of orders on each day is drawn once for the whole period (a multinomial over
the days, each weighted by its season × weekday × holiday factor × the purchase rates of
the members enrolled by then), so the total is exact and a block never depends on how
the others were cut. Within a block every order gets a channel, a local time (by the
channel's hour profile), and then, in time order, a member among those enrolled by that
instant (weighted by their purchase rates), a store, a payment method and its lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from jifen.generator.calendar import DAY, HOUR, Timeline, day_factors
from jifen.generator.catalogue import Catalogue
from jifen.generator.members import Channels, MemberPool, hours_of_day
from jifen.generator.shape import Shape
from jifen.generator.text import decimal_text, id_width, numbered, quantity_text

Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

PURCHASE_COLUMNS = (
    "order_id",
    "member_external_id",
    "occurred_at",
    "channel",
    "store",
    "payment_method",
    "sku",
    "category",
    "brand",
    "quantity",
    "unit_price",
    "discount",
    "total",
)
RETURN_COLUMNS = ("order_id", "return_id", "occurred_at", "sku", "quantity", "amount")
PAYMENT_METHODS = ("wechat", "alipay", "card", "cash")


@dataclass
class _Returned:
    """Returned lines, as numbers, until they are sorted and written at the end."""

    order: list[Ints] = field(default_factory=list)
    line: list[Ints] = field(default_factory=list)
    at: list[Ints] = field(default_factory=list)
    sku: list[Ints] = field(default_factory=list)
    milli: list[Ints] = field(default_factory=list)
    amount: list[Ints] = field(default_factory=list)


@dataclass
class Counts:
    orders: int = 0
    lines: int = 0
    unclaimed: int = 0
    returns: int = 0
    returned_lines: int = 0


class Orders:
    """`count` orders on the days `first_day` … the timeline's last, in time order."""

    def __init__(
        self,
        count: int,
        first_day: int,
        pool: MemberPool,
        catalogue: Catalogue,
        timeline: Timeline,
        channels: Channels,
        stores: tuple[str, ...],
        shape: Shape,
        rng: np.random.Generator,
        returns_rng: np.random.Generator,
    ) -> None:
        self.count = count
        self.first_day = first_day
        self.pool = pool
        self.catalogue = catalogue
        self.timeline = timeline
        self.channels = channels
        self.stores = stores
        self.shape = shape
        self.rng = rng
        self.returns_rng = returns_rng
        self.counts = Counts()
        self._returned = _Returned()
        self._width = id_width(count)
        self._end = timeline.end()
        self._store_text = pa.array([*stores, ""], pa.string())
        self._channel_text = pa.array(list(channels.codes), pa.string())
        self._payment_text = pa.array(list(PAYMENT_METHODS), pa.string())

    def per_day(self) -> Ints:
        """How many orders each day of the period gets."""
        days = np.arange(self.first_day, self.timeline.days, dtype=np.int64)
        first = self.timeline.first + timedelta(days=self.first_day)
        weight = day_factors(first, len(days), self.shape)
        if len(self.pool) and self.pool.cumulative[-1] > 0:
            noon = self.timeline.utc(days, np.full(len(days), 12 * HOUR, np.int64))
            enrolled = np.searchsorted(self.pool.enrolled, noon, side="right")
            weight *= np.where(enrolled > 0, self.pool.cumulative[np.maximum(enrolled - 1, 0)], 0)
        if weight.sum() <= 0:  # nobody enrolled within the period: walk-in shoppers only
            weight = np.ones(len(days))
        found: Ints = self.rng.multinomial(self.count, weight / weight.sum())
        return found

    def tables(self, chunk: int) -> Iterator[pa.Table]:
        """The purchase rows, blocks of whole days of about `chunk` orders each."""
        per_day = self.per_day()
        start = 0
        while start < len(per_day):
            end = start + 1
            total = int(per_day[start])
            while end < len(per_day) and total + per_day[end] <= chunk:
                total += int(per_day[end])
                end += 1
            if total:
                days = np.arange(start, end, dtype=np.int64) + self.first_day
                yield self._block(np.repeat(days, per_day[start:end]))
            start = end

    # -- one block -----------------------------------------------------------------------

    def _block(self, day: Ints) -> pa.Table:
        rng, shape, n = self.rng, self.shape, len(day)
        channel = rng.choice(len(self.channels.codes), n, p=self.channels.weights(shape))
        online = self.channels.online()[channel]
        second = np.where(
            online,
            hours_of_day(rng, shape.online_hours, n),
            hours_of_day(rng, shape.store_hours, n),
        )
        at = self.timeline.utc(day, second)
        order = np.argsort(at, kind="stable")
        at, channel, online = at[order], channel[order], online[order]
        member = self._members(at)
        store = self._stores(member, online)
        payment = self._payments(channel)
        line_order, sku, milli = self._lines(n, online)
        price = self.catalogue.price_cents[sku]
        amount = (milli * price + 500) // 1000  # quantity × unit price, half up to cents
        discounted = self.catalogue.discountable[sku] & (
            rng.random(len(sku)) < shape.discount_share
        )
        percent = rng.integers(2, 7, len(sku)) * 5  # 10 %, 15 %, … 30 %
        discount = np.where(discounted, amount * percent // 100, 0)
        net = amount - discount
        total = np.bincount(line_order, weights=net, minlength=n).astype(np.int64)
        numbers = self.counts.orders + np.arange(1, n + 1, dtype=np.int64)
        self._return(numbers, at, line_order, sku, milli, net)
        self.counts.orders += n
        self.counts.lines += len(sku)
        self.counts.unclaimed += int((member < 0).sum())

        take = pa.array(line_order)
        by_weight = self.catalogue.by_weight[sku]
        member_text = pa.array([""] * n, pa.string())
        if len(self.pool):
            ids = self.pool.ids.take(pa.array(np.maximum(member, 0)))
            member_text = pc.if_else(pa.array(member < 0), "", ids)
        skus = pa.array(sku)
        columns = {
            "order_id": numbered("O", numbers, self._width).take(take),
            "member_external_id": member_text.take(take),
            "occurred_at": self.timeline.iso(at).take(take),
            "channel": self._channel_text.take(pa.array(channel)).take(take),
            "store": self._store_text.take(pa.array(store)).take(take),
            "payment_method": self._payment_text.take(pa.array(payment)).take(take),
            "sku": self.catalogue.sku.take(skus),
            "category": self.catalogue.category.take(skus),
            "brand": self.catalogue.brand.take(skus),
            "quantity": quantity_text(milli, by_weight),
            "unit_price": decimal_text(price, 2),
            "discount": decimal_text(discount, 2),
            "total": decimal_text(total, 2).take(take),
        }
        return pa.table(columns)

    def _members(self, at: Ints) -> Ints:
        """Each order's member (-1: none), among those enrolled by its instant."""
        rng, pool, n = self.rng, self.pool, len(at)
        unclaimed = rng.random(n) < self.shape.unclaimed_share
        draw = rng.random(n)
        if not len(pool):
            return np.full(n, -1, np.int64)
        enrolled = np.searchsorted(pool.enrolled, at, side="right")
        weight = np.where(enrolled > 0, pool.cumulative[np.maximum(enrolled - 1, 0)], 0.0)
        member = np.searchsorted(pool.cumulative, draw * weight, side="right")
        found: Ints = np.where(unclaimed | (weight <= 0), -1, member)
        return found

    def _stores(self, member: Ints, online: Bools) -> Ints:
        """Each order's store (len(stores): none): online orders have none; a member's
        store orders are mostly at the home store."""
        rng, n, count = self.rng, len(member), len(self.stores)
        anywhere = rng.integers(0, max(count, 1), n)
        at_home = (member >= 0) & (rng.random(n) < self.shape.home_store_share)
        if not count:
            return np.full(n, 0, np.int64)
        home = self.pool.home_store[np.maximum(member, 0)] if len(self.pool) else anywhere
        found: Ints = np.where(online, count, np.where(at_home, home, anywhere))
        return found

    def _payments(self, channel: Ints) -> Ints:
        rng = self.rng
        found = np.zeros(len(channel), np.int64)
        draw = rng.random(len(channel))
        for index, kind in enumerate(self.channels.kinds):
            mask = channel == index
            table = self.shape.payment_weights
            weights = table.get(kind) or table["store" if kind == "pos" else "app"]
            p = np.array([weights.get(m, 0.0) for m in PAYMENT_METHODS], np.float64)
            cdf = np.cumsum(p / p.sum())
            found[mask] = np.minimum(np.searchsorted(cdf, draw[mask], side="right"), len(p) - 1)
        return found

    def _lines(self, n: int, online: Bools) -> tuple[Ints, Ints, Ints]:
        """Each line's order, SKU and quantity (thousandths): an order never lists a SKU
        twice (a SKU drawn twice becomes one line of both quantities)."""
        rng, shape, catalogue = self.rng, self.shape, self.catalogue
        per_order = np.minimum(rng.geometric(shape.line_count_p, n), shape.max_lines)
        line_order = np.repeat(np.arange(n, dtype=np.int64), per_order)
        lines = len(line_order)
        sku = np.empty(lines, np.int64)
        on = online[line_order]
        sku[on] = rng.choice(len(catalogue), int(on.sum()), p=catalogue.online_p)
        sku[~on] = rng.choice(len(catalogue), int((~on).sum()), p=catalogue.store_p)
        weights = np.array(shape.quantity_weights, np.float64)
        pieces = 1 + rng.choice(len(weights), lines, p=weights / weights.sum())
        kg = rng.lognormal(np.log(shape.kg_median), shape.kg_sigma, lines)
        grams = np.clip(np.round(kg * 1000), 50, 10_000).astype(np.int64)
        milli = np.where(catalogue.by_weight[sku], grams, pieces * 1000)
        key = line_order * len(catalogue) + sku
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        summed = np.bincount(inverse, weights=milli).astype(np.int64)
        keep = np.argsort(first, kind="stable")
        return line_order[first[keep]], sku[first[keep]], summed[keep]

    def _return(
        self, numbers: Ints, at: Ints, line_order: Ints, sku: Ints, milli: Ints, net: Ints
    ) -> None:
        """Draw this block's returns: some orders whole, others part of one line."""
        rng, shape, n = self.returns_rng, self.shape, len(numbers)
        returned = rng.random(n) < shape.return_share
        whole = rng.random(n) < shape.whole_return_share
        delay = HOUR + (rng.exponential(shape.return_delay_days, n) * DAY).astype(np.int64)
        pick = rng.random(n)
        units = rng.random(n)
        returned &= at + delay <= self._end
        starts = np.searchsorted(line_order, np.arange(n))
        sizes = np.bincount(line_order, minlength=n)
        chosen = starts + np.minimum((pick * sizes).astype(np.int64), sizes - 1)
        line_no = np.arange(len(line_order)) - starts[line_order]
        is_whole = whole[line_order]
        take = returned[line_order] & (
            is_whole | (np.arange(len(line_order)) == chosen[line_order])
        )
        rows = np.flatnonzero(take)
        orders = line_order[rows]
        pieces = np.where(self.catalogue.by_weight[sku[rows]], 1, milli[rows] // 1000)
        partial = ~is_whole[rows] & (pieces > 1)
        back = np.where(partial, 1 + (units[orders] * pieces).astype(np.int64), pieces)
        back = np.minimum(back, pieces)
        amount = np.where(partial, (2 * net[rows] * back + pieces) // (2 * pieces), net[rows])
        kept = self._returned
        kept.order.append(numbers[orders])
        kept.line.append(line_no[rows])
        kept.at.append(at[orders] + delay[orders])
        kept.sku.append(sku[rows])
        kept.milli.append(np.where(partial, back * 1000, milli[rows]))
        kept.amount.append(amount)

    def returns_table(self) -> pa.Table:
        """Every returned line of the orders generated so far, in time order."""
        kept = self._returned
        if not kept.order:
            return pa.table({name: pa.array([], pa.string()) for name in RETURN_COLUMNS})
        order = np.concatenate(kept.order)
        line = np.concatenate(kept.line)
        at = np.concatenate(kept.at)
        sku = np.concatenate(kept.sku)
        milli = np.concatenate(kept.milli)
        amount = np.concatenate(kept.amount)
        sort = np.lexsort((line, order, at))
        order, at, sku, milli, amount = order[sort], at[sort], sku[sort], milli[sort], amount[sort]
        first = np.ones(len(order), dtype=bool)
        first[1:] = order[1:] != order[:-1]
        number = np.cumsum(first)
        self.counts.returns = int(first.sum()) if len(order) else 0
        self.counts.returned_lines = len(order)
        skus = pa.array(sku)
        return pa.table(
            {
                "order_id": numbered("O", order, self._width),
                "return_id": numbered("R", number, self._width),
                "occurred_at": self.timeline.iso(at),
                "sku": self.catalogue.sku.take(skus),
                "quantity": quantity_text(milli, self.catalogue.by_weight[sku]),
                "amount": decimal_text(amount, 2),
            }
        )
