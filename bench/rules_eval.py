"""Earning-rule evaluation speed: baskets/s through the pure evaluator, no database.

A realistic 20-rule retail programme (base rates, category/brand/sku multipliers, member
day, weekend, happy hour, tier multipliers, best-of threshold bonuses, a per-line bonus,
capped rules) is compiled once; N random baskets of 1–10 lines, made deterministically
from a seed, are evaluated one by one, each timed.

    .venv/bin/python bench/rules_eval.py [--n 20000] [--seed 1] [--repeat 3] [--profile]

Each basket is timed by the CPU time of this thread (`time.thread_time_ns`), so other
processes on a busy machine do not count against the evaluator; baskets/s, rules/s (=
baskets/s × 20), the mean and the p50/p99 come from that, of the fastest of `--repeat`
runs over the same baskets. The wall-clock rate is reported beside it.

`digest` (SHA-256 of every award's explanation) and `points` change only when the
evaluator's results change: compare them before and after making it faster.
`--profile` prints the 25 costliest functions (cProfile) instead of timing.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
import random
import statistics
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from jifen.rules.evaluator import Award, CompiledRule, compile_rules, evaluate
from jifen.rules.facts import Allowances, Basket, Line, MemberFacts
from jifen.rules.schemas import RuleSet

ZONE = ZoneInfo("Asia/Shanghai")
CATEGORIES = ["fresh", "dairy", "household", "beverage", "snacks", "personal_care", "new"]
BRANDS = ["house", "jinlongyu", "mengniu", "nongfu", "head", "safeguard", "lays"]
PROMO_SKUS = [f"sku-{i:04d}" for i in range(10)]

PROGRAMME = {
    "earning_rules": [
        {"id": "base", "name": "1 元 = 1 积分", "effect": {"points_per_amount": 1},
         "stacking": "best_of", "group": "rate"},
        {"id": "platinum-rate", "name": "铂金 1.5 积分/元", "when": {"tier": ["platinum"]},
         "effect": {"points_per_amount": "1.5"}, "stacking": "best_of", "group": "rate"},
        {"id": "beverage-items", "name": "饮料每件 2 积分", "when": {"category": ["beverage"]},
         "effect": {"points_per_quantity": 2}, "scope": "line"},
        {"id": "fresh-double", "name": "生鲜双倍", "when": {"category": ["fresh", "dairy"]},
         "effect": {"multiplier": 2}},
        {"id": "house-brand", "name": "自有品牌三倍", "when": {"brand": ["house"]},
         "effect": {"multiplier": 3}, "scope": "line"},
        {"id": "sku-promo", "name": "指定商品五倍", "when": {"sku": PROMO_SKUS},
         "effect": {"multiplier": 5}, "cap_per_order": 500},
        {"id": "member-day", "name": "会员日双倍", "when": {"days_of_month": [8]},
         "effect": {"multiplier": 2}},
        {"id": "weekend", "name": "周末 1.5 倍", "when": {"weekdays": [6, 7]},
         "effect": {"multiplier": "1.5"}, "rounding": "round"},
        {"id": "happy-hour", "name": "下午茶时段", "when": {"channel": ["pos"],
         "hours": {"from": "14:00", "to": "17:00"}}, "effect": {"multiplier": "1.2"}},
        {"id": "silver", "name": "银卡 1.2 倍", "when": {"tier": ["silver"]},
         "effect": {"multiplier": "1.2"}},
        {"id": "gold", "name": "金卡 1.5 倍", "when": {"tier": ["gold"]},
         "effect": {"multiplier": "1.5"}},
        {"id": "platinum", "name": "铂金 2 倍", "when": {"tier": ["platinum"]},
         "effect": {"multiplier": 2}},
        {"id": "spend-200", "name": "满200送20", "when": {"min_amount": 200},
         "effect": {"bonus": 20}, "stacking": "best_of", "group": "spend"},
        {"id": "spend-500", "name": "满500送80", "when": {"min_amount": 500},
         "effect": {"bonus": 80}, "stacking": "best_of", "group": "spend"},
        {"id": "spend-1000", "name": "满1000送200", "when": {"min_amount": 1000},
         "effect": {"bonus": 200}, "stacking": "best_of", "group": "spend"},
        {"id": "new-products", "name": "新品每件送5", "when": {"category": ["new"]},
         "effect": {"bonus": 5}, "scope": "line", "cap_per_order": 50},
        {"id": "first-purchase", "name": "首单送100", "when": {"first_purchase": True},
         "effect": {"bonus": 100}},
        {"id": "app-daily", "name": "App 下单每日送10", "when": {"channel": ["app", "mini"]},
         "effect": {"bonus": 10}, "caps": {"day": 10}},
        {"id": "birthday-month", "name": "生日月双倍", "when": {"birthday_month": True},
         "effect": {"multiplier": 2}, "caps": {"month": 1000}},
        {"id": "wechat-pay", "name": "微信支付送8", "when": {"payment_method": ["wechat"],
         "dates": {"from": "2026-06-01", "to": "2026-08-31"}}, "effect": {"bonus": 8}},
    ]
}  # fmt: skip


def make_baskets(n: int, seed: int) -> list[tuple[Basket, MemberFacts, Allowances]]:
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    start = datetime(2026, 1, 1, tzinfo=ZONE)
    out: list[tuple[Basket, MemberFacts, Allowances]] = []
    for _ in range(n):
        lines = tuple(
            Line(
                sku=f"sku-{rng.randrange(200):04d}",
                quantity=Decimal(rng.randint(1, 5)),
                amount=Decimal(rng.randint(100, 30000)).scaleb(-2),
                category=rng.choice(CATEGORIES),
                brand=rng.choice(BRANDS),
            )
            for _ in range(rng.randint(1, 10))
        )
        basket = Basket(
            at=start + timedelta(minutes=rng.randrange(365 * 24 * 60)),
            channel=rng.choice(["pos", "pos", "web", "app", "mini"]),
            lines=lines,
            store=f"store-{rng.randrange(50)}",
            payment_method=rng.choice(["wechat", "alipay", "card", "cash"]),
        )
        member = MemberFacts(
            tier=rng.choice([None, "silver", "gold", "platinum"]),
            first_purchase=rng.random() < 0.05,
            birthday=date(1990, rng.randint(1, 12), 1),
        )
        allowances = {"app-daily": rng.choice([0, 10]), "birthday-month": rng.randrange(1500)}
        out.append((basket, member, allowances))
    return out


def run(
    rules: tuple[CompiledRule, ...], baskets: list[tuple[Basket, MemberFacts, Allowances]]
) -> tuple[list[Award], list[int]]:
    awards, timings = [], []
    clock = time.thread_time_ns
    for basket, member, allowances in baskets:
        started = clock()
        awards.append(evaluate(rules, basket, member, allowances=allowances))
        timings.append(clock() - started)
    return awards, timings


def digest(awards: list[Award]) -> str:
    text = json.dumps([[i.as_dict() for i in a.items] for a in awards], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    rules = compile_rules(RuleSet.model_validate(PROGRAMME).earning_rules)
    assert len(rules) == 20
    baskets = make_baskets(args.n, args.seed)
    run(rules, baskets[:500])  # warm up
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(run, rules, baskets)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    runs = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        awards, timings = run(rules, baskets)
        runs.append((sum(timings) / 1e9, time.perf_counter() - started, timings))
    cpu, wall, timings = min(runs, key=lambda r: r[0])
    quantiles = statistics.quantiles(timings, n=100)
    per_s = args.n / cpu
    results = {
        "n": args.n,
        "seed": args.seed,
        "repeat": args.repeat,
        "rules": len(rules),
        "lines_per_basket": round(sum(len(b.lines) for b, _, _ in baskets) / args.n, 2),
        "baskets_per_s": round(per_s),
        "rules_per_s": round(per_s * len(rules)),
        "us_per_basket": round(cpu / args.n * 1e6, 1),
        "p50_us": round(quantiles[49] / 1000, 1),
        "p99_us": round(quantiles[98] / 1000, 1),
        "wall_baskets_per_s": round(args.n / wall),
        "points": sum(a.points for a in awards),
        "digest": digest(awards),
    }
    print(f"{'baskets/s':>10}{'rules/s':>11}{'µs/basket':>11}{'p50 µs':>9}{'p99 µs':>9}")
    print(
        f"{results['baskets_per_s']:>10}{results['rules_per_s']:>11}"
        f"{results['us_per_basket']:>11}{results['p50_us']:>9}{results['p99_us']:>9}"
    )
    print(f"{args.n} baskets, {results['lines_per_basket']} lines each on average; "
          f"wall clock {results['wall_baskets_per_s']} baskets/s; "
          f"{results['points']} points, digest {results['digest']}")  # fmt: skip
    out = Path(__file__).parent / "results" / "rules_eval.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
