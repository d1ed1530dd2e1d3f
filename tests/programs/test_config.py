"""The programme file: mistakes named by line and field, plan, apply, export, on both stores."""

from __future__ import annotations

from collections.abc import Callable
from datetime import time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from factories import make_member
from jifen.core.clock import FrozenClock
from jifen.db.models import Base
from jifen.db.outbox import OutboxEvent
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.models import Account, AccountKind
from jifen.ledger.queries import current_balance
from jifen.programs.apply import Applied, Plan, apply, plan
from jifen.programs.config import ProgramFile, export, load_program_file
from jifen.programs.errors import ProgramFileInvalid
from jifen.programs.models import Channel, Program, RuleSetVersion, Store
from jifen.programs.rulesets import current_rules
from jifen.programs.service import book_for, get_program_by_code

SHOP = """\
program:
  code: shop
  name: 小店
  pending_days: 7
  expiry_policy: {kind: after_months, months: 24, round_to: quarter}
stores:
  - {code: sh-001, name: 上海南京路店, region: 华东}
  - {code: bj-001, name: 北京店}
channels:
  - {code: pos, name: 收银台, kind: pos}
  - {code: app, name: App, kind: app}
earning_rules:
  - id: base
    name: 1 元 = 1 积分
    effect: {points_per_amount: 1}
  - id: lunch
    name: 午市双倍
    when:
      store: [sh-001]
      hours: {from: 11:30, to: 13:30}
    effect: {multiplier: 2}
event_rules:
  - {type: sign_up, name: 注册, points: 100}
"""


def load(text: str) -> ProgramFile:
    return load_program_file(text, "programme.yaml")


def mistakes(text: str) -> list[str]:
    with pytest.raises(ProgramFileInvalid) as caught:
        load(text)
    return [str(problem) for problem in caught.value.problems]


def apply_text(db: Database, clock: FrozenClock, text: str, actor: str = "test") -> Applied:
    loaded = load(text)
    return db.write(lambda s: apply(s, loaded, now=clock.now(), actor=actor))


def plan_text(db: Database, text: str) -> Plan:
    loaded = load(text)
    return db.read(lambda s: plan(s, loaded))


def rows(db: Database) -> dict[str, int]:
    """Every table's row count."""

    def count(session: Any) -> dict[str, int]:
        return {
            table.name: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in Base.metadata.sorted_tables
        }

    return db.read(count)


def program(db: Database, code: str = "shop") -> Program:
    return db.read(lambda s: get_program_by_code(s, code))


def stores(db: Database, code: str = "shop") -> list[tuple[str, str, str | None, bool]]:
    pid = program(db, code).id
    return db.read(
        lambda s: [
            (r.code, r.name, r.region, r.active)
            for r in s.execute(select(Store).where(Store.program_id == pid).order_by(Store.code))
            .scalars()
            .all()
        ]
    )


# -- mistakes, each at its line and field ------------------------------------------------------


def marked(text: str) -> tuple[str, int]:
    """The text without its `#!` marker, and the line the marker was on."""
    lines = text.splitlines()
    line = next(i for i, content in enumerate(lines, 1) if "#!" in content)
    return "\n".join(content.split("  #!")[0] for content in lines) + "\n", line


