"""TOPdesk master data: branches, persons, operators, operator groups, reasons; branch and person writes.

Reads return flat DataFrames (nested objects become dotted columns: ``address.city``, ``branch.id``).
Writes follow decision §9.14: ``PATCH`` for updates (never ``PUT``), persons are always created with a
``branch``, removal is archiving with a reason ``{"id": ...}``. Writes are never retried blindly: the
HTTP layer retries them only on a 429/503 answered before processing; anything else uncertain raises
``UncertainOutcome`` for the caller to resolve by reading the record back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import pandas as pd

from connectors.errors import UncertainOutcome
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import (
    API,
    ARCHIVING_REASONS,
    BRANCHES,
    OPERATOR_GROUPS,
    OPERATORS,
    PERSON,
    PERSONS,
    REASONS,
    Endpoint,
)

BRANCH_FIELDS = (
    "id", "name", "clientReferenceNumber", "timeZone", "extraA", "extraB", "archived", "phone", "email",
    "address", "branchType", "specification",
)  # fmt: skip
PERSON_FIELDS = (
    "id", "firstName", "surName", "dynamicName", "email", "employeeNumber", "phoneNumber", "mobileNumber",
    "branch", "archived",
)  # fmt: skip
OPERATOR_FIELDS = ("id", "dynamicName", "firstName", "surName", "loginName", "employeeNumber", "hourlyRate")
GROUP_FIELDS = ("id", "groupName", "hourlyRate")


def flat(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] = ()) -> pd.DataFrame:
    """Rows as a DataFrame with nested objects flattened to dotted columns (``branch.id``)."""
    frame = pd.json_normalize(list(rows), sep=".") if rows else pd.DataFrame()
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series(dtype=object)
    return frame


async def read_branches(
    client: TopdeskClient, *, include_archived: bool = False, fields: Sequence[str] = BRANCH_FIELDS
) -> pd.DataFrame:
    """All branches (unpaged). Without a query TOPdesk returns active branches only (reference §4.1)."""
    params: dict[str, Any] = {"$fields": ",".join(fields)}
    if include_archived:
        params["query"] = "archived==true,archived==false"
    return flat(await client.read_all(BRANCHES, params), fields)


async def read_persons(
    client: TopdeskClient, *, include_archived: bool = False, fields: Sequence[str] = PERSON_FIELDS
) -> pd.DataFrame:
    """Persons through the v2 API; without a query TOPdesk includes archived ones, so ask explicitly."""
    params: dict[str, Any] = {"fields": ",".join(fields)}
    if not include_archived:
        params["query"] = "archived==false"
    return flat(await client.read_all(PERSONS, params), fields)


async def read_operators(client: TopdeskClient, *, fields: Sequence[str] = OPERATOR_FIELDS) -> pd.DataFrame:
    """Operators (family B, 100 per page) with their ``hourlyRate``."""
    return flat(await client.read_all(OPERATORS, {"fields": ",".join(fields)}), fields)


async def read_operator_groups(
    client: TopdeskClient, *, fields: Sequence[str] = GROUP_FIELDS
) -> pd.DataFrame:
    """Operator groups (family B) with ``groupName`` and ``hourlyRate``."""
    return flat(await client.read_all(OPERATOR_GROUPS, {"fields": ",".join(fields)}), fields)


async def read_reasons(client: TopdeskClient) -> pd.DataFrame:
    """Time-spent reasons ``id``, ``name``."""
    return flat(await client.read_all(REASONS), ("id", "name"))


async def read_archiving_reasons(client: TopdeskClient) -> pd.DataFrame:
    """Archiving reasons ``id``, ``name`` (needed to archive branches and persons)."""
    return flat(await client.read_all(ARCHIVING_REASONS), ("id", "name"))


def _path(endpoint: Endpoint, *parts: str) -> str:
    return "/".join([endpoint.path, *parts])


def _id(value: str) -> str:
    """A path segment: percent-encoded so ids and numbers with spaces or slashes stay one segment."""
    return quote(str(value), safe="")


async def create_branch(client: TopdeskClient, branch: Mapping[str, Any]) -> dict[str, Any]:
    """POST a new branch; returns the created branch (201)."""
    return await client.send("POST", BRANCHES.path, dict(branch))


async def update_branch(client: TopdeskClient, branch_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """PATCH some fields of a branch."""
    return await client.send("PATCH", _path(BRANCHES, "id", _id(branch_id)), dict(changes))


async def archive_branch(client: TopdeskClient, branch_id: str, reason_id: str) -> dict[str, Any]:
    """Archive a branch with an archiving reason."""
    return await client.send("PATCH", _path(BRANCHES, "id", _id(branch_id), "archive"), {"id": reason_id})


async def unarchive_branch(client: TopdeskClient, branch_id: str) -> dict[str, Any]:
    """Bring an archived branch back."""
    return await client.send("PATCH", _path(BRANCHES, "id", _id(branch_id), "unarchive"))


async def create_person(client: TopdeskClient, person: Mapping[str, Any]) -> dict[str, Any]:
    """POST a new person (v2); a ``branch`` is required by decision §9.14."""
    if not isinstance(person.get("branch"), Mapping) or not person["branch"].get("id"):
        raise ValueError("a person is created with a branch: {'branch': {'id': ...}}")
    return await client.send("POST", PERSONS.path, dict(person), accept=PERSON, content_type=PERSON)


async def update_person(client: TopdeskClient, person_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """PATCH some fields of a person (v2 path without ``/id/``)."""
    return await client.send(
        "PATCH", _path(PERSONS, _id(person_id)), dict(changes), accept=PERSON, content_type=PERSON
    )


async def archive_person(client: TopdeskClient, person_id: str, reason_id: str) -> dict[str, Any]:
    """Archive a person with an archiving reason (also archives a linked operator)."""
    return await client.send("PATCH", f"{API}/persons/id/{_id(person_id)}/archive", {"id": reason_id})


async def unarchive_person(client: TopdeskClient, person_id: str) -> dict[str, Any]:
    """Bring an archived person back."""
    return await client.send("PATCH", f"{API}/persons/id/{_id(person_id)}/unarchive")


def fiql_text(value: str) -> str:
    """A FIQL string value, quoted with whichever quote it does not contain (FIQL has no escapes)."""
    text = str(value)
    for mark in ('"', "'"):
        if mark not in text:
            return f"{mark}{text}{mark}"
    raise ValueError("a FIQL value cannot hold both quote characters")


async def find_branches(client: TopdeskClient, field: str, value: str) -> list[dict[str, Any]]:
    """Branches (active and archived) whose ``field`` equals ``value``."""
    params = {"$fields": "id,name,clientReferenceNumber,archived", "query": f"{field}=={fiql_text(value)}"}
    return await client.read_all(BRANCHES, params)


async def find_persons(client: TopdeskClient, field: str, value: str) -> list[dict[str, Any]]:
    """Persons (active and archived) whose ``field`` equals ``value``."""
    params = {"fields": "id,surName,employeeNumber,archived", "query": f"{field}=={fiql_text(value)}"}
    return await client.read_all(PERSONS, params)


async def create_branch_once(
    client: TopdeskClient, branch: Mapping[str, Any], *, key: str = "clientReferenceNumber", attempts: int = 3
) -> dict[str, Any]:
    """Create a branch unless it exists: after an ``UncertainOutcome`` look it up by ``key`` first."""
    value = branch.get(key)
    if not value:
        raise ValueError(f"create_branch_once needs the branch's {key}")
    return await _create_once(
        lambda: create_branch(client, branch), lambda: find_branches(client, key, str(value)), attempts
    )


async def create_person_once(
    client: TopdeskClient, person: Mapping[str, Any], *, key: str = "employeeNumber", attempts: int = 3
) -> dict[str, Any]:
    """Create a person unless it exists: after an ``UncertainOutcome`` look it up by ``key`` first."""
    value = person.get(key)
    if not value:
        raise ValueError(f"create_person_once needs the person's {key}")
    return await _create_once(
        lambda: create_person(client, person), lambda: find_persons(client, key, str(value)), attempts
    )


async def _create_once(
    create: Callable[[], Awaitable[dict[str, Any]]],
    find: Callable[[], Awaitable[list[dict[str, Any]]]],
    attempts: int,
) -> dict[str, Any]:
    last: UncertainOutcome | None = None
    for _ in range(attempts):
        try:
            return await create()
        except UncertainOutcome as exc:
            last = exc
        found = await find()
        if found:
            return {**found[0], "recovered": True}
    assert last is not None  # noqa: S101 — only reached after uncertain outcomes
    raise last
