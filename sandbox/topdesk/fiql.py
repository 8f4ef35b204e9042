"""FIQL as TOPdesk speaks it: a parser and a vectorised evaluator over column arrays.

Grammar (https://developers.topdesk.com/tutorial.html#query): ``a==1;b=gt=2`` (``;`` AND binds tighter
than ``,`` OR), parentheses, operators ``==``, ``!=``, ``=gt=``, ``=ge=``, ``=lt=``, ``=le=``, ``=sw=``,
``=in=(a,b)``, ``=out=(a,b)``, ``==null``/``!=null``; values quoted with ``'`` or ``"`` when they hold spaces
or reserved characters. Every failure raises ``FiqlError`` whose message the simulator returns with a 400.

Evaluation works on ``Column`` objects (one numpy array per field) so a filter over a million time
registrations costs a few milliseconds; a ``resolve(selector)`` callback supplies the columns and decides
which fields are filterable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NULL_MS = np.iinfo(np.int64).min  # a missing date in an epoch-milliseconds column
OPERATORS = ("==", "!=", "=gt=", "=ge=", "=lt=", "=le=", "=sw=", "=in=", "=out=")
_ORDERED: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "=gt=": np.greater,
    "=ge=": np.greater_equal,
    "=lt=": np.less,
    "=le=": np.less_equal,
}
_SELECTOR = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_OPERATOR = re.compile(r"==|!=|=[a-z]+=")
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?))?(Z|[+-]\d{2}:?\d{2})?$")


class FiqlError(ValueError):
    """The query cannot be parsed or names a field that cannot be filtered on."""


@dataclass(frozen=True)
class Comparison:
    """``selector op args``; ``args`` has one value except for ``=in=``/``=out=``."""

    selector: str
    op: str
    args: tuple[str, ...]


@dataclass(frozen=True)
class Junction:
    """``kind`` is ``and`` or ``or``."""

    kind: str
    children: tuple[Node, ...]


Node = Comparison | Junction


@dataclass
class Column:
    """One filterable field.

    ``kind`` is ``text``, ``date`` (epoch ms, ``NULL_MS`` = null), ``number``, ``bool`` or ``key`` (int codes
    with ``lookup`` from value to code; -1 = null).
    """

    kind: str
    values: np.ndarray
    lookup: dict[str, int] = field(default_factory=dict)


# --- parsing ------------------------------------------------------------------------------------------


def parse(text: str) -> Node:
    """Parse a FIQL expression into a tree, raising ``FiqlError`` with the position of a mistake."""
    parser = _Parser(text)
    node = parser.expression()
    if parser.pos != len(text):
        raise FiqlError(f"Invalid query: unexpected '{text[parser.pos]}' at position {parser.pos}")
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def expression(self) -> Node:
        return self._junction("or", ",", self.conjunction)

    def conjunction(self) -> Node:
        return self._junction("and", ";", self.term)

    def _junction(self, kind: str, separator: str, part: Callable[[], Node]) -> Node:
        children = [part()]
        while self._peek() == separator:
            self.pos += 1
            children.append(part())
        return children[0] if len(children) == 1 else Junction(kind, tuple(children))

    def term(self) -> Node:
        if self._peek() == "(":
            self.pos += 1
            node = self.expression()
            self._expect(")")
            return node
        return self.comparison()

    def comparison(self) -> Comparison:
        selector = self._match(_SELECTOR, "a field name")
        op = self._match(_OPERATOR, "an operator")
        if op not in OPERATORS:
            raise FiqlError(f"Invalid query: unknown operator '{op}'")
        if op in ("=in=", "=out="):
            self._expect("(")
            args = [self.value()]
            while self._peek() == ",":
                self.pos += 1
                args.append(self.value())
            self._expect(")")
            return Comparison(selector, op, tuple(args))
        return Comparison(selector, op, (self.value(),))

    def value(self) -> str:
        quote = self._peek()
        if quote in ("'", '"'):
            end = self.text.find(quote, self.pos + 1)
            if end < 0:
                raise FiqlError(f"Invalid query: unterminated quote at position {self.pos}")
            found, self.pos = self.text[self.pos + 1 : end], end + 1
            return found
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ";,()'\"":
            self.pos += 1
        if self.pos == start:
            raise FiqlError(f"Invalid query: missing value at position {start}")
        return self.text[start : self.pos]

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _expect(self, char: str) -> None:
        if self._peek() != char:
            raise FiqlError(f"Invalid query: expected '{char}' at position {self.pos}")
        self.pos += 1

    def _match(self, pattern: re.Pattern[str], what: str) -> str:
        found = pattern.match(self.text, self.pos)
        if not found:
            raise FiqlError(f"Invalid query: expected {what} at position {self.pos}")
        self.pos = found.end()
        return found.group()


def selectors(node: Node) -> list[str]:
    """Every field name the expression mentions."""
    if isinstance(node, Comparison):
        return [node.selector]
    return [name for child in node.children for name in selectors(child)]


# --- evaluation ---------------------------------------------------------------------------------------


def evaluate(node: Node, resolve: Callable[[str], Column | None], size: int) -> np.ndarray:
    """A boolean mask of the ``size`` rows matching ``node``; ``resolve`` returns None for unknown fields."""
    if isinstance(node, Junction):
        masks = [evaluate(child, resolve, size) for child in node.children]
        combine = np.logical_and if node.kind == "and" else np.logical_or
        return combine.reduce(masks)
    column = resolve(node.selector)
    if column is None:
        raise FiqlError(f"Invalid query: the field '{node.selector}' cannot be used in a query")
    return _compare(column, node)


def _compare(column: Column, node: Comparison) -> np.ndarray:
    if node.op in ("==", "!=") and node.args[0] == "null":
        empty = _nulls(column)
        return empty if node.op == "==" else ~empty
    if column.kind == "key":
        return _compare_keys(column, node)
    values = [_coerce(column.kind, node.selector, arg) for arg in node.args]
    data = column.values
    if node.op in ("==", "=in="):
        return _any_equal(data, values)
    if node.op in ("!=", "=out="):
        return ~_any_equal(data, values) & ~_nulls(column)
    if node.op == "=sw=":
        if column.kind != "text":
            raise FiqlError(f"Invalid query: '=sw=' needs a text field, '{node.selector}' is not one")
        prefix = str(values[0]).lower()
        return np.fromiter((str(v).lower().startswith(prefix) for v in data), bool, len(data))
    if column.kind == "bool":
        raise FiqlError(f"Invalid query: '{node.op}' cannot compare the field '{node.selector}'")
    return _ORDERED[node.op](data, values[0]) & ~_nulls(column)


def _compare_keys(column: Column, node: Comparison) -> np.ndarray:
    codes = np.array([column.lookup.get(arg, -2) for arg in node.args], dtype=np.int64)
    if node.op in ("==", "=in="):
        return np.isin(column.values, codes)
    if node.op in ("!=", "=out="):
        return ~np.isin(column.values, codes) & (column.values >= 0)
    raise FiqlError(f"Invalid query: '{node.op}' cannot compare the field '{node.selector}'")


def _any_equal(data: np.ndarray, values: list[object]) -> np.ndarray:
    mask = np.zeros(len(data), dtype=bool)
    for value in values:
        mask |= data == value
    return mask


def _nulls(column: Column) -> np.ndarray:
    data = column.values
    if column.kind == "date":
        return data == NULL_MS
    if column.kind == "key":
        return data < 0
    if column.kind == "text":
        return (data == "") | (data == None)  # noqa: E711 - elementwise comparison on an object array
    return np.zeros(len(data), dtype=bool)


def _coerce(kind: str, selector: str, value: str) -> object:
    try:
        if kind == "date":
            return parse_datetime_ms(value)
        if kind == "number":
            return float(value)
        if kind == "bool":
            return {"true": True, "false": False}[value.lower()]
    except (ValueError, KeyError):
        raise FiqlError(f"Invalid query: '{value}' is not a valid value for the field '{selector}'") from None
    return value


def parse_datetime_ms(text: str) -> int:
    """Epoch ms of ``yyyy-MM-dd[THH:mm[:ss[.SSS]]][Z|+hhmm|+hh:mm]``; no offset means UTC (as on writes)."""
    found = _DATE.match(text.strip())
    if not found:
        raise ValueError(f"not a date: {text!r}")
    day, clock, zone = found.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    stamp = datetime.fromisoformat(f"{day}T{clock or '00:00'}{zone}")
    return (stamp - EPOCH) // timedelta(milliseconds=1)
