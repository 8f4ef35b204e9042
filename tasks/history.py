"""Findable history: run names, tags and artifact keys that say which period a run is about.

``invoice-hours 2026-10`` and ``invoice-hours 2026-10 preview`` instead of Prefect's random names; tags
``period:2026-10`` (and ``preview``) to filter on; artifact keys per period, with previews apart, so "the
latest invoice-hours-2026-10-summary" is the real run's and never a dry run's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Annotated, Any

from pydantic import WithJsonSchema

from tasks.invoice_hours.extract import Window, billing_window

log = logging.getLogger(__name__)

# An optional day that the Prefect UI shows as a plain date picker (left empty: the parameter is not sent and
# the flow's default, None, applies) instead of a "date | None" type switch.
OptionalDate = Annotated[date | None, WithJsonSchema({"type": "string", "format": "date"})]


def _date(value: Any) -> date | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def period_label(window: Window) -> str:
    """``2026-10`` for a calendar month, ``2026-08..2026-10`` for whole months, else the days."""
    whole_start = window.first.day == 1
    whole_end = (window.last + timedelta(days=1)).day == 1
    if whole_start and whole_end:
        first, last = f"{window.first:%Y-%m}", f"{window.last:%Y-%m}"
        return first if first == last else f"{first}..{last}"
    return window.label()


def window_of(parameters: Mapping[str, Any]) -> Window:
    """The window a run's ``start_date``/``end_date`` parameters name (default: the previous month)."""
    return billing_window(_date(parameters.get("start_date")), _date(parameters.get("end_date")))


def run_name(flow_name: str, parameters: Mapping[str, Any]) -> str:
    """``invoice-hours 2026-10``, or ``invoice-hours 2026-10 preview`` for a dry run."""
    try:
        label = period_label(window_of(parameters))
    except ValueError:  # bad dates: the parameter validation names them; the run still needs a name
        label = "invalid dates"
    return f"{flow_name} {label}" + (" preview" if parameters.get("dry_run") else "")


def artifact_prefix(flow_name: str, window: Window, dry_run: bool) -> str:
    """The start of every artifact key of a run: ``invoice-hours-2026-10`` or ``...-2026-10-preview``."""
    return f"{flow_name}-{period_label(window)}" + ("-preview" if dry_run else "")


def run_tags(window: Window, dry_run: bool) -> list[str]:
    """Tags of a run: its period(s) and ``preview`` for a dry run."""
    months = sorted({f"period:{month.first:%Y-%m}" for month in window.months()})
    return months + (["preview"] if dry_run else [])


def tag_current_run(tags: list[str]) -> None:
    """Add ``tags`` to the running flow run (in the UI's filter); logged, never raised, when it cannot."""
    import httpx
    from prefect import runtime
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectException

    run_id = runtime.flow_run.id
    if not run_id:
        return
    try:
        with get_client(sync_client=True) as client:
            current = client.read_flow_run(run_id).tags or []
            client.update_flow_run(run_id, tags=sorted({*current, *tags}))
    except (PrefectException, httpx.HTTPError, OSError) as error:
        log.warning("could not tag flow run %s with %s: %s", run_id, tags, error)
