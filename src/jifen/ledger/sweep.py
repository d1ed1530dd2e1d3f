"""Release and expiry on PostgreSQL: one statement per step for a whole set of accounts.

`jifen.ledger.jobs` releases pending lots and expires lots for accounts the caller has
locked. On SQLite it builds the rows in Python; on PostgreSQL the statements here do the
same work inside the server, so that no lot passes through Python: one statement whose
data-modifying CTEs pick the due lots, update them, and insert the journal transactions
(one per account), their entries, the lots' allocations and the outbox events, and update
the balances and, for a scheduled batch, the accounts' `next_due_at` (lazy maintenance
runs several steps, then `refresh_next_due`).

They write exactly the rows the Python steps write, in the same order (ids ascend with the
account id, then as the Python steps list them), so both stores keep one ledger:
- a transaction's id is drawn from its table's sequence before the rows that point to it
  are inserted, in account order, which links entries and allocations to it without a
  round trip;
- the CTEs all read one snapshot, taken after the caller locked the accounts (whoever
  changes a lot holds its account's lock), so the due lots `due` reads are the ones the
  UPDATE of the lots finds by their ids.

A scheduled batch's statement tells the journal's deferred balance trigger to skip its
rows (`_run`: its entries are balanced by construction); the accounts' UPDATE finds the
locked accounts by key, not by hashing the accounts table.

Both statements find their rows by index, however many lots are due elsewhere in the
programme: the due lots account by account (`OFFSET 0` keeps the lateral subquery a
per-account probe of the lots' account index; read through the partial index on due lots,
a batch of 8,000 lots walked all 100,000 due lots of the bench's programme, dead entries
of earlier batches included, so the work per batch grew with the programme), the debts by
the accounts' key, and the lots to update by their key as one array (joined to `due` or
`repaid` by id, the planner hashed the whole lots table, spilling to disk, in every
batch); the release statement reads each row it writes once and finds it again by its
address (below, `_RELEASE_SQL`). Status literals are written out (not bound) so that the
planner can use the partial index on active holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from jifen.db.vouched import vouching
from jifen.ledger.models import AccountKind, TxnKind
from jifen.ledger.posting import Book

_EXPIRE_SQL = """
WITH due AS MATERIALIZED (
    SELECT l.id, l.account_id, l.member_id, l.remaining
    FROM unnest(CAST(:ids AS BIGINT[])) AS a (account)
    CROSS JOIN LATERAL (
        SELECT id, account_id, member_id, remaining FROM lots
        WHERE account_id = a.account AND status = 'available' AND expires_at <= :now
        OFFSET 0
    ) AS l
),
expired AS (
    UPDATE lots SET status = 'expired', remaining = 0
    WHERE id = ANY(CAST((SELECT array_agg(id) FROM due) AS BIGINT[]))
),
per_account AS MATERIALIZED (
    SELECT nextval(CAST((SELECT pg_get_serial_sequence('journal_transactions', 'id'))
                   AS regclass)) AS txn_id, s.*
    FROM (
        SELECT account_id, min(member_id) AS member_id, CAST(sum(remaining) AS BIGINT) AS points
        FROM due WHERE remaining > 0
        GROUP BY account_id ORDER BY account_id
    ) AS s
),
transactions AS (
    INSERT INTO journal_transactions (id, program_id, member_id, kind, points, created_at, actor)
    SELECT txn_id, :program_id, member_id, :kind, points, :now, :actor
    FROM per_account ORDER BY txn_id
),
entries AS (
    INSERT INTO journal_entries (transaction_id, program_id, account_id, member_id, bucket, amount)
    SELECT p.txn_id, :program_id, e.account_id, e.member_id, 'available', e.amount
    FROM per_account AS p
    CROSS JOIN LATERAL (VALUES
        (1, p.account_id, p.member_id, -p.points),
        (2, CAST(:expired_account AS BIGINT), CAST(NULL AS BIGINT), p.points)
    ) AS e (n, account_id, member_id, amount)
    ORDER BY p.txn_id, e.n
),
allocations AS (
    INSERT INTO lot_allocations (program_id, member_id, transaction_id, lot_id, amount, expired)
    SELECT :program_id, d.member_id, p.txn_id, d.id, -d.remaining, TRUE
    FROM due AS d JOIN per_account AS p USING (account_id)
    WHERE d.remaining > 0
    ORDER BY d.account_id, d.id
),
{balances}
events AS (
    INSERT INTO outbox_events (program_id, member_id, type, payload, occurred_at)
    SELECT :program_id, member_id, 'points.expired',
           jsonb_build_object('transaction_id', txn_id, 'points', points), :now
    FROM per_account ORDER BY account_id
)
SELECT (SELECT count(*) FROM per_account),
       (SELECT count(*) FROM due),
       (SELECT coalesce(sum(points), 0) FROM per_account)
