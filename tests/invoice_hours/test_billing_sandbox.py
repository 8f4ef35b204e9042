"""The default billing configuration on the sandbox world: every planned payload is accepted by the AFAS
simulator (schemas and business rules: debtors, projects, items, open periods, accounts, balance, 0.05 h),
and found again by its reference. In-process ASGI, no sockets."""

from __future__ import annotations

import pandas as pd
import pytest

from sandbox.afas import create_app
from sandbox.afas.fixtures import InProcessClient
from tasks.invoice_hours.config import DEFAULT_CONFIG_PATH, load_billing_config, parse_billing_config
from tasks.invoice_hours.join import Masters
from tasks.invoice_hours.payloads import build_payloads, fill_invoice_number
from tasks.invoice_hours.pipeline import Scope, bill
from tests.billing_factories import at, posted_from, registration, registrations
from tests.fixtures.worlds import afas_world

URL = "/ProfitRestServices/connectors"
CONNECTORS = {
    "direct_invoice": "FbDirectInvoice",
    "project_realisation": "PtRealization",
    "sales_booking": "FiEntries",
    "internal_entry": "FiEntries",
}


@pytest.fixture(scope="module")
def world():
    return afas_world(seed=7, scale=600)


def masters_of(world) -> Masters:
    frames = world.extra
    return Masters(
        debtors=frames["afas_debtors"],
        projects=frames["afas_projects"],
        periods=frames["afas_periods"],
        sales_prices=frames["afas_sales_prices"],
        employees=world.operators.rename(columns={"id": "operator_id", "employee_number": "employee_id"}),
    )


def month_of_work(world) -> pd.DataFrame:
    """A few registrations per billable customer of both administrations, plus every department."""
    customers = world.customers[world.customers["in_afas"] & ~world.customers["blocked"]]
    operator = world.operators.iloc[0]
    rows = []
    for n, customer in enumerate(customers.itertuples()):
        for k, (day, minutes) in enumerate(
            [("2026-10-05 09:10", 25), ("2026-10-09 19:30", 50), ("2026-10-17 11:00", 95)]
        ):
            rows.append(
                registration(
                    registration_id=f"c{n}-{k}",
                    customer_number=customer.customer_number,
                    entry_date=at(day),
                    minutes=minutes,
                    operator_id=operator["id"],
                    reason_name="Spoed" if k == 1 else "Normaal tarief",
                    ticket_id=f"t{n}",
                    billed_ticket_id=f"t{n}",
                )
            )
    for code in world.departments["code"]:
        rows.append(registration(registration_id=f"d-{code}", customer_number=code, minutes=40))
    return registrations(*rows)


def post_all(world, config, result) -> dict[str, int]:
    app = create_app(world)
    payloads = build_payloads(result.documents, result.document_lines, config)
    statuses = {}
    with InProcessClient(app, app.state.sim.token) as client:
        for document in result.documents.to_dict("records"):
            payload = payloads[document["reference"]]
            if document["needs_invoice_number"]:
                payload = fill_invoice_number(payload, f"KPL26{len(statuses):07d}")
            response = client.post(f"{URL}/{CONNECTORS[document['kind']]}", json=payload)
            assert response.status_code == 201, (document["reference"], response.text)
            statuses[document["reference"]] = response.status_code
        found = client.get(f"{URL}/Koppel_DirectInvoices", params={"skip": -1, "take": -1}).json()["rows"]
    invoices = set(result.documents.loc[result.documents["kind"].eq("direct_invoice"), "reference"])
    assert invoices == {row["RfCs"] for row in found}
    return statuses


def test_default_configuration_posts_cleanly_to_the_afas_sandbox(world):
    config = load_billing_config()
    read = month_of_work(world)
    result = bill(read, masters_of(world), config)
    assert result.conservation["holds"]
    assert result.rejects.empty, result.rejects["reason"].tolist()
    kinds = set(result.documents["kind"])
    assert kinds == {"direct_invoice", "project_realisation", "internal_entry"}
    assert len(post_all(world, config, result)) == len(result.documents)


def test_sales_bookings_and_corrections_post_cleanly_to_the_afas_sandbox(world):
    text = DEFAULT_CONFIG_PATH.read_text().replace('mode = "project_realisation"', 'mode = "sales_booking"')
    config = parse_billing_config(text)
    read = month_of_work(world)
    first = bill(read, masters_of(world), config)
    state, posted = posted_from(first)
    changed = read.assign(minutes=read["minutes"].where(~read["registration_id"].str.endswith("-2"), 200))
    changed["time_spent_raw"] = changed["minutes"].astype("float64") * 60
    second = bill(changed, masters_of(world), config, state=state, posted=posted, scope=Scope(regular=True))
    assert second.documents["is_correction"].all()
    assert set(second.documents["kind"]) == {"direct_invoice", "sales_booking"}
    assert len(post_all(world, config, second)) == len(second.documents)


@pytest.mark.parametrize(
    ("mode_2", "grouping_1", "default_administration"),
    [
        ("project_realisation", "per_ticket_item", 1),
        ("project_realisation", "per_registration", 2),
        ("sales_booking", "per_ticket_item", 2),
    ],
)
def test_reversals_of_every_kind_negate_the_posted_lines_and_post_cleanly(
    world, mode_2, grouping_1, default_administration
):
    text = DEFAULT_CONFIG_PATH.read_text()
    text = text.replace('mode = "project_realisation"', f'mode = "{mode_2}"')
    text = text.replace('grouping = "per_ticket_item"', f'grouping = "{grouping_1}"')
    text = text.replace("default_administration = 1", f"default_administration = {default_administration}")
    config = parse_billing_config(text)
    read = month_of_work(world)
    first = bill(read, masters_of(world), config)
    state, posted = posted_from(first)
    everyone = frozenset(read["registration_id"])
    scope = Scope(regular=True, window=(at("2026-10-01 00:00"), at("2026-11-01 00:00")), deleted=everyone)
    gone = bill(read.iloc[0:0], masters_of(world), config, state=state, posted=posted, scope=scope)
    credits = gone.document_lines.set_index("registration_id")
    charges = first.document_lines.set_index("registration_id")
    assert set(credits.index) == set(charges.index)
    for column in ("kind", "administration", "item_code", "period", "unit_price", "cost_account"):
        expected = charges.loc[credits.index, column].astype("object").where(lambda v: v.notna(), "")
        assert (credits[column].astype("object").fillna("").astype(str) == expected.astype(str)).all(), column
    customers = credits[~credits["kind"].eq("internal_entry")]
    for column in ("debtor_id", "project_id"):  # internal entries have neither
        assert (customers[column].astype(str) == charges.loc[customers.index, column].astype(str)).all(), (
            column
        )
    assert (credits["amount"] == -charges.loc[credits.index, "amount"]).all()
    assert (credits["quantity"] == -charges.loc[credits.index, "quantity"]).all()
    assert set(gone.documents["kind"]) == set(first.documents["kind"])
    assert len(post_all(world, config, gone)) == len(gone.documents)
