"""Send the planned changes to the OH system: upserts in referential order, then deactivations.

Each resource's changes go out concurrently (the client bounds the requests in flight); the next resource
starts only when the previous one is done, because the OH system checks that references exist. Every
change gets an outcome: ``created``, ``updated``, ``deactivated``, ``not_found`` (nothing to deactivate),
``rejected`` (422, with the OH system's field messages), ``failed`` (the request failed after retries) or
``skipped`` (not sent because the OH system had become unavailable). A wrong token stops the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from itertools import groupby
from typing import Any

import pandas as pd

from connectors.errors import AuthError, ConnectorError, Unavailable
from connectors.occupational_health.client import OhClient
from connectors.occupational_health.errors import RecordRefused
from tasks.hr_sync.diff import CHANGE_COLUMNS

OUTCOME_COLUMNS = [*CHANGE_COLUMNS, "outcome", "message"]
Progress = Callable[[int, int], None]


class _Breaker:
    """Stops sending after the OH system proved unavailable (each further call would only wait)."""

    def __init__(self) -> None:
        self.reason: str | None = None


async def send_changes(
    client: OhClient, changes: pd.DataFrame, on_progress: Progress | None = None
) -> pd.DataFrame:
    """Send ``changes`` (``tasks.hr_sync.diff.plan_changes`` order) and return them with their outcomes."""
    rows = changes.to_dict(orient="records")
    breaker, done, results = _Breaker(), 0, []
    for _, group in groupby(rows, key=lambda c: (c["action"], c["entity"])):
        batch = list(group)
        results += await asyncio.gather(*(_send_one(client, change, breaker) for change in batch))
        done += len(batch)
        if on_progress is not None:
            on_progress(done, len(rows))
    return pd.DataFrame(results, columns=OUTCOME_COLUMNS, dtype=object)


async def _send_one(client: OhClient, change: dict[str, Any], breaker: _Breaker) -> dict[str, Any]:
    if breaker.reason is not None:
        return {**change, "outcome": "skipped", "message": f"not sent: {breaker.reason}"}
    try:
        if change["action"] == "upsert":
            answer = await client.upsert(change["entity"], change["external_id"], change["body"])
            outcome = "created" if answer.created else "updated"
        else:
            record = await client.deactivate(change["entity"], change["external_id"])
            outcome = "deactivated" if record is not None else "not_found"
    except RecordRefused as exc:
        return {**change, "outcome": "rejected", "message": exc.message}
    except AuthError:
        raise
    except Unavailable as exc:
        breaker.reason = f"the OH system became unavailable ({exc.message})"
        return {**change, "outcome": "failed", "message": str(exc)}
    except ConnectorError as exc:
        return {**change, "outcome": "failed", "message": str(exc)}
    return {**change, "outcome": outcome, "message": ""}
