"""Cutting planned documents into AFAS batches (plain functions, no Prefect, no HTTP)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.invoice_hours.load import Batch, LoadSettings, batches

KINDS = ["direct_invoice", "project_realisation", "sales_booking", "internal_entry"]


def plan(specs: list[tuple[str, int, int]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Documents ``(kind, administration, lines)`` named D0, D1, … and their lines."""
    documents = pd.DataFrame(
        {
            "reference": [f"D{i}" for i in range(len(specs))],
            "kind": [k for k, _, _ in specs],
            "administration": [a for _, a, _ in specs],
        }
    )
    lines = pd.DataFrame({"reference": [f"D{i}" for i, (_, _, n) in enumerate(specs) for _ in range(n)]})
    return documents, lines


def test_batches_keep_connector_and_administration_apart_and_respect_both_limits():
    documents, lines = plan(
        [
            ("direct_invoice", 1, 2),
            ("sales_booking", 1, 3),
            ("direct_invoice", 2, 1),
            ("direct_invoice", 1, 2),
            ("internal_entry", 1, 4),  # FiEntries too, so it joins the sales booking
            ("direct_invoice", 1, 5),
            ("direct_invoice", 1, 1),
        ]
    )
    got = batches(documents, lines, LoadSettings(batch_documents=2, batch_lines=6))
    assert got == [
        Batch("FbDirectInvoice", 1, ("D0", "D3")),
        Batch("FbDirectInvoice", 1, ("D5", "D6")),
        Batch("FiEntries", 1, ("D1",)),  # 3 + 4 lines > 6
        Batch("FiEntries", 1, ("D4",)),
        Batch("FbDirectInvoice", 2, ("D2",)),
    ]


def test_one_document_per_batch_turns_batching_off_and_a_large_document_goes_alone():
    documents, lines = plan([("direct_invoice", 1, 900), ("direct_invoice", 1, 1), ("direct_invoice", 1, 1)])
    assert [b.references for b in batches(documents, lines, LoadSettings(batch_documents=1))] == [
        ("D0",),
        ("D1",),
        ("D2",),
    ]
    assert [b.references for b in batches(documents, lines, LoadSettings())] == [("D0",), ("D1", "D2")]


@given(
    st.lists(st.tuples(st.sampled_from(KINDS), st.integers(1, 3), st.integers(1, 40)), max_size=60),
    st.integers(1, 9),
    st.integers(1, 80),
)
def test_every_document_is_in_exactly_one_batch_within_the_limits(specs, most, most_lines):
    documents, lines = plan(specs)
    got = batches(documents, lines, LoadSettings(batch_documents=most, batch_lines=most_lines))
    listed = [r for b in got for r in b.references]
    assert sorted(listed) == sorted(documents["reference"])
    sizes = lines["reference"].value_counts()
    for batch in got:
        assert len(batch.references) <= most
        kinds = {documents.set_index("reference").loc[r, "kind"] for r in batch.references}
        assert len({"FiEntries" if k.endswith(("booking", "entry")) else k for k in kinds}) == 1
        if len(batch.references) > 1:
            assert sum(sizes[r] for r in batch.references) <= most_lines


def test_settings_are_checked():
    with pytest.raises(ValueError):
        LoadSettings(batch_documents=0)


def test_recovery_keeps_documents_uncertain_when_afas_cannot_be_reached(tmp_path):
    import asyncio
    from datetime import timedelta

    from connectors.afas.client import AfasClient
    from connectors.afas.settings import AfasSettings
    from connectors.http import RetryPolicy
    from store import ledger
    from store.db import connect
    from store.settings import StoreSettings
    from tasks.invoice_hours.load import BatchLoader
    from tests.store_support import charges

    engine = connect(StoreSettings(db_url=f"sqlite:///{tmp_path / 'state.db'}"))
    ledger.claim(engine, "dead-run", charges("KPL-DEAD-1", ["r1"]))
    settings = AfasSettings(environment_number="12345", token="A" * 64, base_url="http://127.0.0.1:9/Profit")
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01, max_total_seconds=5)

    async def recover():
        async with AfasClient.from_settings(settings, policy=policy) as client:
            return await BatchLoader(engine, client, "run-2", None).recover(timedelta(0))

    outcomes = asyncio.run(recover())
    assert [(o.reference, o.status) for o in outcomes] == [("KPL-DEAD-1", "uncertain")]
    assert "recovery look-up failed" in outcomes[0].message
    record = ledger.document(engine, "KPL-DEAD-1")
    assert (record.status, record.claimed_by_run) == ("uncertain", "run-2")


def test_line_claims_built_in_one_pass_equal_those_built_per_document():
    from datetime import date
    from decimal import Decimal

    from tasks.invoice_hours.load import line_claims, line_claims_by_reference

    lines = pd.DataFrame(
        {
            "reference": ["A", "B", "A", "B"],
            "registration_id": ["r1", "r2", "r3", "r2"],
            "line_kind": ["charge", "credit", "charge", "charge"],
            "fields_hash": ["h1", "h2", "h3", "h4"],
            "billed_minutes": pd.array([30, -15, 45, 20], dtype="Int64"),
            "amount": [Decimal("42.50"), Decimal("-21.25"), Decimal("63.75"), Decimal("28.33")],
            "work_date": [pd.Timestamp("2026-10-01", tz="Europe/Amsterdam"), date(2026, 10, 2)] * 2,
            "customer_number": ["C1", None, "C1", "C2"],
            "expected_version": pd.array([None, 3, None, 3], dtype="Int64"),
            "wide_column_the_claim_never_reads": ["x"] * 4,
            # what a later reversal negates: missing values are left out, types as the ledger keeps them
            "ticket_number": ["I 2610 001", None, float("nan"), "I 2610 002"],
            "quantity": [Decimal("0.50"), Decimal("-0.25"), None, Decimal("0.33")],
            "base_minutes": pd.array([30, None, 45, 20], dtype="Int64"),
            "cost_centre": ["101", None, "102", "103"],
        }
    )
    got = line_claims_by_reference(lines)
    assert set(got) == {"A", "B"}
    for reference, own in lines.groupby("reference"):
        assert got[reference] == line_claims(own)
    first = got["A"][0].details
    assert first == {
        "ticket_number": "I 2610 001",
        "quantity": Decimal("0.50"),
        "base_minutes": 30,
        "cost_centre": "101",
    }
    assert got["B"][0].details == {"quantity": Decimal("-0.25")}
