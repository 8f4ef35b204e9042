"""Prefect tasks of the HR flows (hr-sync, absence-to-afas) around the plain functions in ``tasks/hr_sync``.

Clients and engines are created and closed inside each task; only plain values and frames cross task
boundaries. State goes through ``tasks/hr_sync/state.py`` (the store's snapshots) and ``store/runs.py``.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.afas.client import AfasClient
from connectors.afas.settings import AfasSettings
from connectors.occupational_health.client import OhClient
from connectors.occupational_health.endpoints import ORDER
from connectors.occupational_health.settings import OccupationalHealthSettings
from tasks.artifacts import Progress, artifact_key, publish_markdown, publish_table
from tasks.hr_sync import absences, initial, report, state
from tasks.hr_sync.config import ENTITIES, HrConfig
from tasks.hr_sync.diff import sent_after
from tasks.hr_sync.extract import read_hr
from tasks.hr_sync.mirror import Mode, read_specs
from tasks.hr_sync.pipeline import SyncPlan, SyncState, plan_sync
from tasks.hr_sync.send import send_changes
from tasks.secrets import load_settings
from tasks.state import state_engine

HR_SYNC = "hr-sync"
ABSENCE_TO_AFAS = "absence-to-afas"
REGISTERED = "registered-absences"


def now() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


# --- hr-sync -----------------------------------------------------------------------------------------------


@task(name="read-hr-state", cache_policy=NO_CACHE)
def read_hr_state(config: HrConfig, mode: Mode, window_start: date) -> SyncState:
    """How to read each entity this run, the AFAS mirror and what the OH system was sent."""
    engine = state_engine()
    watermarks = state.load_watermarks(engine, HR_SYNC)
    return SyncState(
        specs=read_specs(config, mode, watermarks, now(), window_start),
        mirror={e: state.load_mirror(engine, e, config) for e in ENTITIES},
        sent={e: state.load_sent(engine, e) for e in ORDER},
        watermarks=watermarks,
    )


@task(name="read-oh-holdings", cache_policy=NO_CACHE)
def read_oh_holdings(sync: SyncState) -> SyncState:
    """Initial sync: what the OH system holds (active records) replaces "what was sent" for this run."""

    async def read() -> dict[str, pd.DataFrame]:
        async with OhClient.from_settings(load_settings(OccupationalHealthSettings)) as client:
            frames = await asyncio.gather(*(client.read_frame(entity) for entity in ORDER))
        return {e: initial.holdings(e, f) for e, f in zip(ORDER, frames, strict=True)}

    return replace(sync, sent=asyncio.run(read()))


@task(name="extract-afas-hr", cache_policy=NO_CACHE)
def extract_afas_hr(
    config: HrConfig, sync: SyncState, window_start: date
) -> tuple[dict[str, pd.DataFrame], dict]:
    """Read departments, employees, employments, absences and users from AFAS (full or changed rows)."""

    async def read() -> tuple[dict[str, pd.DataFrame], dict]:
        async with AfasClient.from_settings(load_settings(AfasSettings)) as client:
            return await read_hr(client, config, sync.specs, window_start), client.stats()

    return asyncio.run(read())


@task(name="plan-hr-sync", cache_policy=NO_CACHE)
def plan_hr_sync(
    raw: dict[str, pd.DataFrame], sync: SyncState, config: HrConfig, window_start: date
) -> SyncPlan:
    """Validate → mirror → desired OH records → changes (``tasks.hr_sync.pipeline.plan_sync``)."""
    return plan_sync(raw, sync, config, window_start, now())


@task(name="store-afas-mirror", cache_policy=NO_CACHE)
def store_afas_mirror(sync_plan: SyncPlan) -> None:
    """Keep the refreshed AFAS mirror and the advanced watermarks (the changes are absorbed now)."""
    at = now()
    engine = state_engine()
    for entity in ENTITIES:
        state.save_mirror(engine, entity, sync_plan.mirror[entity], at)
    state.save_watermarks(engine, HR_SYNC, sync_plan.watermarks, at)


@task(name="send-to-oh", cache_policy=NO_CACHE)
def send_to_oh(changes: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Send the upserts and deactivations to the OH system, in referential order."""
    progress = Progress(
        artifact_key(HR_SYNC, "send-progress"), "Changes sent to the occupational-health system"
    )

    async def run() -> tuple[pd.DataFrame, dict]:
        async with OhClient.from_settings(load_settings(OccupationalHealthSettings)) as client:
            return await send_changes(client, changes, progress.update), client.stats()

    return asyncio.run(run())


