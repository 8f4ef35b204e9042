"""AFAS Profit 9's OAuth token endpoint and Bearer checks, as strict as AFAS describes them.

Reference: ``afas-oauth.md`` (AFAS's "Authentication for the Profit API"). The app connector is in one of
three modes (``AfasOptions.auth_mode``): ``classic`` (classic token only), ``hybrid`` (both) or ``oauth``
(OAuth only). ``POST /ProfitRestServices/oauth/token`` serves the client-credentials grant:

- client secret in the body (``client_id`` + ``client_secret``) or ``client_secret_basic`` (each value
  form-urlencoded before base64); the secret can be expired (``secret_expired``);
- private-key JWT verified against the configured certificate: signature (RS256/PS256/ES256), ``kid``
  (configured key id or the certificate's SHA-1 thumbprint), ``iss`` = ``sub`` = client id, ``aud`` = the
  token endpoint (or the base URL), ``exp`` at most 5 minutes after ``iat``, 60 s clock skew, ``jti`` replay
  refused;
- ``invalid_request`` (HTTP 400) for a missing ``grant_type``, repeated parameters, two authentication
  methods at once or a body ``client_id`` that differs from the Basic one; ``invalid_client`` (HTTP 401 with
  ``WWW-Authenticate: Basic`` for failed Basic, HTTP 400 otherwise); ``unsupported_grant_type``;
- tokens that expire after ``token_lifetime`` seconds (short in tests).

Resource calls: a missing credential gets 401 offering ``Bearer`` and ``DPoP``; a rejected Bearer token 401
``Bearer error="invalid_token"``; a classic token at an OAuth-only connector 401. ``token_requests`` counts
every call of the token endpoint (tests prove concurrent calls share one).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.requests import Request

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ALGORITHMS = ["RS256", "PS256", "ES256"]
SKEW = 60  # seconds of clock skew AFAS allows
MAX_ASSERTION_LIFETIME = 300
OFFER = "Bearer, DPoP"


@dataclass
class OAuthDenial(Exception):
    """An OAuth error answer: status, ``error`` code, ``error_description`` and extra headers."""

    status: int
    code: str
    description: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, str]:
        """``{"error", "error_description"}``; the description is left out when empty (never null)."""
        return {"error": self.code, **({"error_description": self.description} if self.description else {})}


@dataclass
class OAuthClient:
    """The OAuth side of the simulated app connector: its client id, secret and certificate."""

    client_id: str
    client_secret: str
    private_key_pem: str  # the customer's key, kept here only so the sandbox can hand out working settings
    certificate_pem: str
    key_id: str | None = None

    @property
    def thumbprint(self) -> str:
        """The certificate's SHA-1 thumbprint (the ``kid`` AFAS expects when no key id is configured)."""
        cert = x509.load_pem_x509_certificate(self.certificate_pem.encode())
        return cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 — an identifier

    def public_key(self) -> Any:
        """The certificate's public key."""
        return x509.load_pem_x509_certificate(self.certificate_pem.encode()).public_key()


def default_client(seed: int) -> OAuthClient:
    """Deterministic credentials for a seed: client id, secret and an EC P-256 key with its certificate."""
    from koppel.keygen import key_material

    digest = hashlib.sha256(f"koppel-afas-oauth|{seed}".encode()).digest()
    scalar = int.from_bytes(digest, "big") % (2**255) + 1
    key = ec.derive_private_key(scalar, ec.SECP256R1())
    material = key_material(key, f"koppel-sandbox-{seed}")
    return OAuthClient(
        client_id=f"koppel-{digest[:4].hex()}",
        client_secret=base64.urlsafe_b64encode(digest[4:28]).decode().rstrip("="),
        private_key_pem=material.private_key_pem,
        certificate_pem=material.certificate_pem,
    )


