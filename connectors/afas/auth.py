"""AFAS authentication as pluggable ``httpx.Auth``: classic token, OAuth client secret, private-key JWT.

AFAS ends classic tokens (1 May 2027; app connectors with a classic token stop 31 Aug 2027). From Profit 9
an app connector can be Hybrid or OAuth-only; a server-side integration then uses the client-credentials
flow against ``…/ProfitRestServices/oauth/token`` (reference ``afas-oauth.md``):

- ``ClassicTokenAuth``: ``Authorization: AfasToken base64(xml)`` (``KOPPEL_AFAS_AUTH=token``, the default);
- ``OAuthAuth`` with ``ClientSecret``: ``client_id`` + ``client_secret`` in the body, or HTTP Basic with each
  value form-urlencoded before joining (``client_secret_basic``);
- ``OAuthAuth`` with ``PrivateKeyJwt``: a signed client assertion (RS256/PS256/ES256, ``iss`` = ``sub`` =
  client id, ``aud`` = token endpoint, unique ``jti``, ``exp`` ≤ 5 min), a new one for every token request.

The access token is cached per AFAS environment and client (``TokenCache``), shared by every client in the
process; one token request at a time (across threads and event loops), renewed shortly before
``expires_in`` runs out. A resource 401 with ``WWW-Authenticate: Bearer error="invalid_token"`` renews once
and retries that request once. Token-endpoint 429/5xx are retried like any transient failure; an OAuth
error (``invalid_client``, ``invalid_request``, an expired secret) is one ``OAuthError`` line naming the
setting to fix. Every secret (client secret, private key, assertion, access token) is registered with
``connectors.redaction``. The client authentications live in ``credentials.py``, the wording of a
refused token request in ``oauth_errors.py``.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from connectors.afas.credentials import (
    ClientAuthentication,
    ClientSecret,
    PrivateKeyJwt,
    read_private_key,
)
from connectors.afas.oauth_errors import OAuthError, describe_response, oauth_error
from connectors.afas.settings import AfasSettings
from connectors.afas.tokens import authorization_value, secret_forms
from connectors.errors import Unavailable
from connectors.header_auth import HeaderAuth
from connectors.http import RetryPolicy, parse_retry_after
from connectors.redaction import get_logger, redact, register_secrets

log = get_logger(__name__)

SYSTEM = "AFAS"
TOKEN_POLICY = RetryPolicy(max_attempts=5, base_delay=2.0, max_delay=60.0, max_total_seconds=300.0)
Clock = Callable[[], float]


class ClassicTokenAuth(HeaderAuth):
    """``Authorization: AfasToken <base64(xml)>`` on every request; its repr hides the token."""

    def __init__(self, raw_token: str) -> None:
        super().__init__(authorization_value(raw_token))


# ---------------------------------------------------------------------------- token cache


@dataclass(frozen=True)
class AccessToken:
    """An access token and the monotonic time after which it is renewed."""

    value: str
    renew_at: float


class TokenCache:
    """The access token of one AFAS environment + client, shared by every client in the process.

    One token request runs at a time in the whole process, whatever event loop or thread asks (Prefect
    runs tasks in worker threads, each with its own loop): the others wait for it and reuse its token.
    ``requests`` counts token requests.
    """

    POLL_SECONDS = 0.005

    def __init__(self) -> None:
        self.token: AccessToken | None = None
        self.requests = 0
        self._fetching = threading.Lock()

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold the right to request a token; waiting never blocks the event loop."""
        while not self._fetching.acquire(blocking=False):
            await asyncio.sleep(self.POLL_SECONDS)
        try:
            yield
        finally:
            self._fetching.release()

    def clear(self) -> None:
        """Forget the token (tests; a changed secret)."""
        self.token = None


_caches: dict[tuple[str, str, str], TokenCache] = {}
_caches_guard = threading.Lock()


