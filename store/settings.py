"""Settings for Koppel's own state database (env var ``KOPPEL_STATE_DB_URL``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_URL = "sqlite:///.koppel/state.db"


class StoreSettings(BaseSettings):
    """The SQLAlchemy URL of the ledger/state database."""

    model_config = SettingsConfigDict(env_prefix="KOPPEL_STATE_", extra="ignore")

    db_url: str = Field(
        default=DEFAULT_URL,
        description="SQLAlchemy URL (SQLite under .koppel/ by default; postgresql+psycopg://...).",
    )

    @field_validator("db_url")
    @classmethod
    def _known_dialect(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    def ensure_directory(self) -> None:
        """Create the folder of a file-based SQLite database."""
        if self.db_url.startswith("sqlite:///") and ":memory:" not in self.db_url:
            Path(self.db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
