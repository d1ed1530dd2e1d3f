"""The `tiers:` and `rewards:` sections of the programme file, and `points_payment`:
names agree across sections, plan and apply, refusals, export, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from factories import make_member
from jifen.core.clock import FrozenClock
from jifen.db.uow import Database
from jifen.programs.config import export, load_program_file
from jifen.programs.errors import ProgramFileInvalid
from jifen.programs.service import book_for, get_program_by_code
from jifen.programs.tiers import TierPolicy
from jifen.rewards.models import Reward
from jifen.tiers.models import MemberTier
from programs.test_config import apply_text, mistakes, plan_text, program, rows

FILE = """\
program:
  code: mall
  name: 商城
  points_payment: {max_share: 0.5, min_points: 100, step: 100, excluded_categories: [tobacco]}
earning_rules:
  - id: base
    name: 1 元 = 1 积分
    effect: {points_per_amount: 1}
  - id: gold-day
    name: 金卡日
    when: {tier: [gold]}
    effect: {bonus: 10}
tiers:
  window: {kind: calendar, period: year}
  grace_days: 14
  downgrade: supported
  levels:
    - {code: normal, name: 普通}
    - code: silver
      name: 银卡
      enter: {growth: 1000, purchases: 10}
    - code: gold
      name: 金卡
      enter: {spend: 5000}
      retain: {spend: 4000}
      benefits:
        earn_multiplier: 1.5
        birthday_gift: {points: 50, reward: cake}
        periodic: [{reward: delivery, every: month}]
rewards:
  - code: voucher
    name: 10 元券
    kind: coupon
    points: 100
    prices: {gold: 80}
    coupon: {kind: fixed, amount: 10, valid_days: 30}
  - code: cake
    name: 生日蛋糕券
    kind: coupon
    points: 0
    coupon: {kind: fixed, amount: 20, min_spend: 100, valid_until: 2027-12-31}
  - code: delivery
    name: 免运费
    kind: coupon
    points: 0
    tiers: [gold]
    coupon: {kind: free_delivery, cap: 15, valid_days: 31}
  - code: mug
    name: 马克杯
    kind: goods
    points: 900
    cash: 9.90
    stock: 3
    limit_per_member: 1
    available_from: 2026-12-01T00:00:00+08:00
  - code: seat
    name: 品鉴会
    kind: experience
    points: 500
    stock: 20
    experience: {starts_at: 2027-02-01T19:00:00+08:00, location: 上海}
  - code: trees
    name: 种一棵树
    kind: charity
    points: 200
    cause: green
