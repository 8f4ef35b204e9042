"""Malformed time registrations, served on demand (``TopdeskOptions.malformed_copies``).

A real tenant (or a proxy, a half-migrated database, a buggy report view) can serve rows that no spec
allows. With ``malformed_copies = n`` every time-registration source — the bulk endpoint, the first
operational activity's registrations and each OData registration set — serves, after its real rows,
``n`` copies of each kind in ``KINDS``: a valid row of that source with one defect (dates out of range or
without offset, numbers too large, fractional, text or objects, ids missing or objects, parents unknown or
not objects, elements that are not objects at all, unicode, rows outside the requested window, exact and
conflicting duplicates). Rows are deterministic per source, kind and copy, and stable across pages.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Keys:
    """Property names and conventions of one source."""

    id: str
    time: str
    entry: str
    parent: str | None  # "parent" (an object with ``id``) on the bulk endpoint; "TicketId" on OData
    per_minute: int  # 60 when the source serves seconds
    odata: bool = False


BULK = Keys("id", "timeSpent", "entryDate", "parent", 60)
OM = Keys("id", "timeSpent", "entryDate", None, 60)
ODATA = Keys("Id", "TimeSpentMinutes", "EntryDate", "TicketId", 1, odata=True)
UNKNOWN_PARENT = "0f0f0f0f-dead-4bad-8bad-0123456789ab"

Mutation = Callable[[dict[str, Any], Keys], Any]


def _set(name: str, value: Any) -> Mutation:
    def mutate(row: dict[str, Any], keys: Keys) -> Any:
        return {**row, getattr(keys, name): value}

    return mutate


def _shift(days: int) -> Mutation:
    def mutate(row: dict[str, Any], keys: Keys) -> Any:
        moment = datetime.fromisoformat(str(row[keys.entry])) + timedelta(days=days)
        text = f"{moment.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"
        return {**row, keys.entry: text + ("Z" if keys.odata else ".000+0000")}

    return mutate


def _minutes(value: float) -> Mutation:
    def mutate(row: dict[str, Any], keys: Keys) -> Any:
        return {**row, keys.time: value * keys.per_minute}

    return mutate


def _parent(value: Any) -> Mutation:
    def mutate(row: dict[str, Any], keys: Keys) -> Any:
        if keys.parent is None:  # operational activities: the activity is the parent, the row stays valid
            return row
        if keys.odata:
            return {**row, keys.parent: value}
        return {**row, "parent": value if not isinstance(value, str) else {"id": value}}

    return mutate


def _nested(name: str, value: Any) -> Mutation:
    def mutate(row: dict[str, Any], keys: Keys) -> Any:
        key = {"operator": "OperatorId", "reason": "ReasonId"}[name] if keys.odata else name
        return {**row, key: value}

    return mutate


def _notes(value: str) -> Mutation:
    def mutate(row: dict[str, Any], keys: Keys) -> Any:
        return {**row, "Notes" if keys.odata else ("notes" if keys is BULK else "note"): value}

    return mutate


def _element(value: Any) -> Mutation:
    return lambda row, keys: value


def _drop(name: str) -> Mutation:
    def mutate(row: dict[str, Any], keys: Keys) -> Any:
        return {k: v for k, v in row.items() if k != getattr(keys, name)}

    return mutate


KINDS: dict[str, Mutation] = {
    "entry_9999": _set("entry", "9999-12-31T00:00:00.000+0000"),
    "entry_0001": _set("entry", "0001-01-01T00:00:00.000+0000"),
    "entry_no_offset": _set("entry", "2026-10-05T10:00:00"),
    "entry_text": _set("entry", "gisteren middag"),
    "entry_null": _set("entry", None),
    "entry_missing": _drop("entry"),
    "entry_number": _set("entry", 1_759_651_200_000),
    "entry_object": _set("entry", {"date": "2026-10-05"}),
    "entry_empty": _set("entry", ""),
    "entry_feb_30": _set("entry", "2026-02-30T10:00:00.000+0000"),
    "entry_nanoseconds": _set("entry", "2026-10-05T10:00:00.123456789Z"),
    "entry_before_window": _shift(-45),
    "entry_after_window": _shift(45),
    "time_huge": _set("time", 10**30),
    "time_huge_int64": _set("time", 2**63 - 1),
    "time_fraction": _set("time", 90.5),
    "time_negative": _minutes(-60),
    "time_zero": _set("time", 0),
    "time_text": _set("time", "3600"),
    "time_null": _set("time", None),
    "time_missing": _drop("time"),
    "time_bool": _set("time", True),
    "time_object": _set("time", {"value": 60}),
    "time_list": _set("time", [60]),
    "time_absurd": _minutes(60 * 24 * 3),
    "time_not_whole_minutes": _set("time", 61),
    "id_null": _set("id", None),
    "id_missing": _drop("id"),
    "id_empty": _set("id", "  "),
    "id_object": _set("id", {"id": "x"}),
    "id_fraction": _set("id", 1.5),
    "id_bool": _set("id", False),
    "id_list": _set("id", ["a"]),
    "parent_null": _parent(None),
    "parent_unknown": _parent(UNKNOWN_PARENT),
    "parent_not_an_id": _parent("(not, an id)"),
    "parent_text": _parent(["text", "list"]),
    "parent_number": _parent(12345.5),
    "operator_text": _nested("operator", "Jan de Vries"),
    "operator_deep": _nested("operator", {"id": {"nested": [1, 2]}}),
    "reason_list": _nested("reason", [{"id": "r"}]),
    "notes_unicode": _notes("Ünïcødé 💥 \u202emirrored\u202c \u0000 tab\there"),
    "notes_huge": _notes("x" * 20_000),
    "element_null": _element(None),
    "element_text": _element("garbage"),
    "element_number": _element(42),
    "element_list": _element([1, 2, 3]),
    "element_empty_object": _element({}),
}
DUPLICATE_KINDS = ("duplicate_exact", "duplicate_conflicting")


def _key(source: str, kind: str, copy: int) -> str:
    digest = hashlib.sha256(f"{source}|{kind}|{copy}".encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def malformed_rows(source: str, template: dict[str, Any], keys: Keys, copies: int) -> list[Any]:
    """``copies`` rows of every kind for one source, each from ``template`` (a valid row) with a fresh id."""
    rows: list[Any] = []
    for copy in range(copies):
        for kind, mutate in KINDS.items():
            base = {**template, keys.id: _key(source, kind, copy)}
            rows.append(mutate(base, keys))
        for kind in DUPLICATE_KINDS:
            base = {**template, keys.id: _key(source, kind, copy)}
            twin = (
                base if kind == "duplicate_exact" else {**base, keys.time: base[keys.time] + keys.per_minute}
            )
            rows += [base, dict(twin)]
    return rows


def kinds_count() -> int:
    """How many kinds of malformed rows a source serves (duplicates included)."""
    return len(KINDS) + len(DUPLICATE_KINDS)
