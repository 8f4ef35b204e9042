"""Settings for one AFAS Profit environment (env vars ``KOPPEL_AFAS_*``).

``KOPPEL_AFAS_AUTH`` picks the authentication (``connectors/afas/auth.py``): ``token`` (classic app-connector
token, the default so existing installations keep working), ``client_secret`` or ``private_key_jwt`` (OAuth
client credentials, Profit 9; see docs/production.md for the migration). Only the credentials of the chosen
method are required.
"""

from __future__ import annotations

import re
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
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
    auth: Literal["token", "client_secret", "private_key_jwt"] = Field(
        default="token",
        description="Authentication: token (classic), client_secret or private_key_jwt (OAuth, Profit 9).",
    )
    token: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description="App-connector user token (auth=token): full XML, the 64-hex data part or base64.",
    )
    client_id: str | None = Field(
        default=None,
        validate_default=True,
        description="OAuth client id of the app connector (auth=client_secret or private_key_jwt).",
    )
    client_secret: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description="OAuth client secret (auth=client_secret); Profit 9 secrets expire (default 180 days).",
    )
    client_secret_method: Literal["body", "basic"] = Field(
        default="body",
        description="Client secret in the form body, or as HTTP Basic (client_secret_basic, Profit 9).",
    )
    private_key_path: str | None = Field(
        default=None, description="File with the PEM private key (auth=private_key_jwt); or use PRIVATE_KEY."
    )
    private_key: SecretStr | None = Field(
        default=None,
        validate_default=True,
        description="The PEM private key itself (auth=private_key_jwt), e.g. from a credentials block.",
    )
    key_id: str | None = Field(
        default=None, description="JWT kid: the key id set in Profit, or the certificate's SHA-1 thumbprint."
    )
    jwt_algorithm: Literal["RS256", "PS256", "ES256"] | None = Field(
        default=None, description="Assertion signature algorithm; default RS256 for RSA, ES256 for EC keys."
    )
    token_url: str | None = Field(
        default=None, description="Override of the OAuth token endpoint; normally REST base + /oauth/token."
    )
    token_refresh_seconds: float = Field(
        default=60.0, ge=0, description="Renew the access token this long before expires_in runs out."
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

    @field_validator("token")
    @classmethod
    def _token_for_token_auth(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _required_for(value, info, ("token",))

    @field_validator("client_id")
    @classmethod
    def _client_id_for_oauth(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _required_for(value, info, ("client_secret", "private_key_jwt"))

    @field_validator("client_secret")
    @classmethod
    def _secret_for_client_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        return _required_for(value, info, ("client_secret",))

    @field_validator("private_key")
    @classmethod
    def _key_for_jwt(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("private_key_path"):
            return value
        return _required_for(value, info, ("private_key_jwt",))

    @property
    def token_endpoint(self) -> str:
        """The OAuth token endpoint: ``https://<nr>.rest{,test,accept}.afas.online/ProfitRestServices/oauth/token``."""
        if self.token_url:
            return self.token_url
        return f"{self.rest_base_url}/oauth/token"  # same base as the REST API (a base_url override too)

    @property
    def rest_base_url(self) -> str:
        """The ProfitRestServices base URL for this environment."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = _HOST_PART[self.environment_type]
        return f"https://{self.environment_number}.{host}.afas.online/ProfitRestServices"


_V = TypeVar("_V")


def _required_for(value: _V, info: ValidationInfo, modes: tuple[str, ...]) -> _V:
    """``value`` unless the chosen ``auth`` needs it and it is empty (a "missing" error on this field)."""
    auth = info.data.get("auth", "token")
    empty = value is None or (isinstance(value, SecretStr) and not value.get_secret_value().strip())
    if auth in modes and empty:
        raise PydanticCustomError(
            "missing", "is required but not set (KOPPEL_AFAS_AUTH={auth})", {"auth": auth}
        )
    return value
