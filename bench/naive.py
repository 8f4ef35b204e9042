"""A naive sequential client over the same world: the yardstick for "how much faster is Koppel".

It does the work Koppel does, the way a first script would: every TOPdesk and AFAS read one call at a
time (the same endpoints and page sizes, concurrency 1), the same plan, then one POST per document, one
after the other, with no ledger at all (which only flatters it). It runs on a fresh sandbox of the same
world in the same ``make bench`` invocation as Koppel, so the speedup printed compares like with like.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Any


def run_naive(info: dict[str, Any], db_url: str, window: Any) -> dict[str, Any]:
    """Run the naive client against the sandbox described by ``info``; wall seconds and requests."""
    from connectors.afas.client import AfasClient
    from connectors.afas.settings import AfasSettings
    from connectors.topdesk.settings import TopdeskSettings
    from koppel.settings import load
    from store import bundles, exclusions, ledger
    from store.db import connect
    from store.settings import StoreSettings
    from tasks.invoice_hours.config import load_billing_config
    from tasks.invoice_hours.extract import read_masters, read_registrations
    from tasks.invoice_hours.load import CONNECTORS
    from tasks.invoice_hours.payloads import build_payloads
    from tasks.invoice_hours.pipeline import Scope, bill

    os.environ.update(info["env"])
    os.environ["KOPPEL_STATE_DB_URL"] = db_url
    config, engine = load_billing_config(), connect(load(StoreSettings))
    started = time.perf_counter()
    read, _ = asyncio.run(read_registrations(load(TopdeskSettings, max_concurrency=1), window))
    masters, _ = asyncio.run(read_masters(load(AfasSettings, max_concurrency=1)))
    ids = read["registration_id"].dropna().astype(str).unique().tolist()
    billing = bill(
        read,
        masters,
        config,
        ignore=exclusions.as_frame(engine),
        state=ledger.billed_state(engine, ids, (window.first, window.last + timedelta(days=1))),
        posted=ledger.posted_lines(engine, ids, (window.first, window.last + timedelta(days=1))),
        bundles=bundles.balances(engine, window.last),
        prior_draws=bundles.draws(engine, ids),
        scope=Scope(regular=True, window=(window.start, window.end)),
    )
    payloads = build_payloads(billing.documents, billing.document_lines, config)
    kinds = dict(zip(billing.documents["reference"], billing.documents["kind"], strict=True))

    async def post_one_by_one() -> int:
        async with AfasClient.from_settings(load(AfasSettings, max_concurrency=1)) as client:
            for reference, payload in payloads.items():
                await client.insert(CONNECTORS[kinds[reference]], payload)
        return len(payloads)

    posted = asyncio.run(post_one_by_one())
    return {"wall": time.perf_counter() - started, "posted": posted, "registrations": len(read)}
