"""Carry out the planned TOPdesk writes: branches first (new persons need their ids), then persons.

Writes follow decision §9.14 through ``connectors/topdesk/masterdata.py``: ``PATCH`` with the changed fields
only, archiving with the configured reason, creation through ``create_branch_once``/``create_person_once``
(which look the record up by its number after an uncertain answer before creating it again).

A write TOPdesk refuses (400: bad value) or whose answer is lost fails alone, with its message; the rest
goes on, and the next run compares again. Errors that concern every write (authentication, TOPdesk
unavailable) stop the run: everything written so far is correct, and a rerun only does what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pandas as pd

from connectors.errors import BusinessError, RequestRejected, UncertainOutcome
from connectors.topdesk import masterdata as md
from connectors.topdesk.client import TopdeskClient
from schemas.companies import PERSON_KEY
from tasks.company_sync.fields import nest, text
from tasks.company_sync.plan import records

OUTCOME_COLUMNS = ["entity", "action", "key", "topdesk_id", "status", "message"]


class NotWritten(Exception):
    """A write that cannot be sent (no archiving reason, its branch was not created)."""


class Writer:
    """Writes the actions of one run against one TOPdesk client, at most ``concurrency`` at a time."""

    def __init__(
        self,
        client: TopdeskClient,
        reason_id: str | None,
        reason_problem: str,
        concurrency: int,
        person_key: str = PERSON_KEY,
    ) -> None:
        """``reason_id``: the archiving reason; when None, archiving fails with ``reason_problem``."""
        self.client = client
        self.person_key = person_key  # after a lost answer, a new person is looked up by this field
        self.reason_id = reason_id
        self.reason_problem = reason_problem
        self.limit = asyncio.Semaphore(concurrency)
        self.created: dict[str, str] = {}  # debtor number → id of the branch created in this run

    async def run(self, actions: pd.DataFrame) -> pd.DataFrame:
        """Every action's outcome (``OUTCOME_COLUMNS``), row for row in the order of ``actions``.

        All branch writes finish before the first person write: new persons need their branch's id.
        """
        rows = records(actions)
        outcomes: dict[int, dict[str, Any]] = {}
        for entity in ("branch", "person"):
            todo = [(i, row) for i, row in enumerate(rows) if row["entity"] == entity]
            done = await asyncio.gather(*(self._one(row) for _, row in todo))
            outcomes.update(zip((i for i, _ in todo), done, strict=True))
        return pd.DataFrame([outcomes[i] for i in range(len(rows))], columns=OUTCOME_COLUMNS, dtype=object)

    async def _one(self, row: dict[str, Any]) -> dict[str, Any]:
        async with self.limit:
            try:
                topdesk_id = await self._write(row)
            except UncertainOutcome as error:
                return outcome(row, "uncertain", f"{error}; the next run compares again")
            except (BusinessError, RequestRejected, NotWritten) as error:
                return outcome(row, "failed", str(error))
        return outcome(row, "done", topdesk_id=topdesk_id)

    async def _write(self, row: dict[str, Any]) -> str:
        write = WRITES[(row["entity"], row["action"])]
        return await write(self, row)

    def reason(self) -> str:
        """The archiving reason id, or ``NotWritten``."""
        if self.reason_id is None:
            raise NotWritten(self.reason_problem)
        return self.reason_id

    def person_body(self, row: dict[str, Any]) -> dict[str, Any]:
        """The nested person body, with ``branch {"id"}`` when the action links the person to a branch."""
        body = nest(row["body"])
        if text(row.get("branch_key")):
            branch_id = text(row.get("branch_id")) or self.created.get(text(row["branch_key"]))
            if not branch_id:
                raise NotWritten(f"the branch of debtor {row['branch_key']} was not created in this run")
            body["branch"] = {"id": branch_id}
        return body


def outcome(row: dict[str, Any], status: str, message: str = "", topdesk_id: str | None = None) -> dict:
    """One outcome row."""
    return {
        "entity": row["entity"],
        "action": row["action"],
        "key": row["key"],
        "topdesk_id": topdesk_id or row.get("topdesk_id"),
        "status": status,
        "message": message,
    }


async def _create_branch(writer: Writer, row: dict[str, Any]) -> str:
    created = await md.create_branch_once(writer.client, nest(row["body"]))
    writer.created[text(row["key"])] = str(created["id"])
    return str(created["id"])


async def _update_branch(writer: Writer, row: dict[str, Any]) -> str:
    await md.update_branch(writer.client, row["topdesk_id"], nest(row["body"]))
    return row["topdesk_id"]


async def _archive_branch(writer: Writer, row: dict[str, Any]) -> str:
    await md.archive_branch(writer.client, row["topdesk_id"], writer.reason())
    return row["topdesk_id"]


async def _unarchive_branch(writer: Writer, row: dict[str, Any]) -> str:
    await md.unarchive_branch(writer.client, row["topdesk_id"])
    return await _update_branch(writer, row) if row["body"] else row["topdesk_id"]


async def _create_person(writer: Writer, row: dict[str, Any]) -> str:
    body = writer.person_body(row)
    if writer.person_key == PERSON_KEY:
        created = await md.create_person_once(writer.client, body)
    else:
        created = await create_person_once_by(writer.client, body, writer.person_key, text(row["key"]))
    return str(created["id"])


async def create_person_once_by(
    client: TopdeskClient, body: dict[str, Any], field: str, value: str, attempts: int = 3
) -> dict[str, Any]:
    """``md.create_person_once`` for a key in an optional text field (``optionalFields1.text1``).

    After a lost answer the person is looked up by ``field == value`` before it is posted again.
    """
    if not value:
        raise ValueError(f"a person is created with its {field}")
    last: UncertainOutcome | None = None
    for _ in range(attempts):
        try:
            return await md.create_person(client, body)
        except UncertainOutcome as error:
            last = error
        found = await md.find_persons(client, field, value)
        if found:
            return {**found[0], "recovered": True}
    raise last if last is not None else UncertainOutcome(f"person {value} not created", system="TOPdesk")


async def _update_person(writer: Writer, row: dict[str, Any]) -> str:
    await md.update_person(writer.client, row["topdesk_id"], writer.person_body(row))
    return row["topdesk_id"]


async def _archive_person(writer: Writer, row: dict[str, Any]) -> str:
    await md.archive_person(writer.client, row["topdesk_id"], writer.reason())
    return row["topdesk_id"]


async def _unarchive_person(writer: Writer, row: dict[str, Any]) -> str:
    body = writer.person_body(row)  # before unarchiving: a missing branch must not leave it half done
    await md.unarchive_person(writer.client, row["topdesk_id"])
    if body:
        await md.update_person(writer.client, row["topdesk_id"], body)
    return row["topdesk_id"]


WRITES: dict[tuple[str, str], Callable[[Writer, dict[str, Any]], Awaitable[str]]] = {
    ("branch", "create"): _create_branch,
    ("branch", "update"): _update_branch,
    ("branch", "archive"): _archive_branch,
    ("branch", "unarchive"): _unarchive_branch,
    ("person", "create"): _create_person,
    ("person", "update"): _update_person,
    ("person", "archive"): _archive_person,
    ("person", "unarchive"): _unarchive_person,
}


def resolve_reason(reasons: pd.DataFrame, wanted: str) -> tuple[str | None, str]:
    """The archiving reason id for ``wanted`` (an id or an exact name), or ``None`` and why not."""
    for row in records(reasons):
        if text(row.get("id")) == wanted.strip():
            return text(row["id"]), ""
    for row in records(reasons):
        if text(row.get("name")) == wanted.strip():
            return text(row["id"]), ""
    names = ", ".join(text(r.get("name")) for r in records(reasons)) or "none"
    return None, f"archiving reason {wanted!r} not found in TOPdesk (it has: {names}); fix archiving_reason"