def edit(old: str, new: str) -> Callable[[str], str]:
    def change(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return change


Mistake = tuple[str, Callable[[str], str], int | None, str]
"""(what, how the file is changed, the line reported (None: the line marked #!), message)"""

MISTAKES: list[Mistake] = [
    (
        "a misspelt setting",
        edit("  pending_days: 7\n", "  pending_dayz: 7  #!\n"),
        None,
        "program.pending_dayz: unknown field (did you mean pending_days?)",
    ),
    (
        "a top-level key that does not exist",
        lambda t: t + "tier: []  #!\n",
        None,
        "tier: unknown field (did you mean tiers?)",
    ),
    (
        "two effects in one rule",
        edit("effect: {points_per_amount: 1}\n", "effect: {points_per_amount: 1, bonus: 5}  #!\n"),
        None,
        "earning_rules[0].effect: give exactly one of points_per_amount, points_per_quantity",
    ),
    (
        "a rule without an effect",
        edit("    effect: {multiplier: 2}\n", ""),
        16,
        "earning_rules[1].effect: missing: this field is required",
    ),
    (
        "a rule id given twice",
        edit("  - id: lunch\n", "  - id: base  #!\n"),
        None,
        "earning_rules[1].id: rule id 'base' is given twice (first on line 13)",
    ),
    (
        "a rule naming a store the file does not define",
        edit("      store: [sh-001]\n", "      store: [sh-001, gz-009]  #!\n"),
        None,
        "earning_rules[1].when.store[1]: no store 'gz-009' in this file's stores "
        "(defined: bj-001, sh-001)",
    ),
    (
        "a rule naming a channel the file does not define",
        edit("      store: [sh-001]\n", "      store: [sh-001]\n      channel: [web]  #!\n"),
        None,
        "earning_rules[1].when.channel[0]: no channel 'web' in this file's channels "
        "(defined: app, pos)",
    ),
    (
        "a channel of an unknown kind",
        edit("kind: app}\n", "kind: wechat}  #!\n"),
        None,
        "channels[1].kind: Input should be 'store', 'pos', 'web', 'app' or 'mini_program'",
    ),
    (
        "a key given twice in one mapping",
        edit("  name: 小店\n", "  name: 小店\n  name: 大店  #!\n"),
        None,
        "program.name: duplicate key 'name' (first given on line 3)",
    ),
    (
        "an expiry policy of an unknown kind",
        edit("{kind: after_months, months: 24, round_to: quarter}\n", "{kind: sometimes}  #!\n"),
        None,
        "program.expiry_policy.kind: Input tag 'sometimes' found using 'kind' does not match",
    ),
    (
        "an expiry policy out of range",
        edit("months: 24, round_to: quarter}\n", "months: 0, round_to: quarter}  #!\n"),
        None,
        "program.expiry_policy.months: Input should be greater than or equal to 1",
    ),
    (
        "a store code written as a number in a rule",
        edit("      store: [sh-001]\n", "      store: [1001]  #!\n"),
        None,
        "earning_rules[1].when.store[0]: Input should be a valid string "
        "(write it in quotes: '1001')",
    ),
    (
        "negative pending days",
        edit("  pending_days: 7\n", "  pending_days: -1  #!\n"),
        None,
        "program.pending_days: Input should be greater than or equal to 0",
    ),
    (
        "an unknown time zone",
        edit("  pending_days: 7\n", "  pending_days: 7\n  timezone: Asia/Beijing  #!\n"),
        None,
        "program.timezone: unknown time zone 'Asia/Beijing' (use an IANA name)",
    ),
    (
        "a weekday that does not exist",
        edit("      store: [sh-001]\n", "      store: [sh-001]\n      weekdays: [6, 8]  #!\n"),
        None,
        "earning_rules[1].when.weekdays[1]: Input should be less than or equal to 7",
    ),
    (
        "a budget period that does not exist",
        edit(
            "    effect: {multiplier: 2}\n",
            "    effect: {multiplier: 2}\n    budget: {points: 100, period: decade}  #!\n",
        ),
        None,
        "earning_rules[1].budget.period: Input should be 'day', 'week', 'month' or 'year', "
        "or 'total'",
    ),
    (
        "a return policy of debt without allowing debt",
        edit("  pending_days: 7\n", "  pending_days: 7\n  return_policy: debt\n"),
        1,
        "program: return_policy debt leaves a negative balance: set allow_negative_balance too",
    ),
    (
        "an unclosed bracket",
        edit("effect: {points_per_amount: 1}\n", "effect: {points_per_amount: 1\n"),
        16,
        "YAML syntax: expected ',' or '}', but got ':' (column 7), "
        "while parsing a flow mapping begun on line 15",
    ),
    (
        "an event type given twice",
        lambda t: t + "  - {type: sign_up, name: again, points: 5}  #!\n",
        None,
        "event_rules[1].type: event type 'sign_up' is given twice (first on line 23)",
    ),
    (
        "a mapping where a list belongs",
        edit(
            "stores:\n  - {code: sh-001, name: 上海南京路店, region: 华东}\n"
            "  - {code: bj-001, name: 北京店}\n",
            "stores:  #!\n  north: {code: sh-001, name: 上海南京路店}\n",
        ),
        None,
        "stores: Input should be a valid list",
    ),
]


@pytest.mark.parametrize(
    ("change", "line", "expected"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_a_mistake_names_its_line_and_field(
    change: Callable[[str], str], line: int | None, expected: str
) -> None:
    text = change(SHOP)
    if line is None:
        text, line = marked(text)
    found = mistakes(text)
    assert found == [f"programme.yaml:{line}: {expected}"] or (
        len(found) == 1 and found[0].startswith(f"programme.yaml:{line}: {expected}")
    ), found


def test_every_mistake_is_reported_at_once_in_line_order() -> None:
    text = (
        SHOP.replace("  pending_days: 7\n", "  pending_days: 7.5\n")
        .replace("kind: app}", "kind: phone}")
        .replace("      store: [sh-001]\n", "      store: [nowhere]\n")
        + "tier: []\n"
    )
    assert mistakes(text) == [
        "programme.yaml:4: program.pending_days: Input should be a valid integer, "
        "got a number with a fractional part",
        "programme.yaml:11: channels[1].kind: Input should be 'store', 'pos', 'web', 'app' "
        "or 'mini_program'",
        "programme.yaml:24: tier: unknown field (did you mean tiers?)",
    ]  # the undefined store is checked once the file is otherwise valid


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "programme.yaml:1: the file is empty"),
        ("- program\n", "programme.yaml:1: the file must be a mapping: program:, stores:"),
        ("program: {code: a1, name: x}\n<<: {x: 1}\n", "programme.yaml:2: merge keys"),
        ("program: !!python/object:os.system {}\n", "programme.yaml:1: program: unsupported tag"),
        ("stores: []\n", "programme.yaml:1: program: missing: this field is required"),
    ],
)
def test_files_that_are_not_programmes(text: str, expected: str) -> None:
    found = mistakes(text)
    assert len(found) == 1
    assert found[0].startswith(expected), found


