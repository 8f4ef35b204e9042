"""Key pairs and self-signed X.509 certificates for AFAS's private-key JWT (``koppel afas keygen``).

AFAS Profit 9 verifies a client assertion with the public key of a certificate uploaded to the app connector
(reference ``afas-oauth.md``); AFAS advises one key pair per customer environment. The private key stays with
Koppel (a file readable by the worker only, or a credentials block); the certificate goes to Profit. Its
SHA-1 thumbprint is the ``kid`` AFAS expects when no key id was set in Profit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

KeyType = Literal["rsa", "ec"]
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class KeyMaterial:
    """A private key (PEM, unencrypted), its certificate (PEM) and the certificate's SHA-1 thumbprint."""

    private_key_pem: str
    certificate_pem: str
    thumbprint: str

    def __repr__(self) -> str:
        return f"KeyMaterial(private_key=***, thumbprint={self.thumbprint!r})"


def new_private_key(kind: KeyType = "rsa", bits: int = 3072) -> PrivateKey:
    """A fresh RSA (≥ 2048 bits, default 3072) or EC P-256 private key."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if bits < 2048:
        raise ValueError("AFAS needs RSA keys of at least 2048 bits")
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed_certificate(key: PrivateKey, common_name: str, days: int = 730) -> x509.Certificate:
    """A self-signed certificate for ``key`` valid ``days`` days from now (what Profit's upload wants)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def thumbprint(certificate: x509.Certificate) -> str:
    """The certificate's SHA-1 thumbprint, upper-case hex (AFAS's default ``kid``)."""
    return certificate.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 — an identifier, not security


def key_material(key: PrivateKey, common_name: str, days: int = 730) -> KeyMaterial:
    """PEM texts and thumbprint for ``key`` and a new self-signed certificate."""
    certificate = self_signed_certificate(key, common_name, days)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
    return KeyMaterial(private_pem, certificate_pem, thumbprint(certificate))


def generate(common_name: str, kind: KeyType = "rsa", bits: int = 3072, days: int = 730) -> KeyMaterial:
    """A new key pair and self-signed certificate for one customer environment."""
    return key_material(new_private_key(kind, bits), common_name, days)
