"""The nightly jobs at scale on PostgreSQL, each beside the plain SQL that does the same
rows' bare minimum, measured in the same run on the same data:

- lots expired/s: the real `expire` job (`jifen.jobs.runner.run_job`) over --lots lots
  due, beside one plain `UPDATE lots SET status = 'expired', remaining = 0 WHERE <the
  same rows>` (run first, in a transaction that is rolled back, so both see the same
  data; the table is vacuumed and a checkpoint taken between the two);
- pending lots released/s: the `release` job over --lots pending lots whose return
  window has closed, beside `UPDATE lots SET status = 'available' WHERE <the same rows>`;
- members tier-evaluated/s: the `tiers` job over --tier-members members with a tier row,
  beside one plain aggregate of the same members' growth value in the tier window
  (`SELECT member_id, sum(amount) … GROUP BY member_id`, as jifen.tiers.measures reads it).

    .venv/bin/python bench/jobs.py [--lots 1000000] [--members 250000]
        [--tier-members 100000] [--steps expire,release,tiers] [--profile]

The ledger is seeded set-based (bench/seed.py): members with points and growth accounts,
one balanced earn transaction per lot, growth credits, tier rows. After each job the
outcome is checked and printed — every due lot expired or released, the points moved
equal to the lots', the ledger's laws (balanced transactions, balances == entries ==
lots, remaining == amount + allocations, next_due_at), and for tiers every member's new
tier against what the plain aggregate says it must be — so a fast wrong job cannot pass.
Targets: each job <= 3× its plain SQL. Results: bench/results/jobs.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.common import (  # noqa: E402
    CpuMeter,
    Profile,
    connect,
    durable_cluster,
    machine,
    postmaster_pid,
    prepare,
    ratio,
    show,
    utc_now,
    write_results,
)
from bench.seed import Shape, check_ledger, seed_ledger  # noqa: E402
from jifen.db.uow import Database  # noqa: E402
from jifen.jobs.runner import run_job  # noqa: E402
from jifen.programs.service import get_program  # noqa: E402
from jifen.programs.tiers import Measure, TierPolicy  # noqa: E402
from jifen.tiers.service import tz_of  # noqa: E402
from jifen.tiers.standing import policy_of  # noqa: E402
from jifen.tiers.windows import windows  # noqa: E402

TARGET = 3.0
"""Each job may take at most this many times its plain SQL."""
PLAIN_RUNS = 3
"""Runs of the plain aggregate for tiers; the least time is the limit."""

PLAIN_EXPIRE = """
    UPDATE lots SET status = 'expired', remaining = 0
    WHERE program_id = %(p)s AND status = 'available' AND expires_at <= %(now)s
"""
PLAIN_RELEASE = """
    UPDATE lots SET status = 'available'
    WHERE program_id = %(p)s AND status = 'pending' AND available_at <= %(now)s
"""
PLAIN_AGGREGATE = """
    SELECT e.member_id, sum(e.amount)
    FROM journal_entries e
    JOIN journal_transactions t ON t.id = e.transaction_id
    JOIN accounts a ON a.id = e.account_id
    LEFT JOIN journal_transactions o ON o.id = coalesce(t.clawback_of_id, t.reverses_id)
    WHERE e.program_id = %(p)s AND a.kind = 'growth'
      AND e.member_id IN (SELECT member_id FROM member_tiers WHERE program_id = %(p)s)
      AND coalesce(o.created_at, t.created_at) >= %(start)s
    GROUP BY e.member_id
