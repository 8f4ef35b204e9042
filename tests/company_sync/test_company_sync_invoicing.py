"""invoice-hours with ``[create_debtors] while_invoicing``: missing customers are created once and billed."""

from __future__ import annotations

import signal
import textwrap
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from flows.invoice_hours import InvoiceHoursParameters, invoice_hours
from sandbox.server import running_sandbox
from tasks.company_sync import debtors as debtor_module
from tasks.company_sync.config import CompaniesConfigError, parse_companies_config
from tasks.company_sync.while_invoicing import relink
from tests.invoice_support import OCTOBER, decimal, run_script, small_world, use_sandbox

pytestmark = pytest.mark.prefect


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


# The child: invoice-hours with the given config, dying by SIGKILL right after AFAS answered the first
# KnSalesRelationOrg insert with its debtor number, before that number is written back to the TOPdesk branch.
KILLED_AFTER_INSERT = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import date
    from flows.invoice_hours import invoice_hours
    from tasks.company_sync import debtors

    real_insert = debtors.insert_debtor

    async def insert_then_die(*args, **kwargs):
        number = await real_insert(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return number

    if sys.argv[2] == "kill":
        debtors.insert_debtor = insert_then_die
    invoice_hours(start_date=date(2026, 10, 1), end_date=date(2026, 10, 31), config_path=sys.argv[1])
    """
)


def run_in_child(sandbox, db_url: str, config_path: str, mode: str) -> tuple[int, str]:
    return run_script(KILLED_AFTER_INSERT, sandbox, db_url, config_path, mode)


def branches_numbered(sandbox, number: str) -> list[dict]:
    topdesk = sandbox.apps["topdesk"].state.sim
    return [b for b in topdesk.branches.by_id.values() if b.get("clientReferenceNumber") == number]


def invoiced_amount(sandbox, debtor: str) -> Decimal:
    """Net hours amount AFAS holds on the debtor's direct invoices (quantity × price per line)."""
    own = {h["OrNu"] for h in invoices_of(sandbox, debtor)}
    lines = [
        x for x in sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoiceLines") if x["OrNu"] in own
    ]
    return sum((decimal(decimal(x["QuUn"]) * decimal(x["Upri"])) for x in lines), Decimal("0.00"))


def charged_per_debtor(result) -> dict[str, Decimal]:
    """What one clean (dry) run over today's TOPdesk and AFAS charges each debtor on direct invoices."""
    documents = result["documents"].set_index("reference")
    buckets = result["buckets"]
    direct = buckets["reference"].map(documents["kind"]).eq("direct_invoice")
    charged = buckets[buckets["bucket"].eq("invoiced") & direct]
    totals: dict[str, Decimal] = {}
    for reference, amount in zip(charged["reference"], charged["amount"], strict=True):
        debtor = str(documents.loc[reference, "debtor"])
        totals[debtor] = totals.get(debtor, Decimal("0.00")) + Decimal(amount)
    return totals


@pytest.mark.slow
def test_a_sigkill_between_the_afas_insert_and_the_topdesk_write_back_creates_no_second_debtor(
    prefect_harness, monkeypatch, tmp_path
) -> None:
    with running_sandbox(small_world()) as sandbox:
        db_url = use_sandbox(monkeypatch, sandbox, tmp_path)
        path = configs(tmp_path)
        afas = sandbox.apps["afas"].state.sim

        code, log = run_in_child(sandbox, db_url, path, "kill")
        assert code == -signal.SIGKILL, log
        first = created_debtors(sandbox)
        assert len(first) == 1  # AFAS stored the sales relation ...
        orphan = first[0]
        assert not branches_numbered(sandbox, orphan["DebtorId"])  # ... its number never reached TOPdesk
        assert not afas.documents("Koppel_DirectInvoices")  # killed before planning: nothing billed yet

        code, log = run_in_child(sandbox, db_url, path, "run")  # a new process, same state DB
        assert code == 0, log
        created = created_debtors(sandbox)
        numbers = Counter(d["BcCo"] for d in created)
        assert max(numbers.values()) == 1  # one debtor per organisation number
        assert [d["DebtorId"] for d in created if d["BcCo"] == orphan["BcCo"]] == [orphan["DebtorId"]]
        for debtor in created:
            assert len(branches_numbered(sandbox, debtor["DebtorId"])) == 1  # written back to its branch
            headers = invoices_of(sandbox, debtor["DebtorId"])
            assert headers, f"hours of new debtor {debtor['DebtorId']} not billed"
            assert len({h["RfCs"] for h in headers}) == len(headers)  # no document posted twice

        # Billed exactly once: what AFAS holds per new debtor is what one dry run on a fresh ledger charges.
        monkeypatch.setenv("KOPPEL_STATE_DB_URL", f"sqlite:///{tmp_path / 'oracle.db'}")
        desired = charged_per_debtor(run(path, dry_run=True))
        monkeypatch.setenv("KOPPEL_STATE_DB_URL", db_url)
        for debtor in created:
            assert invoiced_amount(sandbox, debtor["DebtorId"]) == desired[debtor["DebtorId"]] > 0

        posted = len(afas.documents("Koppel_DirectInvoices"))
        code, log = run_in_child(sandbox, db_url, path, "run")  # and once more: nothing billed twice
        assert code == 0, log
        assert len(afas.documents("Koppel_DirectInvoices")) == posted
        assert len(created_debtors(sandbox)) == len(created)
