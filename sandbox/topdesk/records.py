"""Small TOPdesk collections (branches, persons, operators, activities, changes) kept as JSON-shaped dicts.

Dates inside records are epoch milliseconds under the keys in ``DATE_KEYS`` and are formatted on output;
``RecordSet`` answers FIQL by building the needed columns from the records on the fly (these collections
are small enough: at most tens of thousands of rows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from sandbox.topdesk.fiql import NULL_MS, Column, Node, evaluate
from sandbox.topdesk.http import ApiError

DATE_KEYS = ("creationDate", "modificationDate", "plannedStartDate", "entryDate")
Render = Callable[[dict[str, Any]], dict[str, Any]]


def _empty_optional_fields() -> dict[str, Any]:
    block: dict[str, Any] = {}
    for n in range(1, 6):
        block.update({f"boolean{n}": False, f"number{n}": 0, f"date{n}": None, f"text{n}": ""})
        block.update({f"memo{n}": "", f"searchlist{n}": None})
    return block


_OPTIONAL_FIELDS = _empty_optional_fields()


def optional_fields() -> dict[str, Any]:
    """An empty ``optionalFields1``/``optionalFields2`` block (a fresh copy)."""
    return dict(_OPTIONAL_FIELDS)


def format_dates(record: dict[str, Any], fmt: Callable[[int | None], str | None]) -> dict[str, Any]:
    """A copy of ``record`` with its top-level epoch-ms dates formatted by ``fmt``."""
    out = dict(record)
    for key in DATE_KEYS:
        if key in out:
            out[key] = fmt(out[key])
    return out


class RecordSet:
    """Records by id in insertion order; ``render`` turns a stored record into what the API shows."""

    def __init__(self, noun: str, records: list[dict[str, Any]], render: Render) -> None:
        self.noun = noun
        self.by_id: dict[str, dict[str, Any]] = {r["id"]: r for r in records}
        self.render = render

    def __len__(self) -> int:
        return len(self.by_id)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.by_id.values())

    def get(self, key: str) -> dict[str, Any]:
        """A stored record, or TOPdesk's 404 ``The <Noun> could not be found``."""
        record = self.by_id.get(key)
        if record is None:
            raise ApiError(404, f"The {self.noun} could not be found")
        return record

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """Store a new record."""
        self.by_id[record["id"]] = record
        return record

    def select(self, node: Node | None, keep: Callable[[dict[str, Any]], bool] | None = None) -> list[dict]:
        """Rendered records matching the FIQL ``node`` (and ``keep``), in insertion order."""
        shown = [self.render(r) for r in self.by_id.values() if keep is None or keep(r)]
        if node is None or not shown:
            return shown
        mask = evaluate(node, lambda selector: record_column(shown, selector), len(shown))
        return [record for record, hit in zip(shown, mask.tolist(), strict=True) if hit]


def record_column(records: list[dict[str, Any]], selector: str) -> Column | None:
    """A FIQL column read from rendered records along a dotted path (None when the path does not exist)."""
    probe = _walk(records[0], selector)
    if probe is _MISSING:
        return None
    values = [_walk(record, selector) for record in records]
    if selector.split(".")[-1] in DATE_KEYS or selector.endswith("Date"):
        return Column("date", np.array([NULL_MS if v is None else v for v in values], dtype=np.int64))
    if isinstance(probe, bool):
        return Column("bool", np.array(values, dtype=bool))
    if isinstance(probe, int | float):
        return Column("number", np.array(values, dtype=float))
    return Column("text", np.array(["" if v is None else v for v in values], dtype=object))


_MISSING = object()


def _walk(record: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(record, list):
            record = record[0] if record else None
        if record is None:
            return None
        if not isinstance(record, dict) or part not in record:
            return _MISSING
        record = record[part]
    return record
