"""invoice-hours with batched AFAS posts: a registration claimed by another run between plan and load."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from flows.invoice_hours import InvoiceHoursParameters, invoice_hours
from sandbox.server import running_sandbox
from store import ledger
from store.db import connect
from store.settings import StoreSettings
from tests.invoice_support import OCTOBER, small_world, use_sandbox

pytestmark = pytest.mark.prefect


def test_a_registration_claimed_elsewhere_meanwhile_leaves_only_its_document_to_replan(
    prefect_harness, monkeypatch, tmp_path
) -> None:
    monkeypatch.setenv("KOPPEL_LOAD_BATCH_DOCUMENTS", "7")
    original = ledger.claim_batch
    raced: list[str] = []
    once = threading.Lock()  # batch claims run in worker threads

    def racing(engine, run_id, claims):
        """Before the first batch claim, another run claims one registration of a multi-line document."""
        with once:
            if not raced and any(len({x.registration_id for x in c.lines}) > 1 for c in claims):
                race(engine, claims)
        return original(engine, run_id, claims)

    def race(engine, claims):
        victim = next(c for c in claims if len({line.registration_id for line in c.lines}) > 1)
        line = victim.lines[0]
        other = ledger.DocumentClaim(
            reference="OTHER-RUN-1",
            kind=victim.kind,
            administration=victim.administration,
            debtor=None,
            project=None,
            period=victim.period,
            payload={},
            minutes=line.minutes,
            amount=line.amount,
            needs_invoice_number=False,
            lines=(line,),
        )
        ledger.claim(engine, "other-run", other)
        raced.extend([victim.reference, line.registration_id])

    monkeypatch.setattr(ledger, "claim_batch", racing)
    with running_sandbox(small_world(seed=17)) as sandbox:
        use_sandbox(monkeypatch, sandbox, tmp_path)
        params = InvoiceHoursParameters(start_date=OCTOBER[0], end_date=OCTOBER[1])
        result = invoice_hours(**params.model_dump())
        sim = sandbox.apps["afas"].state.sim
        refs = Counter(row["RfCs"] for row in sim.documents("Koppel_DirectInvoices"))
        refs.update({row["BpNr"] for row in sim.documents("Koppel_Entries")})
    _, registration = raced
    statuses = Counter(result["documents"]["status"])
    assert set(statuses) == {"posted"}, statuses
    assert max(refs.values()) == 1  # nothing twice in AFAS
    state = ledger.billed_state(connect(StoreSettings()), [registration])
    assert state["document_reference"].tolist() == ["OTHER-RUN-1"]  # the other run keeps it
    docs = ledger.documents(connect(StoreSettings()))
    assert set(docs.loc[docs["reference"] != "OTHER-RUN-1", "status"]) == {"posted"}
    assert len(docs) == statuses["posted"] + 1
