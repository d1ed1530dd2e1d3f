"""Settings: one pydantic-settings class, environment variables prefixed `JIFEN_` (and `.env`)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JIFEN_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".jifen")
    database_url: str | None = None
    """SQLAlchemy URL; unset means SQLite in `data_dir/jifen.db`."""
    default_language: str = "zh-CN"
    db_pool_size: int = 10
    db_max_overflow: int = 20
    group_commit: bool = True
    """Record the purchases a server process receives at the same moment in one
    transaction (`jifen.api.grouped`)."""
    quick_balance: bool = True
    """Answer a plain balance read with one statement, without the ORM
    (`jifen.api.lane.BalanceLane`); anything else about it goes to the route."""
    threads: int = 40
    """Threads per server process that run the synchronous route handlers (anyio's
    default is 40)."""
    root_token: str | None = None
    """Installation-level bearer token for `/v1/programs`; unset turns those routes off."""

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'jifen.db').resolve()}"