def test_yaml_guesses_do_not_change_the_programme() -> None:
    """10:00 is no sexagesimal 600, 010 no octal 8, `no` no false, 1.10 no binary float."""
    loaded = load(
        SHOP.replace("{code: bj-001, name: 北京店}", "{code: 010, name: no}")
        .replace("[sh-001]", "[sh-001, '010']")
        .replace("points_per_amount: 1}", "points_per_amount: 1.10}")
    )
    assert [store.code for store in loaded.stores] == ["sh-001", "010"]
    assert loaded.stores[1].name == "no"
    lunch = loaded.earning_rules[1]
    assert lunch.when.hours is not None
    assert (lunch.when.hours.start, lunch.when.hours.end) == (time(11, 30), time(13, 30))
    assert loaded.earning_rules[0].effect.points_per_amount == Decimal("1.10")
    assert str(loaded.earning_rules[0].effect.points_per_amount) == "1.10"


def test_json_is_a_programme_file_too() -> None:
    loaded = load('{"program": {"code": "web-shop", "name": "网店"}, "stores": []}')
    assert loaded.program.code == "web-shop"
    assert [c.code for c in loaded.channels] == ["store", "pos", "web", "app", "mini_program"]


# -- plan --------------------------------------------------------------------------------------


def test_plan_of_a_new_programme(db: Database) -> None:
    planned = plan_text(db, SHOP)
    assert planned.creates
    assert planned.describe() == [
        "programme shop (小店): new programme, will be created",
        "  stores",
        "    + sh-001: name 上海南京路店, region 华东",
        "    + bj-001: name 北京店",
        "  channels",
        "    + pos: name 收银台, kind pos",
        "    + app: name App, kind app",
        "  rules: version 1 (the first)",
        "    earning_rules: + base, + lunch",
        "    growth_rules: + growth",
        "    event_rules: + sign_up",
    ]


