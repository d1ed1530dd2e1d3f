"""A migrated database's schema against the models (`jifen.db.models.Base`)."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from jifen.db.base import include_in_comparison
from jifen.db.models import Base
from jifen.db.uow import Database


def unmigrated(db: Database) -> list[Any]:
    """What the models have and the migrations did not make (alembic's autogenerate
    differences: tables, columns, types, indexes, keys); empty when they agree."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_object": include_in_comparison(connection.dialect.name),
            },
        )
        return list(compare_metadata(context, Base.metadata))
