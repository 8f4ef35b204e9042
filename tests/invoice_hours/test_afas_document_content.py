"""What the AFAS documents carry, read back from the AFAS sandbox: VAT per debtor and revenue per item on
sales bookings, ``EmId`` on realisations, the customer's reference in ``RfCs`` with Koppel's in ``Fref``,
and the sandbox refusing unknown journals, VAT codes, cost centres, units and country codes as Profit does.
In-process ASGI, no sockets, no Prefect (the flow-level checks are in test_invoice_hours_documents.py)."""

from __future__ import annotations

import asyncio
from decimal import ROUND_HALF_UP, Decimal

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.afas.client import AfasClient
from connectors.afas.payloads import Reference
from connectors.afas.settings import AfasSettings
from sandbox.afas import create_app
from sandbox.afas.fixtures import InProcessClient
from sandbox.world import afas as world_afas
from tasks.invoice_hours.config import DEFAULT_CONFIG_PATH, parse_billing_config
from tasks.invoice_hours.load import reference_for
from tasks.invoice_hours.payloads import build_payloads, entry_balance, fill_invoice_number, sales_entries
from tasks.invoice_hours.pipeline import bill
from tasks.invoice_hours.plan import summarise
from tests.billing_factories import at, registration, registrations
from tests.fixtures.worlds import afas_world
from tests.invoice_hours.test_billing_sandbox import CONNECTORS, URL, masters_of

CENT = Decimal("0.01")
REVERSE = "5"  # the sandbox's "Btw verlegd" code (sandbox/world/afas.VAT_CODES)
VAT_SECTIONS = """
[administrations.1.accounts.revenue_by_item]
SPOED = "8010"

[administrations.1.vat]
by_vat_duty = { "3" = "5" }

[administrations.1.vat.debtors]
{debtors}

[administrations.1.vat.codes.2]
rate = "0.09"
account = "1510"

[administrations.1.vat.codes.0]
rate = "0"

[administrations.1.vat.codes.5]
rate = "0"
reverse_charge = true
"""


@pytest.fixture(scope="module")
def world():
    return afas_world(seed=7, scale=600)


def billable_customers(world, admin: int) -> list[str]:
    """Customers in AFAS, not blocked, with an open project in ``admin`` (sorted)."""
    projects = world.extra["afas_projects"]
    open_projects = projects[projects["UnitId"].eq(admin) & ~projects["CheckedOut"]]
    debtors = world.extra["afas_debtors"]
    usable = debtors[~debtors["Blocked"] & debtors["DebtorId"].isin(open_projects["DebtorId"])]
    return sorted(usable["DebtorId"])


def work_for(customers: list[str], operators: list[str]) -> pd.DataFrame:
    """Three registrations per customer (one of them "Spoed": item SPOED), spread over the operators."""
    rows = []
    for n, customer in enumerate(customers):
        for k, (day, minutes) in enumerate(
            [("2026-10-05 09:10", 25), ("2026-10-09 14:30", 50), ("2026-10-17 11:00", 95)]
        ):
            rows.append(
                registration(
                    registration_id=f"c{n}-{k}",
                    customer_number=customer,
                    entry_date=at(day),
                    minutes=minutes,
                    operator_id=operators[(n + k) % len(operators)],
                    operator_name=f"operator {operators[(n + k) % len(operators)][:8]}",
                    reason_name="Spoed" if k == 1 else "Normaal tarief",
                    ticket_id=f"t{n}",
                    billed_ticket_id=f"t{n}",
                )
            )
    return registrations(*rows)


def post(app, documents: pd.DataFrame, payloads: dict) -> None:
    with InProcessClient(app, app.state.sim.token) as client:
        for number, document in enumerate(documents.to_dict("records")):
            payload = payloads[document["reference"]]
            if document["needs_invoice_number"]:
                payload = fill_invoice_number(payload, f"KPL26{number:07d}")
            response = client.post(f"{URL}/{CONNECTORS[document['kind']]}", json=payload)
            assert response.status_code == 201, (document["reference"], response.text)