"""


def one(conn: psycopg.Connection[Any], query: str, params: dict[str, Any]) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def settle(conn: psycopg.Connection[Any]) -> None:
    """Vacuum (the rolled-back plain UPDATE left dead rows) and checkpoint, so the next
    measurement starts from a clean table and no pending dirty buffers."""
    conn.autocommit = True
    conn.execute("VACUUM ANALYZE lots")
    conn.execute("CHECKPOINT")
    conn.autocommit = False


def plain_update(
    conn: psycopg.Connection[Any], query: str, params: dict[str, Any]
) -> dict[str, Any]:
    started = time.perf_counter()
    rows = conn.execute(query, params).rowcount
    took = time.perf_counter() - started
    conn.rollback()
    return {"rows": rows, "seconds": round(took, 3), "rows_per_s": round(rows / took, 1)}


def run_measured(
    db: Database, job: str, now: Any, program_id: int, meter: CpuMeter, profile: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    before = meter.read()
    spy = Profile(os.getpid(), gil_only=False) if profile else None
    if spy is not None:
        spy.__enter__()
    started = time.perf_counter()
    report = run_job(db, job, now=now, program_id=program_id)
    took = time.perf_counter() - started
    if spy is not None:
        spy.__exit__(None, None, None)
    after = meter.read()
    return {
        "seconds": round(took, 3),
        "batches": report.batches,
        "accounts": report.totals.accounts,
        "items": report.totals.items,
        "points": report.totals.points,
        "python_cpu_s": round(after[0] - before[0], 2),
        "postgres_cpu_s": round((after[2] or 0) - (before[2] or 0), 2),
    }, (spy.summary if spy is not None else None)


def expire_step(
    conn: psycopg.Connection[Any], db: Database, p: dict[str, Any], args: Any, meter: CpuMeter
) -> dict[str, Any]:
    counts = conn.execute(
        "SELECT count(*), coalesce(sum(remaining), 0) FROM lots WHERE program_id = %(p)s "
        "AND status = 'available' AND expires_at <= %(now)s",
        p,
    ).fetchone()
    assert counts is not None
    due, due_points = int(counts[0]), int(counts[1])
    expired_before = int(
        one(
            conn,
            "SELECT coalesce(sum(e.amount), 0) FROM journal_entries e JOIN accounts a "
            "ON a.id = e.account_id WHERE a.program_id = %(p)s AND a.kind = 'expired'",
            p,
        )
    )
    conn.rollback()
    plain = plain_update(conn, PLAIN_EXPIRE, p)
    settle(conn)
    job, profile = run_measured(db, "expire", p["now"], p["p"], meter, args.profile)
    left = int(
        one(
            conn,
            "SELECT count(*) FROM lots WHERE program_id = %(p)s AND status = 'available' "
            "AND expires_at <= %(now)s AND remaining > 0",
            p,
        )
    )
    expired_points = (
        int(
            one(
                conn,
                "SELECT coalesce(sum(e.amount), 0) FROM journal_entries e JOIN accounts a "
                "ON a.id = e.account_id WHERE a.program_id = %(p)s AND a.kind = 'expired'",
                p,
            )
        )
        - expired_before
    )
    conn.rollback()
    outcome = {
        "due_before": due,
        "due_points_before": due_points,
        "due_left": left,
        "job_lots": job["items"],
        "points_to_expired_account": expired_points,
        "ledger": check_ledger(conn, p["p"]),
    }
    outcome["ok"] = (
        left == 0
        and job["items"] == due == plain["rows"]
        and expired_points == due_points == job["points"]
        and not any(outcome["ledger"].values())
    )
    return _step("expire", "lots expired", due, plain, job, outcome, profile)


def release_step(
    conn: psycopg.Connection[Any], db: Database, p: dict[str, Any], args: Any, meter: CpuMeter
) -> dict[str, Any]:
    counts = conn.execute(
        "SELECT count(*), coalesce(sum(remaining), 0) FROM lots WHERE program_id = %(p)s "
        "AND status = 'pending' AND available_at <= %(now)s",
        p,
    ).fetchone()
    assert counts is not None
    due, due_points = int(counts[0]), int(counts[1])
    pending_before = int(
        one(conn, "SELECT coalesce(sum(pending), 0) FROM accounts WHERE program_id = %(p)s", p)
    )
    conn.rollback()
    plain = plain_update(conn, PLAIN_RELEASE, p)
    settle(conn)
    job, profile = run_measured(db, "release", p["now"], p["p"], meter, args.profile)
    left = int(
        one(
            conn,
            "SELECT count(*) FROM lots WHERE program_id = %(p)s AND status = 'pending' "
            "AND available_at <= %(now)s",
            p,
        )
    )
    pending_after = int(
        one(conn, "SELECT coalesce(sum(pending), 0) FROM accounts WHERE program_id = %(p)s", p)
    )
    conn.rollback()
    outcome = {
        "due_before": due,
        "due_points_before": due_points,
        "due_left": left,
        "job_lots": job["items"],
        "pending_points_moved": pending_before - pending_after,
        "ledger": check_ledger(conn, p["p"]),
    }
    outcome["ok"] = (
        left == 0
        and job["items"] == due == plain["rows"]
        and pending_before - pending_after == due_points == job["points"]
        and not any(outcome["ledger"].values())
    )
    return _step("release", "lots released", due, plain, job, outcome, profile)


def expected_tier(policy: TierPolicy, current: str, growth: Decimal) -> tuple[str, bool, bool]:
    """(qualified tier, grace started, near-upgrade notice) for a member with no grant and
    no grace in course, written from the thresholds alone (not with jifen.tiers.qualify)."""
    rank = policy.rank(current)
    levels = policy.levels
    for above in range(len(levels) - 1, rank, -1):
        enter = levels[above].enter
        if (
            levels[above].qualifiable
            and enter is not None
            and growth >= enter.measures()[Measure.GROWTH]
        ):
            return levels[above].code, False, _near(policy, above, growth)
    keep = levels[rank].keep
    kept = keep is None or growth >= keep.measures()[Measure.GROWTH]
    return current, not kept and policy.grace_days > 0, _near(policy, rank, growth)


def _near(policy: TierPolicy, rank: int, growth: Decimal) -> bool:
    if rank + 1 >= len(policy.levels):
        return False
    enter = policy.levels[rank + 1].enter
    if enter is None:
        return False
    need = enter.measures()[Measure.GROWTH]
    return need * Decimal("0.9") <= growth < need


def tiers_step(
    conn: psycopg.Connection[Any], db: Database, p: dict[str, Any], args: Any, meter: CpuMeter
) -> dict[str, Any]:
    program = db.read(lambda s: get_program(s, p["p"]))
    policy = policy_of(program)
    assert policy is not None
    start = windows(policy.window, p["now"], tz_of(program)).enter.start
    members = dict(
        conn.execute(
            "SELECT member_id, tier FROM member_tiers WHERE program_id = %(p)s", p
        ).fetchall()
    )
    conn.rollback()
    conn.autocommit = True
    # A nightly job meets tables long since vacuumed: without this, autovacuum took up the
    # freshly seeded tables while the job ran (its CPU counted as the job's, its pages
    # competing for the two cores) when this step ran first.
    conn.execute(
        "VACUUM ANALYZE journal_entries, journal_transactions, accounts, member_tiers, purchases"
    )
    conn.execute("CHECKPOINT")
    conn.autocommit = False
    # The least of three runs: the first reads whatever is not cached yet, and took from
    # 0.7 to 1.6 s for the same rows depending on what ran before it (the job that
    # follows finds the pages warm).
    took = float("inf")
    for _ in range(PLAIN_RUNS):
        started = time.perf_counter()
        growth = dict(conn.execute(PLAIN_AGGREGATE, p | {"start": start}).fetchall())
        took = min(took, time.perf_counter() - started)
        conn.rollback()
    plain = {
        "rows": len(members),
        "seconds": round(took, 3),
        "rows_per_s": round(len(members) / took, 1),
    }
    job, profile = run_measured(db, "tiers", p["now"], p["p"], meter, args.profile)
    rows = conn.execute(
        "SELECT member_id, tier, qualified_tier, grace_until IS NOT NULL, evaluated_at "
        "FROM member_tiers WHERE program_id = %(p)s",
        p,
    ).fetchall()
    notices = int(
        one(
            conn,
            "SELECT count(*) FROM tier_benefit_issues WHERE program_id = %(p)s "
            "AND benefit LIKE 'near-upgrade:%%'",
            p,
        )
    )
    conn.rollback()
    wrong = 0
    changes = {"upgraded": 0, "grace_started": 0, "unchanged": 0}
    want_notices = 0
    want_marked = 0
    for member_id, tier, qualified, grace, evaluated_at in rows:
        want, want_grace, near = expected_tier(
            policy, members[member_id], Decimal(int(growth.get(member_id, 0)))
        )
        want_notices += near
        # evaluated_at: the job's instant where it had something to do (a move, a grace
        # period, a notice); members with nothing to do are not written
        marked = want != members[member_id] or want_grace or near
        want_marked += marked
        if (qualified, tier, grace, evaluated_at == p["now"]) != (want, want, want_grace, marked):
            wrong += 1
        elif want != members[member_id]:
            changes["upgraded"] += 1
        elif want_grace:
            changes["grace_started"] += 1
        else:
            changes["unchanged"] += 1
    outcome = {
        "members": len(rows),
        "members_evaluated": job["accounts"],
        "members_with_something_to_do": want_marked,
        "history_rows": job["items"],
        **changes,
        "members_not_as_expected": wrong,
        "near_upgrade_notices": notices,
        "near_upgrade_notices_expected": want_notices,
        "ledger": check_ledger(conn, p["p"]),
    }
    outcome["ok"] = (
        wrong == 0
        and job["accounts"] == want_marked
        and notices == want_notices
        and job["items"] == changes["upgraded"] + changes["grace_started"]
        and not any(outcome["ledger"].values())
    )
    return _step("tiers", "members evaluated", len(rows), plain, job, outcome, profile)


def _step(
    name: str,
    what: str,
    rows: int,
    plain: dict[str, Any],
    job: dict[str, Any],
    outcome: dict[str, Any],
    profile: dict[str, Any] | None,
) -> dict[str, Any]:
    job["rows_per_s"] = round(rows / job["seconds"], 1) if job["seconds"] else None
    times = ratio(job["seconds"], plain["seconds"])
    found = {
        "what": what,
        "rows": rows,
        "plain": plain,
        "job": job,
        "job_over_plain": times,
        "target": TARGET,
        "meets_target": times is not None and times <= TARGET,
        "outcome": outcome,
    }
    if profile:
        found["profile"] = profile
    mark = "OK" if outcome["ok"] else "WRONG"
    print(f"  {name}: job {job['seconds']} s, plain {plain['seconds']} s; outcome {mark}")
    print(f"    {outcome}", flush=True)
    return found


STEPS = {"expire": expire_step, "release": release_step, "tiers": tiers_step}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lots", type=int, default=1_000_000, help="lots due (each job)")
    parser.add_argument("--members", type=int, default=250_000)
    parser.add_argument("--tier-members", type=int, default=100_000)
    parser.add_argument("--live", type=int, default=1, help="lots per member not due")
    parser.add_argument("--growth", type=int, default=2, help="growth credits per member")
    parser.add_argument("--steps", default="expire,release,tiers")
    parser.add_argument("--max-wal-size", default="4GB")
    parser.add_argument("--profile", action="store_true", help="py-spy each job")
    args = parser.parse_args()
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if args.lots % args.members:
        parser.error("--lots must be a multiple of --members (the same lots per member)")
    per_member = args.lots // args.members
    shape = Shape(
        members=args.members,
        expiring=per_member if "expire" in steps else 0,
        pending=per_member if "release" in steps else 0,
        live=args.live,
        growth=args.growth,
        tier_members=min(args.tier_members, args.members) if "tiers" in steps else 0,
    )
    now = utc_now()
    with durable_cluster() as cluster:
        with cluster.connect() as admin:
            admin.execute(f"ALTER SYSTEM SET max_wal_size = '{args.max_wal_size}'")
            admin.execute("SELECT pg_reload_conf()")
        payload: dict[str, Any] = {"benchmark": "jobs", "machine": machine(cluster)}
        prepared = prepare(cluster.create_database("jifen"), now=now)
        conn = connect(prepared.url)
        print(f"seeding {shape} ...", flush=True)
        started = time.perf_counter()
        seeded = seed_ledger(
            conn,
            prepared.program_id,
            shape,
            now,
            progress=lambda done: print(f"  {done:,} members", flush=True),
        )
        seed_s = time.perf_counter() - started
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
        conn.autocommit = False
        before = check_ledger(conn, prepared.program_id)
        print(f"seeded {seeded} in {seed_s:.0f} s; ledger checks {before}", flush=True)
        payload["settings"] = {
            "lots_due_per_job": args.lots,
            "members": args.members,
            "tier_members": shape.tier_members,
            "shape": shape.__dict__,
            "batch_size": 2000,
            "now": now.isoformat(),
        }
        payload["seed"] = {"rows": seeded, "seconds": round(seed_s, 1), "checks": before}
        db = Database(prepared.url)
        meter = CpuMeter(postgres_pid=postmaster_pid(cluster))
        params = {"p": prepared.program_id, "now": now}
        payload["steps"] = {}
        for step in steps:
            print(f"{step} ...", flush=True)
            payload["steps"][step] = STEPS[step](conn, db, params, args, meter)
        db.dispose()
        conn.close()
    report(payload)
    write_results("jobs", payload)


def report(payload: dict[str, Any]) -> None:
    rows = []
    for name, step in payload["steps"].items():
        rows.append(
            [
                f"{name} ({step['what']})",
                step["rows"],
                step["plain"]["seconds"],
                step["job"]["seconds"],
                step["plain"]["rows_per_s"],
                step["job"]["rows_per_s"],
                step["job_over_plain"],
                "yes" if step["meets_target"] else "no",
                step["job"]["python_cpu_s"],
                step["job"]["postgres_cpu_s"],
                "OK" if step["outcome"]["ok"] else "WRONG",
            ]
        )
    show(
        "nightly jobs beside plain SQL over the same rows (PostgreSQL)",
        [
            "job",
            "rows",
            "plain s",
            "job s",
            "plain rows/s",
            "job rows/s",
            "job/plain",
            f"≤ {TARGET:g}×",
            "py cpu s",
            "pg cpu s",
            "outcome",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
