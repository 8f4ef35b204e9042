"""Names behind ids, loaded once per read: operators, operator groups, reasons and branches.

Operational-activity registrations carry ids only (reference §3.5); their names and the branch's
customer number come from these look-ups. An operator id may also be a group (a group can be booked
as operator), so operator names fall back to group names.
"""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.topdesk import masterdata
from connectors.topdesk.client import TopdeskClient


class Lookups:
    """Lazily loaded id → record maps for one client."""

    def __init__(self, client: TopdeskClient) -> None:
        self._client = client
        self._loaded = False
        self._lock = asyncio.Lock()
        self.operators: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.reasons: dict[str, dict[str, Any]] = {}
        self.branches: dict[str, dict[str, Any]] = {}

    async def load(self) -> None:
        """Read the four lists (once, concurrently)."""
        async with self._lock:
            if self._loaded:
                return
            operators, groups, reasons, branches = await asyncio.gather(
                masterdata.read_operators(self._client, fields=("id", "dynamicName")),
                masterdata.read_operator_groups(self._client, fields=("id", "groupName")),
                masterdata.read_reasons(self._client),
                masterdata.read_branches(
                    self._client, include_archived=True, fields=("id", "name", "clientReferenceNumber")
                ),
            )
            self.operators = _by_id(operators.to_dict("records"))
            self.groups = _by_id(groups.to_dict("records"))
            self.reasons = _by_id(reasons.to_dict("records"))
            self.branches = _by_id(branches.to_dict("records"))
            self._loaded = True

    def operator_name(self, key: str | None) -> str | None:
        """The operator's display name (or the group's, when a group was booked as operator)."""
        if key in self.operators:
            return self.operators[key].get("dynamicName")
        return self.group_name(key)

    def group_name(self, key: str | None) -> str | None:
        """The operator group's ``groupName``."""
        return self.groups.get(key or "", {}).get("groupName")

    def reason_name(self, key: str | None) -> str | None:
        """The time-spent reason's name."""
        return self.reasons.get(key or "", {}).get("name")

    def branch(self, key: str | None) -> dict[str, Any]:
        """The branch record (``id``, ``name``, ``clientReferenceNumber``) or ``{}``."""
        return self.branches.get(key or "", {})


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(row["id"]): row for row in rows if row.get("id")}
