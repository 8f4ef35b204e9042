"""Settings for the occupational-health system (env vars ``KOPPEL_OH_*``)."""

from __future__ import annotations

from pydantic import AnyHttpUrl, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class OccupationalHealthSettings(BaseSettings):
    """Where and how to reach the occupational-health system's API."""

    model_config = SettingsConfigDict(env_prefix="KOPPEL_OH_", extra="ignore")

    url: AnyHttpUrl = Field(description="Base URL of the occupational-health API.")
    token: SecretStr = Field(description="Bearer token for that API.")
    max_concurrency: int = Field(default=4, ge=1, le=16, description="Parallel calls to the OH system.")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Read time-out per call.")
