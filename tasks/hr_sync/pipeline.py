"""One hr-sync run as plain functions: rows read → validated → mirror → desired OH records → changes.

``plan_sync`` is everything between reading AFAS and sending to the OH system; it touches neither the
network nor the store, so it is tested without either. The flow stores the new mirror and watermarks,
sends ``changes`` and records the outcome (``tasks/hr_sync/tasks.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from tasks.hr_sync.config import ENTITIES, HrConfig
from tasks.hr_sync.diff import plan_changes
from tasks.hr_sync.mapping import normalise
from tasks.hr_sync.mirror import ReadSpec, merge_mirror, newest_modified, next_watermarks
from tasks.hr_sync.plan import Desired, desired_state
from tasks.hr_sync.validate import REJECT_COLUMNS, split_valid


@dataclass
class SyncState:
    """What the store knows before a run: how to read, the AFAS mirror, what the OH system was sent."""

    specs: dict[str, ReadSpec]
    mirror: dict[str, pd.DataFrame]
    sent: dict[str, pd.DataFrame]
    watermarks: pd.DataFrame


@dataclass
class SyncPlan:
    """The outcome of planning: the new mirror and watermarks, rejects, the desired records, the changes."""

    specs: dict[str, ReadSpec]
    read: dict[str, int]
    mirror: dict[str, pd.DataFrame]
    rejects: pd.DataFrame
    desired: Desired
    changes: pd.DataFrame
    watermarks: pd.DataFrame
    sent: tuple[str, ...] = ENTITIES


def plan_sync(
    raw: dict[str, pd.DataFrame], state: SyncState, config: HrConfig, window_start: date, now: datetime
) -> SyncPlan:
    """Validate the rows read, refresh the mirror, derive the desired OH records and diff them."""
    mirror, rejects, newest = {}, [], {}
    for entity in ENTITIES:
        spec = state.specs[entity]
        valid, rejected = split_valid(entity, normalise(entity, raw[entity], config))
        keys = {str(k) for k in rejected["key"].dropna()}
        mirror[entity] = merge_mirror(
            entity, state.mirror[entity], valid, keys, full=spec.full, window_start=window_start
        )
        rejects.append(rejected)
        newest[entity] = newest_modified(raw[entity], config.source(entity).modified)
    desired = desired_state(mirror, config, window_start)
    changes = plan_changes(desired.records, state.sent, desired.frozen)
    # Entities the XS option does not send are neither upserted nor deactivated: the OH system keeps them.
    changes = changes[changes["entity"].isin(config.sent_entities)].reset_index(drop=True)
    all_rejects = pd.concat([*rejects, desired.rejects], ignore_index=True).reindex(columns=REJECT_COLUMNS)
    return SyncPlan(
        specs=state.specs,
        read={entity: len(raw[entity]) for entity in ENTITIES},
        mirror=mirror,
        rejects=all_rejects,
        desired=desired,
        changes=changes,
        watermarks=next_watermarks(config, state.watermarks, state.specs, newest, now, window_start),
        sent=config.sent_entities,
    )
