"""Loading settings so that a wrong or missing value stops the run with one line naming the setting.

Every external system has its own pydantic-settings model (``connectors/<system>/settings.py``,
``store/settings.py``). This module only knows how to build one of them from the environment,
optionally filling secrets from a secret source (in deployments: Prefect Secret blocks, see
``tasks/secrets.py``), and how to phrase a validation failure for a human.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)

SecretSource = Callable[[str], "str | None"]


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
        lines.append(f"{env_name(cls, field)} {message}")
    return "; ".join(lines)


def load(cls: type[S], secrets: SecretSource | None = None, **overrides: object) -> S:
    """Build settings from the environment (and ``overrides``), raising ``SettingsError`` on bad input.

    When ``secrets`` is given, secret fields that the environment leaves empty are looked up there
    by their environment variable name (e.g. ``KOPPEL_AFAS_TOKEN``).
    """
    values = dict(overrides)
    if secrets is not None:
        for field in secret_fields(cls):
            if field in values:
                continue
            try:
                cls(**values)  # type: ignore[call-arg]
                break
            except ValidationError as probe:
                missing = {str(e["loc"][0]) for e in probe.errors() if e["type"] == "missing"}
            if field in missing:
                found = secrets(env_name(cls, field))
                if found is not None:
                    values[field] = found
    try:
        return cls(**values)  # type: ignore[call-arg]
    except ValidationError as error:
        raise SettingsError(f"Invalid settings: {describe(cls, error)}") from None