CHANGED = (
    SHOP.replace("  pending_days: 7\n", "  pending_days: 3\n  allow_transfers: true\n")
    .replace("{kind: after_months, months: 24, round_to: quarter}", "{kind: never}")
    .replace(
        "  - {code: bj-001, name: 北京店}\n", "  - {code: gz-001, name: 广州店, region: 华南}\n"
    )
    .replace(
        "{code: sh-001, name: 上海南京路店, region: 华东}",
        "{code: sh-001, name: 南京路店, region: 华东}",
    )
    .replace("kind: app}", "kind: app, active: false}")
    .replace("effect: {multiplier: 2}", "effect: {multiplier: 3}")
    .replace(
        "  - {type: sign_up, name: 注册, points: 100}\n",
        "  - {type: review, name: 评价, points: 5}\n",
    )
    + "birthday: {points: 200}\n"
)


def test_plan_of_changes(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    assert plan_text(db, CHANGED).describe() == [
        "programme shop (小店): changes",
        "  settings",
        "    pending_days: 7 → 3",
        "    expiry_policy: 24 months after earning, rounded up to the end of the quarter "
        "→ Points never expire",
        "    allow_transfers: false → true",
        "  stores",
        "    ~ sh-001: name 上海南京路店 → 南京路店",
        "    + gz-001: name 广州店, region 华南",
        "    - bj-001: deactivated (not in the file)",
        "  channels",
        "    ~ app: active true → false",
        "  rules: version 1 → 2",
        "    earning_rules: ~ lunch",
        "    event_rules: + review, - sign_up",
        "    birthday: added",
    ]


def test_plan_writes_nothing(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    before = rows(db)
    assert not plan_text(db, CHANGED).empty
    assert rows(db) == before


# -- apply -------------------------------------------------------------------------------------


def test_apply_creates_the_programme(db: Database, clock: FrozenClock) -> None:
    applied = apply_text(db, clock, SHOP, actor="cli:li")
    shop = program(db)
    assert applied.program_id == shop.id
    assert applied.rules_version == 1
    assert (shop.pending_days, shop.expiry_policy["months"]) == (7, 24)
    assert stores(db) == [
        ("bj-001", "北京店", None, True),
        ("sh-001", "上海南京路店", "华东", True),
    ]
    channels = db.read(
        lambda s: s.execute(
            select(Channel.code, Channel.kind)
            .where(Channel.program_id == shop.id)
            .order_by(Channel.code)
        ).all()
    )
    assert [tuple(c) for c in channels] == [("app", "app"), ("pos", "pos")]  # no default channels
    version = db.read(
        lambda s: s.execute(
            select(RuleSetVersion).where(RuleSetVersion.program_id == shop.id)
        ).scalar_one()
    )
    assert (version.version, version.actor) == (1, "cli:li")  # the file's rules are the first
    rules = db.read(lambda s: current_rules(s, shop.id)).rules
    assert [rule.id for rule in rules.earning_rules] == ["base", "lunch"]
    # the ledger can work with it at once
    book = db.read(lambda s: book_for(s, get_program_by_code(s, "shop")))
    assert book.pending_days == 7
    member = make_member(db, book, clock)
    db.write(lambda s: ledger.credit(s, book, member, 10, now=clock.now(), actor="t"))
    assert current_balance(db, book, member, clock.now()).available == 10


def test_applying_the_same_file_again_changes_nothing(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    apply_text(db, clock, CHANGED)
    before = rows(db)
    clock.advance(days=1)
    again = apply_text(db, clock, CHANGED)
    assert again.plan.empty
    assert again.rules_version == 2
    assert again.plan.describe() == ["programme shop (小店): no changes"]
    assert rows(db) == before  # no new rules version, no outbox event, nothing


def test_apply_changes_what_the_plan_said(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    planned = plan_text(db, CHANGED)
    applied = apply_text(db, clock, CHANGED, actor="cli:wang")
    assert applied.plan == planned
    assert applied.rules_version == 2
    shop = program(db)
    assert (shop.pending_days, shop.allow_transfers, shop.expiry_policy) == (
        3,
        True,
        {"kind": "never"},
    )
    assert stores(db) == [
        ("bj-001", "北京店", None, False),  # deactivated, not deleted
        ("gz-001", "广州店", "华南", True),
        ("sh-001", "南京路店", "华东", True),
    ]
    rules = db.read(lambda s: current_rules(s, shop.id)).rules
    assert rules.birthday is not None
    assert rules.birthday.points == 200
    events = db.read(
        lambda s: s.execute(
            select(OutboxEvent.type, OutboxEvent.payload)
            .where(OutboxEvent.program_id == shop.id)
            .order_by(OutboxEvent.id)
        ).all()
    )
    assert [event.type for event in events] == ["program.configured", "program.configured"]
    last = events[-1].payload
    assert last["actor"] == "cli:wang"
    assert last["plan"]["settings"][0] == {"field": "pending_days", "old": "7", "new": "3"}


def test_a_store_given_again_is_active_again(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    without = SHOP.replace("  - {code: bj-001, name: 北京店}\n", "")
    apply_text(db, clock, without)
    assert ("bj-001", "北京店", None, False) in stores(db)
    planned = plan_text(db, SHOP)
    assert planned.stores[0].code == "bj-001"
    assert planned.describe()[2] == "    ~ bj-001: active false → true"
    apply_text(db, clock, SHOP)
    assert ("bj-001", "北京店", None, True) in stores(db)


def test_a_store_in_no_file_is_deactivated_once(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    without = SHOP.replace("  - {code: bj-001, name: 北京店}\n", "")
    assert [i.action for i in plan_text(db, without).stores] == ["deactivated"]
    apply_text(db, clock, without)
    assert plan_text(db, without).empty  # an inactive store missing from the file: no change


def test_the_currency_of_a_programme_cannot_change(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    before = rows(db)
    text = CHANGED.replace("  pending_days: 3\n", "  pending_days: 3\n  currency: USD\n")
    with pytest.raises(ProgramFileInvalid) as caught:
        apply_text(db, clock, text)
    assert [str(p) for p in caught.value.problems] == [
        "programme.yaml:5: program.currency: the programme's currency is CNY and cannot "
        "change: its point value, rules and reports are in it (start a new programme instead)"
    ]
    assert rows(db) == before  # none of the other changes either
    assert program(db).pending_days == 7


def test_the_debt_policy_reaches_every_account(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP.replace("  pending_days: 7\n", "  pending_days: 0\n"))
    book = db.read(lambda s: book_for(s, get_program_by_code(s, "shop")))
    member = make_member(db, book, clock)

    def allowed() -> set[bool]:
        return set(
            db.read(
                lambda s: (
                    s.execute(
                        select(Account.allow_negative).where(
                            Account.program_id == book.program_id,
                            Account.kind == AccountKind.POINTS,
                            Account.member_id.is_not(None),
                        )
                    )
                    .scalars()
                    .all()
                )
            )
        )

    assert allowed() == {False}
    with_debt = SHOP.replace(
        "  pending_days: 7\n",
        "  pending_days: 0\n  allow_negative_balance: true\n  return_policy: debt\n",
    )
    assert [c.field for c in plan_text(db, with_debt).settings] == [
        "allow_negative_balance",
        "return_policy",
    ]
    apply_text(db, clock, with_debt)
    assert allowed() == {True}

    # a member goes into debt: an earn they spent is reversed
    book = db.read(lambda s: book_for(s, get_program_by_code(s, "shop")))
    earned = db.write(lambda s: ledger.credit(s, book, member, 100, now=clock.now(), actor="t")).id
    db.write(lambda s: ledger.debit(s, book, member, 80, now=clock.now(), actor="t"))
    db.write(lambda s: ledger.reverse(s, book, earned, now=clock.now(), actor="t"))
    assert current_balance(db, book, member, clock.now()).available == -80

    # debt cannot be forbidden while a member owes points: refused, nothing written
    before = rows(db)
    no_debt = SHOP.replace("  pending_days: 7\n", "  pending_days: 0\n")
    with pytest.raises(ProgramFileInvalid) as caught:
        apply_text(db, clock, no_debt)
    assert [str(p) for p in caught.value.problems] == [
        "programme.yaml:1: program.allow_negative_balance: 1 member(s) owe points (a negative "
        "balance): debt can be forbidden only once they are settled"
    ]
    assert rows(db) == before
    assert allowed() == {True}

    # once the debt is repaid, it can
    db.write(lambda s: ledger.credit(s, book, member, 80, now=clock.now(), actor="t"))
    apply_text(db, clock, no_debt)
    assert allowed() == {False}
    assert program(db).allow_negative_balance is False


# -- export ------------------------------------------------------------------------------------

RICH = (
    CHANGED.replace(
        "  pending_days: 3\n", "  pending_days: 3\n  point_value_amount: 1.5\n  points_name: 星星\n"
    )
    + """\
growth_rules:
  - {id: spend, name: 成长值, effect: {points_per_amount: 1, per: 2.50}, rounding: round}
  - id: weekend
    name: 周末加倍
    when:
      weekdays: [6, 7]
      days_of_month: [-1]
      dates: {from: 2026-01-01, to: 2026-12-31}
      min_amount: 99.90
      attributes: {fare_class: [F, J]}
      first_purchase: true
    effect: {multiplier: 1.5}
    priority: 10
    stacking: best_of
    group: boost
    caps: {day: 500}
    budget: {points: 100000, period: month}
"""
).replace(
    "  - {type: review, name: 评价, points: 5}\n",
    "  - {type: review, name: 评价, points: 5, limit: {}}\n"
    "  - {type: check_in, name: 签到, points: 1, limit: {count: 2, per: week}, growth: 3}\n",
)


def test_export_applies_as_no_change(db: Database, clock: FrozenClock) -> None:
    apply_text(db, clock, SHOP)
    apply_text(db, clock, RICH)
    shop = program(db)
    exported = db.read(lambda s: export(s, get_program_by_code(s, "shop")))
    assert exported.startswith("# jifen programme file: shop, rules version 2.\n")
    assert "  points_name: 星星\n" in exported
    assert "  point_value_amount: 1.5\n" in exported  # not 1.5000 as stored
    assert "      from: '11:30'\n" in exported
    assert "    channel: [pos]" not in exported
    assert "    weekdays: [6, 7]\n" in exported
    assert "    per: 2.50\n" in exported  # the stored text, so the rules' digest is the same
    assert "  limit:\n    count: 1\n    per: ever\n" in exported  # {} would read as no limit
    reloaded = load(exported)
    assert db.read(lambda s: plan(s, reloaded)).empty
    before = rows(db)
    assert apply_text(db, clock, exported).plan.empty
    assert rows(db) == before
    assert db.read(lambda s: export(s, get_program_by_code(s, "shop"))) == exported
    # and it makes the same programme elsewhere: under another code, the same export
    other = exported.replace("  code: shop\n", "  code: shop-copy\n")
    apply_text(db, clock, other)
    copy = db.read(lambda s: export(s, get_program_by_code(s, "shop-copy")))
    assert copy.replace("shop-copy", "shop").replace("version 1.", "version 2.") == exported
    assert shop.id != program(db, "shop-copy").id


def test_export_of_a_programme_made_without_a_file(db: Database, clock: FrozenClock) -> None:
    from factories import make_program

    book = make_program(db, clock, code="plain")
    exported = db.read(lambda s: export(s, get_program_by_code(s, "plain")))
    loaded = load(exported)
    assert [c.code for c in loaded.channels] == ["app", "mini_program", "pos", "store", "web"]
    assert loaded.stores == []
    assert db.read(lambda s: plan(s, loaded)).empty
    assert book.program_id == program(db, "plain").id