def amount(value) -> Decimal:
    return Decimal(str(value or 0)).quantize(CENT)


# ---------------------------------------------------------------------------- sales bookings


def sales_config(debtor_codes: dict[str, str]):
    text = DEFAULT_CONFIG_PATH.read_text().replace('mode = "direct_invoice"', 'mode = "sales_booking"')
    debtors = "\n".join(f'"{debtor}" = "{code}"' for debtor, code in debtor_codes.items())
    return parse_billing_config(text + VAT_SECTIONS.replace("{debtors}", debtors))


def test_sales_bookings_carry_each_debtors_vat_and_each_items_revenue_account_balanced_in_afas(world):
    customers = billable_customers(world, 1)
    duties = world.extra["afas_debtors"].set_index("DebtorId")["VatDuty"]
    reverse_in_afas = [c for c in customers if duties[c] == world_afas.VAT_DUTY_REVERSE]
    domestic = [c for c in customers if duties[c] == world_afas.VAT_DUTY_DOMESTIC]
    assert reverse_in_afas and len(domestic) >= 3  # the seeded world has both kinds of debtor
    nine, zero = domestic[0], domestic[1]
    config = sales_config({nine: "2", zero: "0"})
    result = bill(work_for(customers, list(world.operators["id"])), masters_of(world), config)
    assert result.rejects.empty and result.conservation["holds"]
    sales = result.documents[result.documents["kind"].eq("sales_booking")]
    app = create_app(world)
    post(app, result.documents, build_payloads(result.documents, result.document_lines, config))

    expected_codes = {nine: "2", zero: "0", **dict.fromkeys(reverse_in_afas, REVERSE)}
    rates = {"1": Decimal("0.21"), "2": Decimal("0.09"), "0": Decimal(0), REVERSE: Decimal(0)}
    vat_accounts = {"1": "1500", "2": "1510"}
    rows = pd.DataFrame(app.state.sim.documents("Koppel_Entries"))
    seen_codes = set()
    for document in sales.to_dict("records"):
        debtor, reference = document["debtor_id"], document["reference"]
        code = expected_codes.get(debtor, "1")
        seen_codes.add(code)
        lines = rows[rows["BpNr"].eq(reference)]
        assert lines["EnNo"].nunique() == 1  # one entry in AFAS
        debits = lines["AmDe"].map(amount).sum()
        credits = lines["AmCr"].map(amount).sum()
        assert debits == credits  # balanced to the cent
        debtor_line = lines[lines["VaAs"].eq("2")]
        revenue = lines[lines["VaAs"].eq("1") & lines["AcNr"].isin(["8000", "8010"])]
        vat = lines[lines["VaAs"].eq("1") & ~lines["AcNr"].isin(["8000", "8010"])]
        assert debtor_line["AcNr"].tolist() == [debtor]
        assert set(revenue["VaId"]) == {code}
        net = revenue["AmCr"].map(amount).sum() - revenue["AmDe"].map(amount).sum()
        vat_amount = (net * rates[code]).quantize(CENT, rounding=ROUND_HALF_UP)
        assert net == document["amount"]
        assert debtor_line["AmDe"].map(amount).sum() == net + vat_amount  # debtor = revenue + VAT
        if vat_amount == 0:  # reverse charge and 0 %: no VAT line, the right code on the revenue
            assert vat.empty
        else:
            assert vat["AcNr"].tolist() == [vat_accounts[code]] and set(vat["VaId"]) == {code}
            assert vat["AmCr"].map(amount).sum() == vat_amount
        # Revenue per item: SPOED hours on 8010, the rest on 8000, to the cent of the planned lines.
        planned = result.document_lines[result.document_lines["reference"].eq(reference)]
        for account, items in (("8010", {"SPOED"}), ("8000", {"SUPPORT"})):
            want = Decimal(int(planned.loc[planned["item_code"].isin(items), "amount_cents"].sum())) * CENT
            booked = revenue[revenue["AcNr"].eq(account)]
            assert booked["AmCr"].map(amount).sum() - booked["AmDe"].map(amount).sum() == want, account
    assert seen_codes == {"1", "2", "0", REVERSE}


