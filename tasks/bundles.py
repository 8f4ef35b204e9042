"""Prepaid bundles in invoice-hours: copy the config's bundles into the store, show balances, warn when low.

``sync_bundles`` runs before planning (so the plan draws from the config's bundles and the allowance
months of the window too) and returns every bundle's status before the run; ``report_bundles`` runs after
posting: it publishes the balance artifacts ``invoice-hours-bundles`` and ``invoice-hours-allowances`` and
notifies (``KOPPEL_NOTIFY_BLOCK``) when a bundle fell below ``bundle_alert_below_minutes`` or was used up
in this run. ``bundle_alerts`` is the plain rule.
"""

from __future__ import annotations

import logging

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from store import bundles
from tasks.artifacts import publish_table
from tasks.invoice_hours.allowances import allowance_months
from tasks.invoice_hours.config import BillingConfig
from tasks.invoice_hours.extract import Window
from tasks.state import state_engine

FLOW = "invoice-hours"
log = logging.getLogger(__name__)


@task(name="sync-bundles", cache_policy=NO_CACHE)
def sync_bundles(config: BillingConfig, window: Window | None = None) -> pd.DataFrame:
    """Copy the config's ``[[bundles]]`` and the allowance months of ``window`` into the store.

    Returns every bundle's status before the run.
    """
    engine = state_engine()
    fields = {"name", "customer_number", "valid_from", "valid_to", "description"}
    wanted = [{**bundle.model_dump(include=fields), "minutes": bundle.minutes} for bundle in config.bundles]
    for change in bundles.sync_config_bundles(engine, wanted):
        log.info("%s", change)
    if window is not None and config.allowances:
        months = allowance_months(config, window.first, window.last)
        for change in bundles.sync_allowance_months(engine, months):
            log.info("%s", change)
    return bundles.bundle_status(engine)


def bundle_alerts(before: pd.DataFrame, after: pd.DataFrame, below_minutes: int) -> pd.DataFrame:
    """Bundles whose balance this run took below ``below_minutes`` (``low``) or to zero (``used up``).

    ``before``/``after``: ``store.bundles.bundle_status`` frames. A bundle already below the threshold before
    the run is not reported again.
    """
    merged = after.merge(
        before[["bundle_id", "minutes_left"]], on="bundle_id", how="left", suffixes=("", "_before")
    )
    merged["minutes_left_before"] = (
        merged["minutes_left_before"].fillna(merged["minutes_total"]).astype("int64")
    )
    merged["drawn_in_run"] = merged["minutes_left_before"] - merged["minutes_left"]
    used_up = merged["minutes_left"].le(0) & merged["minutes_left_before"].gt(0)
    low = (
        merged["minutes_left"].lt(below_minutes) & merged["minutes_left_before"].ge(below_minutes) & ~used_up
    )
    merged["alert"] = ""
    merged.loc[low, "alert"] = f"below {below_minutes} min"
    merged.loc[used_up, "alert"] = "used up"
    return merged


@task(name="report-bundles", cache_policy=NO_CACHE)
def report_bundles(before: pd.DataFrame, config: BillingConfig) -> pd.DataFrame:
    """Publish the balance of every bundle after this run and notify about low or used-up ones."""
    after = bundles.bundle_status(state_engine())
    table = bundle_alerts(before, after, config.bundle_alert_below_minutes)
    columns = ["bundle_id", "customer_number", "description", "valid_from", "valid_to", "minutes_total"]
    shown = table[[*columns, "minutes_drawn", "drawn_in_run", "minutes_left", "alert"]]
    if not table.empty:
        publish_table(f"{FLOW}-bundles", shown, "Prepaid bundles: balance after this run")
    allowances = bundles.bundle_status(state_engine(), allowances=True)
    if not allowances.empty:
        shown_allowances = allowances.rename(columns={"description": "allowance"})[
            [
                "customer_number",
                "allowance",
                "valid_from",
                "valid_to",
                "minutes_total",
                "minutes_drawn",
                "minutes_left",
            ]
        ]
        publish_table(f"{FLOW}-allowances", shown_allowances, "Contract hours: use per allowance and month")
    alerts = table[table["alert"].ne("")]
    if not alerts.empty:
        notify_low(alerts)
    return shown


def notify_low(alerts: pd.DataFrame) -> None:
    """One message listing the bundles that fell below the threshold or were used up."""
    from koppel.notifications import NotifySettings, send

    lines = [
        f"Bundle {row.bundle_id} of customer {row.customer_number} ({row.description}): {row.alert}, "
        f"{row.minutes_left} of {row.minutes_total} minutes left"
        for row in alerts.itertuples(index=False)
    ]
    send(f"Koppel: {len(alerts)} prepaid bundle(s) low or used up", "\n".join(lines), NotifySettings().block)
