"""PostgreSQL checks the keys to programmes and members of the tables every purchase,
import and nightly job writes once per statement, not once per row; programmes and members
are kept for good.

Product decision: **programmes and members are kept for good.** Erasure (PRODUCT.md)
anonymises a member's personal data and keeps the member row and its ledger; a member is
closed, never deleted; a programme is closed, never deleted. Nothing in jifen deletes
either, and now the database refuses it on both stores: DELETE and TRUNCATE of
`programs` and `members`, and a change of their id, are refused.

As foreign keys, PostgreSQL checks a row's key to `programs` or `members` row by row, each
check a small query of its own (an executor started, a probe, a `FOR KEY SHARE` lock on
the parent row - on the one programme row every concurrent purchase locks, a multixact):
a purchase made about 12 of them to `programs` alone, and an expiry or release batch one
per transaction, lot and outbox event it writes. Here, as migration 0006 did for journal
entries and lot allocations, each table's keys to parents that cannot go away become one
statement-level trigger, which checks every row a statement inserted (INSERT, executemany
or COPY) in one query, a probe of each parent's key per row, and refuses the statement
with the foreign-key error's SQLSTATE (23503) if a parent is missing. The checked keys:

- to `programs` and `members` (kept for good, here);
- to `accounts` (a lot's account: kept for good since 0006);
- to `journal_transactions` (a lot's, a purchase's earn and growth transactions, a
  reversal's original: append-only, not truncatable since 0006).

Keys to parents that can go away (a transaction's hold, a purchase line's purchase) stay
foreign keys. A parent that exists when the statement's check runs exists for ever after,
so the check takes no lock. An UPDATE that changes a checked key (nothing does: a row's
programme, member, account and transactions are set when it is written) is checked by a
row trigger that fires only when one of those columns changes; updates that leave them
alone (balances, lot status, counters) cost nothing more.

SQLite keeps its foreign keys (cheap, in-process checks); the models mark the keys
(`jifen.db.base.checked_key`) so that the comparison of models and migrations knows
PostgreSQL checks them by the triggers. On SQLite, triggers refuse DELETE of programmes and
members and a change of their id (SQLite has no TRUNCATE), so both stores refuse the same
writes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 16:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROGRAM = ("program_id", "programs")
MEMBER = ("member_id", "members")

KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "members": (PROGRAM,),
    "accounts": (PROGRAM, MEMBER),
    "journal_transactions": (PROGRAM, MEMBER, ("reverses_id", "journal_transactions")),
    "lots": (
        PROGRAM,
        MEMBER,
        ("account_id", "accounts"),
        ("transaction_id", "journal_transactions"),
    ),
    "purchases": (
        PROGRAM,
        MEMBER,
        ("earn_txn_id", "journal_transactions"),
        ("growth_txn_id", "journal_transactions"),
    ),
    "purchase_lines": (PROGRAM,),
    "rule_counters": (PROGRAM,),
    "idempotency_keys": (PROGRAM,),
    "outbox_events": (PROGRAM,),
    "member_tiers": (PROGRAM, MEMBER),
    "tier_history": (PROGRAM, MEMBER),
}
"""Each table's keys (column, parent table; the parent's column is `id`) that PostgreSQL
checks per statement: to parents that cannot go away. The programme's comes first."""

KEPT = ("programs", "members")
"""The parents kept for good here (0006 keeps lots and accounts)."""

# Each parent is probed by its primary key, row by row (`OFFSET 0` keeps every NOT EXISTS a
# probe: without it the planner may hash the whole parent table, whatever the rows); the
# programme once per distinct value (a statement's rows nearly always name one). A key
# that is NULL names no parent (as a foreign key's MATCH SIMPLE).
CHECK_FUNCTION = """
CREATE FUNCTION jifen_{table}_keys() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT FROM (SELECT DISTINCT program_id FROM written) AS w
        WHERE w.program_id IS NOT NULL
          AND NOT EXISTS (SELECT FROM programs AS p WHERE p.id = w.program_id OFFSET 0)
    ){others} THEN
        RAISE EXCEPTION 'insert or update on table "{table}" violates its keys: a row names '
            'a {parents} that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""

MISSING = (
    "(w.{column} IS NOT NULL AND NOT EXISTS "
    "(SELECT FROM {parent} AS p WHERE p.id = w.{column} OFFSET 0))"
)

# The rare UPDATE of a key: one function for every table, told the keys as arguments
# (column, parent, column, parent ...), the changed row's values read through jsonb.
CHANGED_FUNCTION = """
CREATE FUNCTION jifen_key_changed() RETURNS trigger AS $$
DECLARE
    i integer := 0;
    value text;
    found boolean;