def test_the_vat_code_of_a_debtor_follows_its_afas_vat_duty_unless_the_config_names_it():
    config = sales_config({"10002": "2"})
    debtors = pd.DataFrame({"DebtorId": ["10001", "10002", "10003"], "VatDuty": ["3", "3", "1"]})
    enriched = config.with_debtor_vat(debtors)
    assert enriched.debtor_vat_duties == {"10001": "3", "10002": "3"}  # only duties a mapping names
    codes = [enriched.debtor_vat_code(1, d) for d in ("10001", "10002", "10003", "99999")]
    assert codes == [REVERSE, "2", "1", "1"]
    assert config.debtor_vat_code(1, "10001") == "1"  # without AFAS's debtor data: the default


def test_require_employee_belongs_to_realisation_administrations():
    text = DEFAULT_CONFIG_PATH.read_text().replace(
        'mode = "direct_invoice"', 'mode = "direct_invoice"\nrequire_employee = true'
    )
    with pytest.raises(ValueError, match="require_employee: only project_realisation posts EmId"):
        parse_billing_config(text)


def test_vat_sections_name_every_bad_key():
    with pytest.raises(ValueError, match=r"administrations\.1\.vat\.debtors\.10001: VAT code '7'"):
        sales_config({"10001": "7"})
    text = DEFAULT_CONFIG_PATH.read_text() + '\n[administrations.1.vat.codes.9]\nrate = "0.09"\n'
    with pytest.raises(ValueError, match=r"vat\.codes\.9.*needs its VAT payable account"):
        parse_billing_config(text)
    text = DEFAULT_CONFIG_PATH.read_text() + (
        '\n[administrations.1.vat.codes.5]\nrate = "0.21"\naccount = "1500"\nreverse_charge = true\n'
    )
    with pytest.raises(ValueError, match="reverse-charge code has no VAT amount"):
        parse_billing_config(text)


# ---------------------------------------------------------------------------- employees on realisations


def realisation_config(mapped: dict[str, str], require: bool):
    text = DEFAULT_CONFIG_PATH.read_text().replace(
        'mode = "project_realisation"',
        f'mode = "project_realisation"\nrequire_employee = {str(require).lower()}',
    )
    operators = "\n".join(f'"{key}" = "{value}"' for key, value in mapped.items())
    return parse_billing_config(text + f"\n[employees.operators]\n{operators}\n")


@pytest.mark.parametrize("require", [True, False])
def test_realisations_carry_the_operators_afas_employee(world, require):
    customers = billable_customers(world, 2)
    operators = world.operators.iloc[:3]
    # The first operator by id, the second by name; the third has no AFAS employee.
    mapped = {operators.iloc[0]["id"]: str(operators.iloc[0]["employee_number"])}
    read = work_for(customers, list(operators["id"]))
    second = read["operator_id"].eq(operators.iloc[1]["id"])
    read.loc[second, "operator_name"] = "Fleur Vos"
    mapped["Fleur Vos"] = str(operators.iloc[1]["employee_number"])
    config = realisation_config(mapped, require)
    masters = masters_of(world)
    masters = type(masters)(masters.debtors, masters.projects, masters.periods, masters.sales_prices)
    result = bill(read, masters, config)
    assert result.conservation["holds"]
    third = operators.iloc[2]["id"]
    strays = set(read.loc[read["operator_id"].eq(third), "registration_id"])
    assert strays  # the unmapped operator worked for administration 2's customers
    rejected = result.rejects.set_index("registration_id")["reason"]
    buckets = result.buckets.set_index("registration_id")["bucket"]
    if require:
        assert set(rejected.index) == strays
        assert rejected.str.startswith("operator has no AFAS employee: 'operator ").all()
        assert (buckets[list(strays)] == "rejected").all()  # kept and shown like any reject
    else:
        assert rejected.empty
    app = create_app(world)
    post(app, result.documents, build_payloads(result.documents, result.document_lines, config))
    posted = {row["XpRe"]: row["EmployeeId"] for row in app.state.sim.documents("Koppel_Realizations")}
    expected = {
        operators.iloc[0]["id"]: str(operators.iloc[0]["employee_number"]),
        operators.iloc[1]["id"]: str(operators.iloc[1]["employee_number"]),
        third: None,
    }
    lines = result.document_lines[result.document_lines["kind"].eq("project_realisation")]
    assert len(lines) == len(posted) > 0
    for line in lines.itertuples():
        assert posted[line.registration_id] == expected[line.operator_id], line.registration_id