@task(name="record-sent", cache_policy=NO_CACHE)
def record_sent(sent: dict[str, pd.DataFrame], outcomes: pd.DataFrame) -> None:
    """Store what the OH system holds now: accepted upserts in, confirmed deactivations out."""
    at = now()
    engine = state_engine()
    for entity in ORDER:
        state.save_sent(engine, entity, sent_after(entity, sent[entity], outcomes), at)


@task(name="report-hr-sync", cache_policy=NO_CACHE)
def report_hr_sync(context: dict[str, Any], sync_plan: SyncPlan, outcomes: pd.DataFrame) -> dict[str, Any]:
    """Publish the summary, the changes sent, the rejects and the flex constructions; return the counts."""
    table = report.counts(sync_plan, outcomes)
    rejects = pd.concat([sync_plan.rejects, report.send_rejects(outcomes)], ignore_index=True)
    flex, without_manager = sync_plan.desired.flex, sync_plan.desired.without_manager
    summary = report.summary_markdown(context, table, flex, len(rejects), without_manager)
    publish_markdown(f"{HR_SYNC}-summary", summary, "hr-sync summary")
    publish_table(
        f"{HR_SYNC}-changes", report.changes_table(outcomes), "Changes sent to the occupational-health system"
    )
    publish_table(f"{HR_SYNC}-rejects", rejects, "Rows not sent, with reasons")
    differences = initial.differences(outcomes) if context.get("initial_sync", "off") != "off" else None
    if differences is not None:
        publish_table(
            f"{HR_SYNC}-initial-differences",
            differences,
            "Initial sync: AFAS compared with what the OH system holds, and what confirming does",
        )
    publish_table(
        f"{HR_SYNC}-flex-constructions", flex, "Employees with concurrent employments (not supported)"
    )
    return {
        "counts": table,
        "rejects": rejects,
        "held": sync_plan.desired.held,
        "flex": flex,
        "without_manager": without_manager,
        "differences": differences,
        "changes": outcomes,
    }


