"""A consistent ledger of any size, seeded set-based on PostgreSQL, and the checks that
say it (still) is one.

`seed_ledger` writes, with a handful of INSERT … SELECT generate_series statements per
chunk of members (no row-by-row Python):
- members and their points and growth-value accounts, with the balances their lots
  and journal entries add up to, `lifetime_earned` and `next_due_at` (the earliest
  expiry or release among their lots);
- per member `expiring` available lots that expired a day ago, `pending` pending lots
  whose return window closed an hour ago, and `live` available lots expiring 1–700 days
  from now; each lot is the credit of its own balanced earn transaction (the member's
  bucket +points, the programme's `issued` account -points), as `ledger.credit` books it;
- per member `growth` growth-value credits within the last 330 days (the growth
  account +value, the programme's `growth_issued` account -value), whose totals spread
  the members over the retail chain's tiers: ~15% below 银卡's retain threshold, ~10%
  near 金卡, ~8% 金卡, ~2% 铂金, the rest keeping 银卡;
- a `member_tiers` row (银卡, evaluated yesterday) for the first `tier_members` members.
Ids are allocated from the current maxima and the sequences moved past them. The seed's
transactions run with triggers off (`session_replication_role = replica`): the foreign
keys' and the journal's deferred balance trigger would check row by row, at several
times the cost of the inserts, what `check_ledger` then checks set-based.

`check_ledger` counts what breaks the ledger's laws (0 everywhere is a consistent
ledger): unbalanced transactions, rows whose parent row is missing (what the foreign keys
would refuse), account buckets that differ from their entries, points
balances that differ from their lots, lots whose `remaining` differs from amount +
allocations, and accounts whose `next_due_at` is later than their first due lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.numeric import Int4, Int8

SEED_ACTOR = "bench:seed"

AMOUNT = "(1 + mod(g::bigint * 7919 + k * 104729, 500))"
"""Points of lot k of member g: 1–500, spread."""

GROWTH_TOTAL = """(CASE
    WHEN mod(mod(g::bigint * 2654435761, 4294967296), 100) < 15 THEN 600 + mod(g, 800)
    WHEN mod(mod(g::bigint * 2654435761, 4294967296), 100) < 25 THEN 7200 + mod(g, 800)
    WHEN mod(mod(g::bigint * 2654435761, 4294967296), 100) < 33 THEN 8000 + mod(g, 10000)
    WHEN mod(mod(g::bigint * 2654435761, 4294967296), 100) < 35 THEN 20000 + mod(g, 5000)
    ELSE 1500 + mod(g, 5700) END)"""
"""Member g's growth value in the window: below retain (<1500), near gold (7200–7999),
gold (8000–17999), platinum (20000–24999), or keeping silver (1500–7199)."""


@dataclass(frozen=True)
class Shape:
    members: int
    expiring: int = 0
    """Available lots per member that expired a day before `now`."""
    pending: int = 0
    """Pending lots per member whose return window closed an hour before `now`."""
    live: int = 1
    """Available lots per member expiring 1–700 days after `now`."""
    growth: int = 2
    """Growth-value credits per member, within the last 330 days."""
    tier_members: int = 0
    """The first members with a `member_tiers` row (the tier `tier`)."""
    tier: str = "silver"

    @property
    def lots(self) -> int:
        return self.expiring + self.pending + self.live

    @property
    def transactions(self) -> int:
        return self.lots + self.growth


def _max_id(conn: psycopg.Connection[Any], table: str) -> int:
    return int(conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0])  # type: ignore[index]


def seed_ledger(
    conn: psycopg.Connection[Any],
    program_id: int,
    shape: Shape,
    now: datetime,
    *,
    chunk: int = 25_000,
    progress: Any = None,
) -> dict[str, int]:
    """Seed `shape` into the programme (see the module); returns the ids' bases and
    the rows written. `conn` must not be in autocommit mode: each chunk commits."""
    if shape.growth > 600:
        raise ValueError("at most 600 growth credits per member (each is at least 1)")
    programme = dict(
        conn.execute(
            "SELECT kind, id FROM accounts WHERE program_id = %s AND member_id IS NULL",
            [program_id],
        ).fetchall()
    )
    conn.commit()
    # Typed, so that PostgreSQL picks generate_series(int, int) and 64-bit id arithmetic.
    params: dict[str, Any] = {
        "p": Int8(program_id),
        "now": now,
        "m0": Int8(_max_id(conn, "members")),
        "a0": Int8(_max_id(conn, "accounts")),
        "t0": Int8(_max_id(conn, "journal_transactions")),
        "e0": Int8(_max_id(conn, "journal_entries")),
        "l0": Int8(_max_id(conn, "lots")),
        "mt0": Int8(_max_id(conn, "member_tiers")),
        "issued": Int8(programme["issued"]),
        "growth_issued": Int8(programme["growth_issued"]),
        "E": Int4(shape.expiring),
        "P": Int4(shape.pending),
        "K": Int4(shape.lots),
        "G": Int4(shape.growth),
        "T": Int4(shape.transactions),
        "tiered": Int4(shape.tier_members),
        "tier": shape.tier,
        "actor": SEED_ACTOR,
    }
    for lo in range(1, shape.members + 1, chunk):
        hi = min(lo + chunk - 1, shape.members)
        _seed_chunk(conn, params | {"lo": Int4(lo), "hi": Int4(hi)})
        conn.commit()
        if progress is not None:
            progress(hi)
    for table in (
        "members",
        "accounts",
        "journal_transactions",
        "journal_entries",
        "lots",
        "member_tiers",
    ):
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"greatest((SELECT max(id) FROM {table}), 1))"
        )
    conn.commit()
    return {
        "members": shape.members,
        "lots": shape.members * shape.lots,
        "journal_transactions": shape.members * shape.transactions,
        "journal_entries": 2 * shape.members * shape.transactions,
        "member_tiers": min(shape.tier_members, shape.members),
    }


# Lot k of member g: expiring (k <= E), pending (E < k <= E + P) or live.
_LOT = f"""
    {AMOUNT} AS amount,
    CASE WHEN k <= %(E)s OR k > %(E)s + %(P)s THEN 'available' ELSE 'pending' END AS status,
    CASE WHEN k <= %(E)s THEN %(now)s - interval '25 months' - make_interval(days => mod(g, 28))
         WHEN k <= %(E)s + %(P)s THEN %(now)s - interval '8 days' - make_interval(hours => k)
         ELSE %(now)s - interval '30 days' - make_interval(hours => k) END AS earned_at,
    CASE WHEN k > %(E)s AND k <= %(E)s + %(P)s THEN %(now)s - interval '1 hour' END
        AS available_at,
    CASE WHEN k <= %(E)s THEN %(now)s - interval '1 day'
         WHEN k <= %(E)s + %(P)s THEN %(now)s + interval '23 months'
         ELSE %(now)s + make_interval(days => 1 + mod(g * 37 + k * 11, 700)) END AS expires_at
