"""UpdateConnector bodies checked against AFAS's published OpenAPI schemas, the way AFAS accepts them.

AFAS's own examples do not pass AFAS's own schemas strictly (see the README next to the specs), so this
module does what the README decides: it walks ``<Connector>_POST`` / ``_PUT`` itself instead of running a
strict JSON-Schema validator. It accepts ``Element`` as object or list, ``Fields`` as a map (or a list
holding one map), ``Objects`` as a map or a list of one-key maps, ``null``/``""`` as empty; it coerces
scalar strings to the schema's type and checks field names, enums and ``maxLength`` from the schema.
Mandatory fields come from the reference (``MANDATORY``), not from the schema's ``required``.

The specs are read from ``$KOPPEL_AFAS_OPENAPI_DIR``, else from the copy in ``docs/reference/afas-openapi``
in the repository (AFAS's v6.6.9 files, unchanged; see the README there).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path
from typing import Any

from sandbox.afas.errors import AfasError
from sandbox.afas.tables import parse_local

# Update connector → (spec file, root object). Root ≠ connector id for FiEntries and KnOrgUnit (ref. §5.1).
UPDATE_CONNECTORS: dict[str, tuple[str, str]] = {
    "FbDirectInvoice": ("sales-and-orders.json", "FbDirectInvoice"),
    "FiEntries": ("financial-entries.json", "FiEntryPar"),
    "PtRealization": ("projects-and-realisation.json", "PtRealization"),
    "KnSalesRelationOrg": ("organisations-and-persons.json", "KnSalesRelationOrg"),
    "KnOrganisation": ("organisations-and-persons.json", "KnOrganisation"),
    "KnPerson": ("organisations-and-persons.json", "KnPerson"),
    "HrIllness": ("leave-and-illness.json", "HrIllness"),
    "KnOrgUnit": ("employer.json", "KnOrgunit"),
}

# Mandatory fields per (connector, verb) and object, from the reference §6–§8 (starred fields that every
# official example carries) — NOT the schemas' ``required`` lists. A key may also come as ``@Key``.
MANDATORY: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("FbDirectInvoice", "POST"): {
        "FbDirectInvoice": ("DbId",),
        "FbDirectInvoiceLines": ("VaIt", "ItCd", "BiUn", "QuUn"),
    },
    ("FbDirectInvoice", "PUT"): {"FbDirectInvoice": ("OrNu",)},
    ("FiEntries", "POST"): {
        "FiEntryPar": ("Year", "Peri", "JoCo"),
        "FiEntries": ("VaAs", "AcNr", "EnDa", "BpDa"),
    },
    ("PtRealization", "POST"): {"PtRealization": ("DaTi", "VaIt", "ItCd")},
    ("PtRealization", "PUT"): {"PtRealization": ("Id",)},
    ("KnSalesRelationOrg", "POST"): {
        "KnSalesRelationOrg": ("CuId",),
        "KnOrganisation": ("MatchOga",),
        "KnPerson": ("MatchPer",),
    },
    ("KnSalesRelationOrg", "PUT"): {"KnSalesRelationOrg": ("DbId",), "KnPerson": ("MatchPer",)},
    ("KnOrganisation", "POST"): {"KnOrganisation": ("MatchOga",), "KnPerson": ("MatchPer",)},
    ("KnOrganisation", "PUT"): {"KnOrganisation": ("MatchOga",), "KnPerson": ("MatchPer",)},
    ("KnPerson", "POST"): {"KnPerson": ("MatchPer",)},
    ("KnPerson", "PUT"): {"KnPerson": ("MatchPer",)},
    ("HrIllness", "POST"): {
        "HrIllness": ("EmId", "DaBe", "DMeB", "DaEs", "TPBe", "ViIt"),
        "HrAbsIllnessProgress": ("DaTi", "PsPc"),
    },
    ("HrIllness", "PUT"): {"HrIllness": ("EmId", "DaBe")},
    ("KnOrgUnit", "POST"): {"KnOrgunit": ("OuId", "Ds", "OTId", "StUn", "Empl", "ReOu")},
    ("KnOrgUnit", "PUT"): {"KnOrgunit": ("OuId",)},
}

# Primary keys per object (``@Key`` on the element, or the field itself), for metainfo and PUT lookups.
PRIMARY_KEYS: dict[str, str] = {
    "FbDirectInvoice": "OrNu",
    "FbDirectInvoiceLines": "GuLi",
    "FiEntries": "EnNo",
    "PtRealization": "Id",
    "KnSalesRelationOrg": "DbId",
    "KnOrganisation": "BcCo",
    "KnPerson": "BcCo",
    "KnOrgunit": "OuId",
}

# AFAS's published examples use a few spellings the schemas do not list; AFAS accepts them, so do we.
# Field aliases per object (example "Regel Guid" of FbDirectInvoice PUT writes ``UnPri`` for ``Upri``).
FIELD_ALIASES: dict[str, dict[str, str]] = {"FbDirectInvoiceLines": {"UnPri": "Upri"}}
# Enum aliases per field: example "vervoerder" of FbDirectInvoice POST sends item type ``wst`` (werksoort).
ENUM_ALIASES: dict[str, dict[str, str]] = {"VaIt": {"wst": "1", "art": "2", "tkst": "3"}}
# Fields AFAS's examples send that the schemas lack: "vervoerder" (FbDirectInvoice POST: carrier and
# shipping service) and the HrIllness PUT examples (work-resumption percentage and kind).
EXTRA_FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "FbDirectInvoice": (("TrPt", "string", "Vervoerder"), ("SsId", "string", "Verzendservice")),
    "HrIllness": (("PcWd", "number", "Percentage werkhervatting"),),
    "HrAbsIllnessProgress": (("ViWr", "string", "Soort werkhervatting"),),
}
# maxLength the examples exceed: "EDA" (KnSalesRelationOrg POST) puts a 14-character VAT number in FiNr.
MAX_LENGTH_OVERRIDES: dict[tuple[str, str], int] = {("KnOrganisation", "FiNr"): 14}
# Free fields (``vrije velden``) are named U + 32 hex characters and are not in the schemas.
CUSTOM_FIELD = re.compile(r"U[0-9A-Fa-f]{32}")
_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?)?(Z|[+-]\d{2}:?\d{2})?"
)
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")
_ENUM_LINE = re.compile(r"(\S+) = (.*?);?")
_KINDS = {
    "integer": "een geheel getal",
    "number": "een getal",
    "boolean": "true of false",
    "date": "een datum",
}


@dataclass(frozen=True)
class FieldDef:
    """One field of an UpdateConnector object as the schema describes it."""

    name: str
    type: str  # string | integer | number | boolean
    fmt: str = ""  # date | date-time | uuid | byte | ...
    enum: tuple[str, ...] | None = None
    max_length: int | None = None
    label: str = ""
    values: tuple[tuple[str, str], ...] = ()  # enum value → description, from the schema's text

    @property
    def is_date(self) -> bool:
        """Date and date-time fields (parsed to naive Amsterdam-local datetimes)."""
        return self.type == "string" and self.fmt in ("date", "date-time")


@dataclass
class ObjectDef:
    """An UpdateConnector object: its fields and nested objects."""

    name: str
    fields: dict[str, FieldDef]
    objects: dict[str, ObjectDef]
    many: bool = False


@dataclass
class Element:
    """One normalised element of a request body: keys, coerced fields and nested elements."""

    object: str
    keys: dict[str, str] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, list[Element]] = field(default_factory=dict)
    action: str | None = None

    def get(self, name: str) -> Any:
        """A field or key value (``@Key`` wins over ``Fields``), ``None`` when empty."""
        if self.keys.get(name) not in (None, ""):
            return self.keys[name]
        return self.fields.get(name)

    def children(self, name: str) -> list[Element]:
        """The nested elements of object ``name`` (empty list when absent)."""
        return self.objects.get(name, [])


# ---------------------------------------------------------------------------- loading


def spec_dir() -> Path:
    """Where AFAS's OpenAPI files are read from."""
    configured = os.environ.get("KOPPEL_AFAS_OPENAPI_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [
        Path(__file__).resolve().parents[2] / "docs" / "reference" / "afas-openapi",
    ]
    for candidate in candidates:
        if (candidate / "financial-entries.json").is_file():
            return candidate
    raise FileNotFoundError("AFAS OpenAPI specs not found; set KOPPEL_AFAS_OPENAPI_DIR")


