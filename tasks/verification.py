"""Prefect tasks of the verify-invoices flow: read Koppel's posted documents of a period back from AFAS."""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from connectors.afas.client import AfasClient
from connectors.afas.filters import Filter
from connectors.afas.settings import AfasSettings
from schemas.kinds import Mode, kind
from store import ledger
from tasks.invoice_hours.verify import compare, differences_frame
from tasks.secrets import load_settings
from tasks.state import state_engine


@task(name="verify-documents", cache_policy=NO_CACHE)
def verify_documents(period: str) -> tuple[int, pd.DataFrame]:
    """``(documents checked, differences)`` for every document the ledger says was posted in ``period``."""
    engine = state_engine()
    posted = ledger.documents(engine, period=period, status="posted")
    records = [ledger.document(engine, reference) for reference in posted["reference"]]
    differences = asyncio.run(_verify(records))
    return len(records), differences_frame(differences)


async def _verify(records: list[ledger.DocumentRecord]) -> list[dict[str, Any]]:
    differences: list[dict[str, Any]] = []
    async with AfasClient.from_settings(load_settings(AfasSettings)) as client:
        for record in records:
            headers, rows = await _read_back(client, record)
            document = {"reference": record.reference, "kind": record.kind, "period": record.period}
            differences += compare(document, record.payload, headers, rows)
    return differences


async def _read_back(client: AfasClient, record: ledger.DocumentRecord) -> tuple[int, list[dict[str, Any]]]:
    """How many documents AFAS holds under the reference, and their lines."""
    row_kind = kind(record.kind)
    if row_kind.mode is Mode.DIRECT_INVOICE:
        headers = []
        # the reference field, then where earlier versions wrote it (invoices posted before Fref carry RfCs)
        for name in (row_kind.reference_field, *row_kind.earlier_reference_fields):
            headers = [
                row
                async for row in client.iter_rows(
                    row_kind.read_back, filters=Filter(name, "=", record.reference)
                )
            ]
            if headers:
                break
        rows = []
        for header in headers:
            rows += [
                row
                async for row in client.iter_rows(
                    "Koppel_DirectInvoiceLines", filters=Filter("OrNu", "=", header["OrNu"])
                )
            ]
        return len(headers), rows
    if row_kind.mode is Mode.PROJECT_REALISATION:
        field = row_kind.reference_field
        keys = [e["Fields"][field] for e in _list(record.payload[row_kind.root]["Element"])]
        rows = []
        for key in keys:
            found = client.iter_rows(row_kind.read_back, filters=Filter(field, "=", key))
            rows += [row async for row in found]
        return (1 if rows else 0), rows
    rows = [
        row
        async for row in client.iter_rows(
            row_kind.read_back, filters=Filter(row_kind.reference_field, "=", record.reference)
        )
    ]
    return len({row.get("EnNo") for row in rows}), rows


def _list(node: Any) -> list[Any]:
    return node if isinstance(node, list) else [node]
