"""`jifen rewards` and `jifen redemptions`, driven in-process against a temporary SQLite
database: happy paths print what happened; every refusal is one line on stderr starting
`error:`, exit status 1, no traceback, and the database unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import Result

import clikit
from clikit import Run, ok
from jifen.core.clock import SystemClock
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.ledger.queries import current_balance
from jifen.programs.rewards import RewardSpec
from jifen.programs.service import book_for, get_program_by_code
from jifen.rewards import catalog
from jifen.rewards.models import Redemption, Reward


@pytest.fixture
def run(run: Run) -> Run:
    """The CLI on a migrated database with programme `shop`."""
    assert run("programs create --code shop --name 小店").exit_code == 0
    return run


@pytest.fixture
def db(database: Database) -> Database:
    return database


def refused(result: Result, *fragments: str, status: int = 1) -> str:
    return clikit.refused(result, status, *fragments)


def put(db: Database, **fields: Any) -> None:
    spec = RewardSpec.model_validate({"name": fields["code"], "kind": "service"} | fields)
    db.write(
        lambda s: catalog.put_reward(
            s, get_program_by_code(s, "shop"), spec, now=SystemClock().now()
        )
    )


def member(run: Run, db: Database, phone: str, points: int) -> int:
    out = ok(run(f"members enrol --program shop --phone {phone}"))
    member_id = int(out.split()[2])

    def earn(session: Any) -> None:
        book = book_for(session, get_program_by_code(session, "shop"))
        ledger.credit(session, book, member_id, points, now=SystemClock().now(), actor="t")

    db.write(earn)
    return member_id


def available(db: Database, member_id: int) -> int:
    book = db.read(lambda s: book_for(s, get_program_by_code(s, "shop")))
    return current_balance(db, book, member_id, SystemClock().now()).available


def rows(db: Database) -> tuple[int, list[tuple[str, int | None, int]]]:
    def read(session: Any) -> tuple[int, list[tuple[str, int | None, int]]]:
        count = session.execute(select(func.count()).select_from(Redemption)).scalar_one()
        stock = session.execute(
            select(Reward.code, Reward.stock, Reward.redeemed).order_by(Reward.id)
        ).all()
        return count, [tuple(r) for r in stock]

    return db.read(read)


@pytest.fixture
def shop(run: Run, db: Database) -> dict[str, int]:
    put(db, code="mug", name="保温杯", kind="goods", points=300, stock=2)
    put(db, code="svc", name="优先服务", points=100, limit_per_member=1)
    put(
        db,
        code="v10",
        name="10 元券",
        kind="coupon",
        points=100,
        coupon={"kind": "fixed", "amount": "10", "valid_days": 30},
    )
    put(db, code="off", points=10, active=False)
    return {
        "rich": member(run, db, "13800000001", 1000),
        "poor": member(run, db, "13800000002", 50),
    }


def test_rewards_list_and_show(run: Run, shop: dict[str, int]) -> None:
    listed = ok(run("rewards list --program shop"))
    for fragment in ("mug", "保温杯", "goods", "300", "svc", "∞", "(withdrawn)"):
        assert fragment in listed, fragment
    available_now = ok(run("rewards list --program shop --available"))
    assert "│ off " not in available_now
    assert "│ off " in listed
    assert "mug" in available_now
    goods = ok(run("rewards list --program shop --kind goods"))
    assert "svc" not in goods
    shown = ok(run(f"rewards show --program shop mug --member {shop['poor']}"))
    assert "reward mug · 保温杯 · goods" in shown
    assert "2 (0 redeemed, 2 left)" in shown
    assert "may not: Insufficient points: 300 needed, 50 available." in shown
    rich = ok(run(f"rewards show --program shop svc --member {shop['rich']}"))
    assert "tier —, pays 100; may redeem" in rich
    refused(run("rewards show --program shop nope"), "The catalog has no reward 'nope'.")
    refused(run("rewards list --program nowhere"), "nowhere")


def test_redeem_ship_deliver_and_show(run: Run, db: Database, shop: dict[str, int]) -> None:
    rich = shop["rich"]
    made = ok(
        run(
            f"redemptions redeem --program shop {rich} mug --to-name 李娜 --to-phone 13800000001 "
            "--city 上海市 --address '世纪大道 100 号'"
        )
    )
    assert "redemption 1 made: 1 × mug (保温杯)" in made
    assert "300 积分 · pending" in made
    assert "ship to" in made
    assert "李娜 13800000001, 上海市 世纪大道 100 号" in made
    assert available(db, rich) == 700
    shipped = ok(run("redemptions ship --program shop 1 --carrier 顺丰 --tracking SF123"))
    assert "· shipped" in shipped
    assert "顺丰 SF123" in shipped
    delivered = ok(run("redemptions deliver --program shop 1"))
    assert "· delivered" in delivered
    assert "· delivered" in ok(run("redemptions show --program shop 1"))
    coupon = ok(run(f"redemptions redeem --program shop {rich} v10 --quantity 2"))
    assert "2 × v10 (10 元券)" in coupon
    assert coupon.count("  coupon ") == 2  # one line per coupon, with its code
    assert available(db, rich) == 500


def test_cancel_returns_points_and_stock(run: Run, db: Database, shop: dict[str, int]) -> None:
    rich = shop["rich"]
    ok(run(f"redemptions redeem --program shop {rich} svc"))
    assert available(db, rich) == 900
    cancelled = ok(run("redemptions cancel --program shop 1 --reason 误操作"))
    assert "· cancelled" in cancelled
    assert "误操作" in cancelled
    assert available(db, rich) == 1000
    assert rows(db)[1][1] == ("svc", None, 0)


@pytest.mark.parametrize(
    ("command", "fragments"),
    [
        (
            "redemptions redeem --program shop {poor} mug --to-name a --to-phone 12345 --city c "
            "--address x",
            ("Insufficient points: 300 needed, 50 available.",),
        ),
        ("redemptions redeem --program shop {rich} mug", ("shipping: goods need a shipping",)),
        ("redemptions redeem --program shop {rich} nope", ("no reward 'nope'",)),
        ("redemptions redeem --program shop {rich} off", ("cannot be redeemed now", "withdrawn")),
        ("redemptions redeem --program shop {rich} svc --quantity 2", ("limited to 1",)),
        ("redemptions redeem --program shop 999 svc", ("No member 999",)),
        ("redemptions show --program shop 42", ("No redemption 42",)),
        ("redemptions cancel --program shop 42 --reason x", ("No redemption 42",)),
        ("redemptions ship --program shop 42 --carrier a --tracking b", ("No redemption 42",)),
        ("rewards restock --program shop svc --add 5", ("no stock limit",)),
        ("rewards restock --program shop mug --add -3", ("its stock cannot be -1",)),
        ("rewards restock --program shop mug --add 0", ("non-zero",)),
    ],
)
def test_refusals_are_one_line_and_change_nothing(
    run: Run, db: Database, shop: dict[str, int], command: str, fragments: tuple[str, ...]
) -> None:
    before = (rows(db), available(db, shop["rich"]), available(db, shop["poor"]))
    refused(run(command.format(**shop)), *fragments)
    assert (rows(db), available(db, shop["rich"]), available(db, shop["poor"])) == before


def test_a_wrong_fulfilment_step_is_refused(run: Run, db: Database, shop: dict[str, int]) -> None:
    ok(run(f"redemptions redeem --program shop {shop['rich']} svc"))
    refused(
        run("redemptions ship --program shop 1 --carrier a --tracking b"),
        "Redemption 1 is issued: it cannot be shipped.",
    )
    refused(run("redemptions deliver --program shop 1"), "cannot be marked delivered")


def test_restock(run: Run, db: Database, shop: dict[str, int]) -> None:
    out = ok(run("rewards restock --program shop mug --add 5"))
    assert out.strip() == "reward mug: stock 7, 0 redeemed, 7 left"