@cache
def spec(filename: str) -> dict[str, Any]:
    """One OpenAPI file, parsed once per process."""
    return json.loads((spec_dir() / filename).read_text(encoding="utf-8"))


@cache
def schema(connector: str, verb: str) -> ObjectDef:
    """The compiled ``<connector>_<verb>`` request schema (verb ``POST`` or ``PUT``)."""
    filename, root = UPDATE_CONNECTORS[connector]
    raw = spec(filename)["components"]["schemas"][f"{connector}_{verb}"]
    return _compile(root, raw["properties"][root])


def _compile(name: str, node: dict[str, Any]) -> ObjectDef:
    element = node.get("properties", {}).get("Element", {})
    many = element.get("type") == "array"
    body = element.get("items", {}) if many else element
    props = body.get("properties", {})
    fields = {k: _field(k, v, name) for k, v in props.get("Fields", {}).get("properties", {}).items()}
    for extra, kind, label in EXTRA_FIELDS.get(name, ()):
        fields.setdefault(extra, FieldDef(extra, kind, label=label))
    objects: dict[str, ObjectDef] = {}
    holder = props.get("Objects", {})
    items = holder.get("items", {}) if holder.get("type") == "array" else holder
    for sub, sub_node in items.get("properties", {}).items():
        objects[sub] = _compile(sub, sub_node)
    return ObjectDef(name, fields, objects, many)


