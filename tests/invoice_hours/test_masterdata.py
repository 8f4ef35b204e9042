"""Master-data check: config codes against AFAS's GetConnectors, each problem naming its config key."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from store import runs
from store.db import connect
from store.settings import StoreSettings
from tasks.masterdata import MasterDataError, master_data_problems, read_master_data
from tests.billing_factories import CONFIG_TOML, config
from tests.invoice_support import OCTOBER


def frames(**changes: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """AFAS master data that matches ``tests.billing_factories.CONFIG_TOML``."""
    base = {
        "administrations": pd.DataFrame({"AdminId": [1, 2, 3]}),
        "items": pd.DataFrame({"ItemCode": ["SUPPORT", "CONSULT", "SPOED"]}),
        "journals": pd.DataFrame(
            [(u, j, False) for u in (1, 2, 3) for j in ("20", "90")],
            columns=["UnitId", "JournalId", "Blocked"],
        ),
        "vat_codes": pd.DataFrame({"VatCode": ["1", "2"], "Blocked": [False, False]}),
        "allocations": pd.DataFrame(
            [(1, "4300", "1", "100")], columns=["Unit", "Account", "DimAx", "DimCode"]
        ),
    }
    return {**base, **changes}


def test_a_config_that_matches_afas_has_no_problems() -> None:
    assert master_data_problems(config(), frames()) == []


def test_every_unknown_code_is_named_by_its_config_key() -> None:
    text = (
        CONFIG_TOML.replace('SPOED = "145.00"', 'SPOED = "145.00"\nSPOEDD = "150.00"')
        .replace(
            "[administrations.3.accounts]",
            '[administrations.3.journals]\nsales = "21"\n[administrations.3.accounts]',
        )
        .replace('cost_centre = "100"', 'cost_centre = "101"')
    )
    text = text.replace(
        'vat_code = "1"\nvat_rate = "0.21"\n\n[projects]', 'vat_code = "7"\nvat_rate = "0.21"\n\n[projects]'
    )
    problems = master_data_problems(config(base=text), frames())
    assert problems == [
        "rates.items.SPOEDD: item 'SPOEDD' is not an AFAS work type (Profit_Worktype)",
        "administrations.1.internal.departments.INT-ICT.cost_centre: cost centre '101' is not allowed on "
        "account 4300 in administration 1 (Profit_Allocation_Assigments)",
        "administrations.3.accounts.vat_code: VAT code '7' does not exist (Profit_VAT_code)",
        "administrations.3.journals.sales: journal '21' does not exist in administration 3 (Profit_Journals)",
    ]


def test_a_missing_administration_or_a_blocked_journal_counts_as_missing() -> None:
    blocked = frames()["journals"].assign(Blocked=lambda f: f["UnitId"].eq(2) & f["JournalId"].eq("90"))
    problems = master_data_problems(
        config(), frames(administrations=pd.DataFrame({"AdminId": [1, 2]}), journals=blocked)
    )
    assert problems == [
        "administrations.2.journals.memorial: journal '90' does not exist in administration 2 "
        "(Profit_Journals)",
        "administrations.3: administration 3 does not exist in AFAS (Profit_Administrations)",
    ]
    assert master_data_problems(config().for_administration(1), frames(journals=blocked)) == []


def test_the_sandbox_serves_the_master_data_the_default_config_names(sandbox) -> None:
    import asyncio

    from connectors.afas.settings import AfasSettings
    from tasks.invoice_hours.config import load_billing_config

    read = asyncio.run(read_master_data(AfasSettings()))
    assert master_data_problems(load_billing_config(), read) == []
    assert {"20", "90"} <= set(read["journals"]["JournalId"])


@pytest.mark.prefect
def test_a_typo_in_the_config_fails_the_run_before_anything_is_read_or_posted(
    prefect_harness, sandbox, tmp_path
) -> None:
    from flows.invoice_hours import InvoiceHoursParameters, invoice_hours

    source = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
    path = tmp_path / "billing.toml"
    path.write_text(source.read_text().replace('memorial = "90"', 'memorial = "91"', 1))
    state = invoice_hours(
        **InvoiceHoursParameters(
            start_date=OCTOBER[0], end_date=OCTOBER[1], config_path=str(path)
        ).model_dump(),
        return_state=True,
    )
    assert state.is_failed()
    with pytest.raises(MasterDataError, match=r"administrations\.1\.journals\.memorial: journal '91'"):
        state.result()
    assert sandbox.apps["afas"].state.sim.documents("Koppel_DirectInvoices") == []
    read = set(sandbox.counters("topdesk")["endpoints"]) - {"GET /tas/api/version"}  # the preflight's call
    assert read == set()  # failed before reading anything from TOPdesk
    assert runs.run_history(connect(StoreSettings()), "invoice-hours").iloc[0]["status"] == "failed"


def test_vat_codes_rates_units_and_revenue_items_are_checked_with_their_keys() -> None:
    text = CONFIG_TOML + (
        '\n[administrations.1.accounts.revenue_by_item]\nSPOEDD = "8010"\n'
        '\n[administrations.3.vat]\nby_vat_duty = { "3" = "5" }\n'
        '\n[administrations.3.vat.codes.2]\nrate = "0.06"\naccount = "1510"\n'
        '\n[administrations.3.vat.codes.5]\nrate = "0"\nreverse_charge = true\n'
    )
    text = text.replace('mode = "direct_invoice"', 'mode = "direct_invoice"\nhours_unit = "uren"', 1)
    afas = frames(
        vat_codes=pd.DataFrame(
            {"VatCode": ["1", "2", "5"], "VatPerc": [21.0, 9.0, 0.0], "Blocked": [False, False, True]}
        ),
        units=pd.DataFrame({"UnitId": ["uur", "stk"]}),
    )
    problems = master_data_problems(config(base=text), afas)
    assert problems == [
        "administrations.1.accounts.revenue_by_item.SPOEDD: item 'SPOEDD' is not an AFAS work type "
        "(Profit_Worktype)",
        "administrations.1.hours_unit: unit 'uren' does not exist (Koppel_Units)",
        "administrations.3.vat.codes.2.rate: 0.06 is not the rate of VAT code '2' in AFAS "
        "(9.0 %, Profit_VAT_code)",
        "administrations.3.vat.codes.5: VAT code '5' does not exist (Profit_VAT_code)",  # blocked
    ]
    fixed = text.replace('hours_unit = "uren"', 'hours_unit = "uur"').replace('"0.06"', '"0.09"')
    fixed = fixed.replace('SPOEDD = "8010"', 'SPOED = "8010"')
    afas["vat_codes"]["Blocked"] = False
    assert master_data_problems(config(base=fixed), afas) == []
