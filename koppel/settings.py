"""Loading settings so that a wrong or missing value stops the run with one line naming the setting.

Every external system has its own pydantic-settings model (``connectors/<system>/settings.py``,
``store/settings.py``). This module knows how to build one of them, value by value, from

1. the environment (``KOPPEL_*``), then
2. a typed credentials block (``koppel/blocks.py``; a ``BlockSource``), then
3. a Prefect Secret block named after the variable, for secrets the model still lacks (``SecretSource``), then
4. the model's default,

remembering where each value came from (``resolve``), and how to phrase a validation failure for a human.
The Prefect-backed sources live in ``tasks/secrets.py``; this module never imports Prefect.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)

SecretSource = Callable[[str], "str | None"]
# A typed block for a settings class: (label such as "block koppel-afas", its non-empty values) or None.
BlockSource = Callable[[type[BaseSettings]], "tuple[str, Mapping[str, Any]] | None"]


class SettingsError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


def env_name(cls: type[BaseSettings], field: str) -> str:
    """Return the environment variable that feeds ``field`` of a settings class."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    return f"{prefix}{field}".upper()


def secret_fields(cls: type[BaseSettings]) -> list[str]:
    """Names of the fields of ``cls`` that hold secrets (typed ``SecretStr``)."""
    return [
        name
        for name, info in cls.model_fields.items()
        if info.annotation is SecretStr or "SecretStr" in str(info.annotation)
    ]


def mask_url_password(url: str) -> str:
    """``scheme://user:***@host/db`` for ``scheme://user:password@host/db``; other text unchanged."""
    return re.sub(r"^([^:/?#]+://[^:/@?#]*):[^@/?#]*@", r"\1:***@", url)


def describe(cls: type[BaseSettings], error: ValidationError) -> str:
    """Phrase a pydantic validation error as one line per setting, naming its env var."""
    lines = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else "?"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "is required but not set" if message == "Field required" else message
        elif "input" in item and field not in secret_fields(cls):
            message = f"{message} (got {item['input']!r})"
        elif isinstance(item.get("input"), str) and "://" in item["input"]:  # a secret URL: its password
            message = f"{message} (got {mask_url_password(item['input'])!r})"
        lines.append(f"{env_name(cls, field)} {message}")
    return "; ".join(lines)


def block_name(env_var: str) -> str:
    """The Secret block name for an environment variable (``KOPPEL_AFAS_TOKEN`` → ``koppel-afas-token``)."""
    return env_var.lower().replace("_", "-")


@dataclass(frozen=True)
class Resolved(Generic[S]):
    """Settings and, per field, where its value came from (env, block …, secret block …, default)."""

    settings: S
    sources: dict[str, str]


def resolve(
    cls: type[S],
    secrets: SecretSource | None = None,
    block: BlockSource | None = None,
    **overrides: object,
) -> Resolved[S]:
    """Build settings value by value: env > typed block > Secret block (missing secrets only) > default."""
    values: dict[str, Any] = dict(overrides)
    sources = dict.fromkeys(overrides, "given")
    environment = {name.upper() for name in os.environ}
    for field in cls.model_fields:
        if field not in values and env_name(cls, field) in environment:
            sources[field] = "env"
    found = block(cls) if block is not None else None
    if found is not None:
        label, block_values = found
        for field, value in block_values.items():
            if field in cls.model_fields and field not in sources and value not in (None, ""):
                values[field], sources[field] = value, label
    if secrets is not None:
        for field in _missing_secrets(cls, values):
            secret = secrets(env_name(cls, field))
            if secret is not None:
                values[field], sources[field] = secret, f"secret block {block_name(env_name(cls, field))}"
    try:
        settings = cls(**values)
    except ValidationError as error:
        raise SettingsError(f"Invalid settings: {describe(cls, error)}") from None
    return Resolved(settings, {field: sources.get(field, "default") for field in cls.model_fields})


def _missing_secrets(cls: type[BaseSettings], values: dict[str, Any]) -> list[str]:
    """The secret fields that the model reports missing with ``values`` and the environment."""
    try:
        cls(**values)
    except ValidationError as probe:
        missing = {str(e["loc"][0]) for e in probe.errors() if e["type"] == "missing" and e["loc"]}
        return [field for field in secret_fields(cls) if field in missing]
    return []


def load(
    cls: type[S], secrets: SecretSource | None = None, block: BlockSource | None = None, **overrides: object
) -> S:
    """Build settings (see ``resolve``), raising ``SettingsError`` with one line per wrong setting.

    When ``secrets`` is given, secret fields that the environment (and the block) leave empty are looked
    up there by their environment variable name (e.g. ``KOPPEL_AFAS_TOKEN``).
    """
    return resolve(cls, secrets, block, **overrides).settings
