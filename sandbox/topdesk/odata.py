"""A minimal OData v4 reporting feed (``/services/reporting/v2/odata/{EntitySet}``) for the TOPdesk simulator.

Serves changes, change activities and problems (ticket context) and their time registrations (in MINUTES,
property ``TimeSpentMinutes``) under configurable entity-set names (``TopdeskOptions.odata_entity_sets``,
decision §9.2). Supports ``$select``, ``$filter`` (``eq ne gt ge lt le``, ``and``/``or``, parentheses;
dates and GUIDs unquoted, strings in single quotes, ``null``), ``$orderby``, ``$top``/``$skip`` and
server-driven paging with ``@odata.nextLink``. Errors use OData's ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from starlette.requests import Request
from starlette.responses import Response

from sandbox.topdesk.fiql import NULL_MS, parse_datetime_ms
from sandbox.topdesk.http import json_response, odata_date, page_url
from sandbox.topdesk.malformed import ODATA as ODATA_KEYS
from sandbox.topdesk.malformed import malformed_rows
from sandbox.topdesk.tickets import Names, ms_array

GUID, TEXT, INT, BOOL, DATE = "Edm.Guid", "Edm.String", "Edm.Int32", "Edm.Boolean", "Edm.DateTimeOffset"
_TOKEN = re.compile(r"\s*('(?:[^']|'')*'|\(|\)|[^\s()]+)")
_COMPARE = {"eq": np.equal, "ne": np.not_equal, "gt": np.greater, "ge": np.greater_equal}
_COMPARE.update({"lt": np.less, "le": np.less_equal})


class ODataError(ValueError):
    """A request the feed cannot answer; rendered as OData's error object."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def odata_error(error: ODataError) -> Response:
    """OData's error body."""
    return json_response({"error": {"code": "", "message": str(error)}}, error.status)


@dataclass
class Table:
    """One entity set: property name → (Edm type, values); object arrays hold None for null."""

    columns: dict[str, tuple[str, np.ndarray]]

    @property
    def size(self) -> int:
        """Number of entities."""
        return len(next(iter(self.columns.values()))[1])


def build_tables(
    frames: dict[str, pd.DataFrame], refs: dict[str, Names], names: dict[str, str]
) -> dict[str, Table]:
    """Every entity set by its configured name."""
    branches = frames["td_branches"].set_index("id")
    tickets = {
        "change": _tickets(frames["td_changes"], "requesterBranch.id", branches),
        "change_activity": _activity_tickets(frames, branches),
        "problem": _tickets(frames["td_problems"], "branch.id", branches),
    }
    tables = {
        names["changes"]: tickets["change"],
        names["change_activities"]: tickets["change_activity"],
        names["problems"]: tickets["problem"],
    }
    regs = frames["td_odata_registrations"]
    for kind, ticket_table in tickets.items():
        tables[names[kind]] = _registrations(regs[regs["kind"] == kind], ticket_table, refs)
    return tables


def with_current_branches(table: Table, branches: dict[str, dict[str, Any]]) -> Table:
    """A ticket set with each branch's name and customer number as the branch holds them now.

    TOPdesk's reporting feed shows the branch's current fields: a branch whose ``clientReferenceNumber`` was
    just written (create-missing-debtors) appears with its new number, as in the REST API.
    """
    if "BranchId" not in table.columns:
        return table
    ids = table.columns["BranchId"][1].tolist()
    records = [branches.get(key or "") or {} for key in ids]
    current = {
        "BranchName": [r.get("name") or None for r in records],
        "BranchCustomerNumber": [r.get("clientReferenceNumber") or None for r in records],
    }
    columns = dict(table.columns)
    for name, values in current.items():
        columns[name] = (TEXT, np.asarray(values, dtype=object))
    return Table(columns)


def _nullable(values: pd.Series | np.ndarray) -> np.ndarray:
    array = np.array(values, dtype=object)  # a copy: the caller's values stay as they are
    array[array == ""] = None
    return array


