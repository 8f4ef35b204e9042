"""UpdateConnector bodies and answers (reference §5, decisions §11.9, §11.16).

A body is ``{"<Root>": {"Element": element | [elements]}}``; an element has ``@Key`` entries, ``Fields``
and ``Objects`` (a map ``{"Sub": {"Element": ...}}``). The root object differs from the connector id
for a few connectors. Answers are read leniently: 200 or 201, empty or not, with or without
``results``, any object name, key names in any case.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from connectors.errors import ProtocolError

# Root object ≠ connector id (reference §5.1).
ROOT_NAMES = {"FiEntries": "FiEntryPar", "KnOrgUnit": "KnOrgunit", "KnEmployee": "AfasEmployee"}

Element = dict[str, Any]


def element(
    fields: Mapping[str, Any],
    *,
    objects: Mapping[str, Element | Sequence[Element]] | None = None,
    keys: Mapping[str, Any] | None = None,
) -> Element:
    """One element: ``@Key`` entries, ``Fields`` and sub-``Objects`` (each one element or a list)."""
    out: Element = {f"@{name}": value for name, value in (keys or {}).items()}
    out["Fields"] = dict(fields)
    if objects:
        out["Objects"] = {name: {"Element": _one_or_list(items)} for name, items in objects.items()}
    return out


def _one_or_list(items: Element | Sequence[Element]) -> Element | list[Element]:
    if isinstance(items, Mapping):
        return dict(items)
    listed = list(items)
    return listed[0] if len(listed) == 1 else listed


def root_name(connector: str) -> str:
    """The root object of ``connector``'s body."""
    return ROOT_NAMES.get(connector, connector)


def body(connector: str, elements: Element | Sequence[Element]) -> dict[str, Any]:
    """The full body for ``connector`` with one element or several."""
    return {root_name(connector): {"Element": _one_or_list(elements)}}


def delete_path(connector: str, keys: Mapping[str, Any], *, object_name: str | None = None) -> str:
    """``connectors/{Conn}/{Object}/@{Key}[,@{Key2}]/{v}[,{v2}]`` with percent-encoded values."""
    if not keys:
        raise ValueError("a DELETE needs at least one key")
    names = ",".join(f"@{name}" for name in keys)
    values = ",".join(quote(str(value), safe="") for value in keys.values())
    return f"connectors/{connector}/{object_name or root_name(connector)}/{names}/{values}"


class Keys(Mapping[str, str]):
    """Keys AFAS returned for a write, looked up case-insensitively (``InID`` = ``InId``)."""

    def __init__(
        self, values: Mapping[str, Any] | None = None, *, object_name: str = "", recovered: bool = False
    ):
        self._values = {str(k): "" if v is None else str(v) for k, v in (values or {}).items()}
        self._folded = {k.casefold(): k for k in self._values}
        self.object_name = object_name
        self.recovered = recovered  # found by reference after an uncertain write, not from the answer

    def __getitem__(self, name: str) -> str:
        return self._values[self._folded[name.casefold()]]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._folded

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        flag = ", recovered=True" if self.recovered else ""
        return f"Keys({self._values!r}, object_name={self.object_name!r}{flag})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._values) == {str(k): str(v) for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a Mapping that equals dicts: unhashable, like dict


def parse_keys(answer: Any) -> Keys:
    """The keys from an UpdateConnector answer in any of the shapes AFAS uses."""
    if answer is None or answer == "" or answer == {}:
        return Keys()
    if not isinstance(answer, Mapping):
        raise ProtocolError(f"UpdateConnector answer is not an object: {str(answer)[:200]!r}")
    inner = _case_get(answer, "results")
    inner = answer if inner is None else inner
    if not isinstance(inner, Mapping):
        raise ProtocolError(f"UpdateConnector 'results' is not an object: {str(inner)[:200]!r}")
    nested = [(name, value) for name, value in inner.items() if isinstance(value, Mapping)]
    if len(nested) == 1 and len(inner) == 1:
        name, value = nested[0]
        return Keys(_scalars(value), object_name=name)
    return Keys(_scalars(inner))


def _case_get(mapping: Mapping[str, Any], name: str) -> Any:
    return next((v for k, v in mapping.items() if str(k).casefold() == name), None)


def _scalars(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if not isinstance(v, Mapping | list)}


@dataclass(frozen=True)
class Reference:
    """Where to find a document by the reference Koppel wrote into it (decision §11.8).

    E.g. ``Reference("Koppel_DirectInvoices", "Fref", "KPL-1-202610-ab12")`` finds an invoice by its
    ``Fref``. ``key_fields`` name the columns returned as keys (default: the connector's registered ones).
    ``earlier_fields`` are looked in, in order, when ``field`` holds no match: where older versions wrote
    the same reference (direct invoices posted before Koppel moved its reference from ``RfCs`` to ``Fref``).
    """

    connector: str
    field: str
    value: str
    key_fields: tuple[str, ...] = ()
    earlier_fields: tuple[str, ...] = ()

    def in_field(self, name: str) -> Reference:
        """The same reference looked up in field ``name`` only."""
        return Reference(self.connector, name, self.value, self.key_fields)
