"""`jifen tiers` against a temporary SQLite database: show, history, grant, revoke, and the
tier jobs through `jifen jobs run`; every refusal one line on stderr, never a traceback,
and nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from clikit import Run, ok, refused
from jifen.db.uow import Database
from jifen.programs.service import get_program_by_code
from jifen.programs.tiers import TierPolicy
from jifen.tiers.models import MemberTier, TierChange, TierGrant

from .kit import POLICY


def rows(db: Database) -> tuple[int, int, int]:
    def count(model: Any) -> Any:
        return lambda s: s.execute(select(func.count()).select_from(model)).scalar_one()

    return (db.read(count(MemberTier)), db.read(count(TierChange)), db.read(count(TierGrant)))


@pytest.fixture
def shop(run: Run, database: Database) -> Database:
    ok(run("programs create --code shop --name 小店"))
    stored = TierPolicy.model_validate(POLICY).model_dump(mode="json")

    def set_tiers(s: Any) -> None:
        get_program_by_code(s, "shop").tiers = stored

    database.write(set_tiers)
    ok(run("members enrol --program shop --phone 13800138000"))
    return database


def test_show_grant_history_revoke(run: Run, shop: Database) -> None:
    shown = ok(run("tiers show 1 --program shop"))
    assert "member 1 · 普通会员 (normal) · qualified" in shown
    assert "next: 1,000 growth value more to reach 银卡会员 (counted over the last 12 months)" in (
        shown
    )
    assert "keep:" not in shown
    zh = ok(run("tiers show 1 --program shop", lang="zh_CN.UTF-8"))
    assert "next: 还差 1,000 成长值即可升级为银卡会员（按近 12 个月累计）" in zh

    granted = ok(
        run(
            "tiers grant 1 gold --program shop --kind paid --days 30 --reference pay-1 --reason VIP"
        )
    )
    assert granted.startswith("granted: grant 1: gold (paid) until ")
    assert "active, reference pay-1" in granted
    again = ok(run("tiers grant 1 gold --program shop --kind paid --days 30 --reference pay-1"))
    assert again.startswith("already granted (same reference): grant 1")
    shown = ok(run("tiers show 1 --program shop"))
    assert "member 1 · 金卡会员 (gold) · paid grant until " in shown
    assert "next: 20,000 growth value more to reach 铂金会员" in shown
    assert "grant 1: gold (paid)" in shown

    history = ok(run("tiers history 1 --program shop"))
    assert "granted" in history
    assert "normal" in history
    assert "cli:" in history

    revoked = ok(run("tiers revoke 1 1 --program shop --reason refund"))
    assert revoked.startswith("revoked: grant 1: gold (paid)")
    assert ", revoked, reference pay-1" in revoked
    assert ok(run("tiers revoke 1 1 --program shop")).startswith("already revoked: grant 1")
    assert "普通会员 (normal) · qualified" in ok(run("tiers show 1 --program shop"))
    assert rows(shop) == (1, 2, 1)


def test_refusals_are_one_line_and_write_nothing(run: Run, shop: Database) -> None:
    before = rows(shop)
    refused(
        run("tiers grant 1 diamond --program shop --days 3"),
        1,
        "There is no tier 'diamond' to grant; the tiers that can be granted: silver, gold, "
        "platinum.",
    )
    refused(run("tiers grant 1 gold --program shop"), 1, "give exactly one of ends_at, days")
    refused(
        run("tiers grant 1 gold --program shop --days 3 --until 2099-01-01"),
        1,
        "give exactly one of ends_at, days",
    )
    refused(run("tiers grant 1 gold --program shop --until 2001-01-01"), 1, "must end after")
    refused(run("tiers grant 1 gold --program shop --kind paid --days 3"), 1, "reference")
    refused(run("tiers grant 99 gold --program shop --days 3"), 1, "No member 99")
    refused(run("tiers grant 1 gold --program shop --kind friend --days 3"), 2, "--kind")
    refused(run("tiers revoke 1 99 --program shop"), 1, "No grant 99")
    refused(run("tiers show 1 --program nope"), 1, "no programme with code nope")
    refused(run("tiers history 77 --program shop"), 1, "No member 77")
    assert rows(shop) == before
    ok(run("programs create --code plain --name 无等级"))
    ok(run("members enrol --program plain --phone 13800138001"))
    refused(run("tiers show 2 --program plain"), 1, "has no tiers")


def test_the_tier_jobs_run_from_the_cli(run: Run, shop: Database) -> None:
    assert "tiers: 0 tier changes recorded" in ok(run("jobs run tiers --program shop"))
    ok(run("tiers grant 1 silver --program shop --days 5"))
    out = ok(run("jobs run tiers"))
    assert "tiers: 0 tier changes recorded, 0 points, 1 member account, 1 batch" in out
    assert "tier-benefits: 0 benefits given" in ok(run("jobs run tier-benefits"))