# ---------------------------------------------------------------------------- RfCs and Fref


def test_invoices_carry_the_customers_order_number_in_rfcs_and_koppels_reference_in_fref(world):
    customers = billable_customers(world, 1)[:4]
    text = (
        DEFAULT_CONFIG_PATH.read_text() + f'\n[customer_references.debtors]\n"{customers[0]}" = "PO-4711"\n'
    )
    config = parse_billing_config(text)
    read = work_for(customers, list(world.operators["id"]))
    from_topdesk = read["customer_number"].eq(customers[1])
    read["order_ref"] = None
    read.loc[from_topdesk, "order_ref"] = ["PO-A", "PO-B", "PO-A"]  # two orders on one invoice
    result = bill(read, masters_of(world), config)
    invoices = result.documents[result.documents["kind"].eq("direct_invoice")]
    app = create_app(world)
    post(app, invoices, build_payloads(invoices, result.document_lines, config))
    headers = {row["Fref"]: row for row in app.state.sim.documents("Koppel_DirectInvoices")}
    assert set(headers) == set(invoices["reference"])
    for document in invoices.to_dict("records"):
        header = headers[document["reference"]]
        expected = {customers[0]: "PO-4711", customers[1]: "PO-A, PO-B"}.get(document["debtor_id"])
        assert header["RfCs"] == (expected or document["reference"])


def test_the_look_up_finds_invoices_by_fref_and_older_ones_by_rfcs(world):
    app = create_app(world)
    debtor = billable_customers(world, 1)[0]
    line = {"Fields": {"VaIt": "1", "ItCd": "SUPPORT", "BiUn": "uur", "QuUn": 1, "Upri": 95}}
    lines = {"FbDirectInvoiceLines": {"Element": [line]}}
    old = {"DbId": debtor, "RfCs": "KPL-1-202609-0123456789abcdef", "Unit": 1}  # before Fref was used
    new = {"DbId": debtor, "RfCs": "PO-1", "Fref": "KPL-1-202610-fedcba9876543210", "Unit": 1}
    with InProcessClient(app, app.state.sim.token) as client:
        for fields in (old, new):
            body = {"FbDirectInvoice": {"Element": {"Fields": fields, "Objects": lines}}}
            assert client.post(f"{URL}/FbDirectInvoice", json=body).status_code == 201
    numbers = {row["RfCs"]: row["OrNu"] for row in app.state.sim.documents("Koppel_DirectInvoices")}
    references = [
        reference_for("direct_invoice", value, {})
        for value in (old["RfCs"], new["Fref"], "KPL-1-202610-0000000000000000")
    ]
    assert references[0] == Reference("Koppel_DirectInvoices", "Fref", old["RfCs"], earlier_fields=("RfCs",))
    found = asyncio.run(_find(app, references))
    assert [f["OrNu"] if f else None for f in found[0]] == [numbers[old["RfCs"]], numbers["PO-1"], None]
    assert [f["OrNu"] if f else None for f in found[1]] == [numbers[old["RfCs"]], numbers["PO-1"], None]


async def _find(app, references: list[Reference]):
    settings = AfasSettings(
        environment_number=world_afas.ENVIRONMENT_NUMBER,
        token=app.state.sim.token,
        base_url="http://afas.sandbox/ProfitRestServices",
    )
    transport = httpx.ASGITransport(app=app)
    async with AfasClient.from_settings(settings, transport=transport) as client:
        together = await client.find_by_references(references)
        one_by_one = [await client.find_by_reference(r) for r in references]
    return together, one_by_one


