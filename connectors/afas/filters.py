"""GetConnector filters as data (reference §3.1–§3.3, decision §11.3).

A filter is ``Filter(field, operator, value)``; the operator is a name (``"="``, ``"ge"``, ``"contains"``)
or AFAS's code 1–15. Filters inside one group are AND-ed, groups are OR-ed. The compact form
(``filterfieldids``/``filtervalues``/``operatortypes``) cannot escape ``,`` and ``;``, so a value holding
either switches the whole query to ``filterjson``. The client never adds ``%`` wildcards.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from connectors.afas.dates import filter_value

# AFAS operator codes (reference §3.2) by every name we accept.
OPERATORS: dict[str, int] = {
    "=": 1, "eq": 1, "==": 1,
    ">=": 2, "ge": 2,
    "<=": 3, "le": 3,
    ">": 4, "gt": 4,
    "<": 5, "lt": 5,
    "*": 6, "contains": 6,
    "!=": 7, "ne": 7,
    "[]": 8, "empty": 8, "is_empty": 8,
    "![]": 9, "not_empty": 9, "is_not_empty": 9,
    "@": 10, "starts_with": 10,
    "!*": 11, "not_contains": 11,
    "!@": 12, "not_starts_with": 12,
    "&": 13, "ends_with": 13,
    "!&": 14, "not_ends_with": 14,
    "Sf": 15, "quick": 15,
}  # fmt: skip
VALUELESS = frozenset({8, 9})  # "is empty"/"is not empty" still need an (empty) slot in filtervalues


def operator_code(operator: str | int) -> int:
    """AFAS's code (1–15) for an operator name or code."""
    if isinstance(operator, int) and not isinstance(operator, bool):
        code = operator
    elif isinstance(operator, str) and operator.strip().isdigit():
        code = int(operator)
    elif isinstance(operator, str) and operator.strip() in OPERATORS:
        code = OPERATORS[operator.strip()]
    elif isinstance(operator, str) and operator.strip().lower() in OPERATORS:
        code = OPERATORS[operator.strip().lower()]
    else:
        raise ValueError(f"unknown AFAS filter operator {operator!r}")
    if not 1 <= code <= 15:
        raise ValueError(f"AFAS filter operator codes run from 1 to 15, not {code}")
    return code


def render_value(value: object) -> str:
    """A filter value as AFAS expects it: dates Amsterdam-local without ``Z``, booleans ``true``/``false``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return filter_value(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


@dataclass(frozen=True)
class Filter:
    """One condition on a GetConnector field (the row key, e.g. ``DebtorId``)."""

    field: str
    operator: str | int
    value: object = None

    @property
    def code(self) -> int:
        """The AFAS operator code."""
        return operator_code(self.operator)

    @property
    def text(self) -> str:
        """The value as sent; empty for the valueless operators."""
        return "" if self.code in VALUELESS else render_value(self.value)


FilterSpec = Filter | Sequence[Filter] | Sequence[Sequence[Filter]] | None


def groups_of(filters: FilterSpec) -> list[list[Filter]]:
    """Normalise a filter spec to OR-ed groups of AND-ed filters."""
    if filters is None:
        return []
    if isinstance(filters, Filter):
        return [[filters]]
    items: list[Any] = list(filters)  # Filters, or groups of them: told apart below
    if not items:
        return []
    if all(isinstance(item, Filter) for item in items):
        return [items]
    return [[f] if isinstance(f, Filter) else list(f) for f in items]


def and_each(groups: list[list[Filter]], extra: Filter) -> list[list[Filter]]:
    """``(g1 OR g2) AND extra`` as ``(g1 AND extra) OR (g2 AND extra)``."""
    return [[*group, extra] for group in groups] if groups else [[extra]]


def filter_params(groups: list[list[Filter]]) -> dict[str, str]:
    """Query parameters for the groups: compact form, or ``filterjson`` when a value has ``,``/``;``."""
    if not groups:
        return {}
    if any("," in f.text or ";" in f.text for group in groups for f in group):
        return {"filterjson": filterjson(groups)}
    return {
        "filterfieldids": ";".join(",".join(f.field for f in g) for g in groups),
        "filtervalues": ";".join(",".join(f.text for f in g) for g in groups),
        "operatortypes": ";".join(",".join(str(f.code) for f in g) for g in groups),
    }


def filterjson(groups: list[list[Filter]]) -> str:
    """The ``filterjson`` text: ``Field``s in one ``Filter`` AND-ed, ``Filter``s OR-ed."""
    tree = {
        "Filters": {
            "Filter": [
                {
                    "@FilterId": f"Filter {n}",
                    "Field": [
                        {"@FieldId": f.field, "@OperatorType": str(f.code), "#text": f.text} for f in group
                    ],
                }
                for n, group in enumerate(groups, start=1)
            ]
        }
    }
    return json.dumps(tree, ensure_ascii=False, separators=(",", ":"))


INCREMENTAL_OVERLAP = timedelta(minutes=5)  # decision §11.5: re-read the last minutes; writes are idempotent


def modified_since(field: str, since: datetime, overlap: timedelta = INCREMENTAL_OVERLAP) -> Filter:
    """The filter of an incremental read: ``field >= since - overlap`` (AFAS keeps only the last change)."""
    return Filter(field, ">=", since - overlap)
