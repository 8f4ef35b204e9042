"""AFAS classic-token normalisation (reference §2, decision §11.2); the ``httpx.Auth`` is in ``auth.py``.

An app-connector token is the XML ``<token><version>1</version><data>{64 hex}</data></token>``. People
paste it as that XML, as only the 64-hex data part, or already base64-encoded; whatever was configured,
the client always sends ``Authorization: AfasToken base64(xml)``. Error messages never echo the value.
"""

from __future__ import annotations

import base64
import binascii
import re

_XML = re.compile(
    r"<token>\s*<version>\s*(\d+)\s*</version>\s*<data>\s*([0-9a-fA-F]{64})\s*</data>\s*</token>"
)
_HEX = re.compile(r"[0-9a-fA-F]{64}")


class TokenFormatError(ValueError):
    """The configured AFAS token is neither XML, 64 hex characters nor base64 of the XML."""


def token_xml(version: str, data: str) -> str:
    """The canonical token XML for a version and 64-hex data part."""
    return f"<token><version>{version}</version><data>{data}</data></token>"


def normalise_token(raw: str) -> str:
    """The canonical token XML for a configured token in any of the three accepted forms."""
    text = raw.strip()
    if match := _XML.fullmatch(text):
        return token_xml(match.group(1), match.group(2))
    if _HEX.fullmatch(text):
        return token_xml("1", text)
    decoded = _b64decode(text)
    if decoded is not None and (match := _XML.fullmatch(decoded.strip())):
        return token_xml(match.group(1), match.group(2))
    raise TokenFormatError(
        "KOPPEL_AFAS_TOKEN is not an AFAS token: expected the XML <token>…</token>, "
        "its 64-hex <data> part, or base64 of the XML"
    )


def _b64decode(text: str) -> str | None:
    try:
        return base64.b64decode(text, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def authorization_value(raw: str) -> str:
    """The ``Authorization`` header value for a configured token."""
    encoded = base64.b64encode(normalise_token(raw).encode("utf-8")).decode("ascii")
    return f"AfasToken {encoded}"


def secret_forms(raw: str) -> list[str]:
    """Every text form of the token that must never appear in a log (raw, XML, data, base64, header)."""
    xml = normalise_token(raw)
    data = _XML.fullmatch(xml)
    header = authorization_value(raw)
    forms = [raw, raw.strip(), xml, header, header.split(" ", 1)[1]]
    if data:
        forms.append(data.group(2))
    return forms
