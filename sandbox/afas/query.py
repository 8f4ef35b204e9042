"""GetConnector query semantics: skip/take, compact and JSON filters, ordering (reference §3, §10.2).

- ``skip``/``take`` default 0/100; ``skip=-1`` returns everything (``take`` ignored); any other negative
  value (``skip=2&take=-1``, ``skip=-5``) or a non-number → 500 ``Er is een onverwachte fout opgetreden.``
- ``filterfieldids``/``filtervalues``/``operatortypes``: ``,`` AND, ``;`` OR, operators 1–15; ``filterjson``
  the same tree as JSON (``Field``s AND-ed, ``Filter``s OR-ed); both given → AND-ed together.
- Operators 6 and 10–14 strip leading/trailing ``%``; 8/9 ignore the value; 15 (quick filter) = contains.
  Comparisons follow SQL: a null never matches 1–7 or 10–15. Text compares case-insensitively.
- Date values with or without ``Z`` (both Amsterdam local), date only or date-time.
- ``orderbyfieldids`` with ``-`` for descending; a dotted name → 500 ``General message: Invalid Index
  field``; unknown fields → 500 ``Connector-veld 'X' niet gevonden``. Without an order the caller shuffles.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd

from sandbox.afas.connectors import GetConnector
from sandbox.afas.errors import AfasError, field_not_found, unexpected
from sandbox.afas.tables import parse_local

DEFAULT_TAKE = 100
_TEXT_OPS = {6, 10, 11, 12, 13, 14, 15}


@dataclass(frozen=True)
class Condition:
    """One filter condition on a column (canonical id) with an AFAS operator code."""

    column: str
    operator: int
    value: str


@dataclass
class Query:
    """A parsed GetConnector request."""

    skip: int = 0
    take: int = DEFAULT_TAKE
    groups: list[list[Condition]] = field(default_factory=list)  # OR of AND groups
    order: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)

    @property
    def everything(self) -> bool:
        """``skip=-1``: all rows, whatever ``take`` says."""
        return self.skip == -1

    def signature(self) -> tuple[object, ...]:
        """What determines the matching rows and their order (for caching)."""
        groups = tuple(tuple(g) for g in self.groups)
        return (groups, tuple(self.order))


def parse_query(params: list[tuple[str, str]], connector: GetConnector) -> Query:
    """Parse the query string parameters (names case-insensitive) for ``connector``."""
    values = {name.casefold(): value for name, value in params}
    query = Query(skip=_number(values.get("skip"), 0), take=_number(values.get("take"), DEFAULT_TAKE))
    if query.skip < -1 or (query.skip != -1 and query.take < 0):
        raise unexpected()
    compact = _compact(values, connector)
    from_json = _filterjson(values["filterjson"], connector) if values.get("filterjson") else []
    query.groups = _and_groups(compact, from_json)
    query.order = _order(values.get("orderbyfieldids", ""), connector)
    return query


def _number(text: str | None, default: int) -> int:
    if text is None or text.strip() == "":
        return default
    if not re.fullmatch(r"\s*-?\d+\s*", text):
        raise unexpected()
    return int(text)


def _compact(values: dict[str, str], connector: GetConnector) -> list[list[Condition]]:
    fields = values.get("filterfieldids", "")
    if not fields:
        return []
    field_groups = fields.split(";")
    value_groups = values.get("filtervalues", "").split(";")
    op_groups = values.get("operatortypes", "").split(";")
    if not len(field_groups) == len(value_groups) == len(op_groups):
        raise unexpected()
    groups = []
    for names, texts, ops in zip(field_groups, value_groups, op_groups, strict=True):
        names_list, texts_list, ops_list = names.split(","), texts.split(","), ops.split(",")
        if not len(names_list) == len(texts_list) == len(ops_list):
            raise unexpected()
        groups.append(
            [_condition(n, o, t, connector) for n, t, o in zip(names_list, texts_list, ops_list, strict=True)]
        )
    return groups


def _filterjson(text: str, connector: GetConnector) -> list[list[Condition]]:
    try:
        tree = json.loads(text)
        filters = tree["Filters"]["Filter"]
    except (ValueError, KeyError, TypeError):
        raise unexpected() from None
    groups = []
    for item in filters if isinstance(filters, list) else [filters]:
        fields = item.get("Field", []) if isinstance(item, dict) else None
        if fields is None:
            raise unexpected()
        conditions = []
        for spec in fields if isinstance(fields, list) else [fields]:
            if not isinstance(spec, dict) or "@FieldId" not in spec:
                raise unexpected()
            text_value = "" if spec.get("#text") is None else str(spec.get("#text"))
            conditions.append(
                _condition(str(spec["@FieldId"]), str(spec.get("@OperatorType", "1")), text_value, connector)
            )
        groups.append(conditions)
    return groups


def _and_groups(left: list[list[Condition]], right: list[list[Condition]]) -> list[list[Condition]]:
    if not left or not right:
        return left or right
    return [[*a, *b] for a in left for b in right]


def _condition(name: str, operator: str, value: str, connector: GetConnector) -> Condition:
    column = connector.column(name.strip())
    if column is None:
        raise field_not_found(name.strip())
    if not operator.strip().isdigit() or not 1 <= int(operator) <= 15:
        raise unexpected()
    return Condition(column.id, int(operator), value)


def _order(text: str, connector: GetConnector) -> list[tuple[str, bool]]:
    order = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        descending = raw.startswith("-")
        name = raw.lstrip("-+").strip()
        if "." in name:
            raise AfasError("invalid_index", number=-2147180996)
        column = connector.column(name)
        if column is None:
            raise field_not_found(name)
        order.append((column.id, descending))
    return order


# ---------------------------------------------------------------------------- evaluation


def matching(view: Any, groups: list[list[Condition]], types: dict[str, str]) -> np.ndarray:
    """Boolean mask of the rows matching ``groups`` (OR of AND groups; no groups = every row)."""
    if not groups:
        return np.ones(len(view), dtype=bool)
    result = np.zeros(len(view), dtype=bool)
    for group in groups:
        mask = np.ones(len(view), dtype=bool)
        for condition in group:
            mask &= _mask(view[condition.column], types[condition.column], condition)
        result |= mask
    return result


def _mask(series: pd.Series, kind: str, condition: Condition) -> np.ndarray:
    op = condition.operator
    empty = series.isna().to_numpy()
    if kind == "string":
        empty = empty | (series == "").fillna(False).to_numpy(dtype=bool)
    if op == 8:
        return empty
    if op == 9:
        return ~empty
    if op in _TEXT_OPS:
        return _text_mask(_as_text(series, kind), op, condition.value.strip("%").casefold())
    value = _typed(condition.value, kind)
    compare = {1: "__eq__", 2: "__ge__", 3: "__le__", 4: "__gt__", 5: "__lt__", 7: "__ne__"}
    result = getattr(series, compare[op])(value)
    return result.fillna(False).to_numpy(dtype=bool) & ~series.isna().to_numpy()


def _text_mask(text: pd.Series, op: int, needle: str) -> np.ndarray:
    if op in (6, 11, 15):
        hit = text.str.contains(needle, regex=False)
    elif op in (10, 12):
        hit = text.str.startswith(needle)
    else:
        hit = text.str.endswith(needle)
    hit = hit.fillna(False).to_numpy(dtype=bool)
    present = ~text.isna().to_numpy()
    return present & (~hit if op in (11, 12, 14) else hit)


def _as_text(series: pd.Series, kind: str) -> pd.Series:
    if kind == "string":
        return series
    if kind == "date":
        return series.dt.strftime("%Y-%m-%dT%H:%M:%S").str.casefold()
    if kind == "boolean":
        return series.map({True: "true", False: "false"}).astype("str")
    return pd.Series([None if pd.isna(v) else str(v) for v in series], index=series.index, dtype="str")


def _typed(text: str, kind: str) -> Any:
    """A filter value as the column's type; a value that does not convert is Profit's generic 500."""
    value = text.strip()
    try:
        if kind == "string":
            return text.casefold()
        if kind == "int":
            return int(value)
        if kind == "decimal":
            return float(Decimal(value))
        if kind == "boolean":
            return {"true": True, "1": True, "false": False, "0": False}[value.lower()]
        return parse_local(value)
    except (ValueError, KeyError, InvalidOperation):
        raise unexpected() from None


def ordered(view: Any, rows: np.ndarray, order: list[tuple[str, bool]]) -> np.ndarray:
    """``rows`` sorted by ``order``: stable, nulls first ascending and last descending (SQL Server style)."""
    result = rows
    for column, descending in reversed(order):
        series = view[column].iloc[result].reset_index(drop=True)
        nulls = "last" if descending else "first"
        sorted_index = series.sort_values(ascending=not descending, kind="stable", na_position=nulls).index
        result = result[sorted_index.to_numpy()]
    return result