# ---------------------------------------------------------------------------- the sandbox's master data


def entry(**changes) -> dict:
    lines = [
        {"VaAs": "1", "AcNr": "4300", "EnDa": "2026-10-31", "BpDa": "2026-10-31", "AmDe": 10, "AmCr": 0},
        {"VaAs": "1", "AcNr": "8900", "EnDa": "2026-10-31", "BpDa": "2026-10-31", "AmDe": 0, "AmCr": 10},
    ]
    first: dict = {"Fields": {**lines[0], **changes.pop("line", {})}}
    if "centre" in changes:
        first["Objects"] = {
            "FiDimEntries": {"Element": {"Fields": {"DiC1": changes.pop("centre"), "AmDe": 10}}}
        }
    header = {"Year": 2026, "Peri": 10, "UnId": 1, "JoCo": changes.pop("journal", "90")}
    element = {"Fields": header, "Objects": {"FiEntries": {"Element": [first, {"Fields": lines[1]}]}}}
    return {"FiEntryPar": {"Element": element}}


def invoice(debtor: str, unit: str = "uur", journal: str | None = None) -> dict:
    fields = {"DbId": debtor, "Fref": "KPL-1-202610-aaaaaaaaaaaaaaaa", "Unit": 1}
    if journal:
        fields["JoCo"] = journal
    line = {"Fields": {"VaIt": "1", "ItCd": "SUPPORT", "BiUn": unit, "QuUn": 1, "Upri": 95}}
    return {
        "FbDirectInvoice": {
            "Element": {"Fields": fields, "Objects": {"FbDirectInvoiceLines": {"Element": line}}}
        }
    }


def relation(country: str) -> dict:
    address = {"CoId": country, "PbAd": False, "Ad": "Kerkstraat", "HmNr": 1, "ZpCd": "1000", "Rs": "Brussel"}
    organisation = {
        "Fields": {"MatchOga": "6", "Nm": "Nieuwe klant"},
        "Objects": {"KnBasicAddressAdr": {"Element": {"Fields": address}}},
    }
    fields = {"CuId": "EUR", "IsDb": True, "PaCd": "30", "VaDu": "1"}
    element = {"Fields": fields, "Objects": {"KnOrganisation": {"Element": organisation}}}
    return {"KnSalesRelationOrg": {"Element": element}}


@pytest.mark.parametrize(
    ("connector", "body", "label"),
    [
        ("FiEntries", lambda d: entry(journal="77"), "Dagboek"),
        ("FiEntries", lambda d: entry(line={"VaId": "X9"}), "Btw-code"),
        ("FiEntries", lambda d: entry(centre="999"), "Kostenplaats"),
        ("FbDirectInvoice", lambda d: invoice(d, unit="doos"), "Eenheid"),
        ("FbDirectInvoice", lambda d: invoice(d, journal="77"), "Dagboek"),
        ("KnSalesRelationOrg", lambda d: relation("BE"), "Land"),  # Profit writes Belgium as "B"
    ],
)
def test_the_sandbox_refuses_unknown_master_data_as_profit_does(world, connector, body, label):
    app = create_app(world)
    sim = app.state.sim
    debtor = billable_customers(world, 1)[0]
    before = {name: len(sim.tables[name]) for name in ("entries", "invoices", "debtors", "relations")}
    with InProcessClient(app, sim.token) as client:
        response = client.post(f"{URL}/{connector}", json=body(debtor))
        assert response.status_code == 500, response.text
        assert response.json()["externalMessage"] == f"De ingevulde waarde bij '{label}' bestaat niet."
        assert {name: len(sim.tables[name]) for name in before} == before  # nothing stored
        fixed = {"Dagboek": "90", "Btw-code": "1", "Kostenplaats": "100", "Eenheid": "uur", "Land": "B"}[
            label
        ]
        good = {
            "FiEntries": lambda: (
                entry(journal=fixed)
                if label == "Dagboek"
                else (entry(line={"VaId": fixed}) if label == "Btw-code" else entry(centre=fixed))
            ),
            "FbDirectInvoice": lambda: (
                invoice(debtor, unit=fixed) if label == "Eenheid" else invoice(debtor, journal="20")
            ),
            "KnSalesRelationOrg": lambda: relation(fixed),
        }[connector]()
        assert client.post(f"{URL}/{connector}", json=good).status_code == 201


