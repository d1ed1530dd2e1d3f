"""How a scheduled job's set-based statement runs on PostgreSQL: planned for its own
parameters, and vouching for what it writes.

- `planned_for_parameters`: psycopg prepares a statement on a connection after its fifth
  run, and PostgreSQL then tries a generic plan, made without the parameters' values. For
  a batch's statements (an array of 2,000 account or member ids) the generic plan made a
  batch cost three (the ledger's sweep: 0.42 -> 1.15 s of backend CPU a batch at the
  bench's 50,000 members) to thirty (the tier evaluation) times the custom one. Within
  the block the session's statements are sent unprepared, so each is planned for its
  parameters. (`plan_cache_mode = force_custom_plan` would do it too, but also for the
  foreign keys' checks, which would then be planned again for every row they check.)
- `vouching`: the statement run in the block tells the per-statement key checks of the
  tables it inserts into to skip it (`jifen.keys_vouched`, migrations 0008 and 0009), and
  with `balanced` the journal's deferred balance trigger too (`jifen.entries_balanced`).
  Only for a statement whose every key names a row it has just read or inserted, of rows
  kept for good, and which writes each transaction's entries from one row. The settings
  are turned off after the block; a statement that fails aborts the transaction or the
  savepoint it runs in, which takes them back with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

_KEYS = text("SELECT set_config('jifen.keys_vouched', :on, true)")
_KEYS_AND_BALANCE = text(
    "SELECT set_config('jifen.entries_balanced', :on, true), "
    "set_config('jifen.keys_vouched', :on, true)"
)


@contextmanager
def planned_for_parameters(session: Session) -> Iterator[None]:
    """Within the block, the session's statements are not prepared (psycopg)."""
    driver: Any = session.connection().connection.driver_connection
    if not hasattr(driver, "prepare_threshold"):
        yield
        return
    before = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = before


@contextmanager
def vouching(session: Session, *, balanced: bool = False) -> Iterator[None]:
    """The statement run in the block vouches for its keys (and, if `balanced`, for its
    transactions' balance). PostgreSQL only: the settings mean nothing elsewhere."""
    setting = _KEYS_AND_BALANCE if balanced else _KEYS
    session.execute(setting, {"on": "on"})
    yield  # (not in a `finally`: after a failed statement the transaction takes no more)
    session.execute(setting, {"on": "off"})
