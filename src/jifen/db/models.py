"""Imports every model module so that `Base.metadata` knows all tables (Alembic, tests)."""

from jifen.access import models as access_models
from jifen.db import idempotency, outbox
from jifen.db.base import Base
from jifen.earning import models as earning_models
from jifen.ledger import models as ledger_models
from jifen.members import models as member_models
from jifen.programs import models as program_models
from jifen.rewards import models as reward_models
from jifen.tiers import models as tier_models

__all__ = [
    "Base",
    "access_models",
    "earning_models",
    "idempotency",
    "ledger_models",
    "member_models",
    "outbox",
    "program_models",
    "reward_models",
    "tier_models",
]
