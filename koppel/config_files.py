"""Configuration files (TOML) checked by pydantic models, with errors that name the file and each bad key.

Billing rules, the company sync and the HR sync each have a model; this module loads any of them the same
way: ``load_toml(BillingConfig, "config/billing.toml", BillingConfigError)``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(ValueError):
    """A configuration file is missing, not TOML, or has a bad key; the message names both."""


def describe(error: ValidationError) -> str:
    """One ``key.path: message`` item per problem, joined with ``; ``."""
    lines = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        key = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}" if key else message)
    return "; ".join(lines)


def parse_toml(model: type[M], text: str, source: str, error: type[ConfigFileError]) -> M:
    """Parse TOML text into ``model``; raise ``error`` naming ``source`` and each bad key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as problem:
        raise error(f"{source}: not valid TOML: {problem}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as problem:
        raise error(f"{source}: {describe(problem)}") from None


def load_toml(model: type[M], path: Path | str, error: type[ConfigFileError]) -> M:
    """Read and parse a TOML file into ``model``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        raise error(f"{path}: cannot read: {problem.strerror}") from None
    return parse_toml(model, text, str(path), error)
