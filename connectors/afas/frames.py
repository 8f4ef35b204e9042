"""GetConnector rows → DataFrame typed by ``/metainfo/get/{id}`` (reference §3.5).

dataType → dtype: ``string`` → ``str``; ``int``/``long`` → ``Int64``; ``decimal`` → ``Decimal`` objects
(money stays exact: the JSON was parsed with ``parse_float=Decimal``); ``boolean`` → ``boolean``;
``date`` → ``datetime64[ns, Europe/Amsterdam]`` (AFAS's ``Z`` is local time); ``blob`` → as sent.
Columns keep AFAS's own names and the metainfo order; unexpected columns follow, untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd

from connectors.afas.dates import parse_local

_TRUE = {"true", "1", "yes", "ja"}
_FALSE = {"false", "0", "no", "nee"}


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _integer(value: Any) -> int | None:
    number = _decimal(value)
    if number is None or number != number.to_integral_value():
        return None
    return int(number)


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if value is not None else ""
    return True if text in _TRUE else False if text in _FALSE else None


def _convert(values: pd.Series, data_type: str) -> pd.Series:
    kind = data_type.lower()
    converters: dict[str, Callable[[pd.Series], pd.Series]] = {
        "string": lambda s: s.astype("str"),
        "int": lambda s: pd.Series(pd.array([_integer(v) for v in s], dtype="Int64"), index=s.index),
        "long": lambda s: pd.Series(pd.array([_integer(v) for v in s], dtype="Int64"), index=s.index),
        "decimal": lambda s: pd.Series([_decimal(v) for v in s], index=s.index, dtype=object),
        "boolean": lambda s: pd.Series(pd.array([_boolean(v) for v in s], dtype="boolean"), index=s.index),
        "date": parse_local,
    }
    convert = converters.get(kind)
    return values if convert is None else convert(values)


def to_frame(rows: Sequence[dict[str, Any]], fields: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Rows typed by the metainfo ``fields`` (``id`` + ``dataType``); empty rows give typed empty columns."""
    declared = [str(f["id"]) for f in fields if "id" in f]
    types = {str(f["id"]): str(f.get("dataType") or "string") for f in fields if "id" in f}
    extra = sorted({key for row in rows for key in row} - set(declared))
    frame = pd.DataFrame(list(rows), columns=[*declared, *extra], dtype=object)
    for column in declared:
        frame[column] = _convert(frame[column], types[column])
    return frame