def sync_statistics(outcomes: pd.DataFrame, rejects: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Counts per entity and outcome for the run record."""
    statistics: dict[str, dict[str, int]] = {}
    if not outcomes.empty:
        for (entity, outcome), group in outcomes.groupby(["entity", "outcome"]):
            statistics[f"{entity}:{outcome}"] = {"count": len(group)}
    statistics["rejected"] = {"count": len(rejects)}
    return statistics


# --- absence-to-afas ---------------------------------------------------------------------------------------


@task(name="read-absence-watermark", cache_policy=NO_CACHE)
def read_absence_watermark(config: HrConfig) -> datetime:
    """Read registered absences changed since: the last one absorbed minus the overlap, else the look-back."""
    engine = state_engine()
    marks = state.load_watermarks(engine, ABSENCE_TO_AFAS)
    flow = config.absence_to_afas
    mark = marks[marks["name"] == REGISTERED]["modified_until"]
    if mark.empty or mark.iloc[0] is None:
        return now() - timedelta(days=flow.look_back_days)
    return datetime.fromisoformat(mark.iloc[0]) - timedelta(minutes=flow.overlap_minutes)


@task(name="extract-registered-absences", cache_policy=NO_CACHE)
def extract_registered_absences(config: HrConfig, since: datetime) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The OH system's registered absences changed since ``since`` and AFAS's absences of their employees."""

    async def read() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
        async with OhClient.from_settings(load_settings(OccupationalHealthSettings)) as oh:
            registered = await oh.registered_absences(changed_since=since)
        async with AfasClient.from_settings(load_settings(AfasSettings)) as afas:
            found = await absences.read_afas_absences(afas, config, absences.afas_employees(registered))
            return registered, found, afas.stats()

    return asyncio.run(read())


@task(name="plan-absences", cache_policy=NO_CACHE)
def plan_absences(registered: pd.DataFrame, afas: pd.DataFrame, config: HrConfig) -> pd.DataFrame:
    """Insert, update, unchanged or rejected per registered absence."""
    return absences.plan_absences(registered, afas, config)


@task(name="load-absences-into-afas", cache_policy=NO_CACHE)
def load_absences_into_afas(absence_plan: pd.DataFrame, config: HrConfig) -> tuple[pd.DataFrame, dict]:
    """POST new absences and PUT changed ones through ``HrIllness``."""

    async def run() -> tuple[pd.DataFrame, dict]:
        async with AfasClient.from_settings(load_settings(AfasSettings)) as client:
            return await absences.load_absences(client, absence_plan, config), client.stats()

    return asyncio.run(run())


@task(name="advance-absence-watermark", cache_policy=NO_CACHE)
def advance_absence_watermark(outcomes: pd.DataFrame, registered: pd.DataFrame) -> str | None:
    """Move the watermark to the newest absence handled, but not past one that failed (it is read again)."""
    moment = absences_watermark(outcomes, registered)
    if moment is None:
        return None
    frame = pd.DataFrame(
        [{"name": REGISTERED, "modified_until": moment.isoformat(), "full_at": None, "fingerprint": ""}]
    )
    engine = state_engine()
    state.save_watermarks(engine, ABSENCE_TO_AFAS, frame, now())
    return moment.isoformat()


def absences_watermark(outcomes: pd.DataFrame, registered: pd.DataFrame) -> datetime | None:
    """The newest ``updated_at`` handled, or just before the oldest failure (None: nothing to move)."""
    stamps = (
        pd.to_datetime(registered["updated_at"], utc=True)
        if not registered.empty
        else pd.Series([], dtype="datetime64[ns, UTC]")
    )
    if stamps.empty:
        return None
    failed = (
        outcomes[outcomes["outcome"] == "failed"]["external_id"]
        if not outcomes.empty
        else pd.Series([], dtype=object)
    )
    held = stamps[registered["external_id"].isin(set(failed))]
    if not held.empty:
        return (held.min() - pd.Timedelta(microseconds=1)).to_pydatetime()
    return stamps.max().to_pydatetime()


@task(name="report-absences", cache_policy=NO_CACHE)
def report_absences(context: dict[str, Any], outcomes: pd.DataFrame) -> dict[str, Any]:
    """Publish the summary and the table of absences handled."""
    tally = outcomes["outcome"].value_counts().to_dict() if not outcomes.empty else {}
    table = outcomes.drop(columns=["payload", "updated_at"], errors="ignore")
    lines = [
        "# absence-to-afas",
        "",
        f"- registered absences changed since: **{context['since']}**",
        f"- dry run: **{context['dry_run']}**",
        "",
        "| outcome | absences |",
        "|---|---|",
        *[f"| {name} | {count} |" for name, count in sorted(tally.items())],
    ]
    publish_markdown(f"{ABSENCE_TO_AFAS}-summary", "\n".join(lines), "absence-to-afas summary")
    publish_table(
        f"{ABSENCE_TO_AFAS}-absences", table, "Absences registered in the OH system and what happened"
    )
    return {"counts": {str(k): int(v) for k, v in tally.items()}, "absences": table}
