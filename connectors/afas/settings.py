"""Settings for one AFAS Profit environment (env vars ``KOPPEL_AFAS_*``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Host name part per environment type (reference §1, decision §11.1).
_HOST_PART = {"production": "rest", "test": "resttest", "accept": "restaccept"}


class AfasSettings(BaseSettings):
    """Where and how to reach AFAS Profit's REST API."""

    model_config = SettingsConfigDict(env_prefix="KOPPEL_AFAS_", extra="ignore")

    environment_number: str = Field(
        description="Environment number, digits only or as AFAS writes it (O12345AA, T12345AA, A12345AA).",
    )
    environment_type: Literal["production", "test", "accept"] = Field(
        default="test", description="Which AFAS environment: production, test or accept."
    )
    token: SecretStr = Field(
        description="App-connector user token: full XML, the 64-hex data part or base64."
    )
    base_url: str | None = Field(
        default=None, description="Override of the REST base URL (the sandbox, a proxy); normally derived."
    )
    integration_id: str | None = Field(
        default=None, description="IntegrationId header for certified partner integrations."
    )
    language: Literal["nl-nl", "en-us", "nl-be", "fr-fr", "de-de"] = Field(
        default="nl-nl", description="Accept-Language: language of AFAS's messages."
    )
    max_concurrency: int = Field(default=4, ge=1, le=5, description="Parallel calls (AFAS allows 5 at most).")
    timeout_seconds: float = Field(default=120.0, gt=0, description="Read time-out per call.")

    @field_validator("environment_number")
    @classmethod
    def _digits(cls, value: str) -> str:
        match = re.fullmatch(r"[OTA]?(\d{4,6})(AA)?", value.strip(), flags=re.IGNORECASE)
        if not match:
            raise ValueError("must be the environment number, e.g. 12345 or O12345AA")
        return match.group(1)

    @property
    def rest_base_url(self) -> str:
        """The ProfitRestServices base URL for this environment."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = _HOST_PART[self.environment_type]
        return f"https://{self.environment_number}.{host}.afas.online/ProfitRestServices"