def _field(name: str, node: dict[str, Any], obj: str) -> FieldDef:
    enum = node.get("enum")
    lines = (node.get("description") or name).split("\n")
    values = tuple(
        (match.group(1), match.group(2))
        for line in lines[1:]
        if (match := _ENUM_LINE.fullmatch(line.strip()))
    )
    return FieldDef(
        name=name,
        type=node.get("type", "string"),
        fmt=node.get("format", "") or "",
        enum=tuple(str(v) for v in enum) if enum else None,
        max_length=MAX_LENGTH_OVERRIDES.get((obj, name), node.get("maxLength")),
        label=lines[0],
        values=values,
    )


def examples(connector: str, verb: str) -> dict[str, Any]:
    """AFAS's request examples for ``POST``/``PUT /connectors/<connector>`` by name."""
    filename, _ = UPDATE_CONNECTORS[connector]
    operation = spec(filename)["paths"][f"/connectors/{connector}"][verb.lower()]
    found = (
        operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("examples", {})
    )
    return {name: example["value"] for name, example in found.items()}


def enum_labels(definition: FieldDef) -> list[dict[str, str]]:
    """``[{"id", "description"}]`` for an enum field, descriptions taken from the schema's text."""
    described = dict(definition.values)
    return [{"id": value, "description": described.get(value, value)} for value in definition.enum or ()]


# ---------------------------------------------------------------------------- parsing a body


def parse_body(connector: str, verb: str, body: Any) -> list[Element]:
    """Normalise and validate a request body; raises ``AfasError`` the way Profit refuses it."""
    definition = schema(connector, verb)
    if not isinstance(body, dict) or len(body) != 1:
        raise AfasError("bad_shape", {"where": "body"})
    ((name, value),) = body.items()
    if name.casefold() != definition.name.casefold():
        raise AfasError("unknown_root", {"name": name, "connector": connector, "expected": definition.name})
    elements = _elements(definition, value, definition.name)
    if not elements:
        raise AfasError("bad_shape", {"where": f"{definition.name}.Element"})
    check_mandatory(connector, verb, elements)
    return elements


def _elements(definition: ObjectDef, value: Any, path: str) -> list[Element]:
    if value in (None, "", []):
        return []
    if not isinstance(value, dict) or set(value) != {"Element"}:
        raise AfasError("bad_shape", {"where": path})
    raw = value["Element"]
    items = raw if isinstance(raw, list) else [raw]
    return [_element(definition, item, path) for item in items if item not in (None, "")]


def _element(definition: ObjectDef, item: Any, path: str) -> Element:
    if not isinstance(item, dict):
        raise AfasError("bad_shape", {"where": f"{path}.Element"})
    element = Element(definition.name)
    raw_fields: Any = None
    raw_objects: Any = None
    for key, value in item.items():
        if key.casefold() == "@action":
            element.action = str(value).lower()
        elif key.startswith("@"):
            element.keys[key[1:]] = "" if value is None else _text(value)
        elif key == "Fields":
            raw_fields = value
        elif key == "Objects":
            raw_objects = value
        else:
            raise AfasError("bad_shape", {"where": f"{path}.{key}"})
    element.fields = _fields(definition, _one_map(raw_fields, path))
    element.objects = _objects(definition, raw_objects, path)
    return element


def _one_map(raw: Any, path: str) -> dict[str, Any]:
    if raw in (None, "", []):
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, list) and all(isinstance(item, dict) for item in raw):
        merged: dict[str, Any] = {}
        for item in raw:
            merged.update(item)
        return merged
    raise AfasError("bad_shape", {"where": f"{path}.Fields"})


def _objects(definition: ObjectDef, raw: Any, path: str) -> dict[str, list[Element]]:
    if raw in (None, "", []):
        return {}
    maps = raw if isinstance(raw, list) else [raw]
    result: dict[str, list[Element]] = {}
    by_folded = {name.casefold(): sub for name, sub in definition.objects.items()}
    for holder in maps:
        if not isinstance(holder, dict):
            raise AfasError("bad_shape", {"where": f"{path}.Objects"})
        for name, value in holder.items():
            sub = by_folded.get(name.casefold())
            if sub is None:
                raise AfasError("unknown_object", {"name": name, "parent": definition.name})
            result.setdefault(sub.name, []).extend(_elements(sub, value, f"{path}.{sub.name}"))
    return result


