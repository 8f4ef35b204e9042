"""Settings for one TOPdesk tenant (env vars ``KOPPEL_TOPDESK_*``)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TopdeskSettings(BaseSettings):
    """Where and how to reach TOPdesk's REST API."""

    model_config = SettingsConfigDict(env_prefix="KOPPEL_TOPDESK_", extra="ignore")

    base_url: AnyHttpUrl = Field(
        description="Tenant URL, e.g. https://example.topdesk.net (without /tas/api)."
    )
    login: str = Field(min_length=1, description="Operator login name of the API account.")
    application_password: SecretStr = Field(description="Application password of that operator.")
    max_concurrency: int = Field(default=4, ge=1, le=16, description="Parallel calls to TOPdesk.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Read time-out per call.")

    @property
    def root(self) -> str:
        """Base URL without a trailing slash."""
        return str(self.base_url).rstrip("/")