def _tickets(frame: pd.DataFrame, branch_column: str, branches: pd.DataFrame) -> Table:
    branch = frame[branch_column]
    columns: dict[str, tuple[str, np.ndarray]] = {
        "Id": (GUID, frame["id"].to_numpy(dtype=object)),
        "Number": (TEXT, frame["number"].to_numpy(dtype=object)),
        "BriefDescription": (TEXT, frame["briefDescription"].to_numpy(dtype=object)),
        "BranchId": (GUID, _nullable(branch)),
        "BranchName": (TEXT, _nullable(branch.map(branches["name"]).fillna(""))),
        "BranchCustomerNumber": (TEXT, _nullable(branch.map(branches["clientReferenceNumber"]).fillna(""))),
        "Archived": (
            BOOL,
            frame["archived"].to_numpy(dtype=bool) if "archived" in frame else np.zeros(len(frame), bool),
        ),
        "CreationDate": (DATE, ms_array(frame["creationDate"])),
        "ModificationDate": (DATE, ms_array(frame["modificationDate"])),
    }
    return Table(columns)


def _activity_tickets(frames: dict[str, pd.DataFrame], branches: pd.DataFrame) -> Table:
    changes = frames["td_changes"].set_index("id")
    activities = frames["td_change_activities"]
    merged = activities.assign(
        **{"requesterBranch.id": activities["change.id"].map(changes["requesterBranch.id"])}
    )
    table = _tickets(merged, "requesterBranch.id", branches)
    table.columns["ChangeId"] = (GUID, activities["change.id"].to_numpy(dtype=object))
    table.columns["ChangeNumber"] = (
        TEXT,
        activities["change.id"].map(changes["number"]).to_numpy(dtype=object),
    )
    return table


def _registrations(frame: pd.DataFrame, tickets: Table, refs: dict[str, Names]) -> Table:
    ticket_ids = tickets.columns["Id"][1]
    numbers = dict(zip(ticket_ids.tolist(), tickets.columns["Number"][1].tolist(), strict=True))
    columns: dict[str, tuple[str, np.ndarray]] = {
        "Id": (GUID, frame["id"].to_numpy(dtype=object)),
        "TicketId": (GUID, frame["ticket.id"].to_numpy(dtype=object)),
        "TicketNumber": (TEXT, frame["ticket.id"].map(numbers).to_numpy(dtype=object)),
        "EntryDate": (DATE, ms_array(frame["entryDate"])),
        "TimeSpentMinutes": (INT, frame["minutes"].to_numpy(dtype=np.int64)),
        "Notes": (TEXT, frame["notes"].to_numpy(dtype=object)),
    }
    for prefix, column, kind in (
        ("Operator", "operator.id", "actors"),
        ("OperatorGroup", "operatorGroup.id", "groups"),
    ):
        columns.update(_named_columns(prefix, frame[column], refs[kind]))
    columns.update(_named_columns("Reason", frame["reason.id"], refs["reasons"]))
    columns["CreationDate"] = (DATE, ms_array(frame["creationDate"]))
    columns["ModificationDate"] = (DATE, ms_array(frame["modificationDate"]))
    return Table(columns)


def _named_columns(prefix: str, ids: pd.Series, names: Names) -> dict[str, tuple[str, np.ndarray]]:
    lookup = dict(zip(names.ids.tolist(), names.names.tolist(), strict=True))
    return {
        f"{prefix}Id": (GUID, _nullable(ids)),
        f"{prefix}Name": (TEXT, np.array([lookup.get(key) for key in ids.tolist()], dtype=object)),
    }


# --- querying -----------------------------------------------------------------------------------------


def query(table: Table, request: Request, page_size: int) -> dict[str, Any]:
    """The response body for one request on ``table``."""
    params = request.query_params
    select = _select(table, params.get("$select"))
    skip, top = _count(params.get("$skip"), "$skip") or 0, _count(params.get("$top"), "$top")
    rows = np.arange(table.size)
    if params.get("$filter"):
        rows = rows[_Filter(table, params["$filter"]).mask()]
    rows = rows[_order(table, params.get("$orderby"), rows)]
    wanted = len(rows) - skip if top is None else min(top, max(0, len(rows) - skip))
    take = max(0, min(wanted, page_size))
    page = rows[skip : skip + take]
    body: dict[str, Any] = {"value": [_entity(table, int(row), select) for row in page]}
    if take < wanted:
        changes: dict[str, object] = {"$skip": skip + take}
        if top is not None:
            changes["$top"] = top - take
        body["@odata.nextLink"] = page_url(request, **changes)
    return body