def _fields(definition: ObjectDef, raw: dict[str, Any]) -> dict[str, Any]:
    aliases = FIELD_ALIASES.get(definition.name, {})
    result: dict[str, Any] = {}
    for name, value in raw.items():
        known = definition.fields.get(aliases.get(name, name))
        if known is None:
            if not CUSTOM_FIELD.fullmatch(name):
                raise AfasError("unknown_field", {"name": name, "obj": definition.name})
            result[name] = None if value in (None, "") else value
            continue
        result[known.name] = coerce(known, value)
    return result


# ---------------------------------------------------------------------------- values


def coerce(definition: FieldDef, value: Any) -> Any:
    """A request value as the schema's type (``None`` for empty); raises ``AfasError`` when it isn't one."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if definition.is_date:
        return _date(definition, value)
    converter = {"integer": _integer, "number": _number, "boolean": _boolean}.get(definition.type, _string)
    try:
        result = converter(value)
    except (ValueError, InvalidOperation, TypeError):
        raise _bad(definition, value, _KINDS.get(definition.type, "tekst")) from None
    if definition.enum is not None:
        result = _enum(definition, result)
    if definition.max_length is not None and isinstance(result, str) and len(result) > definition.max_length:
        params = {"label": definition.label, "name": definition.name}
        raise AfasError("too_long", {**params, "length": len(result), "maximum": definition.max_length})
    return result


def _bad(definition: FieldDef, value: Any, kind: str) -> AfasError:
    return AfasError(
        "bad_value", {"value": value, "label": definition.label, "name": definition.name, "kind": kind}
    )


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        raise TypeError("not a scalar")
    if isinstance(value, float | Decimal) and _whole(value):
        return str(int(value))
    return str(value)


def _whole(value: float | Decimal) -> bool:
    return (
        value.is_finite() and value == value.to_integral_value()
        if isinstance(value, Decimal)
        else value.is_integer()
    )


def _string(value: Any) -> str:
    return _text(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float | Decimal) and _whole(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError(value)


def _number(value: Any) -> Decimal:
    """JSON numbers arrive as ``Decimal`` (the app parses with ``parse_float=Decimal``) or as text."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TypeError(value)
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value).strip())
    if not number.is_finite():
        raise ValueError(value)
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "-1", "j", "y"):
        return True
    if text in ("false", "0", "n"):
        return False
    raise ValueError(value)


def _enum(definition: FieldDef, value: Any) -> Any:
    allowed = definition.enum or ()
    text = str(value)
    if text in allowed:
        return value
    alias = ENUM_ALIASES.get(definition.name, {}).get(text.casefold())
    if alias in allowed:
        return alias
    if text.isdigit() and str(int(text)) in allowed:  # leading zeros, e.g. "ViIr": "00"
        return str(int(text)) if isinstance(value, str) else int(text)
    raise AfasError("bad_enum", {"value": text, "label": definition.label, "name": definition.name})


def _date(definition: FieldDef, value: Any) -> datetime | time:
    """A date or date-time as naive Amsterdam-local ``datetime``; ``Z`` means local (AFAS's habit).

    Time fields (``StTi``, ``EnTi``) are typed date-time but sent as ``HH:MM:SS``: those become a ``time``.
    """
    clock = (
        _TIME.fullmatch(value.strip()) if isinstance(value, str) and definition.fmt == "date-time" else None
    )
    if clock is not None:
        return time(int(clock.group(1)), int(clock.group(2)), int(clock.group(3) or 0))
    if not isinstance(value, str):
        raise _bad(definition, value, _KINDS["date"])
    try:
        return parse_local(value)
    except ValueError:
        raise _bad(definition, value, _KINDS["date"]) from None


# ---------------------------------------------------------------------------- mandatory fields


def mandatory_fields(connector: str, verb: str, obj: str) -> tuple[str, ...]:
    """The mandatory fields of object ``obj`` for ``verb`` on ``connector``."""
    return MANDATORY.get((connector, verb), {}).get(obj, ())


def check_mandatory(connector: str, verb: str, elements: list[Element]) -> None:
    """Refuse the first element (depth first) that lacks a mandatory field."""
    definition = schema(connector, verb)
    for element in elements:
        _check_element(connector, verb, definition, element)


def _check_element(connector: str, verb: str, definition: ObjectDef, element: Element) -> None:
    for name in mandatory_fields(connector, verb, element.object):
        if element.get(name) is None:
            known = definition.fields.get(name)
            label = known.label if known else name
            raise AfasError("mandatory", {"label": label, "name": name, "obj": element.object})
    for sub_name, children in element.objects.items():
        for child in children:
            _check_element(connector, verb, definition.objects[sub_name], child)
