"""Secrets for deployments: fill settings from typed credential blocks and Prefect Secret blocks.

In a deployment the worker's environment carries no tokens. The integration engineer keeps them in one
typed credentials block per system (``koppel/blocks.py``: documents ``koppel-afas``, ``koppel-topdesk``,
``koppel-oh``) or, the older way, in Prefect Secret blocks named after the environment variable, lower-case
with dashes (``KOPPEL_AFAS_TOKEN`` → block ``koppel-afas-token``). Environment variables still win, so
local runs and tests need no blocks. Order per value: env > typed block > Secret block > default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import SecretStr
from pydantic_settings import BaseSettings

from koppel.dispatch import synchronous
from koppel.settings import Resolved, block_name, resolve

S = TypeVar("S", bound=BaseSettings)


__all__ = ["block_name", "credentials_from_block", "load_settings", "resolve_settings", "secret_from_block"]


def secret_from_block(env_var: str) -> str | None:
    """Read a Prefect Secret block for ``env_var``; None when no such block exists."""
    from prefect.blocks.system import Secret

    try:
        value = synchronous(Secret.load(block_name(env_var), _sync=True))  # type: ignore[call-arg]  # _sync: Prefect's sync/async dispatch keyword
    except ValueError:  # Prefect raises ValueError for an unknown block document
        return None
    return str(value.get())


def credentials_from_block(cls: type[BaseSettings]) -> tuple[str, Mapping[str, Any]] | None:
    """The typed credentials block document for a settings class (``koppel-afas`` …), or None."""
    from koppel.blocks import BLOCKS

    block_type = BLOCKS.get(str(cls.model_config.get("env_prefix", "")))
    if block_type is None:
        return None
    try:
        block = synchronous(block_type.load(block_type.document_name, _sync=True))  # type: ignore[call-arg]  # _sync: Prefect's sync/async dispatch keyword
    except ValueError:  # Prefect raises ValueError for an unknown block document or type
        return None
    values = {
        name: value.get_secret_value() if isinstance(value, SecretStr) else value
        for name in type(block).model_fields
        if (value := getattr(block, name, None)) is not None
    }
    return f"block {block_type.document_name}", values


def resolve_settings(cls: type[S], **overrides: object) -> Resolved[S]:
    """Settings with the source of each value: env > typed block > Secret block > default."""
    return resolve(cls, secrets=secret_from_block, block=credentials_from_block, **overrides)


def load_settings(cls: type[S], **overrides: object) -> S:
    """Load settings from the environment, the typed credentials block and Prefect Secret blocks."""
    return resolve_settings(cls, **overrides).settings