def _count(raw: str | None, name: str) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise ODataError(f"Invalid value '{raw}' for {name}: a non-negative integer is required.")
    return int(raw)


def _select(table: Table, raw: str | None) -> list[str]:
    if not raw:
        return list(table.columns)
    names = [name.strip() for name in raw.split(",")]
    for name in names:
        if name not in table.columns:
            raise ODataError(f"Could not find a property named '{name}' on the entity type.")
    return names


def _order(table: Table, raw: str | None, rows: np.ndarray) -> np.ndarray:
    if not raw:
        return np.arange(len(rows))
    keys = [np.arange(len(rows))]
    for part in reversed(raw.split(",")):
        name, _, direction = part.strip().partition(" ")
        if name not in table.columns or direction.strip() not in ("", "asc", "desc"):
            raise ODataError(f"Invalid $orderby: '{part.strip()}'")
        kind, values = table.columns[name]
        if kind in (DATE, INT, BOOL):
            ranks = values[rows].astype(np.int64)
        else:
            text = ["" if value is None else str(value) for value in values[rows].tolist()]
            ranks = np.unique(np.array(text, dtype=str), return_inverse=True)[1]
        keys.append(-ranks if direction.strip() == "desc" else ranks)
    return np.lexsort(keys)


def _entity(table: Table, row: int, select: list[str]) -> dict[str, Any]:
    entity: dict[str, Any] = {}
    for name in select:
        kind, values = table.columns[name]
        value = values[row]
        if kind == DATE:
            entity[name] = None if value == NULL_MS else odata_date(int(value))
        elif kind in (INT, BOOL):
            entity[name] = int(value) if kind == INT else bool(value)
        else:
            entity[name] = value
    return entity


class _Filter:
    """Recursive descent over ``$filter`` tokens: or → and → (group | comparison)."""

    def __init__(self, table: Table, text: str) -> None:
        self.table, self.tokens, self.pos = table, [t for t in _TOKEN.findall(text) if t.strip()], 0

    def mask(self) -> np.ndarray:
        result = self._or()
        if self.pos != len(self.tokens):
            raise ODataError(f"Syntax error at '{self.tokens[self.pos]}' in $filter.")
        return result

    def _or(self) -> np.ndarray:
        mask = self._and()
        while self._peek() == "or":
            self.pos += 1
            mask = mask | self._and()
        return mask

    def _and(self) -> np.ndarray:
        mask = self._term()
        while self._peek() == "and":
            self.pos += 1
            mask = mask & self._term()
        return mask

    def _term(self) -> np.ndarray:
        if self._peek() == "(":
            self.pos += 1
            mask = self._or()
            if self._peek() != ")":
                raise ODataError("Syntax error in $filter: ')' expected.")
            self.pos += 1
            return mask
        if self.pos + 3 > len(self.tokens):
            raise ODataError("Syntax error in $filter: incomplete comparison.")
        name, op, literal = self.tokens[self.pos : self.pos + 3]
        self.pos += 3
        return self._compare(name, op, literal)

    def _peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def _compare(self, name: str, op: str, literal: str) -> np.ndarray:
        if name not in self.table.columns:
            raise ODataError(f"Could not find a property named '{name}' on the entity type.")
        if op not in _COMPARE:
            raise ODataError(f"Unsupported operator '{op}' in $filter.")
        kind, values = self.table.columns[name]
        if literal == "null":
            empty = values == NULL_MS if kind == DATE else np.array([v is None for v in values], dtype=bool)
            return empty if op == "eq" else ~empty
        value = _literal(kind, literal)
        if kind in (TEXT, GUID):
            present = np.array([v is not None for v in values], dtype=bool)
            text = np.where(present, values, "").astype(str)
            return _COMPARE[op](text, value) & present
        result = _COMPARE[op](values, value)
        return result & (values != NULL_MS) if kind == DATE else result


