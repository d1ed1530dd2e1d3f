"""The shape at a moderate size (20,000 orders by 4,000 members over 2025): heavy-tailed
spend, the 双十一 peak, weekday and hour peaks, popular SKUs, every channel and store,
about 5 % unclaimed orders and about 3 % returned."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from decimal import Decimal

from .conftest import DataSet, Row


def _heads(dataset: DataSet) -> list[Row]:
    return [lines[0] for lines in dataset.orders().values()]


def test_a_tenth_of_the_members_make_most_of_the_spend_and_some_never_buy(
    dataset: DataSet,
) -> None:
    spend: Counter[str] = Counter()
    for head in _heads(dataset):
        if head["member_external_id"]:
            spend[head["member_external_id"]] += int(Decimal(head["total"]) * 100)
    ranked = sorted((spend.get(m["external_id"], 0) for m in dataset.members), reverse=True)
    assert sum(ranked[: len(ranked) // 10]) > 0.4 * sum(ranked)
    never = sum(1 for s in ranked if s == 0)
    assert 0.1 * len(ranked) < never < 0.6 * len(ranked)


def test_november_peaks_with_the_eleventh_and_weekends_and_meal_times_are_busier(
    dataset: DataSet,
) -> None:
    times = [datetime.fromisoformat(h["occurred_at"]) for h in _heads(dataset)]
    months = Counter(t.month for t in times)
    assert months[11] > 1.2 * sum(months.values()) / 12
    assert months[11] > max(months[10], months[12])
    days = Counter(t.date() for t in times)
    november = [n for day, n in days.items() if day.month == 11]
    assert days[datetime(2025, 11, 11).date()] > 2 * sum(november) / len(november)
    weekdays = Counter(t.weekday() for t in times)
    assert min(weekdays[5], weekdays[6]) > max(weekdays[0], weekdays[1], weekdays[2])
    store_hours = Counter(
        t.hour for t, h in zip(times, _heads(dataset), strict=True) if h["channel"] == "store"
    )
    assert set(store_hours) <= set(range(7, 23))  # stores open 07:00–22:59
    assert store_hours[12] > 1.5 * store_hours[15]  # lunch
    assert store_hours[19] > 1.5 * store_hours[15]  # after work
    hours = Counter(t.hour for t in times)
    assert hours[3] < hours[12] / 20


def test_every_channel_and_store_appears_and_online_orders_have_no_store(
    dataset: DataSet,
) -> None:
    heads = _heads(dataset)
    channels = Counter(h["channel"] for h in heads)
    assert set(channels) == {code for code, _ in dataset.spec.channels}
    assert channels["store"] > channels["app"] > channels["mini_program"]
    stores = Counter(h["store"] for h in heads if h["channel"] == "store")
    assert set(stores) == set(dataset.spec.stores)
    assert all(h["store"] == "" for h in heads if h["channel"] != "store")
    payments = Counter((h["channel"], h["payment_method"]) for h in heads)
    assert {p for _, p in payments} == {"wechat", "alipay", "card", "cash"}
    assert all(p != "cash" for c, p in payments if c != "store")  # no cash online


def test_about_five_percent_unclaimed_and_three_percent_returned(dataset: DataSet) -> None:
    heads = _heads(dataset)
    unclaimed = sum(1 for h in heads if not h["member_external_id"]) / len(heads)
    assert 0.04 < unclaimed < 0.065
    returned = len({r["order_id"] for r in dataset.returns}) / len(heads)
    assert 0.02 <= returned <= 0.04


def test_skus_have_popular_best_sellers_stable_prices_and_rule_categories(
    dataset: DataSet,
) -> None:
    lines = dataset.purchases
    skus = Counter(line["sku"] for line in lines)
    best = skus.most_common(len(skus) // 100)
    assert sum(n for _, n in best) > 0.15 * len(lines)  # the top 1 % of SKUs
    prices: dict[str, set[str]] = {}
    for line in lines:
        prices.setdefault(line["sku"], set()).add(line["unit_price"])
    assert all(len(p) == 1 for p in prices.values())
    categories = Counter(line["category"] for line in lines)
    for named in ("fresh", "dairy", "tobacco", "gift_card"):  # the programme's rules name them
        assert categories[named] > 0, named
    assert categories.most_common(1)[0][0] == "fresh"
    online = {h["order_id"] for h in _heads(dataset) if h["channel"] != "store"}
    assert not any(line["category"] == "tobacco" for line in lines if line["order_id"] in online)
    sizes = Counter(len(order) for order in dataset.orders().values())
    assert sizes[1] > sizes[2] > sizes[4] > sizes[8] > 0  # 1–N lines, skewed
