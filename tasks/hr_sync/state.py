"""The HR syncs' state in the store, through ``store/snapshots.py`` (only ``store/`` speaks SQL).

Three kinds of snapshot entities:

- ``hr-afas-<entity>``: the AFAS mirror (normalised rows, keyed like ``tasks/hr_sync/mapping.KEYS``);
- ``hr-oh-<entity>``: what the OH system was sent and accepted (``external_id`` + body fields);
- ``<flow>-watermarks``: one row per entity (or feed): newest modified date absorbed, time of the last full
  read and the configuration fingerprint it was made with.

Each is stored whole with ``apply_snapshot``, which also logs every added, changed and removed row in
``snapshot_changes``, so the history of what Koppel sent is kept.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from connectors.occupational_health.endpoints import RESOURCES
from store import snapshots
from tasks.hr_sync.config import HrConfig
from tasks.hr_sync.mapping import KEYS, columns_of, plain_frame
from tasks.hr_sync.mirror import WATERMARK_COLUMNS


def mirror_entity(entity: str) -> str:
    """Snapshot entity of the AFAS mirror of ``entity``."""
    return f"hr-afas-{entity}"


def sent_entity(entity: str) -> str:
    """Snapshot entity of what the OH system holds of ``entity``."""
    return f"hr-oh-{entity}"


def load_mirror(engine: Engine, entity: str, config: HrConfig) -> pd.DataFrame:
    """The stored AFAS mirror of ``entity`` in the configured columns (empty before the first run)."""
    return plain_frame(snapshots.current(engine, mirror_entity(entity)), columns_of(entity, config))


def save_mirror(engine: Engine, entity: str, frame: pd.DataFrame, at: datetime) -> pd.DataFrame:
    """Store the new mirror; returns the rows added, changed and removed since the previous one."""
    return snapshots.apply_snapshot(engine, mirror_entity(entity), frame, KEYS[entity], seen_at=at)


def load_sent(engine: Engine, entity: str) -> pd.DataFrame:
    """What the OH system was sent of ``entity`` (``external_id`` + body fields)."""
    columns = ["external_id", *RESOURCES[entity].fields]
    return plain_frame(snapshots.current(engine, sent_entity(entity)), columns)


def save_sent(engine: Engine, entity: str, frame: pd.DataFrame, at: datetime) -> None:
    """Store what the OH system now holds of ``entity`` (empty is allowed: everything deactivated)."""
    snapshots.apply_snapshot(engine, sent_entity(entity), frame, "external_id", seen_at=at, allow_empty=True)


def load_watermarks(engine: Engine, scope: str) -> pd.DataFrame:
    """The watermarks of ``scope`` (``hr-sync``, ``absence-to-afas``)."""
    return plain_frame(snapshots.current(engine, f"{scope}-watermarks"), WATERMARK_COLUMNS)


def save_watermarks(engine: Engine, scope: str, frame: pd.DataFrame, at: datetime) -> None:
    """Store the watermarks of ``scope``."""
    snapshots.apply_snapshot(engine, f"{scope}-watermarks", frame, "name", seen_at=at, allow_empty=True)