"""

_GROWTH = f"""
    CASE WHEN h < %(G)s THEN {GROWTH_TOTAL} / %(G)s
         ELSE {GROWTH_TOTAL} - (%(G)s - 1) * ({GROWTH_TOTAL} / %(G)s) END AS amount,
    %(now)s - make_interval(days => 1 + mod(g * 13 + h * 97, 330)) AS created_at
"""


def _seed_chunk(conn: psycopg.Connection[Any], params: dict[str, Any]) -> None:
    # Triggers off for the seed's own transaction (foreign keys' and the journal's balance
    # trigger, which would check row by row what `check_ledger` checks set-based after):
    # they cost the seed several times its inserts.
    conn.execute("SET LOCAL session_replication_role = replica")
    conn.execute(
        """
        INSERT INTO members (id, program_id, phone, attributes, status, enrolled_at,
                             enrolment_channel, updated_at)
        SELECT %(m0)s + g, %(p)s, '138' || lpad((%(m0)s + g)::text, 8, '0'), '{}'::jsonb,
               'active', %(now)s - interval '3 years' + make_interval(days => mod(g, 300)),
               'store', %(now)s - interval '3 years'
        FROM generate_series(%(lo)s, %(hi)s) g
        """,
        params,
    )
    conn.execute(
        f"""
        INSERT INTO accounts (id, program_id, member_id, kind, status, available, pending,
                              held, lifetime_earned, allow_negative, opened_at, next_due_at)
        SELECT %(a0)s + 2 * g - 1, %(p)s, %(m0)s + g, 'points', 'active',
               coalesce(b.available, 0), coalesce(b.pending, 0), 0, coalesce(b.earned, 0),
               false, %(now)s - interval '3 years' + make_interval(days => mod(g, 300)),
               b.next_due
        FROM generate_series(%(lo)s, %(hi)s) g
        CROSS JOIN LATERAL (
            SELECT sum(amount) FILTER (WHERE status = 'available') AS available,
                   sum(amount) FILTER (WHERE status = 'pending') AS pending,
                   sum(amount) AS earned,
                   min(coalesce(available_at, expires_at)) AS next_due
            FROM (SELECT {_LOT} FROM generate_series(1, %(K)s) k) lot
        ) b
        UNION ALL
        SELECT %(a0)s + 2 * g, %(p)s, %(m0)s + g, 'growth', 'active',
               CASE WHEN %(G)s > 0 THEN {GROWTH_TOTAL} ELSE 0 END, 0, 0, 0, false,
               %(now)s - interval '3 years' + make_interval(days => mod(g, 300)), NULL
        FROM generate_series(%(lo)s, %(hi)s) g
        """,
        params,
    )
    # Earn transactions (one per lot) and growth transactions.
    conn.execute(
        f"""
        INSERT INTO journal_transactions (id, program_id, member_id, kind, points, created_at,
                                          actor)
        SELECT %(t0)s + (g - 1) * %(T)s + k, %(p)s, %(m0)s + g, 'earn', amount, earned_at,
               %(actor)s
        FROM generate_series(%(lo)s, %(hi)s) g
        CROSS JOIN generate_series(1, %(K)s) k
        CROSS JOIN LATERAL (SELECT {_LOT}) lot
        UNION ALL
        SELECT %(t0)s + (g - 1) * %(T)s + %(K)s + h, %(p)s, %(m0)s + g, 'growth', amount,
               created_at, %(actor)s
        FROM generate_series(%(lo)s, %(hi)s) g
        CROSS JOIN generate_series(1, %(G)s) h
        CROSS JOIN LATERAL (SELECT {_GROWTH}) growth
        """,
        params,
    )
    conn.execute(
        f"""
        INSERT INTO journal_entries (id, transaction_id, program_id, account_id, member_id,
                                     bucket, amount)
        SELECT %(e0)s + 2 * (txn - %(t0)s) - 1 + side, txn, %(p)s,
               CASE WHEN side = 0 THEN %(a0)s + 2 * g - 1 ELSE %(issued)s END,
               CASE WHEN side = 0 THEN %(m0)s + g END,
               CASE WHEN side = 0 AND status = 'pending' THEN 'pending' ELSE 'available' END,
               CASE WHEN side = 0 THEN amount ELSE -amount END
        FROM generate_series(%(lo)s, %(hi)s) g
        CROSS JOIN generate_series(1, %(K)s) k
        CROSS JOIN LATERAL (SELECT %(t0)s + (g - 1) * %(T)s + k AS txn, {_LOT}) lot
        CROSS JOIN (VALUES (0), (1)) AS sides(side)
        UNION ALL
        SELECT %(e0)s + 2 * (txn - %(t0)s) - 1 + side, txn, %(p)s,
               CASE WHEN side = 0 THEN %(a0)s + 2 * g ELSE %(growth_issued)s END,
               CASE WHEN side = 0 THEN %(m0)s + g END,
               'available',
               CASE WHEN side = 0 THEN amount ELSE -amount END
        FROM generate_series(%(lo)s, %(hi)s) g
        CROSS JOIN generate_series(1, %(G)s) h
        CROSS JOIN LATERAL (SELECT %(t0)s + (g - 1) * %(T)s + %(K)s + h AS txn, {_GROWTH}) gr
        CROSS JOIN (VALUES (0), (1)) AS sides(side)
        """,
        params,
    )
    conn.execute(
        f"""
        INSERT INTO lots (id, program_id, member_id, account_id, transaction_id, amount,
                          remaining, status, earned_at, available_at, expires_at)
        SELECT %(l0)s + (g - 1) * %(K)s + k, %(p)s, %(m0)s + g, %(a0)s + 2 * g - 1,
               %(t0)s + (g - 1) * %(T)s + k, amount, amount, status, earned_at,
               available_at, expires_at
        FROM generate_series(%(lo)s, %(hi)s) g
        CROSS JOIN generate_series(1, %(K)s) k
        CROSS JOIN LATERAL (SELECT {_LOT}) lot
        """,
        params,
    )
    conn.execute(
        """
        INSERT INTO member_tiers (id, program_id, member_id, tier, qualified_tier, since,
                                  evaluated_at, updated_at)
        SELECT %(mt0)s + g, %(p)s, %(m0)s + g, %(tier)s, %(tier)s,
               %(now)s - interval '200 days', %(now)s - interval '1 day',
               %(now)s - interval '1 day'
        FROM generate_series(%(lo)s, least(%(hi)s, %(tiered)s)) g
        """,
        params,
    )


CHECKS = {
    "unbalanced_transactions": """
        SELECT count(*) FROM (
            SELECT transaction_id FROM journal_entries WHERE program_id = %(p)s
            GROUP BY transaction_id HAVING sum(amount) <> 0) x
    """,
    "accounts_differing_from_entries": """
        SELECT count(*) FROM accounts a
        LEFT JOIN (
            SELECT account_id,
                   sum(amount) FILTER (WHERE bucket = 'available') AS available,
                   sum(amount) FILTER (WHERE bucket = 'pending') AS pending,
                   sum(amount) FILTER (WHERE bucket = 'held') AS held
            FROM journal_entries WHERE program_id = %(p)s AND member_id IS NOT NULL
            GROUP BY account_id) e ON e.account_id = a.id
        WHERE a.program_id = %(p)s AND a.member_id IS NOT NULL
          AND (a.available <> coalesce(e.available, 0) OR a.pending <> coalesce(e.pending, 0)
               OR a.held <> coalesce(e.held, 0))
    """,
    "points_balances_differing_from_lots": """
        SELECT count(*) FROM accounts a
        LEFT JOIN (
            SELECT account_id,
                   sum(remaining) FILTER (WHERE status = 'available') AS available,
                   sum(remaining) FILTER (WHERE status = 'pending') AS pending
            FROM lots WHERE program_id = %(p)s GROUP BY account_id) l ON l.account_id = a.id
        WHERE a.program_id = %(p)s AND a.kind = 'points'
          AND (a.available <> coalesce(l.available, 0)
               OR a.pending <> coalesce(l.pending, 0))
    """,
    "rows_without_their_parent": """
        SELECT (SELECT count(*) FROM journal_entries e
                LEFT JOIN journal_transactions t ON t.id = e.transaction_id
                LEFT JOIN accounts a ON a.id = e.account_id
                WHERE e.program_id = %(p)s AND (t.id IS NULL OR a.id IS NULL))
             + (SELECT count(*) FROM lots l
                LEFT JOIN journal_transactions t ON t.id = l.transaction_id
                LEFT JOIN accounts a ON a.id = l.account_id
                LEFT JOIN members m ON m.id = l.member_id
                WHERE l.program_id = %(p)s
                  AND (t.id IS NULL OR a.id IS NULL OR m.id IS NULL
                       OR a.member_id <> l.member_id))
             + (SELECT count(*) FROM accounts a LEFT JOIN members m ON m.id = a.member_id
                WHERE a.program_id = %(p)s AND a.member_id IS NOT NULL AND m.id IS NULL)
    """,
    "lots_differing_from_allocations": """
        SELECT count(*) FROM lots l
        LEFT JOIN (SELECT lot_id, sum(amount) AS moved FROM lot_allocations
                   WHERE program_id = %(p)s GROUP BY lot_id) a ON a.lot_id = l.id
        WHERE l.program_id = %(p)s AND l.status <> 'cancelled'
          AND l.remaining <> l.amount + coalesce(a.moved, 0)
    """,
    "accounts_with_next_due_too_late": """
        SELECT count(*) FROM accounts a
        JOIN (SELECT account_id,
                     min(CASE WHEN status = 'available' AND remaining > 0 THEN expires_at
                              WHEN status = 'pending' THEN available_at END) AS due
              FROM lots WHERE program_id = %(p)s GROUP BY account_id) d
          ON d.account_id = a.id
        WHERE a.kind = 'points' AND d.due IS NOT NULL
          AND (a.next_due_at IS NULL OR a.next_due_at > d.due)
    """,
}


def check_ledger(conn: psycopg.Connection[Any], program_id: int) -> dict[str, int]:
    """How many rows break each of the ledger's laws (see the module); all 0 is good."""
    found = {
        name: int(conn.execute(query, {"p": program_id}).fetchone()[0])  # type: ignore[index]
        for name, query in CHECKS.items()
    }
    conn.rollback()
    return found
