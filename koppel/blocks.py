"""Typed Prefect credential blocks: one per external system, every secret a ``SecretStr``.

Register the types once per Prefect server, then create one document per system in the UI (Blocks → +)
with the name below (``koppel-afas``, ``koppel-topdesk``, ``koppel-oh``)::

    prefect block register -m koppel.blocks

Settings are resolved per value: environment variable > typed block > Secret block named after the
variable (``koppel-afas-token``, the older way) > default (``koppel/settings.py``). A block field left
empty falls through to the next source. ``koppel settings`` shows where each value came from.
"""

from __future__ import annotations

from typing import ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class AfasCredentials(Block):
    """AFAS Profit credentials: a classic token, or an OAuth client id with a secret or a private key."""

    _block_type_name = "Koppel AFAS credentials"
    _block_type_slug = "koppel-afas-credentials"
    _description = "AFAS Profit app-connector credentials for Koppel (classic token or OAuth)."
    document_name: ClassVar[str] = "koppel-afas"

    token: SecretStr | None = Field(
        default=None, description="Classic app-connector token (KOPPEL_AFAS_AUTH=token)."
    )
    client_id: str | None = Field(default=None, description="OAuth client id of the app connector.")
    client_secret: SecretStr | None = Field(
        default=None, description="OAuth client secret (KOPPEL_AFAS_AUTH=client_secret); expires in Profit 9."
    )
    private_key: SecretStr | None = Field(
        default=None, description="PEM private key for private_key_jwt (from `koppel afas keygen`)."
    )
    key_id: str | None = Field(
        default=None, description="JWT kid: the key id set in Profit, or the certificate's SHA-1 thumbprint."
    )


class TopdeskCredentials(Block):
    """TOPdesk API account: operator login and application password."""

    _block_type_name = "Koppel TOPdesk credentials"
    _block_type_slug = "koppel-topdesk-credentials"
    _description = "TOPdesk operator login and application password for Koppel."
    document_name: ClassVar[str] = "koppel-topdesk"

    login: str | None = Field(default=None, description="Operator login name of the API account.")
    application_password: SecretStr | None = Field(
        default=None, description="Application password of that operator."
    )


class OccupationalHealthCredentials(Block):
    """The occupational-health system's API token."""

    _block_type_name = "Koppel occupational-health credentials"
    _block_type_slug = "koppel-oh-credentials"
    _description = "Bearer token of the occupational-health system's API for Koppel."
    document_name: ClassVar[str] = "koppel-oh"

    token: SecretStr | None = Field(default=None, description="Bearer token for that API.")


# Settings env prefix → the block type whose document fills it.
BLOCKS: dict[str, type[AfasCredentials | TopdeskCredentials | OccupationalHealthCredentials]] = {
    "KOPPEL_AFAS_": AfasCredentials,
    "KOPPEL_TOPDESK_": TopdeskCredentials,
    "KOPPEL_OH_": OccupationalHealthCredentials,
}
