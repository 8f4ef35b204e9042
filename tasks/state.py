"""The state database from inside flows: one migrated engine per URL, and the run records every flow keeps.

Every flow records itself in the store's ``runs`` table (``open_run`` at the start, ``close_run`` with its
statistics at the end, ``mark_run_ended`` as ``on_failure``/``on_crashed`` hook), so the statistics and the
invoice flow's crash recovery see which runs ended and how.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.engine import Engine

from store import runs
from store.db import connect
from store.settings import StoreSettings
from tasks.secrets import load_settings

log = logging.getLogger(__name__)


@functools.cache
def _engine_for(url: str) -> Engine:
    return connect(StoreSettings(db_url=url))


def state_engine() -> Engine:
    """The engine of the configured state database, migrated once per process and URL."""
    return _engine_for(load_settings(StoreSettings).url)


@task(name="open-run", cache_policy=NO_CACHE)
def open_run(flow_name: str, parameters: dict[str, Any], run_id: str | None) -> str:
    """Record the run in the store (its id is the Prefect flow-run id when there is one)."""
    return runs.start_run(state_engine(), flow_name, parameters, run_id=run_id)


@task(name="close-run", cache_policy=NO_CACHE)
def close_run(run_id: str, status: str, statistics: dict[str, dict[str, Any]]) -> None:
    """Save the run's outcome and its figures (``{name: {"count": …, "minutes": …, "amount": …}}``)."""
    runs.finish_run(state_engine(), run_id, status, statistics)


def mark_run_ended(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (on_failure, on_crashed): record the run as ended.

    For invoice-hours this lets the next run recover the documents it left claimed at once, instead of after
    ``recover_after_minutes``. Never raises: a hook must not hide the original failure.
    """
    status = "crashed" if getattr(state, "is_crashed", lambda: False)() else "failed"
    try:
        runs.finish_run(state_engine(), str(flow_run.id), status)
    except Exception:  # e.g. the run failed before open_run: nothing to record then
        log.warning("could not record the end of run %s", flow_run.id, exc_info=True)
