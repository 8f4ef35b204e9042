"""invoice-hours with ``[create_debtors] while_invoicing``: missing customers are created once and billed."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from flows.invoice_hours import InvoiceHoursParameters, invoice_hours
from sandbox.server import running_sandbox
from tasks.company_sync import debtors as debtor_module
from tasks.company_sync.config import CompaniesConfigError, parse_companies_config
from tasks.company_sync.invoicing import relink
from tests.invoice_support import OCTOBER, small_world, use_sandbox

pytestmark = pytest.mark.prefect


@pytest.fixture
def sandbox(monkeypatch, tmp_path):
    with running_sandbox(small_world()) as running:
        use_sandbox(monkeypatch, running, tmp_path)
        yield running


def configs(tmp_path: Path, while_invoicing: bool = True) -> str:
    """billing.toml (projects optional: a new debtor has none yet) and companies.toml beside it."""
    billing = Path("config/billing.toml").read_text(encoding="utf-8")
    assert "required = true" in billing
    (tmp_path / "billing.toml").write_text(billing.replace("required = true", "required = false", 1))
    companies = Path("config/companies.toml").read_text(encoding="utf-8")
    companies = companies.replace("enabled = false\n", "enabled = true\n", 1)
    if while_invoicing:
        companies = companies.replace("while_invoicing = false", "while_invoicing = true")
    (tmp_path / "companies.toml").write_text(companies)
    return str(tmp_path / "billing.toml")


def run(config_path: str, **kwargs):
    return invoice_hours(
        **InvoiceHoursParameters(
            start_date=OCTOBER[0], end_date=OCTOBER[1], config_path=config_path, **kwargs
        ).model_dump()
    )


def created_debtors(sandbox) -> list[dict]:
    """Debtors Koppel created: their organisation number is derived from a TOPdesk branch id."""
    return [d for d in sandbox.apps["afas"].state.sim.tables["debtors"] if str(d["BcCo"]).startswith("TD")]


def invoices_of(sandbox, debtor: str) -> list[dict]:
    return [
        h for h in sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices") if h["DbId"] == debtor
    ]


def unknown_customers(result) -> pd.DataFrame:
    buckets = result["buckets"]
    return buckets[buckets["reason"].astype(str).str.startswith("unknown customer")]


def test_the_option_needs_the_guard() -> None:
    with pytest.raises(CompaniesConfigError, match="create_debtors: while_invoicing = true needs enabled"):
        parse_companies_config('archiving_reason = "x"\n[create_debtors]\nwhile_invoicing = true\n')
    config = parse_companies_config('archiving_reason = "x"\n')
    assert config.create_debtors.while_invoicing is False


def test_relink_sets_the_new_number_on_the_rows_of_written_branches_only() -> None:
    registrations = pd.DataFrame(
        {
            "registration_id": ["r1", "r2", "r3"],
            "branch_id": ["b1", "b2", "b1"],
            "customer_number": [None, "9", ""],
        },
        dtype=object,
    )
    outcomes = pd.DataFrame(
        {"branch_id": ["b1", "b2"], "debtor_number": ["70001", "70002"], "status": ["done", "failed"]}
    )
    out = relink(registrations, outcomes)
    assert out["customer_number"].tolist() == ["70001", "9", "70001"]
    assert registrations["customer_number"].tolist() == [None, "9", ""]  # the input is left alone


def test_invoicing_creates_a_missing_debtor_once_and_bills_its_hours_in_the_same_run(
    prefect_harness, sandbox, tmp_path
) -> None:
    without = run(configs(tmp_path, while_invoicing=False), dry_run=True)
    missing_before = unknown_customers(without)
    assert not created_debtors(sandbox)

    path = configs(tmp_path)
    result = run(path)
    created = created_debtors(sandbox)
    assert created, "the world has TOPdesk-only customers with hours"
    topdesk = sandbox.apps["topdesk"].state.sim
    for debtor in created:
        branches = [
            b for b in topdesk.branches.by_id.values() if b.get("clientReferenceNumber") == debtor["DebtorId"]
        ]
        assert len(branches) == 1
        assert invoices_of(sandbox, debtor["DebtorId"]), (
            f"hours of new debtor {debtor['DebtorId']} not billed"
        )
    still_unknown = unknown_customers(result)
    assert len(still_unknown) < len(missing_before)
    assert not set(still_unknown["registration_id"]) & set(
        result["buckets"][result["buckets"]["bucket"].eq("invoiced")]["registration_id"]
    )

    posted = len(sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices"))
    again = run(path)
    assert len(created_debtors(sandbox)) == len(created)  # no second debtor
    assert len(sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices")) == posted
    assert again["conservation"]["holds"]


def test_a_crash_between_create_and_write_back_creates_no_second_debtor(
    prefect_harness, sandbox, tmp_path, monkeypatch
) -> None:
    path = configs(tmp_path)
    real_update = debtor_module.md.update_branch

    async def crash(*args, **kwargs):
        raise RuntimeError("worker killed between the AFAS insert and the TOPdesk write-back")

    monkeypatch.setattr(debtor_module.md, "update_branch", crash)
    with pytest.raises(RuntimeError):
        run(path)
    assert len(created_debtors(sandbox)) == 1  # the first insert landed, its number never reached TOPdesk

    monkeypatch.setattr(debtor_module.md, "update_branch", real_update)
    run(path)
    created = created_debtors(sandbox)
    numbers = Counter(d["BcCo"] for d in created)
    assert numbers and max(numbers.values()) == 1  # one debtor per organisation number
    for debtor in created:
        assert invoices_of(sandbox, debtor["DebtorId"])