BEGIN
    WHILE i < TG_NARGS LOOP
        value := to_jsonb(NEW) ->> TG_ARGV[i];
        IF value IS NOT NULL THEN
            EXECUTE format('SELECT EXISTS (SELECT FROM %I WHERE id = $1)', TG_ARGV[i + 1])
                INTO found USING value::bigint;
            IF NOT found THEN
                RAISE EXCEPTION 'insert or update on table "%" violates its keys: % = % names '
                    'no row of %', TG_TABLE_NAME, TG_ARGV[i], value, TG_ARGV[i + 1]
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
        END IF;
        i := i + 2;
    END LOOP;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""

WHAT = {
    "programs": "programme",
    "members": "member",
    "accounts": "account",
    "journal_transactions": "transaction",
}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _constraint(table: str, column: str, parent: str) -> str:
    return f"fk_{table}_{column}_{parent}"


def _sqlite_kept(create: bool) -> None:
    for table in KEPT:
        for name, when in (
            (f"{table}_no_delete", f"BEFORE DELETE ON {table}"),
            (f"{table}_id_kept", f"BEFORE UPDATE OF id ON {table} WHEN OLD.id IS NOT NEW.id"),
        ):
            if not create:
                op.execute(f"DROP TRIGGER {name}")
                continue
            op.execute(
                f"CREATE TRIGGER {name} {when} BEGIN SELECT RAISE(ABORT, '{table} are kept "
                f"for good (the journal names them): DELETE or a new id on {table} refused'); "
                "END"
            )


def upgrade() -> None:
    if not _postgres():
        _sqlite_kept(create=True)
        return
    for table in KEPT:  # jifen_kept() is migration 0006's
        op.execute(
            f"CREATE TRIGGER {table}_kept BEFORE DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION jifen_kept()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_id_kept BEFORE UPDATE OF id ON {table} FOR EACH ROW "
            "WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION jifen_kept()"
        )
    op.execute(CHANGED_FUNCTION)
    for table, keys in KEYS.items():
        assert keys[0] == PROGRAM, table
        for column, parent in keys:
            op.drop_constraint(_constraint(table, column, parent), table, type_="foreignkey")
        parents = list(dict.fromkeys(WHAT[parent] for _, parent in keys))
        op.execute(
            CHECK_FUNCTION.format(
                table=table,
                others="".join(
                    "\n    OR EXISTS (SELECT FROM written AS w WHERE "
                    + "\n        OR ".join(MISSING.format(column=c, parent=p) for c, p in others)
                    + ")"
                    for others in [keys[1:]]
                    if others
                ),
                parents=", ".join(parents[:-1]) + " or " + parents[-1]
                if len(parents) > 1
                else parents[0],
            )
        )
        op.execute(
            f"CREATE TRIGGER {table}_keys_on_insert AFTER INSERT ON {table} "
            "REFERENCING NEW TABLE AS written FOR EACH STATEMENT "
            f"EXECUTE FUNCTION jifen_{table}_keys()"
        )
        columns = [column for column, _ in keys]
        changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
        arguments = ", ".join(f"'{column}', '{parent}'" for column, parent in keys)
        op.execute(
            f"CREATE TRIGGER {table}_keys_on_update AFTER UPDATE OF {', '.join(columns)} "
            f"ON {table} FOR EACH ROW WHEN ({changed}) "
            f"EXECUTE FUNCTION jifen_key_changed({arguments})"
        )


def downgrade() -> None:
    if not _postgres():
        _sqlite_kept(create=False)
        return
    for table, keys in KEYS.items():
        op.execute(f"DROP TRIGGER {table}_keys_on_update ON {table}")
        op.execute(f"DROP TRIGGER {table}_keys_on_insert ON {table}")
        op.execute(f"DROP FUNCTION jifen_{table}_keys()")
        for column, parent in keys:
            op.create_foreign_key(
                _constraint(table, column, parent), table, parent, [column], ["id"]
            )
    op.execute("DROP FUNCTION jifen_key_changed()")
    for table in KEPT:
        op.execute(f"DROP TRIGGER {table}_id_kept ON {table}")
        op.execute(f"DROP TRIGGER {table}_kept ON {table}")