def test_the_order_number_comes_from_the_configured_incident_field_the_main_incident_first():
    from connectors.topdesk.timeregistrations import contract_frame, incident_record
    from tasks.invoice_hours.sources import TopdeskSources

    tickets = {
        "p": {"id": "p", "number": "I 2", "mainIncident": {"id": "m"}, "optionalFields1": {"text2": "PO-P"}},
        "m": {"id": "m", "number": "I 1", "optionalFields1": {"text1": "P1-01", "text2": " PO-M "}},
        "q": {"id": "q", "number": "I 3", "optionalFields1": {"text2": "PO-Q"}},
    }
    rows = [
        {"id": "r1", "timeSpent": 600, "parent": {"id": "p"}, "entryDate": "2026-10-06T08:00:00.000+0000"},
        {"id": "r2", "timeSpent": 600, "parent": {"id": "q"}, "entryDate": "2026-10-06T08:00:00.000+0000"},
    ]
    options = TopdeskSources(order_field="optionalFields1.text2").options()
    assert options.order_field == "optionalFields1.text2"
    records = [incident_record(row, tickets, options.project_field, options.order_field) for row in rows]
    frame = contract_frame(records)
    # As served (the invoice strips it); a partial is billed on its main incident.
    assert frame["order_ref"].tolist() == [" PO-M ", "PO-Q"]
    plain = contract_frame([incident_record(row, tickets, options.project_field) for row in rows])
    assert "order_ref" not in plain  # not configured: the contract frame as before
    with pytest.raises(ValueError, match="order_field"):
        TopdeskSources(order_field="optionalFields1.text2; drop")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amounts=st.lists(
        st.tuples(st.sampled_from(["SUPPORT", "SPOED", "CONSULT"]), st.integers(-500_000, 500_000)),
        min_size=1,
        max_size=12,
    ),
    code=st.sampled_from(["1", "2", "0", REVERSE]),
)
def test_every_sales_entry_balances_to_the_cent_whatever_the_amounts_and_vat_code(amounts, code):
    config = sales_config({"10001": code})
    lines = pd.DataFrame(
        {
            "reference": "KPL-1-202610-0000000000000001",
            "kind": "sales_booking",
            "administration": 1,
            "debtor_key": "10001",
            "project_key": "P10001-01",
            "period": "2026-10",
            "is_correction": False,
            "period_year": 2026,
            "period_number": 10,
            "chunk": 0,
            "billed_minutes": 60,
            "item_code": [item for item, _ in amounts],
            "amount_cents": [cents for _, cents in amounts],
            "work_date": pd.Timestamp("2026-10-06", tz="Europe/Amsterdam"),
        }
    )
    documents = summarise(lines, config)
    (payload,) = sales_entries(documents, lines, config).values()
    assert entry_balance(payload) == 0
    rows = [r["Fields"] for r in payload["FiEntryPar"]["Element"]["Objects"][0]["FiEntries"]["Element"]]
    net = Decimal(sum(cents for _, cents in amounts)) * CENT
    rate = {"1": Decimal("0.21"), "2": Decimal("0.09")}.get(code, Decimal(0))
    vat = [r for r in rows if r["AcNr"] in ("1500", "1510")]
    due = (net * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    assert sum((amount(r["AmCr"]) - amount(r["AmDe"]) for r in vat), Decimal(0)) == due
    assert (not vat) == (due == 0)
    revenue = [r for r in rows if r["VaAs"] == "1" and r not in vat]
    assert {r["VaId"] for r in revenue} == {code}
    assert {r["AcNr"] for r in revenue if r["Ds"] == "Uren SPOED"} <= {"8010"}
    assert {r["AcNr"] for r in revenue if r["Ds"] != "Uren SPOED"} <= {"8000"}