"""

# Released points repay a debt first (a negative `available`), earliest expiry first: a
# lot gives what the debt still lacks after the due lots before it, up to what it has.
#
# Each locked account and each of its pending lots is read once, with the row's address
# (`ctid`): `account` gives the debt and, for a scheduled batch, `next_due_at` as it was;
# `pending` the due lots and the not-due ones' release instants, which `next_due` needs
# (it probed the lots' account index twice more per account). The lots' and the accounts'
# UPDATEs find their rows by those addresses (a TID scan), not by a second descent of the
# primary keys: every row they write is a current version the statement has just read,
# which no one else can change meanwhile (the accounts are locked by the batch, and
# whoever changes a lot holds its account's lock), and one statement's addresses cannot go
# stale under it (it holds its tables' locks). The lots that repay nothing (`take = 0`,
# all of them unless the account is in debt) are updated without a join; only the few
# that repay a debt are joined to `repaid` for what they give. Release batch at 50,000
# members (bench seed, 25 batches, backend CPU, the code before and this alternating batch
# by batch): the statement 9.85 -> 8.58 s and 9.65 -> 8.60 s.
_RELEASE_SQL = """
WITH account AS MATERIALIZED (
    SELECT a.id, a.row_id, a.available, a.next_due_at
    FROM unnest(CAST(:ids AS BIGINT[])) AS ids (id)
    CROSS JOIN LATERAL (
        SELECT id, ctid AS row_id, available, next_due_at FROM accounts
        WHERE id = ids.id
        OFFSET 0
    ) AS a
),
pending AS MATERIALIZED (
    SELECT l.*,
           CAST(coalesce(sum(l.remaining) FILTER (WHERE l.due) OVER (
               PARTITION BY l.account_id ORDER BY l.expires_at ASC NULLS LAST, l.id
               ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS BIGINT) AS before
    FROM account AS a
    CROSS JOIN LATERAL (
        SELECT ctid AS row_id, id, account_id, member_id, remaining, expires_at, available_at,
               coalesce(available_at <= :now, FALSE) AS due
        FROM lots
        WHERE account_id = a.id AND status = 'pending'
        OFFSET 0
    ) AS l
),
per_account AS MATERIALIZED (
    SELECT nextval(CAST((SELECT pg_get_serial_sequence('journal_transactions', 'id'))
                   AS regclass)) AS txn_id, s.*
    FROM (
        SELECT d.account_id, min(d.member_id) AS member_id,
               CAST(sum(d.remaining) AS BIGINT) AS points
        FROM pending AS d WHERE d.due
        GROUP BY d.account_id ORDER BY d.account_id
    ) AS s
),
repaid AS MATERIALIZED (
    SELECT d.row_id, d.id, d.account_id, d.member_id, d.remaining, d.expires_at, p.txn_id,
           least(d.remaining, greatest(greatest(-a.available, 0) - d.before, 0)) AS take
    FROM pending AS d
    JOIN per_account AS p USING (account_id)
    JOIN account AS a ON a.id = d.account_id
    WHERE d.due
),
released AS (
    UPDATE lots SET status = 'available'
    WHERE ctid = ANY(CAST((SELECT array_agg(row_id) FROM repaid WHERE take = 0) AS TID[]))
),
repaying AS (
    UPDATE lots SET status = 'available', remaining = lots.remaining - r.take
    FROM repaid AS r
    WHERE lots.ctid = ANY(CAST((SELECT array_agg(row_id) FROM repaid WHERE take > 0) AS TID[]))
      AND lots.ctid = r.row_id
),
transactions AS (
    INSERT INTO journal_transactions (id, program_id, member_id, kind, points, created_at, actor)
    SELECT txn_id, :program_id, member_id, :kind, points, :now, :actor
    FROM per_account ORDER BY txn_id
),
allocations AS (
    INSERT INTO lot_allocations (program_id, member_id, transaction_id, lot_id, amount, expired)
    SELECT :program_id, member_id, txn_id, id, -take, FALSE
    FROM repaid WHERE take > 0
    ORDER BY account_id, expires_at ASC NULLS LAST, id
),
entries AS (
    INSERT INTO journal_entries (transaction_id, program_id, account_id, member_id, bucket, amount)
    SELECT p.txn_id, :program_id, p.account_id, p.member_id, e.bucket, e.amount
    FROM per_account AS p
    CROSS JOIN LATERAL (VALUES (1, 'pending', -p.points), (2, 'available', p.points))
        AS e (n, bucket, amount)
    ORDER BY p.txn_id, e.n
),
{balances}
events AS (
    INSERT INTO outbox_events (program_id, member_id, type, payload, occurred_at)
    SELECT :program_id, member_id, 'points.released',
           jsonb_build_object('transaction_id', txn_id, 'points', points), :now
    FROM per_account ORDER BY account_id
)
SELECT (SELECT count(*) FROM per_account),
       (SELECT count(*) FROM repaid),
       (SELECT coalesce(sum(points), 0) FROM per_account)
"""

# The balances alone, when the caller refreshes `next_due_at` afterwards (lazy maintenance
# runs several steps, then refreshes once).
_EXPIRE_BALANCES = """
balances AS (
    UPDATE accounts SET available = accounts.available - p.points
    FROM per_account AS p WHERE accounts.id = p.account_id
),"""
_RELEASE_BALANCES = """
balances AS (
    UPDATE accounts
    SET available = accounts.available + p.points, pending = accounts.pending - p.points
    FROM per_account AS p WHERE accounts.id = p.account_id
),"""

# The balances and `next_due_at` in one UPDATE of the accounts (a scheduled batch runs one
# step): each locked account's earliest coming expiry, release or lapse as the statement
# leaves the lots, worked out from the snapshot and what the statement does to it, since
# its CTEs cannot see their own writes. After expiry the available lots left are the ones
# not due; after release, the lots released keep what repaying a debt left of them and the
# pending lots left are the ones not due (release reads them with the due ones, in
# `pending`, and finds its accounts by address, read in `account`). An account is written
# if its balance or its
# `next_due_at` changes, as `_REFRESH_NEXT_DUE` would. The lots are read account by account
# (correlated subqueries: probes of the lots' account index), not through the partial
# indexes on due lots, which hold every due lot of the programme. The accounts are found by
# key through an array the statement builds (`next_due`'s ids): given the ids as the bound
# array, whose 2,000 elements the planner counts, it hashed the whole accounts table in
# every batch (30-90 ms a batch at 50,000 members, growing with the programme).
_NEXT_DUE_AFTER_EXPIRY = """
next_due AS MATERIALIZED (
    SELECT ids.id,
           least(
               (SELECT min(expires_at) FROM lots
                WHERE account_id = ids.id AND status = 'available' AND remaining > 0
                  AND expires_at > :now),
               (SELECT min(available_at) FROM lots
                WHERE account_id = ids.id AND status = 'pending'),
               h.due
           ) AS due
    FROM unnest(CAST(:ids AS BIGINT[])) AS ids (id)
    LEFT JOIN (
        SELECT account_id, min(expires_at) AS due FROM holds
        WHERE account_id = ANY(CAST(:ids AS BIGINT[])) AND status = 'active'
        GROUP BY account_id
    ) AS h ON h.account_id = ids.id
),
balances AS (
    UPDATE accounts
    SET available = accounts.available - coalesce(p.points, 0), next_due_at = n.due
    FROM next_due AS n LEFT JOIN per_account AS p ON p.account_id = n.id
    WHERE accounts.id = n.id
      AND accounts.id = ANY(CAST((SELECT array_agg(id) FROM next_due) AS BIGINT[]))
      AND (p.account_id IS NOT NULL OR accounts.next_due_at IS DISTINCT FROM n.due)
),"""
_NEXT_DUE_AFTER_RELEASE = """
next_due AS MATERIALIZED (
    SELECT a.id, a.row_id, a.next_due_at,
           least(
               (SELECT min(expires_at) FROM lots
                WHERE account_id = a.id AND status = 'available' AND remaining > 0),
               r.due,
               w.due,
               h.due
           ) AS due
    FROM account AS a
    LEFT JOIN (
        SELECT account_id, min(expires_at) AS due FROM repaid
        WHERE remaining > take
        GROUP BY account_id
    ) AS r ON r.account_id = a.id
    LEFT JOIN (
        SELECT account_id, min(available_at) AS due FROM pending
        WHERE NOT due
        GROUP BY account_id
    ) AS w ON w.account_id = a.id
    LEFT JOIN (
        SELECT account_id, min(expires_at) AS due FROM holds
        WHERE account_id = ANY(CAST(:ids AS BIGINT[])) AND status = 'active'
        GROUP BY account_id
    ) AS h ON h.account_id = a.id
),
balances AS (
    UPDATE accounts
    SET available = accounts.available + coalesce(p.points, 0),
        pending = accounts.pending - coalesce(p.points, 0), next_due_at = n.due
    FROM next_due AS n LEFT JOIN per_account AS p ON p.account_id = n.id
    WHERE accounts.ctid = ANY(CAST((SELECT array_agg(row_id) FROM next_due) AS TID[]))
      AND accounts.ctid = n.row_id
      AND (p.account_id IS NOT NULL OR n.next_due_at IS DISTINCT FROM n.due)
),"""

_EXPIRE = text(_EXPIRE_SQL.replace("{balances}", _EXPIRE_BALANCES.strip()))
_EXPIRE_AND_REFRESH = text(_EXPIRE_SQL.replace("{balances}", _NEXT_DUE_AFTER_EXPIRY.strip()))
_RELEASE = text(_RELEASE_SQL.replace("{balances}", _RELEASE_BALANCES.strip()))
_RELEASE_AND_REFRESH = text(_RELEASE_SQL.replace("{balances}", _NEXT_DUE_AFTER_RELEASE.strip()))

# Only rows whose value changes are written (an unchanged account keeps its row version).
_REFRESH_NEXT_DUE = text(
    """
UPDATE accounts SET next_due_at = d.due
FROM (
    SELECT ids.id, min(e.due) AS due
    FROM unnest(CAST(:ids AS BIGINT[])) AS ids (id)
    LEFT JOIN (
        SELECT account_id, expires_at AS due FROM lots
        WHERE account_id = ANY(CAST(:ids AS BIGINT[]))
          AND status = 'available' AND remaining > 0 AND expires_at IS NOT NULL
        UNION ALL
        SELECT account_id, available_at FROM lots
        WHERE account_id = ANY(CAST(:ids AS BIGINT[])) AND status = 'pending'
        UNION ALL
        SELECT account_id, expires_at FROM holds
        WHERE account_id = ANY(CAST(:ids AS BIGINT[])) AND status = 'active'
    ) AS e ON e.account_id = ids.id
    GROUP BY ids.id
) AS d
WHERE accounts.id = d.id AND accounts.next_due_at IS DISTINCT FROM d.due
"""
)


# The statements build each transaction's two entries from one row (-points, +points), so
# they cannot write an unbalanced transaction, and every key their rows name is a row the
# statement has just read (a due lot, its account and member; the programme and its
# expired account, read with the book in the same transaction; all kept for good) or
# inserted (its transactions): a scheduled batch (thousands of entries) vouches for both
# (`jifen.db.vouched`). Lazy maintenance (one member, a few entries, inside a write the
# triggers check anyway) keeps the checks and saves the round trips.
def _run(
    session: Session, statement: TextClause, params: dict[str, Any], *, batch: bool
) -> tuple[int, int, int]:
    if batch:
        with vouching(session, balanced=True):
            row = session.execute(statement, params).one()
    else:
        row = session.execute(statement, params).one()
    return int(row[0]), int(row[1]), int(row[2])


def expire(
    session: Session,
    book: Book,
    account_ids: list[int],
    now: datetime,
    actor: str,
    *,
    refresh: bool = False,
) -> tuple[int, int, int]:
    """Expire the due lots of locked accounts: (accounts that lost points, lots, points).
    With `refresh` (a scheduled batch), the statement also sets the accounts'
    `next_due_at`, and its rows skip the deferred balance trigger and the key checks."""
    return _run(
        session,
        _EXPIRE_AND_REFRESH if refresh else _EXPIRE,
        {
            "ids": account_ids,
            "now": now,
            "program_id": book.program_id,
            "kind": str(TxnKind.EXPIRE),
            "actor": actor,
            "expired_account": book.accounts[AccountKind.EXPIRED],
        },
        batch=refresh,
    )


def release(
    session: Session,
    book: Book,
    account_ids: list[int],
    now: datetime,
    actor: str,
    *,
    refresh: bool = False,
) -> tuple[int, int, int]:
    """Release the due pending lots of locked accounts: (accounts, lots, points).
    With `refresh` (a scheduled batch), the statement also sets the accounts'
    `next_due_at`, and its rows skip the deferred balance trigger and the key checks."""
    return _run(
        session,
        _RELEASE_AND_REFRESH if refresh else _RELEASE,
        {
            "ids": account_ids,
            "now": now,
            "program_id": book.program_id,
            "kind": str(TxnKind.RELEASE),
            "actor": actor,
        },
        batch=refresh,
    )


def refresh_next_due(session: Session, account_ids: list[int]) -> None:
    session.execute(_REFRESH_NEXT_DUE, {"ids": account_ids})
