"""The AFAS mirror: what to read from AFAS (full or changed rows), and how the rows read update the mirror.

Koppel keeps a mirror of the normalised AFAS HR rows in the store, so every run can reason over the
*complete* picture (flex constructions, managers, references) while reading only the rows modified since
the last watermark (minus an overlap window, reference §11.5). A *full* read replaces the mirror and so
notices rows deleted in AFAS (hard deletes leave no trace, §11.15); it happens on the first run, when the
configuration of an entity changed, when asked for, and in mode ``auto`` when the last full read is older
than ``full_every_hours`` (nightly). Entities without a modified-date column are always read in full.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import pandas as pd

from tasks.hr_sync.config import ENTITIES, HrConfig
from tasks.hr_sync.mapping import KEYS

Mode = Literal["auto", "incremental", "full"]
WATERMARK_COLUMNS = ["name", "modified_until", "full_at", "fingerprint", "window_start"]


@dataclass(frozen=True)
class ReadSpec:
    """How one entity is read this run: in full, or changed since ``since`` (overlap already subtracted)."""

    entity: str
    full: bool
    since: datetime | None
    reason: str

    def describe(self) -> str:
        """``full (first run)`` / ``changed since 2026-11-20T05:55:00+00:00``."""
        return (
            f"full ({self.reason})"
            if self.full
            else f"changed since {self.since.isoformat() if self.since else '?'}"
        )


def _parse(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if isinstance(value, str) and value else None


def _by_name(watermarks: pd.DataFrame) -> dict[str, dict]:
    return {str(r["name"]): r for r in watermarks.to_dict(orient="records")} if not watermarks.empty else {}


def read_specs(
    config: HrConfig, mode: Mode, watermarks: pd.DataFrame, now: datetime, window_start: date | None = None
) -> dict[str, ReadSpec]:
    """Per entity: full or incremental, and why (``watermarks`` as stored: name, modified_until, ...)."""
    known, specs = _by_name(watermarks), {}
    for entity in ENTITIES:
        mark = known.get(entity, {})
        reason = _full_reason(config, entity, mode, mark, now, window_start)
        until = _parse(mark.get("modified_until"))
        since = None if reason or until is None else until - timedelta(minutes=config.overlap_minutes)
        specs[entity] = ReadSpec(entity, bool(reason), since, reason)
    return specs


def _full_reason(
    config: HrConfig, entity: str, mode: Mode, mark: dict, now: datetime, window_start: date | None
) -> str:
    """Why ``entity`` is read in full this run (``""``: it is not)."""
    full_at, covered = _parse(mark.get("full_at")), mark.get("window_start")
    if not config.source(entity).modified:
        return "no modified-date column"
    if mode == "full":
        return "mode full"
    if _parse(mark.get("modified_until")) is None or full_at is None:
        return "first run"
    if mark.get("fingerprint") != config.fingerprint(entity):
        return "configuration changed"
    if entity == "absences" and window_start is not None and covered and window_start.isoformat() < covered:
        return f"absence window moved back to {window_start.isoformat()}"  # older absences were never read
    if mode == "auto" and now - full_at >= timedelta(hours=config.full_every_hours):
        return f"last full comparison older than {config.full_every_hours:g} h"
    return ""


def merge_mirror(
    entity: str,
    old: pd.DataFrame,
    valid: pd.DataFrame,
    rejected: set[str],
    *,
    full: bool,
    window_start: date | None = None,
) -> pd.DataFrame:
    """The new mirror of ``entity`` after reading ``valid`` rows (their keys replace the old rows).

    Incremental: every other old row stays. Full: an old row stays only when its key was rejected this
    run (a bad row is no deletion) or, for absences, when it ended before the read window (old absences
    age out of the read, not out of AFAS).
    """
    key = KEYS[entity]
    read_keys = set(valid[key])
    untouched = old[~old[key].isin(read_keys)]
    if full:
        keep = untouched[key].isin(rejected)
        if entity == "absences" and window_start is not None:
            ended = untouched["end_date"]
            keep |= ended.notna() & (ended.astype(object) < window_start.isoformat())
        untouched = untouched[keep]
    merged = pd.concat([untouched, valid], ignore_index=True) if len(untouched) else valid.copy()
    return merged.sort_values(key, kind="stable").reset_index(drop=True)


def _covered(entity: str, spec: ReadSpec, mark: dict, window_start: date | None) -> str | None:
    if entity != "absences" or window_start is None:
        return None
    return window_start.isoformat() if spec.full or not mark.get("window_start") else mark["window_start"]


def newest_modified(raw: pd.DataFrame, column: str) -> datetime | None:
    """The newest modified date among the rows read (aware), or None."""
    if not column or raw.empty or column not in raw.columns:
        return None
    newest = pd.to_datetime(raw[column], utc=True).max()
    return None if pd.isna(newest) else newest.to_pydatetime()


def next_watermarks(
    config: HrConfig,
    old: pd.DataFrame,
    specs: dict[str, ReadSpec],
    newest: dict[str, datetime | None],
    now: datetime,
    window_start: date | None = None,
) -> pd.DataFrame:
    """The watermarks after this run's reads: never moving back, ``full_at`` set by full reads.

    For absences ``window_start`` records the first day the mirror covers: a full read covers this run's
    window, an incremental one keeps the earlier start (a later window start reads fewer rows, not fewer
    absences in the mirror).
    """
    known, rows = _by_name(old), []
    for entity in ENTITIES:
        mark, spec = known.get(entity, {}), specs[entity]
        # A full read starts afresh (the connector may have changed); an incremental one never moves back.
        previous = None if spec.full else _parse(mark.get("modified_until"))
        candidates = [t for t in (previous, newest.get(entity)) if t is not None]
        until = max(candidates) if candidates else None
        full_at = now if spec.full else _parse(mark.get("full_at"))
        rows.append(
            {
                "name": entity,
                "modified_until": until.isoformat() if until else None,
                "full_at": full_at.isoformat() if full_at else None,
                "fingerprint": config.fingerprint(entity),
                "window_start": _covered(entity, spec, mark, window_start),
            }
        )
    return pd.DataFrame(rows, columns=WATERMARK_COLUMNS, dtype=object)
