"""Notes on TOPdesk tickets: invisible actions (memos), their read-back, and optional text fields.

The routes per ticket kind (docs/invoice-hours.md, "Write-back to TOPdesk", cites the TOPdesk specs):

- incident: ``PATCH /incidents/id/{id}`` with ``action`` + ``actionInvisibleForCaller`` adds an action
  (Incident API [S-INC]); the actions are read back with ``GET /incidents/id/{id}/actions`` (family B:
  ``start``/``page_size`` ≤ 100, 206 while more, 204 when none); the optional field goes in the same PATCH
  shape (``{"optionalFields1": {"text1": ...}}``).
- change, change activity: ``POST /operatorChanges/{id}/progresstrail`` (``/operatorChangeActivities/...``)
  with ``memoText`` + ``invisibleForCaller`` (Change API [S-CHG]); read back with ``GET`` on the same path
  (``{"results": [...], "next": url|null}``); optional fields by ``PATCH /operatorChanges/{id}`` with a JSON
  Patch body (``application/json-patch+json``).
- operational activity: optional fields only, by JSON Patch on ``/operationalActivities/{id}`` ([S-OM]).

Writes go through the shared HTTP layer: retried only when TOPdesk proves it did not execute them (429,
503); a time-out after sending raises ``UncertainOutcome`` and the caller reads the actions back.
"""

from __future__ import annotations

from typing import Any

from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import API, Endpoint
from connectors.topdesk.paging import Family

JSON_PATCH = "application/json-patch+json"
INCIDENT_ACTIONS = Endpoint(
    "incident actions", f"{API}/incidents/id/{{id}}/actions", Family.B, page_size=100, signal="status"
)
CHANGE_PROGRESS = Endpoint(
    "change progress trail",
    f"{API}/operatorChanges/{{id}}/progresstrail",
    Family.C,
    page_size=100,
    rows_key="results",
)
ACTIVITY_PROGRESS = Endpoint(
    "change activity progress trail",
    f"{API}/operatorChangeActivities/{{id}}/progresstrail",
    Family.C,
    page_size=100,
    rows_key="results",
)
TRAILS = {"change": CHANGE_PROGRESS, "change_activity": ACTIVITY_PROGRESS}
PATCH_PATHS = {
    "incident": f"{API}/incidents/id/{{id}}",
    "change": f"{API}/operatorChanges/{{id}}",
    "change_activity": f"{API}/operatorChangeActivities/{{id}}",
    "operational_activity": f"{API}/operationalActivities/{{id}}",
}
MEMO_KINDS = ("incident", *TRAILS)
WITH_FIELD = ("incident",)  # the memo's request can set an optional field too
FIELD_KINDS = tuple(PATCH_PATHS)


def _path(template: str, ticket_id: str) -> str:
    return Endpoint("", template, Family.UNPAGED).url(id=ticket_id)


async def add_memo(
    client: TopdeskClient, kind: str, ticket_id: str, text: str, *, field: tuple[str, str] | None = None
) -> None:
    """Add ``text`` to the ticket as an action invisible for the caller.

    ``field`` (``("optionalFields1.text2", value)``, incidents only) is set by the same request.
    """
    if kind == "incident":
        body: dict[str, Any] = {"action": text, "actionInvisibleForCaller": True}
        if field is not None:
            block, name = field[0].split(".", 1)
            body[block] = {name: field[1]}
        await client.send("PATCH", _path(PATCH_PATHS[kind], ticket_id), body)
        return
    if kind not in TRAILS or field is not None:
        raise ValueError(f"TOPdesk has no memo route for {kind!r} (or none that sets a field)")
    body = {"memoText": text, "invisibleForCaller": True}
    await client.send("POST", TRAILS[kind].url(id=ticket_id), body)


async def memo_texts(client: TopdeskClient, kind: str, ticket_id: str) -> list[str]:
    """The texts (``memoText`` and ``plainText``) of every action on the ticket, for the read-back."""
    endpoint = INCIDENT_ACTIONS if kind == "incident" else TRAILS[kind]
    rows = await client.read_all(endpoint, path_values={"id": ticket_id})
    return [str(row.get(name) or "") for row in rows for name in ("memoText", "plainText")]


async def set_text_field(client: TopdeskClient, kind: str, ticket_id: str, field: str, value: str) -> None:
    """Set an optional text field (``optionalFields1.text1`` …) of the ticket to ``value``."""
    block, name = field.split(".", 1)
    path = _path(PATCH_PATHS[kind], ticket_id)
    body: Any
    if kind == "incident":
        await client.send("PATCH", path, {block: {name: value}})
        return
    body = [{"op": "replace", "path": f"/{block}/{name}", "value": value}]
    await client.send("PATCH", path, body, content_type=JSON_PATCH)