"""


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 23, 4, tzinfo=UTC))


def test_the_sections_load_and_apply(db: Database, clock: FrozenClock) -> None:
    applied = apply_text(db, clock, FILE)
    assert applied.plan.tiers
    assert applied.plan.rewards
    mall = program(db, "mall")
    policy = TierPolicy.model_validate(mall.tiers)
    assert [level.code for level in policy.levels] == ["normal", "silver", "gold"]
    assert policy.levels[2].benefits.earn_multiplier == Decimal("1.5")
    assert mall.points_payment == {
        "max_share": "0.5",
        "min_points": 100,
        "step": 100,
        "excluded_categories": ["tobacco"],
    }
    rewards = db.read(
        lambda s: {
            r.code: (r.kind, r.points, r.stock, r.redeemed, r.cash, r.prices, r.tiers, r.active)
            for r in s.execute(select(Reward).where(Reward.program_id == mall.id)).scalars()
        }
    )
    assert rewards == {
        "voucher": ("coupon", 100, None, 0, None, {"gold": 80}, None, True),
        "cake": ("coupon", 0, None, 0, None, None, None, True),
        "delivery": ("coupon", 0, None, 0, None, None, ["gold"], True),
        "mug": ("goods", 900, 3, 0, Decimal("9.90"), None, None, True),
        "seat": ("experience", 500, 20, 0, None, None, None, True),
        "trees": ("charity", 200, None, 0, None, None, None, True),
    }


def test_applying_again_and_applying_the_export_change_nothing(
    db: Database, clock: FrozenClock
) -> None:
    apply_text(db, clock, FILE)
    before = rows(db)
    assert apply_text(db, clock, FILE).plan.empty
    exported = db.read(lambda s: export(s, get_program_by_code(s, "mall")))
    assert "tiers:\n  window:\n    kind: calendar\n    period: year\n" in exported
    assert "- code: mug\n" in exported
    assert "  cash: 9.90\n" in exported
    assert plan_text(db, exported).empty
    assert apply_text(db, clock, exported).plan.empty
    assert rows(db) == before
    # the same programme under another code exports the same
    apply_text(db, clock, exported.replace("  code: mall\n", "  code: mall-copy\n"))
    copy = db.read(lambda s: export(s, get_program_by_code(s, "mall-copy")))
    assert copy.replace("mall-copy", "mall") == exported


def test_the_plan_names_each_tier_and_reward_change(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, FILE)
    changed = (
        FILE.replace("grace_days: 14", "grace_days: 30")
        .replace("enter: {spend: 5000}", "enter: {spend: 6000}")
        .replace(
            "    - {code: normal, name: 普通}\n",
            "    - {code: normal, name: 普通}\n"
            "    - {code: green, name: 绿卡, enter: {purchases: 3}}\n",
        )
        .replace("    points: 900\n", "    points: 1000\n")
        .replace("    stock: 3\n", "    stock: 10\n")
    )
    changed = changed[: changed.index("  - code: trees")]  # trees leaves the file
    shown = plan_text(db, changed).describe()
    assert shown == [
        "programme mall (商城): changes",
        "  rules: unchanged (version 1)",
        "  tiers: ~ grace_days, + green, ~ gold",
        "  rewards",
        "    ~ mug: points 900 → 1000, stock 3 → 10",
        "    - trees: deactivated (not in the file)",
    ]
    apply_text(db, clock, changed)
    mall = program(db, "mall")
    policy = TierPolicy.model_validate(mall.tiers)
    assert [level.code for level in policy.levels] == ["normal", "green", "silver", "gold"]
    trees = db.read(
        lambda s: s.execute(
            select(Reward.active).where(Reward.program_id == mall.id, Reward.code == "trees")
        ).scalar_one()
    )
    assert trees is False
    assert plan_text(db, changed).empty


def test_names_must_agree_across_sections() -> None:
    text = (
        FILE.replace("when: {tier: [gold]}", "when: {tier: [golden]}")
        .replace("prices: {gold: 80}", "prices: {vip: 80}")
        .replace("reward: cake}", "reward: cakes}")
        .replace("tiers: [gold]\n", "tiers: [gold, black]\n")
    )
    assert mistakes(text) == [
        "programme.yaml:11: earning_rules[1].when.tier[0]: no tier 'golden' in this file "
        "(defined: normal, silver, gold)",
        "programme.yaml:28: tiers.levels[2].benefits.birthday_gift.reward: no reward 'cakes' "
        "in this file's rewards (defined: voucher, cake, delivery, mug, seat, trees)",
        "programme.yaml:35: rewards[0].prices.vip: no tier 'vip' in this file (defined: "
        "normal, silver, gold)",
        "programme.yaml:46: rewards[2].tiers[1]: no tier 'black' in this file (defined: "
        "normal, silver, gold)",
    ]
    no_tiers = FILE[: FILE.index("tiers:\n")] + FILE[FILE.index("rewards:\n") :]
    assert mistakes(no_tiers)[0] == (
        "programme.yaml:11: earning_rules[1].when.tier[0]: no tier 'gold' in this file "
        "(no tiers: section)"
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    - {code: normal, name: 普通}\n",
            "    - {code: normal, name: 普通, enter: {growth: 1}}\n",
            "programme.yaml:13: tiers: the first level (normal) is everyone's: it has no "
            "enter or retain",
        ),
        (
            "      enter: {spend: 5000}\n",
            "      enter: {}\n",
            "programme.yaml:24: tiers.levels[2].enter: give at least one of growth, spend, "
            "purchases",
        ),
        (
            "    coupon: {kind: fixed, amount: 10, valid_days: 30}\n",
            "    coupon: {kind: fixed, amount: 10}\n",
            "programme.yaml:36: rewards[0].coupon: give exactly one of valid_days, valid_until",
        ),
        (
            "  - code: cake\n",
            "  - code: voucher\n",
            "programme.yaml:37: rewards[1].code: reward code 'voucher' is given twice "
            "(first on line 31)",
        ),
        (
            "    cause: green\n",
            "",
            "programme.yaml:62: rewards[5]: a charity reward, and only a charity reward, "
            "gives cause:",
        ),
        (
            "max_share: 0.5,",
            "max_share: 1.5,",
            "programme.yaml:4: program.points_payment.max_share: Input should be less than or "
            "equal to 1",
        ),
    ],
)
def test_mistakes_in_the_sections(old: str, new: str, expected: str) -> None:
    assert old in FILE
    found = mistakes(FILE.replace(old, new))
    assert any(problem.startswith(expected) for problem in found), found


def test_a_stock_below_what_is_redeemed_is_refused(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, FILE)
    mall = program(db, "mall")
    db.write(
        lambda s: s.execute(
            update(Reward)
            .where(Reward.program_id == mall.id, Reward.code == "mug")
            .values(redeemed=2)
        )
    )
    before = rows(db)
    with pytest.raises(ProgramFileInvalid) as caught:
        apply_text(db, clock, FILE.replace("    stock: 3\n", "    stock: 1\n"))
    assert [str(p) for p in caught.value.problems] == [
        "programme.yaml:53: rewards[3].stock: 2 of reward 'mug' are already redeemed: stock "
        "(what may ever be redeemed) cannot be 1"
    ]
    assert rows(db) == before
    apply_text(db, clock, FILE.replace("    stock: 3\n", "    stock: 2\n"))  # down to 2 is fine


def test_a_tier_with_members_cannot_be_removed(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, FILE)
    mall = program(db, "mall")
    book = db.read(lambda s: book_for(s, mall))
    member = make_member(db, book, clock)
    now = clock.now()
    db.write(
        lambda s: s.add(
            MemberTier(
                program_id=mall.id,
                member_id=member,
                tier="silver",
                qualified_tier="silver",
                since=now,
                updated_at=now,
            )
        )
    )
    without_silver = FILE.replace(
        "    - code: silver\n      name: 银卡\n      enter: {growth: 1000, purchases: 10}\n", ""
    )
    before = rows(db)
    with pytest.raises(ProgramFileInvalid) as caught:
        apply_text(db, clock, without_silver)
    assert [str(p) for p in caught.value.problems] == [
        "programme.yaml:17: tiers.levels: tier 'silver' cannot be removed: 1 member(s) are in "
        "it and 0 grant(s) name it (keep it, or rename it with its code)"
    ]
    assert rows(db) == before
    # a tier nobody is in can go
    apply_text(db, clock, FILE.replace("      name: 金卡\n", "      name: 金卡会员\n"))
    assert load_program_file(FILE).tiers is not None
