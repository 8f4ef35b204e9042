"""The simulator's tables: rows as plain Python values, a cached column view for filtering and sorting.

Rows hold ``str``, ``int``, ``Decimal``, ``bool``, naive Amsterdam-local ``datetime`` or ``None``. Queries
run on a pandas view of the table built lazily per version (appends are added incrementally, so a
stream of posts followed by look-ups stays cheap). Strings are compared case-insensitively, the way
Profit's SQL collation does. Rows are rendered straight to single-line JSON, datetimes with AFAS's ``Z``
and decimals with their metainfo decimals.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from koppel.clock import AMSTERDAM


class Table:
    """Rows of one kind (debtors, realisations, …), optionally keyed for look-ups."""

    def __init__(
        self, name: str, types: dict[str, str], key: str | None = None, indexed: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.types = types  # column → data type of every column any connector reads
        self.key = key
        self.rows: list[dict[str, Any]] = []
        self.version = 0
        self._by_key: dict[str, dict[str, Any]] = {}
        self._indexes: dict[str, dict[Any, list[dict[str, Any]]]] = {column: {} for column in indexed}
        self._columns: dict[str, pd.Series] = {}
        self._view_dirty = False

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows)

    def add(self, row: dict[str, Any]) -> dict[str, Any]:
        """Append a row (missing columns become ``None``)."""
        full = dict.fromkeys(self.types)
        full.update(row)
        self.rows.append(full)
        if self.key is not None:
            self._by_key[fold(full[self.key])] = full
        for column, index in self._indexes.items():
            index.setdefault(fold(full.get(column)), []).append(full)
        self.version += 1
        return full

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append many rows."""
        for row in rows:
            self.add(row)

    def get(self, key: object) -> dict[str, Any] | None:
        """The row with this key (case-insensitive), or ``None``."""
        return self._by_key.get(fold(key))

    def update(self, row: dict[str, Any], changes: dict[str, Any]) -> None:
        """Change a row in place."""
        if self.key is not None and self.key in changes:
            self._by_key.pop(fold(row[self.key]), None)
            self._by_key[fold(changes[self.key])] = row
        for column, index in self._indexes.items():
            if column in changes:
                index[fold(row.get(column))].remove(row)
                index.setdefault(fold(changes[column]), []).append(row)
        row.update(changes)
        self.version += 1
        self._view_dirty = True

    def remove(self, doomed: Iterable[dict[str, Any]]) -> int:
        """Hard-delete rows (identity match); returns how many went."""
        ids = {id(row) for row in doomed}
        before = len(self.rows)
        self.rows = [row for row in self.rows if id(row) not in ids]
        if self.key is not None:
            self._by_key = {fold(row[self.key]): row for row in self.rows}
        for column in self._indexes:
            self._indexes[column] = {}
            for row in self.rows:
                self._indexes[column].setdefault(fold(row.get(column)), []).append(row)
        self.version += 1
        self._view_dirty = True
        return before - len(self.rows)

    def where(self, **equal: object) -> list[dict[str, Any]]:
        """Rows whose columns equal the given values (case-insensitive for text)."""
        wanted = {column: fold(value) for column, value in equal.items()}
        indexed = next((c for c in wanted if c in self._indexes), None)
        candidates = self._indexes[indexed].get(wanted[indexed], []) if indexed else self.rows
        return [row for row in candidates if all(fold(row.get(c)) == v for c, v in wanted.items())]

    def view(self) -> Table:
        """The query view: the table itself, indexable by column (see ``column``)."""
        return self

    def __getitem__(self, column: str) -> pd.Series:
        return self.column(column)

    def column(self, name: str) -> pd.Series:
        """One column for filtering and sorting, built on first use per version (appends added on).

        Text is case-folded, dates are ``datetime64``, decimals ``float64`` (exact enough to compare).
        """
        if self._view_dirty:
            self._columns.clear()
            self._view_dirty = False
        count = len(self.rows)
        series = self._columns.get(name)
        if series is None or len(series) > count:
            series = _series([row.get(name) for row in self.rows], self.types[name], pd.RangeIndex(0, count))
        elif len(series) < count:
            done = len(series)
            tail = _series(
                [row.get(name) for row in self.rows[done:]], self.types[name], pd.RangeIndex(done, count)
            )
            series = pd.concat([series, tail]) if done else tail
        self._columns[name] = series
        return series


def fold(value: object) -> Any:
    """Case-folded text (other values unchanged): Profit compares text case-insensitively."""
    return value.casefold() if isinstance(value, str) else value


