"""Read the HR GetConnectors from AFAS: each entity in full or changed since its watermark.

The connectors and their sort keys come from the configuration (decision §11.14), so they are described
to the client on the fly when the registry does not know them. Absences are read for a window: those
still open or ending on or after its first day (an absence that started long ago and is still running
matters most to the occupational-health service).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, time

import pandas as pd

from connectors.afas.client import AfasClient
from connectors.afas.filters import Filter
from connectors.afas.getconnectors import REGISTRY, GetConnector
from koppel.clock import AMSTERDAM
from tasks.hr_sync.config import ENTITIES, HrConfig, Source
from tasks.hr_sync.mirror import ReadSpec


def describe(source: Source) -> GetConnector:
    """The GetConnector to read: the registry's entry when it sorts on the configured key, else a new one."""
    known = REGISTRY.get(source.connector)
    if known is not None and known.sort_key == (source.sort_key,):
        return known
    return GetConnector(source.connector, (source.sort_key,), keyset=True)


def filters_for(config: HrConfig, spec: ReadSpec, window_start: date) -> list[list[Filter]]:
    """OR-groups of AND-ed filters: the modified-date filter of an incremental read, the absence window."""
    source = config.source(spec.entity)
    # ``spec.since`` already lies the overlap window before the watermark (decision §11.5).
    common = [] if spec.full or spec.since is None else [Filter(source.modified, ">=", spec.since)]
    if spec.entity != "absences":
        return [common] if common else []
    end = config.absences.columns.end_date
    first = datetime.combine(window_start, time(), tzinfo=AMSTERDAM)
    return [[*common, Filter(end, ">=", first)], [*common, Filter(end, "empty")]]


async def read_entity(
    client: AfasClient, config: HrConfig, spec: ReadSpec, window_start: date
) -> pd.DataFrame:
    """The rows of one entity as AFAS's typed frame."""
    source = config.source(spec.entity)
    return await client.read_frame(describe(source), filters=filters_for(config, spec, window_start) or None)


async def read_hr(
    client: AfasClient, config: HrConfig, specs: dict[str, ReadSpec], window_start: date
) -> dict[str, pd.DataFrame]:
    """Every entity's rows, read concurrently (the client bounds the calls in flight)."""
    frames = await asyncio.gather(*(read_entity(client, config, specs[e], window_start) for e in ENTITIES))
    return dict(zip(ENTITIES, frames, strict=True))