class OAuthServer:
    """Issued tokens, used ``jti`` values and the token-request counter of one simulated environment."""

    def __init__(self, client: OAuthClient, clock: Any = time.time) -> None:
        self.client = client
        self.clock = clock
        self.tokens: dict[str, float] = {}  # access token → expiry (epoch seconds)
        self.used_jti: dict[str, float] = {}  # jti → when it may be forgotten
        self.token_requests = 0
        self.issued = 0
        self._lock = threading.Lock()

    def expire_all(self) -> None:
        """Let every issued access token expire now (tests: a token dies mid-run)."""
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    # ------------------------------------------------------------------ token endpoint

    def token(self, form: list[tuple[str, str]], headers: Any, endpoint: str, options: Any) -> dict[str, Any]:
        """Answer one client-credentials request, or raise ``OAuthDenial``."""
        with self._lock:
            self.token_requests += 1
        params = _single(form)
        if params.get("grant_type") is None:
            raise OAuthDenial(400, "invalid_request", "grant_type is missing")
        if params["grant_type"] != "client_credentials":
            raise OAuthDenial(400, "unsupported_grant_type")
        if options.auth_mode == "classic":
            raise OAuthDenial(400, "invalid_client", "unknown client: classic tokens only")
        self._authenticate(params, headers.get("authorization"), endpoint, options)
        lifetime = int(options.token_lifetime)
        value = secrets.token_urlsafe(32)
        with self._lock:
            self.tokens[value] = self.clock() + lifetime
            self.issued += 1
        return {"access_token": value, "token_type": "Bearer", "expires_in": lifetime}

    def _authenticate(
        self, params: dict[str, str], authorization: str | None, endpoint: str, options: Any
    ) -> str:
        basic = _basic(authorization)
        methods = [
            name
            for name, present in (
                ("basic", basic is not None),
                ("secret", "client_secret" in params),
                ("assertion", "client_assertion" in params or "client_assertion_type" in params),
            )
            if present
        ]
        if len(methods) > 1:
            raise OAuthDenial(400, "invalid_request", "more than one client authentication method")
        if basic is not None:
            if "client_id" in params and params["client_id"] != basic[0]:
                raise OAuthDenial(400, "invalid_request", "client_id differs from the Basic credentials")
            self._check_secret(*basic, options, basic_auth=True)
            return basic[0]
        if not methods:
            raise OAuthDenial(400, "invalid_client", "no client authentication")
        if methods == ["secret"]:
            self._check_secret(
                params.get("client_id", ""), params["client_secret"], options, basic_auth=False
            )
            return params.get("client_id", "")
        return self._check_assertion(params, endpoint)

    def _check_secret(self, client_id: str, secret: str, options: Any, *, basic_auth: bool) -> None:
        known = self.client
        good = client_id == known.client_id and secrets.compare_digest(
            secret.encode("utf-8"), known.client_secret.encode("utf-8")
        )
        if not good:
            headers = {"WWW-Authenticate": 'Basic realm="ProfitRestServices"'} if basic_auth else {}
            raise OAuthDenial(
                401 if basic_auth else 400, "invalid_client", "client authentication failed", headers
            )
        if options.secret_expired:
            raise OAuthDenial(400, "invalid_client", "the client secret has expired")

    def _check_assertion(self, params: dict[str, str], endpoint: str) -> str:
        if params.get("client_assertion_type") != ASSERTION_TYPE or not params.get("client_assertion"):
            raise OAuthDenial(400, "invalid_request", "client_assertion_type must be jwt-bearer")
        assertion = params["client_assertion"]
        client = self.client
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            raise OAuthDenial(400, "invalid_client", "the client assertion is not a JWT") from None
        if header.get("alg") not in ALGORITHMS:
            raise OAuthDenial(400, "invalid_client", "the assertion's alg is not RS256, PS256 or ES256")
        kid = header.get("kid")
        if kid is not None and kid not in {client.key_id, client.thumbprint} - {None}:
            raise OAuthDenial(400, "invalid_client", "unknown kid: no certificate with this key id")
        claims = self._verify(assertion, endpoint, header["alg"])
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise OAuthDenial(400, "invalid_client", "iss and sub must be the client id")
        if params.get("client_id") not in (None, client.client_id):
            raise OAuthDenial(400, "invalid_request", "client_id differs from the assertion's iss")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_ASSERTION_LIFETIME:
            raise OAuthDenial(400, "invalid_client", "the assertion's exp is more than 5 minutes after iat")
        if int(claims["iat"]) > self.clock() + SKEW:
            raise OAuthDenial(400, "invalid_client", "the assertion's iat lies in the future")
        self._spend(str(claims["jti"]), float(claims["exp"]))
        return client.client_id

    def _verify(self, assertion: str, endpoint: str, algorithm: str) -> dict[str, Any]:
        audiences = [endpoint, endpoint.removesuffix("/oauth/token")]
        try:
            return jwt.decode(
                assertion,
                self.client.public_key(),
                algorithms=[algorithm],
                audience=audiences,
                leeway=SKEW,
                options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"], "verify_iat": False},
            )
        except jwt.ExpiredSignatureError:
            raise OAuthDenial(400, "invalid_client", "the client assertion has expired (exp)") from None
        except jwt.InvalidAudienceError:
            raise OAuthDenial(400, "invalid_client", "the assertion's aud is not this endpoint") from None
        except jwt.InvalidSignatureError:
            raise OAuthDenial(400, "invalid_client", "the assertion's signature does not verify") from None
        except jwt.InvalidTokenError as exc:
            raise OAuthDenial(400, "invalid_client", f"invalid client assertion: {exc}") from None

    def _spend(self, jti: str, exp: float) -> None:
        now = self.clock()
        with self._lock:
            self.used_jti = {k: v for k, v in self.used_jti.items() if v > now}
            if jti in self.used_jti:
                raise OAuthDenial(400, "invalid_client", "the assertion's jti was already used (replay)")
            self.used_jti[jti] = exp + SKEW

    # ------------------------------------------------------------------ resource calls

    def bearer_valid(self, token: str) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        with self._lock:
            expiry = self.tokens.get(token)
        return expiry is not None and self.clock() < expiry


def parse_form(request: Request, raw: bytes) -> list[tuple[str, str]]:
    """The form fields of a token request; ``invalid_request`` unless it is form-urlencoded UTF-8."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().casefold()
    if kind != "application/x-www-form-urlencoded":
        raise OAuthDenial(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
    try:
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(raw))
    except (UnicodeDecodeError, ValueError):
        raise OAuthDenial(400, "invalid_request", "malformed form body") from None


def _single(form: list[tuple[str, str]]) -> dict[str, str]:
    names = [name for name, _ in form]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise OAuthDenial(400, "invalid_request", f"repeated parameter {repeated[0]}")
    return dict(form)


def _basic(header: str | None) -> tuple[str, str] | None:
    scheme, _, value = (header or "").strip().partition(" ")
    if scheme.casefold() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthDenial(
            401, "invalid_client", "malformed Basic credentials", {"WWW-Authenticate": "Basic"}
        ) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise OAuthDenial(401, "invalid_client", "malformed Basic credentials", {"WWW-Authenticate": "Basic"})
    return unquote_plus(client_id), unquote_plus(secret)
