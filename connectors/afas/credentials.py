"""How Koppel proves who it is to AFAS's token endpoint: a client secret or a private-key JWT.

- ``ClientSecret``: ``client_id`` + ``client_secret`` in the form body, or ``client_secret_basic`` (Profit 9):
  ``Authorization: Basic base64(urlencode(id) + ":" + urlencode(secret))``, each value form-urlencoded first.
- ``PrivateKeyJwt``: a signed client assertion (RFC 7523; RS256, PS256 or ES256; ``iss`` = ``sub`` = client
  id, ``aud`` = the token endpoint, unique ``jti``, ``iat``, ``exp`` = ``iat`` + 60 s, optional ``kid``), a
  new one for every token request. AFAS's preferred method (reference ``afas-oauth.md``).

Both register every text form of their secret with ``connectors.redaction`` and hide it in ``repr``.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connectors.redaction import register_secrets

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60  # seconds; AFAS prefers iat + 60 s and allows at most 5 minutes
MAX_ASSERTION_LIFETIME = 300
ALGORITHMS = ("RS256", "PS256", "ES256")


@dataclass(frozen=True)
class TokenRequest:
    """One token request's form fields and extra headers (never logged)."""

    data: dict[str, str]
    headers: dict[str, str]


class ClientSecret:
    """``client_id`` + ``client_secret`` in the body, or ``client_secret_basic`` (Profit 9)."""

    settings = ("KOPPEL_AFAS_CLIENT_ID", "KOPPEL_AFAS_CLIENT_SECRET")

    def __init__(self, client_id: str, secret: str, *, basic: bool = False) -> None:
        self.client_id = client_id
        self._secret = secret
        self.basic = basic
        register_secrets([secret, self._basic_value()])

    def __repr__(self) -> str:
        return f"ClientSecret(client_id={self.client_id!r}, secret=***, basic={self.basic})"

    def _basic_value(self) -> str:
        # RFC 6749 §2.3.1: each value form-urlencoded before joining (AFAS's client_secret_basic).
        joined = f"{quote_plus(self.client_id)}:{quote_plus(self._secret)}"
        return base64.b64encode(joined.encode("utf-8")).decode("ascii")

    def fingerprint(self) -> str:
        """A hash naming this credential in the token cache (a changed secret gets its own token)."""
        return hashlib.sha256(f"secret|{self.basic}|{self._secret}".encode()).hexdigest()

    def secrets(self) -> list[str]:
        """Every form of the secret that must never be logged."""
        return [self._secret, self._basic_value()]

    def request(self, token_url: str) -> TokenRequest:
        """The form fields (and Basic header) that authenticate this client."""
        if self.basic:
            return TokenRequest({}, {"Authorization": f"Basic {self._basic_value()}"})
        return TokenRequest({"client_id": self.client_id, "client_secret": self._secret}, {})


class PrivateKeyJwt:
    """A signed client assertion per token request (RFC 7523), AFAS's preferred method."""

    settings = ("KOPPEL_AFAS_CLIENT_ID", "KOPPEL_AFAS_PRIVATE_KEY", "KOPPEL_AFAS_KEY_ID")

    def __init__(
        self,
        client_id: str,
        private_key_pem: str,
        *,
        key_id: str | None = None,
        algorithm: str | None = None,
        lifetime: int = ASSERTION_LIFETIME,
        audience: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < lifetime <= MAX_ASSERTION_LIFETIME:
            raise ValueError("the client assertion may live at most 5 minutes")
        self.client_id = client_id
        self.key_id = key_id
        self._pem = private_key_pem
        register_secrets([private_key_pem, *private_key_pem.splitlines()])
        self._key = load_private_key(private_key_pem)
        self.algorithm = algorithm or default_algorithm(self._key)
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"KOPPEL_AFAS_JWT_ALGORITHM must be one of {', '.join(ALGORITHMS)}")
        self.lifetime = lifetime
        self.audience = audience  # None: the token endpoint (AFAS also accepts the base URL)
        self._clock = clock

    def __repr__(self) -> str:
        return f"PrivateKeyJwt({self.client_id!r}, key=***, kid={self.key_id!r}, alg={self.algorithm})"

    def fingerprint(self) -> str:
        """A hash naming this credential in the token cache (a new key gets its own token)."""
        return hashlib.sha256(f"jwt|{self.key_id}|{self._pem}".encode()).hexdigest()

    def secrets(self) -> list[str]:
        """The private key's text (every line of the PEM)."""
        return [self._pem, *self._pem.splitlines()]

    def assertion(self, token_url: str) -> str:
        """A fresh signed JWT: ``iss`` = ``sub`` = client id, ``aud`` = the token endpoint, unique ``jti``."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience or token_url,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + self.lifetime,
        }
        headers = {"typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        signed = jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)
        register_secrets([signed])
        return signed

    def request(self, token_url: str) -> TokenRequest:
        """``client_id``, ``client_assertion_type`` and a new ``client_assertion``."""
        return TokenRequest(
            {
                "client_id": self.client_id,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.assertion(token_url),
            },
            {},
        )


ClientAuthentication = ClientSecret | PrivateKeyJwt


def load_private_key(pem: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """An RSA (≥ 2048 bits) or EC P-256 private key from PEM text; ``ValueError`` naming the setting."""
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError):
        raise ValueError(
            "KOPPEL_AFAS_PRIVATE_KEY (or the file KOPPEL_AFAS_PRIVATE_KEY_PATH) is not an unencrypted PEM "
            "private key"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise ValueError("KOPPEL_AFAS_PRIVATE_KEY must be an RSA key of at least 2048 bits or an EC P-256 key")


def default_algorithm(key: object) -> str:
    """RS256 for RSA keys, ES256 for EC P-256 keys."""
    return "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"


def read_private_key(path: str | Path) -> str:
    """The PEM text of a key file (``KOPPEL_AFAS_PRIVATE_KEY_PATH``), one line if it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"KOPPEL_AFAS_PRIVATE_KEY_PATH cannot be read ({exc.strerror})") from None