def token_cache(token_url: str, client_id: str, credential: str) -> TokenCache:
    """The process-wide cache of one token endpoint + client id + credential fingerprint."""
    key = (token_url, client_id, credential)
    with _caches_guard:
        return _caches.setdefault(key, TokenCache())


# ---------------------------------------------------------------------------- the OAuth httpx.Auth


class OAuthAuth(httpx.Auth):
    """``Authorization: Bearer <access token>`` from the client-credentials flow (async clients only)."""

    def __init__(
        self,
        token_url: str,
        client: ClientAuthentication,
        *,
        cache: TokenCache | None = None,
        refresh_margin: float = 60.0,
        policy: RetryPolicy = TOKEN_POLICY,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], object] | None = None,
        clock: Clock = time.monotonic,
        seed: int | None = None,
    ) -> None:
        self.token_url = token_url
        self.client = client
        self.cache = (
            cache if cache is not None else token_cache(token_url, client.client_id, client.fingerprint())
        )
        self.refresh_margin = refresh_margin
        self.policy = policy
        self._timeout = timeout
        self._transport = transport
        self._sleep = sleep or asyncio.sleep
        self._clock = clock
        self._rng = random.Random(seed)  # noqa: S311 — jitter, not security

    def __repr__(self) -> str:
        return f"OAuthAuth({self.token_url!r}, {self.client!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The AFAS client is async only."""
        raise RuntimeError("OAuthAuth needs an httpx.AsyncClient")
        yield request  # pragma: no cover

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Bearer token; on ``invalid_token`` renew once and retry this request once."""
        token = await self.access_token()
        request.headers["Authorization"] = f"Bearer {token.value}"
        response = yield request
        if response.status_code == 401 and rejected_token(response):
            log.info("AFAS: the access token was rejected (invalid_token); requesting a new one")
            token = await self.access_token(stale=token)
            request.headers["Authorization"] = f"Bearer {token.value}"
            yield request

    async def access_token(self, *, stale: AccessToken | None = None) -> AccessToken:
        """The cached token, or a new one (one request at a time; ``stale`` is never returned again)."""
        current = self.cache.token
        if current is not None and current is not stale and self._clock() < current.renew_at:
            return current
        async with self.cache.exclusive():
            current = self.cache.token
            if current is not None and current is not stale and self._clock() < current.renew_at:
                return current
            self.cache.token = await self._request_token()
            return self.cache.token

    async def _request_token(self) -> AccessToken:
        """POST the client-credentials grant, retrying 429/5xx and connection failures (no side effects)."""
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as http:
            for attempt in range(1, self.policy.max_attempts + 1):
                self.cache.requests += 1
                wait = await self._attempt(http, attempt)
                if isinstance(wait, AccessToken):
                    return wait
                await self._sleep(wait)  # type: ignore[misc]  # _sleep is an injectable async callable (tests pass a fake)
        raise AssertionError("unreachable: _attempt raises on the last attempt")  # pragma: no cover

    async def _attempt(self, http: httpx.AsyncClient, attempt: int) -> AccessToken | float:
        form = self.client.request(self.token_url)
        data = {"grant_type": "client_credentials", **form.data}
        headers = {"Accept": "application/json", **form.headers}
        started = self._clock()
        try:
            response = await http.post(self.token_url, data=data, headers=headers)
        except httpx.TransportError as exc:
            detail = redact(f"{type(exc).__name__}: {exc}".rstrip(": "))
            return self._retry_or_raise(f"connection failed ({detail})", None, None, attempt)
        if response.status_code == 200:
            return self._parse(response, started)
        if response.status_code in (429, 502, 503, 504):
            hint = parse_retry_after(response.headers.get("retry-after")) or _body_retry_after(response)
            return self._retry_or_raise(describe_response(response), response.status_code, hint, attempt)
        if response.status_code >= 500:
            raise Unavailable(
                f"token request: {describe_response(response)}",
                system=SYSTEM,
                method="POST",
                endpoint="oauth/token",
                status=response.status_code,
            )
        raise oauth_error(response, self.client, self.token_url)

    def _retry_or_raise(self, message: str, status: int | None, hint: float | None, attempt: int) -> float:
        delay = max(hint or 0.0, self.policy.backoff(attempt, self._rng))
        if attempt >= self.policy.max_attempts or (hint or 0.0) > self.policy.max_retry_after:
            raise Unavailable(
                f"token request: {message}; gave up after {attempt} attempts",
                attempts=attempt,
                system=SYSTEM,
                method="POST",
                endpoint="oauth/token",
                status=status,
            )
        log.warning("AFAS POST oauth/token: %s; retry %d in %.2f s", message, attempt, delay)
        return delay

    def _parse(self, response: httpx.Response, started: float) -> AccessToken:
        try:
            body = response.json()
            value = str(body["access_token"])
            kind = str(body.get("token_type", "Bearer"))
            lifetime = float(body.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise OAuthError(
                "the token endpoint answered without an access_token; check KOPPEL_AFAS_TOKEN_URL",
                setting="KOPPEL_AFAS_TOKEN_URL",
                system=SYSTEM,
                method="POST",
                endpoint="oauth/token",
                status=response.status_code,
            ) from None
        register_secrets([value])
        if kind.casefold() != "bearer":
            raise OAuthError(
                f"the token endpoint issued a {kind!r} token; Koppel speaks Bearer only",
                system=SYSTEM,
                method="POST",
                endpoint="oauth/token",
            )
        margin = min(self.refresh_margin, lifetime / 5)
        log.debug("AFAS: new access token, valid %.0f s (renewed %.0f s early)", lifetime, margin)
        return AccessToken(value, started + lifetime - margin)


def rejected_token(response: httpx.Response) -> bool:
    """Whether a 401 says the Bearer token itself was rejected (``error="invalid_token"``)."""
    header = response.headers.get("www-authenticate", "")
    return "bearer" in header.casefold() and "invalid_token" in header


def _body_retry_after(response: httpx.Response) -> float | None:
    try:
        value = response.json().get("retry_after")
        return float(value) if value is not None else None
    except (ValueError, AttributeError, TypeError):
        return None


def client_authentication(settings: AfasSettings) -> ClientAuthentication:
    """The OAuth client authentication the settings describe (``auth`` is not ``token``)."""
    client_id = settings.client_id or ""
    if settings.auth == "client_secret":
        secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
        return ClientSecret(client_id, secret, basic=settings.client_secret_method == "basic")  # noqa: S105
    if settings.private_key is not None and settings.private_key.get_secret_value().strip():
        pem = settings.private_key.get_secret_value()
    else:
        pem = read_private_key(settings.private_key_path or "")
    return PrivateKeyJwt(client_id, pem, key_id=settings.key_id, algorithm=settings.jwt_algorithm)


def auth_from_settings(
    settings: AfasSettings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Callable[[float], object] | None = None,
    seed: int | None = None,
) -> tuple[httpx.Auth, list[str]]:
    """The ``httpx.Auth`` for ``KOPPEL_AFAS_AUTH`` and every secret text form it holds (for redaction)."""
    if settings.auth == "token":
        token = settings.token.get_secret_value() if settings.token else ""
        return ClassicTokenAuth(token), secret_forms(token)
    client = client_authentication(settings)
    auth = OAuthAuth(
        settings.token_endpoint,
        client,
        refresh_margin=settings.token_refresh_seconds,
        timeout=min(settings.timeout_seconds, 60.0),
        transport=transport,
        sleep=sleep,
        seed=seed,
    )
    return auth, client.secrets()


def auth_hint(settings: AfasSettings) -> str:
    """What to check when AFAS answers a resource call with 401, per authentication mode."""
    if settings.auth == "token":
        return (
            "check KOPPEL_AFAS_TOKEN (an app connector switched to OAuth only needs "
            "KOPPEL_AFAS_AUTH=client_secret or private_key_jwt)"
        )
    return "check that the connector is linked to the app connector of KOPPEL_AFAS_CLIENT_ID"
