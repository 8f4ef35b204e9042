"""Incidents and their time registrations as column arrays, for the TOPdesk simulator.

The simulator filters and pages a million rows in milliseconds: FIQL becomes numpy masks, sort orders are
cached permutations, and only the rows of the requested page are turned into JSON.

Registrations are mutable (POST timespent, the control helpers, the "rows inserted between pages" fault):
every change bumps ``version``, which invalidates the cached orders and incident totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sandbox.topdesk.fiql import NULL_MS, Column, Node, evaluate, selectors
from sandbox.topdesk.http import ApiError

LINES = ("firstLine", "secondLine", "partial")
DEFAULT_STATUSES = ("firstLine", "secondLine")  # what the bulk endpoint serves without a status filter
REGISTRATION_FIELDS = (
    "id",
    "timeSpent",
    "notes",
    "status",
    "entryDate",
    "creationDate",
    "operator",
    "operatorGroup",
    "reason",
    "creator",
    "modifier",
    "parent",
)
WARM_SORTS = (
    (("modificationDate", True), ("creationDate", True)),
    (("entryDate", False), ("creationDate", False)),
)
REGISTRATION_SORTS = ("entryDate", "creationDate", "modificationDate", "timeSpent", "id")
INCIDENT_SORTS = ("callDate", "creationDate", "modificationDate", "closedDate", "id", "number")


def format_many(ms: np.ndarray) -> list[str | None]:
    """TOPdesk's ``yyyy-MM-ddTHH:mm:ss.SSS+0000`` for many epoch-ms values at once (None for null)."""
    text = np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")
    return [
        None if value == NULL_MS else f"{t}+0000" for value, t in zip(ms.tolist(), text.tolist(), strict=True)
    ]


def ms_array(column: pd.Series) -> np.ndarray:
    """Epoch milliseconds of a datetime column, ``NULL_MS`` for NaT."""
    return pd.DatetimeIndex(column).as_unit("ms").asi8.copy()