def _literal(kind: str, literal: str) -> Any:
    quoted = literal.startswith("'") and literal.endswith("'") and len(literal) >= 2
    mismatch = f"A binary operator with incompatible types was detected: '{kind}' and the literal {literal}."
    try:
        if kind == TEXT and quoted:
            return literal[1:-1].replace("''", "'")
        if kind == GUID and not quoted and re.fullmatch(r"[0-9a-fA-F-]{36}", literal):
            return literal.lower()
        if kind == DATE and not quoted:
            return parse_datetime_ms(literal)
        if kind == INT and not quoted:
            return int(literal)
        if kind == BOOL and literal in ("true", "false"):
            return literal == "true"
    except ValueError:
        pass
    raise ODataError(mismatch)


async def service_document(request: Request) -> Response:
    """The list of entity sets."""
    sim = request.app.state.sim
    names = [name for name in sim.odata if name not in sim.options.missing_entity_sets]
    base = str(request.url).split("?")[0].rstrip("/")
    value = [{"name": name, "kind": "EntitySet", "url": name} for name in names]
    return json_response({"@odata.context": f"{base}/$metadata", "value": value})


async def entity_set(request: Request) -> Response:
    """``GET /services/reporting/v2/odata/{EntitySet}``."""
    sim = request.app.state.sim
    name = request.path_params["entity_set"]
    if name == "$metadata":
        return metadata(sim)
    table = None if name in sim.options.missing_entity_sets else sim.odata.get(name)
    try:
        if table is None:
            raise ODataError(f"Resource not found for the segment '{name}'.", 404)
        body = query(with_current_branches(table, sim.branches.by_id), request, sim.options.odata_page_size)
    except ODataError as error:
        return odata_error(error)
    if sim.options.malformed_copies and "@odata.nextLink" not in body and "TicketId" in table.columns:
        body["value"] += _malformed(sim, name, body["value"])
    base = str(request.url).split("?")[0].rsplit("/", 1)[0]
    return json_response({"@odata.context": f"{base}/$metadata#{name}", **body})


EDM = {GUID: "Edm.Guid", TEXT: "Edm.String", DATE: "Edm.DateTimeOffset", INT: "Edm.Int64"}


def metadata(sim: Any) -> Response:
    """``$metadata``: a CSDL document naming every entity set and its properties (what the tenant has)."""
    types, sets = [], []
    for name, table in sim.odata.items():
        if name in sim.options.missing_entity_sets:
            continue
        props = "".join(
            f'<Property Name="{prop}" Type="{EDM.get(kind, "Edm.Boolean")}"/>'
            for prop, (kind, _) in table.columns.items()
        )
        types.append(f'<EntityType Name="{name}Type"><Key><PropertyRef Name="Id"/></Key>{props}</EntityType>')
        sets.append(f'<EntitySet Name="{name}" EntityType="TOPdesk.{name}Type"/>')
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx"><edmx:DataServices>'
        '<Schema Namespace="TOPdesk" xmlns="http://docs.oasis-open.org/odata/ns/edm">'
        + "".join(types)
        + '<EntityContainer Name="Container">'
        + "".join(sets)
        + "</EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
    )
    return Response(xml, 200, media_type="application/xml")


def _malformed(sim: Any, name: str, served: list[dict[str, Any]]) -> list[Any]:
    """Malformed rows (``malformed_copies``) served at the end of a registration set's last page."""
    if name not in sim.malformed:
        clean = [row for row in served if isinstance(row.get("TimeSpentMinutes"), int)]
        clean = [row for row in clean if row["TimeSpentMinutes"] > 0 and row.get("EntryDate")]
        copies = sim.options.malformed_copies
        sim.malformed[name] = malformed_rows(name, clean[0], ODATA_KEYS, copies) if clean else []
    return sim.malformed[name]
