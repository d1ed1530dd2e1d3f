"""PostgreSQL: the evaluation job's updates of tier rows become HOT, and the job's one
statement per batch skips the per-statement key checks of the rows it writes, as the
scheduled expiry's does (0008).

1. **`member_tiers` gets a fill factor of 50.** The evaluation job (`jifen.tiers.jobs`)
   updates every tier row of a batch (`evaluated_at`, and the tier of those that move).
   No index names those columns, so each update could be HOT (a new row version on the
   same page, no index entry), but only where the page has room: rows written at the
   default fill factor (100) leave none, so every update wrote its row version to another
   page and an entry in both indexes (bench seed, EXPLAIN (ANALYZE, WAL) of a batch of
   2,000: 7,966 WAL records and 80 ms for the `UPDATE`; at 50, 2,000 records, all HOT,
   and 34 ms). A page half full has room for a new version of each of its rows, so a run
   that updates every row of a page finds room for all of them; the next run prunes the
   versions the last one left (they are dead by then). The setting applies to pages
   written from now on: an existing table is rewritten at the next `VACUUM FULL` or
   `CLUSTER` (not done here: it locks the table), and until then the updates move rows to
   new pages at the new fill factor as they go.

2. **`tier_benefit_issues`' keys to programmes and members are checked per statement**
   (as 0007 did for `tier_history` and `member_tiers`): programmes and members are kept
   for good (0007), so the row-by-row foreign keys (a small query and a `FOR KEY SHARE`
   lock per row) become one statement-level trigger. An UPDATE that changes a key is
   checked by 0007's row trigger (`jifen_key_changed`).

3. **The insert triggers of `tier_history` and `tier_benefit_issues` skip a statement
   that vouches for its keys** (`jifen.keys_vouched` = 'on', the `WHEN` clause of 0008;
   `outbox_events`' has it since 0008). The evaluation job's statement (`_settle_in_sql`)
   sets it around itself: every row it writes names the batch's programme (read in the
   same transaction) and a member whose tier row and points account the batch has just
   locked (members are kept for good). Every other statement is checked as before.

SQLite: nothing changes (its foreign keys stay, checked in-process; no fill factor).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 21:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FILL = 50
"""`member_tiers`' fill factor (see the docstring)."""

ISSUES = "tier_benefit_issues"
KEYS = (("program_id", "programs"), ("member_id", "members"))
"""`tier_benefit_issues`' keys checked per statement (column, parent; the parent's `id`)."""

# As 0007's function: the programme once per distinct value, each member probed by its
# primary key (`OFFSET 0` keeps each NOT EXISTS a probe).
CHECK_FUNCTION = """
CREATE FUNCTION jifen_{table}_keys() RETURNS trigger AS $$
BEGIN
    IF EXISTS (
        SELECT FROM (SELECT DISTINCT program_id FROM written) AS w
        WHERE w.program_id IS NOT NULL
          AND NOT EXISTS (SELECT FROM programs AS p WHERE p.id = w.program_id OFFSET 0)
    ) OR EXISTS (
        SELECT FROM written AS w
        WHERE w.member_id IS NOT NULL
          AND NOT EXISTS (SELECT FROM members AS p WHERE p.id = w.member_id OFFSET 0)
    ) THEN
        RAISE EXCEPTION 'insert or update on table "{table}" violates its keys: a row names '
            'a programme or member that does not exist'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql
"""

TRIGGER = (
    "CREATE TRIGGER {table}_keys_on_insert AFTER INSERT ON {table} "
    "REFERENCING NEW TABLE AS written FOR EACH STATEMENT {when}"
    "EXECUTE FUNCTION jifen_{table}_keys()"
)
SKIP_WHEN = "WHEN (current_setting('jifen.keys_vouched', true) IS DISTINCT FROM 'on') "
"""0008's clause."""


def _constraint(column: str, parent: str) -> str:
    return f"fk_{ISSUES}_{column}_{parent}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"ALTER TABLE member_tiers SET (fillfactor = {FILL})")
    for column, parent in KEYS:
        op.drop_constraint(_constraint(column, parent), ISSUES, type_="foreignkey")
    op.execute(CHECK_FUNCTION.format(table=ISSUES))
    op.execute(TRIGGER.format(table=ISSUES, when=SKIP_WHEN))
    columns = [column for column, _ in KEYS]
    changed = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)
    arguments = ", ".join(f"'{column}', '{parent}'" for column, parent in KEYS)
    op.execute(
        f"CREATE TRIGGER {ISSUES}_keys_on_update AFTER UPDATE OF {', '.join(columns)} "
        f"ON {ISSUES} FOR EACH ROW WHEN ({changed}) "
        f"EXECUTE FUNCTION jifen_key_changed({arguments})"
    )
    op.execute("DROP TRIGGER tier_history_keys_on_insert ON tier_history")
    op.execute(TRIGGER.format(table="tier_history", when=SKIP_WHEN))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER tier_history_keys_on_insert ON tier_history")
    op.execute(TRIGGER.format(table="tier_history", when=""))
    op.execute(f"DROP TRIGGER {ISSUES}_keys_on_update ON {ISSUES}")
    op.execute(f"DROP TRIGGER {ISSUES}_keys_on_insert ON {ISSUES}")
    op.execute(f"DROP FUNCTION jifen_{ISSUES}_keys()")
    for column, parent in KEYS:
        op.create_foreign_key(_constraint(column, parent), ISSUES, parent, [column], ["id"])
    op.execute("ALTER TABLE member_tiers RESET (fillfactor)")
