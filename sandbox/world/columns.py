"""Column and frame builders the world's pandera schemas share (``topdesk_frames.py``, ``afas_frames.py``)."""

from __future__ import annotations

from typing import Any

import pandera.pandas as pa


def text(description: str = "", **options: Any) -> pa.Column:
    """A ``str`` column."""
    return pa.Column(str, description=description or None, **options)


def key(description: str = "") -> pa.Column:
    """A ``str`` column whose values are unique."""
    return text(description, unique=True)


def one_of(values: tuple[str, ...], description: str = "") -> pa.Column:
    """A ``str`` column holding one of ``values``."""
    return pa.Column(str, pa.Check.isin(values), description=description or None)


def flag(description: str = "") -> pa.Column:
    """A ``bool`` column."""
    return pa.Column(bool, description=description or None)


def number(description: str = "", **options: Any) -> pa.Column:
    """An ``int64`` column."""
    return pa.Column("int64", description=description or None, **options)


def frame(columns: dict[str, pa.Column], description: str) -> pa.DataFrameSchema:
    """A strict, ordered frame: a column added, dropped or moved fails validation."""
    return pa.DataFrameSchema(columns, strict=True, ordered=True, description=description)