def _series(values: list[Any], kind: str, index: pd.RangeIndex) -> pd.Series:
    if kind == "string":
        return pd.Series(
            [v.casefold() if isinstance(v, str) else None for v in values], index=index, dtype="str"
        )
    if kind == "date":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype=object)).to_numpy(), index=index)
    if kind == "boolean":
        return pd.Series(values, index=index, dtype="boolean")
    if kind == "int":
        return pd.Series(values, index=index, dtype="Int64")
    return pd.Series([None if v is None else float(v) for v in values], index=index, dtype="float64")


# ---------------------------------------------------------------------------- JSON rendering


def render_rows(rows: list[dict[str, Any]], columns: list[tuple[str, str, int]]) -> str:
    """Rows as a JSON array text; ``columns`` are ``(id, data type, decimals)`` in output order.

    The C encoder does the work; dates become ``"YYYY-MM-DDTHH:MM:SSZ"`` first, and decimals a marked
    string that is unquoted afterwards, so they come out as exact JSON numbers (``125.00``).
    """
    names = [name for name, _, _ in columns]
    special = [(name, kind, decimals) for name, kind, decimals in columns if kind in ("date", "decimal")]
    items = []
    for row in rows:
        item = {name: row.get(name) for name in names}
        for name, kind, decimals in special:
            value = item[name]
            if value is not None:
                item[name] = _date(value) if kind == "date" else f"{_OPEN}{_decimal(value, decimals)}{_CLOSE}"
        items.append(item)
    text = json.dumps(items, ensure_ascii=False, separators=(",", ":"))
    return text.replace(_OPEN_JSON, "").replace(_CLOSE_JSON, "") if _OPEN_JSON in text else text


def _decimal(value: Any, decimals: int) -> str:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    return format(number.quantize(Decimal(1).scaleb(-decimals)), "f")


def _date(value: Any) -> str:
    moment = value if isinstance(value, datetime) else pd.Timestamp(value).to_pydatetime()
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# Decimal markers: control characters no AFAS text holds; json.dumps writes them as \u0000\u0001.
_OPEN, _CLOSE = "\x00\x01", "\x01\x00"
_OPEN_JSON, _CLOSE_JSON = '"\\u0000\\u0001', '\\u0001\\u0000"'


def python_value(value: Any, kind: str) -> Any:
    """A frame cell as the row value of ``kind`` (NaN/NaT → ``None``, tz-aware → naive Amsterdam)."""
    if value is None or (not isinstance(value, str | Decimal | bool) and pd.isna(value)):
        return None
    if kind == "date":
        stamp = pd.Timestamp(value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("Europe/Amsterdam").tz_localize(None)
        return stamp.to_pydatetime()
    if kind == "int":
        return int(value)
    if kind == "boolean":
        return bool(value)
    if kind == "decimal":
        return value if isinstance(value, Decimal) else Decimal(str(value))
    return str(value)


def rows_from_frame(frame: pd.DataFrame, types: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of a world frame (only the columns in ``types``), values as ``python_value`` makes them."""
    names = [column for column in types if column in frame.columns]
    columns = [_python_column(frame[column], types[column]) for column in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)] if names else []


def _python_column(series: pd.Series, kind: str) -> list[Any]:
    """A whole column converted at once (much faster than cell by cell)."""
    missing = series.isna().to_numpy()
    if kind == "date":
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            series = series.dt.tz_convert("Europe/Amsterdam").dt.tz_localize(None)
        values = np.array(pd.to_datetime(series).dt.to_pydatetime(), dtype=object)
    elif kind == "decimal":
        values = np.array(
            [v if isinstance(v, Decimal) else python_value(v, kind) for v in series.tolist()], dtype=object
        )
    else:
        values = np.empty(len(series), dtype=object)
        values[:] = series.tolist()  # Python str / int / bool scalars
    values[missing] = None
    return values.tolist()


_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?)?(Z|[+-]\d{2}:?\d{2})?")


def parse_local(text: str) -> datetime:
    """``YYYY-MM-DD[THH:MM[:SS[.fffffff]]]`` with optional ``Z`` or offset, as naive Amsterdam-local time.

    A ``Z`` does not mean UTC in AFAS (it marks local time), so it is dropped; a real offset is converted.
    """
    value = text.strip()
    match = _LOCAL.fullmatch(value)
    if match is None:
        raise ValueError(text)
    zone = match.group(1)
    plain = value.removesuffix("Z").replace(" ", "T")
    parsed = datetime.fromisoformat(plain[:26] if "." in plain and zone in (None, "Z") else plain)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(AMSTERDAM).replace(tzinfo=None)
    return parsed
