"""Settings for Koppel's own state database (env var ``KOPPEL_STATE_DB_URL``).

The URL may hold a password (``postgresql+psycopg://koppel:secret@host/koppel``), so it is a secret: read
it with ``settings.url``; ``masked_url`` shows it with the password replaced by ``***``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from koppel.settings import mask_url_password

DEFAULT_URL = "sqlite:///.koppel/state.db"


class StoreSettings(BaseSettings):
    """The SQLAlchemy URL of the ledger/state database."""

    model_config = SettingsConfigDict(env_prefix="KOPPEL_STATE_", extra="ignore")

    db_url: SecretStr = Field(
        default=SecretStr(DEFAULT_URL),
        description="SQLAlchemy URL (SQLite under .koppel/ by default; postgresql+psycopg://...).",
    )

    @field_validator("db_url")
    @classmethod
    def _known_dialect(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("sqlite:", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @property
    def url(self) -> str:
        """The SQLAlchemy URL itself (with its password: never log it, use ``masked_url``)."""
        return self.db_url.get_secret_value()

    @property
    def masked_url(self) -> str:
        """The URL with the password replaced by ``***`` (safe to print)."""
        return mask_url_password(self.url)

    def ensure_directory(self) -> None:
        """Create the folder of a file-based SQLite database."""
        if self.url.startswith("sqlite:///") and ":memory:" not in self.url:
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
