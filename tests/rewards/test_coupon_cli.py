"""`jifen coupons` and `jifen checkout quote`, driven in-process against a temporary SQLite
database: happy paths print what happened; a refusal is one line on stderr starting
`error:`, exit status 1 (2 for a command line that makes no sense), no traceback, and the
database unchanged."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import Result

import clikit
from clikit import Run, ok
from jifen.core.clock import SystemClock
from jifen.db.uow import Database
from jifen.ledger import service as ledger
from jifen.members import service as members
from jifen.members.schemas import MemberCreate
from jifen.programs.rewards import RewardSpec
from jifen.programs.service import book_for, get_program_by_code
from jifen.rewards import catalog, codes, redemptions
from jifen.rewards.models import Coupon
from jifen.rewards.schemas import RedemptionIn


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


def member_with_points(db: Database, points: int) -> int:
    now = SystemClock().now()

    def enrol(session: Any) -> int:
        program = get_program_by_code(session, "shop")
        book = book_for(session, program)
        member = members.enrol(session, book, MemberCreate(phone="13800138000"), now=now)
        ledger.credit(session, book, member.id, points, now=now, actor="t")
        return member.id

    return db.write(enrol)


def coupon(db: Database, member: int) -> str:
    """Redeem a 满50减20 coupon for the member: its code as printed."""
    now = SystemClock().now()
    spec = RewardSpec.model_validate(
        {
            "code": "cpn",
            "name": "满50减20",
            "kind": "coupon",
            "points": 100,
            "coupon": {"kind": "fixed", "amount": "20", "min_spend": "50", "valid_days": 30},
        }
    )

    def redeem(session: Any) -> int:
        program = get_program_by_code(session, "shop")
        catalog.put_reward(session, program, spec, now=now)
        data = RedemptionIn.model_validate({"member": {"id": member}, "reward": "cpn"})
        return redemptions.redeem(
            session, program, book_for(session, program), data, now=now, actor="t"
        ).id

    redemption = db.write(redeem)
    code = db.read(
        lambda s: s.execute(
            select(Coupon.code).where(Coupon.redemption_id == redemption)
        ).scalar_one()
    )
    return codes.display(code)


def coupon_row(db: Database, code: str) -> tuple[Any, ...]:
    return db.read(
        lambda s: tuple(
            s.execute(
                select(Coupon.status, Coupon.used_order, Coupon.discount).where(
                    Coupon.code == codes.normalise(code)
                )
            ).one()
        )
    )


def test_show_use_list_and_cancel(run: Run, db: Database) -> None:
    member = member_with_points(db, 500)
    code = coupon(db, member)
    shown = ok(run(f"coupons show --program shop {code.lower()}"))
    assert f"coupon {code} · issued · member {member}" in shown
    assert "20.00 CNY off" in shown
    assert "minimum spend" in shown

    used = ok(run(f"coupons use --program shop {code} --order A-1 --line rice:food=60"))
    assert used.strip() == f"coupon {code} used on order A-1: 20.00 CNY off"
    again = ok(run(f"coupons use --program shop {code} --order A-1 --line rice:food=60"))
    assert again.strip() == f"coupon {code} already used on order A-1: 20.00 CNY off"
    assert coupon_row(db, code)[0] == "used"
    listed = ok(run(f"coupons list --program shop {member} --status used"))
    assert code in listed
    assert "A-1" in listed
    assert "no issued coupons" in ok(run(f"coupons list --program shop {member} --status issued"))

    other = coupon(db, member)
    assert ok(run(f"coupons cancel --program shop {other} --reason mistake")).strip() == (
        f"coupon {other} is cancelled"
    )


def test_refusals_are_one_line_and_change_nothing(run: Run, db: Database) -> None:
    member = member_with_points(db, 500)
    code = coupon(db, member)
    ok(run(f"coupons use --program shop {code} --order A-1 --line rice=60"))
    before = coupon_row(db, code)
    refused(
        run(f"coupons use --program shop {code} --order B-2 --line rice=60"),
        "cannot be used: it was used on order A-1",
    )
    typo = code[:2] + ("A" if code[2] != "A" else "B") + code[3:]
    refused(
        run(f"coupons show --program shop {typo}"),
        "is not valid: a character is wrong or two are swapped",
    )
    refused(run("coupons show --program shop K7QM4-XH2RT-9PZCO"), "never contain 'O'")
    fresh = coupon(db, member)
    refused(
        run(f"coupons use --program shop {fresh} --order B-2 --line rice=49.99"),
        "needs a spend of 50.00 on eligible lines, which come to 49.99",
    )
    refused(
        run(f"coupons use --program shop {fresh} --order B-2 --line rice"),
        "write it as SKU[:CATEGORY]=AMOUNT",
        status=2,
    )
    refused(run(f"coupons use --program nowhere {fresh} --order B-2 --line rice=60"), "nowhere")
    assert coupon_row(db, code) == before
    assert coupon_row(db, fresh)[0] == "issued"


def test_checkout_quote(run: Run, db: Database) -> None:
    member = member_with_points(db, 750)
    refused(
        run(f"checkout quote --program shop {member} --line rice:food=200"),
        "does not let points pay",
    )

    def allow(session: Any) -> None:
        get_program_by_code(session, "shop").points_payment = {
            "max_share": "0.5",
            "min_points": 100,
            "step": 100,
            "excluded_categories": ["tobacco"],
        }

    db.write(allow)
    quoted = ok(
        run(f"checkout quote --program shop {member} --line rice:food=200 --line cig:tobacco=50")
    )
    assert (
        f"member {member} may use 700 积分 = 70.00 CNY on this order (limited by balance)" in quoted
    )
    assert "excluded" in quoted
    assert "50% → 1,000 at most" in quoted
    assert "100 积分 = 10 CNY" in quoted
