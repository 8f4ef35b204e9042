"""A refused token request as one line: AFAS's OAuth error code, its description and the setting to fix.

``invalid_client`` (unknown client, wrong or expired secret, failed assertion), ``invalid_request`` (two
methods at once, a malformed request), ``unauthorized_client`` / ``unsupported_grant_type`` (the app connector
does not take client credentials). ``error_description`` may be absent (reference ``afas-oauth.md``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import httpx

from connectors.afas.credentials import ClientAuthentication, PrivateKeyJwt
from connectors.errors import AuthError, excerpt
from connectors.redaction import redact

SYSTEM = "AFAS"


class OAuthError(AuthError):
    """The token endpoint refused us: one line with AFAS's error code and the setting to fix."""

    hint = ""

    def __init__(self, message: str, *, code: str = "", setting: str = "", **where: object) -> None:
        self.code = code
        self.setting = setting
        super().__init__(message, **where)  # type: ignore[arg-type]  # where: optional keywords the base class names


def describe_response(response: httpx.Response) -> str:
    """A short, redacted excerpt of an answer (or its reason phrase)."""
    return redact(excerpt(response.content)) or response.reason_phrase


def _oauth_body(response: httpx.Response) -> tuple[str, str]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return "", ""
    if not isinstance(body, Mapping):
        return "", ""
    return str(body.get("error") or ""), redact(" ".join(str(body.get("error_description") or "").split()))


def oauth_error(response: httpx.Response, client: ClientAuthentication, token_url: str) -> OAuthError:
    """One line for a refused token request: AFAS's code, its description and the setting to fix."""
    code, description = _oauth_body(response)
    said = f"{code}: {description}" if description else (code or describe_response(response))
    setting, advice = _advice(code, description.casefold(), client)
    return OAuthError(
        f"AFAS refused the token request ({said}); {advice}",
        code=code,
        setting=setting,
        system=SYSTEM,
        method="POST",
        endpoint="oauth/token",
        status=response.status_code,
    )


def _advice(code: str, description: str, client: ClientAuthentication) -> tuple[str, str]:
    jwt_mode = isinstance(client, PrivateKeyJwt)
    if code == "invalid_client" and "expired" in description and not jwt_mode:
        return (
            "KOPPEL_AFAS_CLIENT_SECRET",
            "the client secret has expired: add a new secret to the app connector in Profit and set "
            "KOPPEL_AFAS_CLIENT_SECRET (docs/production.md, secret renewal)",
        )
    if code == "invalid_client" and jwt_mode:
        if "aud" in description:
            return "KOPPEL_AFAS_TOKEN_URL", "check KOPPEL_AFAS_TOKEN_URL (the assertion's audience)"
        if "jti" in description or "replay" in description:
            return (
                "KOPPEL_AFAS_PRIVATE_KEY",
                "an assertion was presented twice; Koppel makes a new one per request, so if this repeats "
                "someone replays them: replace KOPPEL_AFAS_PRIVATE_KEY (`koppel afas keygen`)",
            )
        if any(word in description for word in ("exp", "iat", "clock")):
            return "KOPPEL_AFAS_PRIVATE_KEY", "check this machine's clock (the assertion's iat/exp/jti)"
        return (
            "KOPPEL_AFAS_PRIVATE_KEY",
            "check KOPPEL_AFAS_CLIENT_ID, KOPPEL_AFAS_PRIVATE_KEY and KOPPEL_AFAS_KEY_ID against the "
            "certificate uploaded to the app connector",
        )
    if code == "invalid_client":
        return "KOPPEL_AFAS_CLIENT_SECRET", "check KOPPEL_AFAS_CLIENT_ID and KOPPEL_AFAS_CLIENT_SECRET"
    if code in ("unauthorized_client", "unsupported_grant_type"):
        return (
            "KOPPEL_AFAS_AUTH",
            "the app connector does not accept OAuth client credentials: switch it to Hybrid or OAuth in "
            "Profit, or set KOPPEL_AFAS_AUTH=token",
        )
    if code == "invalid_request":
        return (
            "KOPPEL_AFAS_CLIENT_SECRET_METHOD",
            "check KOPPEL_AFAS_CLIENT_SECRET_METHOD (body or basic; Basic needs Profit 9)",
        )
    return "KOPPEL_AFAS_TOKEN_URL", "check KOPPEL_AFAS_TOKEN_URL and KOPPEL_AFAS_AUTH"
