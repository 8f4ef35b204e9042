"""Secrets for deployments: fill settings' secret fields from Prefect Secret blocks.

In a deployment the worker's environment carries no tokens; the integration engineer stores them as
Prefect Secret blocks named after the environment variable, lower-case with dashes
(``KOPPEL_AFAS_TOKEN`` → block ``koppel-afas-token``). Environment variables still win, so local runs
and tests need no blocks.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic_settings import BaseSettings

from koppel.settings import load

S = TypeVar("S", bound=BaseSettings)


def block_name(env_var: str) -> str:
    """The Secret block name for an environment variable (``KOPPEL_AFAS_TOKEN`` → ``koppel-afas-token``)."""
    return env_var.lower().replace("_", "-")


def secret_from_block(env_var: str) -> str | None:
    """Read a Prefect Secret block for ``env_var``; None when no such block exists."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(block_name(env_var), _sync=True)  # type: ignore[call-arg]
    except ValueError:  # Prefect raises ValueError for an unknown block document
        return None
    return str(value.get())


def load_settings(cls: type[S], **overrides: object) -> S:
    """Load settings from the environment, taking missing secrets from Prefect Secret blocks."""
    return load(cls, secrets=secret_from_block, **overrides)
