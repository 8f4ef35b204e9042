"""Store reads of the dashboard: the documents of the billing periods and the run history of every flow.

``read_store`` is the plain function (an engine in, frames out); ``read_statistics`` the Prefect task.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from store import ledger, runs
from store.db import connect
from store.settings import StoreSettings
from tasks.secrets import load_settings
from tasks.statistics.tables import BILLING_FLOW, RUN_HISTORY_LIMIT, SYNC_FLOWS, SYNC_HISTORY_LIMIT

# --- Prefect tasks ------------------------------------------------------------------------------------------


def read_store(engine: Engine, periods: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Documents of the billing periods and the run history of invoice-hours and the HR and company flows."""
    frames = [ledger.documents(engine, period=period) for period in periods]
    filled = [frame for frame in frames if not frame.empty]
    documents = pd.concat(filled, ignore_index=True) if filled else frames[0]
    histories = [runs.run_history(engine, BILLING_FLOW, limit=RUN_HISTORY_LIMIT)]
    histories += [runs.run_history(engine, flow, limit=SYNC_HISTORY_LIMIT) for flow in SYNC_FLOWS]
    filled = [frame for frame in histories if not frame.empty]
    return documents, pd.concat(filled, ignore_index=True) if filled else histories[0]


@task(name="read-statistics", cache_policy=NO_CACHE)
def read_statistics(periods: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the documents of ``periods`` and the invoice-hours run history from the state store."""
    engine = connect(load_settings(StoreSettings))
    try:
        return read_store(engine, periods)
    finally:
        engine.dispose()
