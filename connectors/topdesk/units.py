"""The unit check of decision §9.1: the bulk endpoint must really be in seconds on this tenant.

The bulk endpoint documents ``timeSpent`` in seconds, the per-incident ``/timespent`` endpoint in
minutes. A sample of incidents is read both ways and each registration found in both is compared:
``bulk == minutes × 60`` supports seconds, ``bulk == minutes`` supports minutes. Single rows may disagree
(a dirty row is rejected later as "unit mismatch"), but if the sample as a whole does not support
seconds, the run stops: every amount would be off by a factor of 60.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.errors import ProtocolError, RequestRejected
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import API, Endpoint
from connectors.topdesk.paging import Family

TIMESPENT = Endpoint("incident timespent", f"{API}/incidents/id/{{id}}/timespent", Family.UNPAGED)


class UnitMismatch(ProtocolError):
    """The sampled registrations do not support the seconds assumption for the bulk endpoint."""

    hint = "TOPdesk's bulk time registrations are not in seconds here; check decision §9.1 before billing"


@dataclass(frozen=True)
class UnitCheck:
    """What the sample showed."""

    compared: int
    seconds: int  # rows where bulk == minutes × 60
    minutes: int  # rows where bulk == minutes (and not also × 60, i.e. non-zero)


def sample_incidents(rows: Sequence[Mapping[str, Any]], size: int) -> list[str]:
    """Up to ``size`` incident ids with registrations, chosen deterministically (sorted)."""
    return sample_parents({_parent(row) for row in rows}, size)


def sample_parents(parents: Collection[str], size: int) -> list[str]:
    """``sample_incidents`` of rows with these parent ids (an empty id is no parent)."""
    ordered = sorted(p for p in set(parents) if p)
    step = max(1, len(ordered) // max(size, 1))
    return ordered[::step][:size]


async def _timespent(client: TopdeskClient, incident: str) -> list[Any]:
    """One incident's registrations in minutes; an incident unknown here (404) is no evidence: none."""
    try:
        return await client.read_all(TIMESPENT, path_values={"id": incident})
    except RequestRejected:
        return []


def _parent(row: Any) -> str:
    parent = row.get("parent") if isinstance(row, Mapping) else None
    key = parent.get("id") if isinstance(parent, Mapping) else None
    return key if isinstance(key, str) else ""


async def check_units(client: TopdeskClient, rows: Sequence[Mapping[str, Any]], size: int) -> UnitCheck:
    """Compare bulk ``timeSpent`` with per-incident minutes on a sample read side by side.

    Raises ``UnitMismatch`` if the sample as a whole does not support seconds.
    """
    bulk = {str(row.get("id")): row.get("timeSpent") for row in rows if isinstance(row, Mapping)}
    return await check_bulk_units(client, bulk, {_parent(row) for row in rows}, size)


async def check_bulk_units(
    client: TopdeskClient, bulk: Mapping[str, Any], parents: Collection[str], size: int
) -> UnitCheck:
    """``check_units`` of rows given as what it reads of them: ``timeSpent`` by ``str(id)`` and the parents.

    The incident source keeps these while it takes in the pages, instead of a million served rows.
    """
    seconds = minutes = compared = 0
    sample = await asyncio.gather(*(_timespent(client, key) for key in sample_parents(parents, size)))
    for items in sample:
        for item in (i for i in items if isinstance(i, Mapping)):
            raw, per_incident = bulk.get(str(item.get("id"))), item.get("timeSpent")
            if (
                not isinstance(raw, int | float)
                or not isinstance(per_incident, int | float)
                or per_incident == 0
            ):
                continue
            compared += 1
            seconds += raw == per_incident * 60
            minutes += raw == per_incident
    check = UnitCheck(compared, seconds, minutes)
    if compared and seconds <= minutes:
        raise UnitMismatch(
            f"of {compared} sampled registrations {seconds} match seconds and {minutes} match minutes",
            system="TOPdesk",
        )
    return check
