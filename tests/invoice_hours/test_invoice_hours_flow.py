"""invoice-hours end to end against the sandbox: conservation, exactly once, corrections, dry runs."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from flows.invoice_hours import invoice_hours
from store import ledger
from store.db import connect
from store.settings import StoreSettings
from tasks.state import RunNotClean
from tests.invoice_support import (
    OCTOBER,
    afas_invoices,
    decimal,
    entries_by_reference,
    invoice_line_keys,
    payload_line_keys,
)

pytestmark = pytest.mark.prefect


def run(start=OCTOBER[0], end=OCTOBER[1], **kwargs):
    return invoice_hours(start_date=start, end_date=end, **kwargs)


def run_not_clean(start=OCTOBER[0], end=OCTOBER[1], **kwargs) -> tuple[dict, str]:
    """A run that must end Failed although it did its work: its result and its state message."""
    state = invoice_hours(start_date=start, end_date=end, **kwargs, return_state=True)
    assert state.is_failed(), state
    error = state.result(raise_on_failure=False)
    assert isinstance(error, RunNotClean), error
    return error.result, state.message


def engine():
    return connect(StoreSettings())


def posted_statuses(result) -> Counter:
    return Counter(result["documents"]["status"])


def test_end_to_end_conservation_and_afas_matches_the_plan_cent_by_cent(prefect_harness, sandbox) -> None:
    result = run()
    conservation = result["conservation"]
    assert conservation["holds"], conservation
    buckets = conservation["buckets"]
    assert conservation["read"]["minutes"] == sum(b["minutes"] for b in buckets.values())
    assert buckets["invoiced"]["count"] > 50 and buckets["internal"]["count"] > 0
    assert buckets["rejected"]["count"] > 0 and buckets["excluded"]["count"] > 0
    assert set(result["documents"]["status"]) == {"posted"}

    sim = sandbox.apps["afas"].state.sim
    invoices = afas_invoices(sim)
    entries = entries_by_reference(sim)
    realisations = {row["XpRe"]: row for row in sim.documents("Koppel_Realizations")}
    docs = ledger.documents(engine(), status="posted")
    assert len(docs) == len(result["documents"])
    for doc in docs.itertuples():
        payload = ledger.document(engine(), doc.reference).payload
        if doc.kind == "direct_invoice":
            assert len(invoices[doc.reference]) == 1, doc.reference  # posted once
            posted = invoices[doc.reference][0]
            assert invoice_line_keys(posted["lines"]) == payload_line_keys(payload)
            total = sum(decimal(decimal(x["QuUn"]) * decimal(x["Upri"])) for x in posted["lines"])
            assert total == doc.amount
        elif doc.kind in ("internal_entry", "sales_booking"):
            lines = entries[doc.reference]
            debit = sum(decimal(x["AmDe"] or 0) for x in lines)
            credit = sum(decimal(x["AmCr"] or 0) for x in lines)
            assert debit == credit
            assert debit >= doc.amount
        else:
            element = payload["PtRealization"]["Element"]
            rows = element if isinstance(element, list) else [element]
            for row in rows:
                posted = realisations[row["Fields"]["XpRe"]]
                assert decimal(posted["QuantityUnit"]) == decimal(row["Fields"]["Qu"])
    assert sum(len(v) for v in invoices.values()) == sum(docs["kind"].eq("direct_invoice"))


def test_rerun_and_overlapping_backfill_post_nothing_twice(prefect_harness, sandbox) -> None:
    first = run()
    sim = sandbox.apps["afas"].state.sim
    posted_first = len(sim.documents("Koppel_DirectInvoices"))
    assert posted_first == posted_statuses(first)["posted"] - sum(
        first["documents"]["kind"].ne("direct_invoice")
    )

    again = run()
    assert posted_statuses(again)["posted"] == 0
    assert again["conservation"]["holds"]
    assert again["conservation"]["buckets"]["billed before"]["count"] == (
        first["conservation"]["buckets"]["invoiced"]["count"]
        + first["conservation"]["buckets"]["internal"]["count"]
    )

    september_too = run(start=OCTOBER[0].replace(month=9, day=15), end=OCTOBER[0].replace(day=20))
    assert september_too["conservation"]["holds"]
    references = [row["RfCs"] for row in sim.documents("Koppel_DirectInvoices")]
    assert len(references) == len(set(references))
    billed = ledger.billed_state(engine())
    assert billed["registration_id"].is_unique
    october = september_too["buckets"]
    seen = first["buckets"]
    seen = seen[seen["bucket"].ne("outside window")]  # served then (no date filter on OM), not billed
    overlap = october[october["registration_id"].isin(seen["registration_id"])]
    assert not overlap["bucket"].isin(["invoiced", "internal"]).any()


def test_a_changed_registration_yields_exactly_one_correction(prefect_harness, sandbox, monkeypatch) -> None:
    from tests.reconcile_support import pin_today, regular

    pin_today(monkeypatch)  # corrections are a regular run's job; a backfill only bills new registrations
    first = regular()
    buckets = first["buckets"]
    incident_ids = set(sandbox.world.extra["td_registrations"]["id"])
    invoiced = buckets[buckets["bucket"].eq("invoiced") & buckets["registration_id"].isin(incident_ids)]
    billed = invoiced.iloc[0]
    topdesk = sandbox.apps["topdesk"].state.sim
    topdesk.set_registration_minutes(billed["registration_id"], int(billed["minutes"]) + 45)

    second = regular()
    assert second["conservation"]["holds"]
    corrections = second["buckets"][second["buckets"]["bucket"].eq("re-charged")]
    assert list(corrections["registration_id"]) == [billed["registration_id"]]
    assert posted_statuses(second)["posted"] == 1
    history = ledger.registration_history(engine(), billed["registration_id"])
    assert sorted(history["line_kind"]) == ["charge", "charge", "credit"]
    credit = history[history["line_kind"].eq("credit")].iloc[0]
    first_charge = history[history["line_kind"].eq("charge")].iloc[0]
    assert credit["amount"] == -first_charge["amount"]

    third = regular()
    assert posted_statuses(third)["posted"] == 0


def test_a_refused_document_fails_alone_and_goes_through_with_resend(prefect_harness, sandbox) -> None:
    afas = sandbox.apps["afas"].state.sim
    dry = run(dry_run=True)
    invoices = dry["documents"][dry["documents"]["kind"].eq("direct_invoice")]
    victim = invoices.iloc[0]
    afas.reject_next_post(victim["debtor"], "Verkooprelatie is tijdelijk geblokkeerd voor facturatie.")

    first, message = run_not_clean()
    assert message == "1 document refused by AFAS"
    table = first["documents"].set_index("reference")
    assert table.loc[victim["reference"], "status"] == "failed"
    assert "tijdelijk geblokkeerd" in table.loc[victim["reference"], "message"]
    assert (table["status"] == "posted").sum() == len(table) - 1
    record = ledger.document(engine(), victim["reference"])
    assert record.status == "failed" and len(record.profit_log_reference) == 32
    assert first["conservation"]["holds"]
    assert first["conservation"]["buckets"]["failed"]["minutes"] > 0
    summary = _artifact_markdown("invoice-hours-2026-10-summary")
    assert victim["reference"] in summary and "tijdelijk geblokkeerd" in summary
    assert "| refused by AFAS | 1 |" in summary

    rerun = run()  # the refusal was reported by the first run; waiting for `koppel resend` is not new
    assert posted_statuses(rerun)["posted"] == 0  # failed stays failed until resent
    waiting = rerun["buckets"][rerun["buckets"]["bucket"].eq("failed")]
    assert set(waiting["reference"]) == {victim["reference"]}
    assert rerun["conservation"]["buckets"]["failed"] == first["conservation"]["buckets"]["failed"]
    resent = run(resend=[victim["reference"]])
    posted = resent["documents"][resent["documents"]["status"].eq("posted")]
    assert len(posted) == 1
    assert posted.iloc[0]["amount"] == victim["amount"]
    assert ledger.document(engine(), victim["reference"]).status in ("posted", "released")
    invoices_in_afas = afas_invoices(afas)
    assert sum(len(v) for v in invoices_in_afas.values()) == len(invoices)


def test_dry_run_posts_nothing_and_shows_the_plan_the_real_run_posts(prefect_harness, sandbox) -> None:
    dry = run(dry_run=True)
    assert sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices") == []
    assert set(dry["documents"]["status"]) == {"dry-run"}
    real = run()
    planned = dry["documents"][["reference", "amount", "hours"]].sort_values("reference")
    posted = real["documents"][["reference", "amount", "hours"]].sort_values("reference")
    assert planned.reset_index(drop=True).equals(posted.reset_index(drop=True))
    # The dry run was the month's first run, so it read every operational activity (the sweep); the real
    # run only those that can have hours in the window: fewer rows of other months served, same billing.
    outside = "outside window"
    dry_buckets, real_buckets = dry["conservation"]["buckets"], real["conservation"]["buckets"]
    assert {k: v for k, v in dry_buckets.items() if k != outside} == {
        k: v for k, v in real_buckets.items() if k != outside
    }
    assert real_buckets.get(outside, {"count": 0})["count"] <= dry_buckets.get(outside, {"count": 0})["count"]
    assert sum(real["documents"]["amount"], Decimal("0")) > 0


def _artifact_markdown(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return str(artifacts[0].data)


def test_one_administration_posts_only_its_documents_and_excludes_the_rest(prefect_harness, sandbox) -> None:
    result = run(administration=2)
    assert result["conservation"]["holds"]
    assert set(result["documents"]["kind"]) == {"project_realisation"}
    assert sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices") == []
    excluded = result["buckets"][result["buckets"]["bucket"].eq("excluded")]
    assert excluded["reason"].str.startswith("administration not in this run").sum() > 10
    assert result["context"]["modes"] == "2: project_realisation"
    everything = run()
    assert set(everything["documents"]["kind"]) >= {"direct_invoice", "internal_entry"}
    assert "project_realisation" not in set(everything["documents"]["kind"])


def test_a_bad_token_fails_the_run_in_preflight_with_one_line_naming_afas_and_the_variable(
    prefect_harness, sandbox, monkeypatch
) -> None:
    from store.runs import run_history
    from tasks.preflight import PreflightFailed

    monkeypatch.setenv(
        "KOPPEL_AFAS_TOKEN", "<token><version>1</version><data>" + "0" * 64 + "</data></token>"
    )
    with pytest.raises(PreflightFailed) as caught:
        run()
    assert str(caught.value).startswith("AFAS refused the credentials: check KOPPEL_AFAS_TOKEN")
    assert "0" * 64 not in str(caught.value)
    # preflight checked every system once (TOPdesk's version), and stopped before any TOPdesk read
    assert set(sandbox.counters("topdesk")["endpoints"]) == {"GET /tas/api/version"}
    assert run_history(engine(), "invoice-hours").empty  # stopped before it started any work
    assert sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices") == []


def test_prepaid_bundle_hours_are_billed_at_zero_and_the_balance_kept(prefect_harness, sandbox) -> None:
    from datetime import date

    from store import bundles

    dry = run(dry_run=True)
    invoiced = dry["buckets"][dry["buckets"]["bucket"].eq("invoiced")]
    busiest = dry["documents"].sort_values("hours").iloc[-1]
    customer = busiest["debtor"]
    bundles.add_bundle(engine(), customer, 120, date(2026, 1, 1), None, "prepaid 2 hours")

    result = run()
    assert result["conservation"]["holds"]
    assert bundles.balance(engine(), customer, date(2026, 10, 31)) == 0
    ids = set(invoiced["registration_id"])
    drawn = bundles.draws(engine(), sorted(ids))
    assert drawn["minutes"].sum() == 120
    posted = result["documents"].groupby("debtor")["amount"].sum()
    planned = dry["documents"].groupby("debtor")["amount"].sum()
    assert posted[customer] < planned[customer]
    others = planned.index != customer
    assert (posted[others] == planned[others]).all()

    again = run()
    assert again["documents"]["status"].isin(["posted"]).sum() == 0
    assert bundles.draws(engine(), sorted(ids))["minutes"].sum() == 120


def test_sales_booking_numbers_invoices_in_sequence_and_books_balanced_entries(
    prefect_harness, sandbox, tmp_path
) -> None:
    from pathlib import Path

    source = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
    config = tmp_path / "billing.toml"
    config.write_text(source.read_text().replace('mode = "direct_invoice"', 'mode = "sales_booking"', 1))
    result = run(config_path=str(config))
    assert result["conservation"]["holds"]
    sales = result["documents"][result["documents"]["kind"].eq("sales_booking")]
    assert len(sales) > 5 and set(sales["status"]) == {"posted"}
    entries = entries_by_reference(sandbox.apps["afas"].state.sim)
    numbers = []
    for reference in sales["reference"]:
        lines = entries[reference]
        assert sum(decimal(x["AmDe"] or 0) for x in lines) == sum(decimal(x["AmCr"] or 0) for x in lines)
        numbers.append({x["InId"] for x in lines if x["InId"]})
    assert all(len(n) == 1 for n in numbers)
    invoice_numbers = sorted(n.pop() for n in numbers)
    assert invoice_numbers == [f"KPL26{i:06d}" for i in range(1, len(sales) + 1)]
    assert run(config_path=str(config))["documents"]["status"].eq("posted").sum() == 0