@dataclass
class Names:
    """Ids, display names and an id → position index of one kind of referenced thing."""

    ids: np.ndarray
    names: np.ndarray

    def __post_init__(self) -> None:
        self.index = {key: i for i, key in enumerate(self.ids.tolist())}

    def ref(self, position: int) -> dict[str, str] | None:
        """``{id, name}`` or None for position -1."""
        if position < 0:
            return None
        return {"id": self.ids[position], "name": self.names[position]}

    def positions(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ``ids`` (``""`` → -1)."""
        return pd.Index(self.ids).get_indexer(pd.Index(ids)).astype(np.int64)


def _order(keys: list[tuple[np.ndarray, bool]], size: int) -> np.ndarray:
    """Row positions sorted by ``keys`` (array, descending), ties by position."""
    columns = [np.arange(size)]
    for values, descending in reversed(keys):
        columns.append(-values if descending else values)
    return np.lexsort(columns)


class IncidentStore:
    """Every incident (all lines, archived too) from ``td_incidents``; read-only."""

    TEXT = (
        "briefDescription",
        "callerBranch.id",
        "caller.id",
        "category.id",
        "subcategory.id",
        "operator.id",
        "operatorGroup.id",
        "optionalFields1.text1",
        "mainIncident.id",
    )
    OPTIONAL_TEXT = ("optionalFields1.text2",)
    DATES = ("callDate", "creationDate", "modificationDate", "closedDate")

    def __init__(self, frame: pd.DataFrame) -> None:
        self.size = len(frame)
        self.ids = frame["id"].to_numpy(dtype=object)
        self.index = {key: i for i, key in enumerate(self.ids.tolist())}
        self.numbers = frame["number"].to_numpy(dtype=object)
        self.by_number = {key: i for i, key in enumerate(self.numbers.tolist())}
        self.line = frame["line"].to_numpy(dtype=object)
        self.archived = frame["archived"].to_numpy(dtype=bool)
        self.closed = frame["closed"].to_numpy(dtype=bool)
        self.status = np.where(self.archived, self.line + "Archived", self.line).astype(object)
        self.default_visible = (self.line != "partial") & ~self.archived  # served without a status filter
        self.main = np.array([self.index.get(m, -1) for m in frame["mainIncident.id"].tolist()], np.int64)
        self.text = {name: frame[name].to_numpy(dtype=object) for name in self.TEXT}
        for name in self.OPTIONAL_TEXT:  # served when the world has them (a test's purchase-order numbers)
            if name in frame:
                self.text[name] = frame[name].to_numpy(dtype=object)
        self.dates = {name: ms_array(frame[name]) for name in self.DATES}
        self._orders: dict[tuple[tuple[str, bool], ...], np.ndarray] = {}

    def find(self, key: str, by: str = "id") -> int:
        """Position of an incident by id or number, or a 404."""
        position = (self.index if by == "id" else self.by_number).get(key)
        if position is None:
            raise ApiError(404, f"Incident with {by} '{key}' not found")
        return position

    def column(self, selector: str) -> Column | None:
        """The FIQL column for ``selector`` (None = not filterable)."""
        if selector == "id":
            return Column("key", np.arange(self.size), self.index)
        if selector in ("number", "status"):
            return Column("text", self.numbers if selector == "number" else self.status)
        if selector in ("archived", "closed"):
            return Column("bool", self.archived if selector == "archived" else self.closed)
        if selector in self.DATES:
            return Column("date", self.dates[selector])
        if selector in self.TEXT:
            return Column("text", self.text[selector])
        return None

    def select(self, node: Node | None, include_all: bool, sort: list[tuple[str, bool]] | None) -> np.ndarray:
        """Positions matching the query, ordered; without ``all=true`` only 1st/2nd line, unarchived ones."""
        mask = np.ones(self.size, dtype=bool)
        if not include_all:
            mask &= self.default_visible
        if node is not None:
            mask &= evaluate(node, self.column, self.size)
        order = self.order(tuple(sort or [("callDate", False)]))
        return order[mask[order]]

    def order(self, sort: tuple[tuple[str, bool], ...]) -> np.ndarray:
        """A cached permutation for ``sort``."""
        if sort not in self._orders:
            keys = [(self._sort_key(name), desc) for name, desc in sort]
            self._orders[sort] = _order(keys, self.size)
        return self._orders[sort]

    def _sort_key(self, name: str) -> np.ndarray:
        if name in self.DATES:
            return self.dates[name]
        values = self.ids if name == "id" else self.numbers
        return np.argsort(np.argsort(values.astype(str), kind="stable"), kind="stable")


class RegistrationStore:
    """Incident time registrations: one numpy array per attribute, rows appended, never physically removed."""

    INT_COLUMNS: tuple[str, ...] = ("parent", "seconds", "minutes", "entry", "creation", "modification")
    INT_COLUMNS += ("operator", "group", "reason", "creator", "modifier")
    OBJECT_COLUMNS = ("ids", "entry_text", "notes", "dirty")

    def __init__(self, frame: pd.DataFrame, incidents: IncidentStore, refs: dict[str, Names]) -> None:
        self.incidents, self.refs = incidents, refs
        operators = refs["actors"].positions(frame["operator.id"].to_numpy(dtype=object))
        self.cols: dict[str, np.ndarray] = {
            "ids": frame["id"].to_numpy(dtype=object, copy=True),
            "parent": pd.Index(incidents.ids).get_indexer(frame["parent.id"]).astype(np.int64),
            "seconds": frame["timeSpent"].to_numpy(dtype=np.int64, copy=True),
            "minutes": frame["minutes"].to_numpy(dtype=np.int64, copy=True),
            "entry": ms_array(frame["entryDate"]),
            "creation": ms_array(frame["creationDate"]),
            "modification": ms_array(frame["modificationDate"]),
            "entry_text": frame["entry_date_text"].to_numpy(dtype=object, copy=True),
            "operator": operators,
            "group": refs["groups"].positions(frame["operatorGroup.id"].to_numpy(dtype=object)),
            "reason": refs["reasons"].positions(frame["reason.id"].to_numpy(dtype=object)),
            "creator": operators.copy(),
            "modifier": operators.copy(),
            "notes": frame["notes"].to_numpy(dtype=object, copy=True),
            "dirty": frame["dirty"].to_numpy(dtype=object, copy=True),
        }
        self.alive = np.ones(len(frame), dtype=bool)
        self.index = {key: i for i, key in enumerate(self.cols["ids"].tolist())}
        self.version = 0
        self._orders: dict[tuple[Any, ...], np.ndarray] = {}
        self._totals: tuple[int, np.ndarray] | None = None
        self._duplicate: np.ndarray | None = None
        for sort in WARM_SORTS:  # the default order and the one Koppel's client asks for (decision §9.3)
            self.order(sort)

    @property
    def size(self) -> int:
        """Rows ever stored, deleted ones included."""
        return len(self.alive)

    def find(self, key: str) -> int:
        """Position of a live registration by id, or a 404."""
        position = self.index.get(key)
        if position is None or not self.alive[position]:
            raise ApiError(404, f"Time registration with id '{key}' not found")
        return position

    def append(self, rows: dict[str, list[Any]]) -> list[int]:
        """Add rows (every column of ``cols`` given as a list); returns their positions."""
        count = len(rows["ids"])
        start = self.size
        for name in self.INT_COLUMNS:
            self.cols[name] = np.concatenate([self.cols[name], np.asarray(rows[name], dtype=np.int64)])
        for name in self.OBJECT_COLUMNS:
            self.cols[name] = np.concatenate([self.cols[name], np.asarray(rows[name], dtype=object)])
        self.alive = np.concatenate([self.alive, np.ones(count, dtype=bool)])
        for offset, key in enumerate(rows["ids"]):
            self.index[key] = start + offset
        self.touch()
        return list(range(start, start + count))

    def touch(self, changed: tuple[str, ...] | None = None) -> None:
        """Forget cached totals, and the cached orders that sort on a ``changed`` field (all when None).

        Deleting only flips ``alive``, which every query masks anyway, so it keeps every order.
        """
        self.version += 1
        self._totals = None
        self._duplicate = None
        if changed is None:
            self._orders.clear()
            return
        for sort in [s for s in self._orders if {name for name, _ in s} & set(changed)]:
            del self._orders[sort]

    # --- reading ---------------------------------------------------------------------------------------

    def column(self, selector: str) -> Column | None:
        """FIQL columns: only the fields of decision §9.4; anything else is not filterable (400)."""
        c, refs = self.cols, self.refs
        if selector in ("entryDate", "creationDate"):
            return Column("date", c["entry"] if selector == "entryDate" else c["creation"])
        named = {"operator.id": ("operator", "actors"), "operatorGroup.id": ("group", "groups")}
        named["reason.id"] = ("reason", "reasons")
        if selector in named:
            source, kind = named[selector]
            return Column("key", c[source], refs[kind].index)
        if selector == "parent.id":
            return Column("key", c["parent"], self.incidents.index)
        if selector == "status":
            return Column("text", self.incidents.status[c["parent"]])
        return None

    def select(self, node: Node | None, sort: list[tuple[str, bool]] | None) -> np.ndarray:
        """Live positions matching ``node`` in ``sort`` order.

        The default order is ``modificationDate:desc,creationDate:desc``; without a ``status`` condition only
        registrations of first- and second-line, unarchived incidents match (reference §3.1, decision §9.5).
        """
        mask = self.alive.copy()
        if node is not None:
            mask &= evaluate(node, self.column, self.size)
        if node is None or "status" not in selectors(node):
            mask &= self.incidents.default_visible[self.cols["parent"]]
        order = self.order(tuple(sort or [("modificationDate", True), ("creationDate", True)]))
        return order[mask[order]]

    def order(self, sort: tuple[tuple[str, bool], ...]) -> np.ndarray:
        """A permutation of all rows for ``sort``, cached until the next change."""
        if sort not in self._orders:
            self._orders[sort] = _order([(self._sort_key(name), desc) for name, desc in sort], self.size)
        return self._orders[sort]

    def _sort_key(self, name: str) -> np.ndarray:
        simple = {"entryDate": "entry", "creationDate": "creation", "modificationDate": "modification"}
        if name in simple:
            return self.cols[simple[name]]
        if name == "timeSpent":
            return self.cols["seconds"]
        return np.argsort(np.argsort(self.cols["ids"].astype(str), kind="stable"), kind="stable")

    def with_duplicates(self, ordered: np.ndarray, page_size: int) -> np.ndarray:
        """The served sequence: every ``duplicate`` row appears again one page further on."""
        if self._duplicate is None or len(self._duplicate) != self.size:
            self._duplicate = self.cols["dirty"] == "duplicate"
        flagged = np.flatnonzero(self._duplicate[ordered])
        if page_size <= 0 or len(flagged) == 0:
            return ordered
        return np.insert(ordered, np.minimum(flagged + page_size, len(ordered)), ordered[flagged])

    def totals(self) -> np.ndarray:
        """Minutes per incident (its own registrations), cached until the next change."""
        if self._totals is None or self._totals[0] != self.version:
            live = self.alive
            sums = np.bincount(
                self.cols["parent"][live], weights=self.cols["minutes"][live], minlength=self.incidents.size
            )
            self._totals = (self.version, sums.astype(np.int64))
        return self._totals[1]

    def of_incident(self, position: int) -> np.ndarray:
        """Live registrations of one incident, by entry date."""
        rows = np.flatnonzero((self.cols["parent"] == position) & self.alive)
        return rows[np.argsort(self.cols["entry"][rows], kind="stable")]

    def entry_value(self, row: int, fmt: Any) -> str | None:
        """The served ``entryDate``: the stored wrong text on ``bad_entry_date`` rows, else formatted."""
        text = self.cols["entry_text"][row]
        if text:
            return str(text)
        entry = int(self.cols["entry"][row])
        return None if entry == NULL_MS else fmt(entry)

    def render(self, rows: np.ndarray, fields: list[str]) -> list[dict[str, Any]]:
        """JSON objects of ``rows`` with only ``fields``; ``timeSpent`` in seconds as stored."""
        getters = self._getters(rows)
        return [{name: getters[name](row) for name in fields} for row in rows.tolist()]

    def _getters(self, rows: np.ndarray) -> dict[str, Any]:
        c, refs, status = self.cols, self.refs, self.incidents.status
        entry = dict(zip(rows.tolist(), format_many(c["entry"][rows]), strict=True))
        created = dict(zip(rows.tolist(), format_many(c["creation"][rows]), strict=True))
        actors, groups, reasons = refs["actors"], refs["groups"], refs["reasons"]
        return {
            "id": lambda row: c["ids"][row],
            "timeSpent": lambda row: int(c["seconds"][row]),
            "notes": lambda row: c["notes"][row],
            "status": lambda row: status[c["parent"][row]],
            "entryDate": lambda row: c["entry_text"][row] or entry[row],
            "creationDate": lambda row: created[row],
            "operator": lambda row: actors.ref(int(c["operator"][row])),
            "operatorGroup": lambda row: groups.ref(int(c["group"][row])),
            "reason": lambda row: reasons.ref(int(c["reason"][row])),
            "creator": lambda row: actors.ref(int(c["creator"][row])),
            "modifier": lambda row: actors.ref(int(c["modifier"][row])),
            "parent": lambda row: {
                "id": self.incidents.ids[c["parent"][row]],
                "status": status[c["parent"][row]],
            },
        }
