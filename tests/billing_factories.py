"""Tiny hand-made worlds for the billing tests: registrations in the §1 shape and AFAS master frames."""

from __future__ import annotations

import itertools
from decimal import Decimal
from typing import Any

import pandas as pd

from schemas.registrations import RawRegistrations
from tasks.invoice_hours.config import BillingConfig, parse_billing_config
from tasks.invoice_hours.pipeline import Masters

AMS = "Europe/Amsterdam"
_ids = itertools.count(1)

CONFIG_TOML = """
timezone = "Europe/Amsterdam"
max_minutes_per_registration = 720

[administrations.1]
mode = "direct_invoice"
grouping = "per_ticket_item"
[administrations.1.accounts]
revenue = "8000"
internal_revenue = "8900"
vat = "1500"
vat_code = "1"
vat_rate = "0.21"
[administrations.1.internal.departments.INT-ICT]
cost_account = "4300"
cost_centre = "100"
[administrations.1.internal.departments.INT-HR]
cost_account = "4310"

[administrations.2]
mode = "project_realisation"
[administrations.2.accounts]
revenue = "8010"
internal_revenue = "8900"
vat = "1500"
vat_code = "1"
vat_rate = "0.21"

[administrations.3]
mode = "sales_booking"
[administrations.3.accounts]
revenue = "8000"
internal_revenue = "8900"
vat = "1500"
vat_code = "1"
vat_rate = "0.21"

[projects]
default_administration = 1

[items]
default = "SUPPORT"

[rates.items]
SUPPORT = "95.00"
CONSULT = "125.00"
SPOED = "145.00"
"""


def config(extra: str = "", base: str = CONFIG_TOML) -> BillingConfig:
    """The tests' base configuration: no rounding, no surcharges, no exclusions unless ``extra`` adds them."""
    return parse_billing_config(base + extra)


def registration(**overrides: Any) -> dict[str, Any]:
    """One valid registration of 60 minutes on Tuesday 2026-10-06 10:00 Amsterdam for customer 10001."""
    number = next(_ids)
    row: dict[str, Any] = {
        "registration_id": f"reg-{number:05d}",
        "kind": "incident",
        "entry_date_raw": "2026-10-06T08:00:00.000+0000",
        "entry_date": pd.Timestamp("2026-10-06T08:00:00Z"),
        "time_spent_raw": 3600.0,
        "time_unit": "seconds",
        "minutes": 60,
        "creation_date": pd.Timestamp("2026-10-06T08:05:00Z"),
        "modification_date": pd.Timestamp("2026-10-06T08:05:00Z"),
        "operator_id": "op-1",
        "operator_name": "Anne de Vries",
        "operator_group_id": "grp-1",
        "operator_group_name": "Servicedesk",
        "reason_id": "rsn-1",
        "reason_name": "Normaal tarief",
        "notes": "printer hersteld",
        "ticket_id": f"tkt-{number:05d}",
        "ticket_number": f"I 2610 {number:03d}",
        "ticket_description": "Printer doet het niet",
        "billed_ticket_id": f"tkt-{number:05d}",
        "billed_ticket_number": f"I 2610 {number:03d}",
        "ticket_status": "firstLine",
        "branch_id": "br-10001",
        "branch_name": "Jansen Bouw B.V.",
        "customer_number": "10001",
        "category": "Werkplek",
        "subcategory": "Printer",
        "project_ref": None,
    }
    if "entry_date" in overrides and "entry_date_raw" not in overrides:
        stamp = overrides["entry_date"]
        overrides["entry_date_raw"] = None if pd.isna(stamp) else pd.Timestamp(stamp).isoformat()
    if "minutes" in overrides and "time_spent_raw" not in overrides:
        minutes = overrides["minutes"]
        overrides["time_spent_raw"] = float("nan") if pd.isna(minutes) else float(minutes) * 60
    row.update(overrides)
    return row


def registrations(*rows: dict[str, Any]) -> pd.DataFrame:
    """A §1 frame in the contract dtypes from ``registration(...)`` dicts."""
    frame = pd.DataFrame(list(rows), columns=list(RawRegistrations.to_schema().columns))
    for column in ("entry_date", "creation_date", "modification_date"):
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    frame["minutes"] = frame["minutes"].astype("Int64")
    frame["time_spent_raw"] = frame["time_spent_raw"].astype("float64")
    return RawRegistrations.validate(frame)


def at(local: str) -> pd.Timestamp:
    """An Amsterdam wall-clock time as a UTC timestamp (what TOPdesk sends)."""
    return pd.Timestamp(local, tz=AMS).tz_convert("UTC")


def debtors() -> pd.DataFrame:
    """10001 and 10002 normal, 10003 blocked, 10004 without projects."""
    return pd.DataFrame(
        {
            "DebtorId": ["10001", "10002", "10003", "10004"],
            "DebtorName": ["Jansen Bouw B.V.", "Visser Zorg N.V.", "Bos Media V.O.F.", "Kok Agro B.V."],
            "Blocked": [False, False, True, False],
        }
    )


def projects() -> pd.DataFrame:
    """Projects per debtor; P10001-03 is closed; P10002-01 lives in administration 2."""
    return pd.DataFrame(
        {
            "ProjectId": ["P10001-01", "P10001-02", "P10001-03", "P10002-01", "P10003-01"],
            "Description": [
                "Servicecontract",
                "Project 1",
                "Project 2",
                "Servicecontract",
                "Servicecontract",
            ],
            "UnitId": [1, 1, 1, 2, 1],
            "DebtorId": ["10001", "10001", "10001", "10002", "10003"],
            "DateStart": pd.to_datetime(["2025-01-01"] * 5).tz_localize(AMS),
            "DateReady": pd.to_datetime([None, None, "2026-06-30", None, None]).tz_localize(AMS),
            "Chargeable": [True] * 5,
        }
    )


def periods(blocked: tuple[tuple[int, int, int], ...] = ()) -> pd.DataFrame:
    """Monthly periods 2026 for administrations 1–3; ``blocked`` lists (unit, year, period) closed."""
    rows = []
    for unit, month in itertools.product((1, 2, 3), range(1, 13)):
        start = pd.Timestamp(2026, month, 1, tz=AMS)
        end = (start + pd.offsets.MonthEnd(1)).normalize()
        rows.append(
            {
                "Unit": unit,
                "Year": 2026,
                "Period": month,
                "DateFrom": start,
                "DateTo": end,
                "Blocked": (unit, 2026, month) in blocked,
            }
        )
    return pd.DataFrame(rows)


def sales_prices() -> pd.DataFrame:
    """General prices, a debtor-specific one for 10001 and a price change on 2026-10-15."""
    return pd.DataFrame(
        {
            "ItemCode": ["SUPPORT", "SUPPORT", "SUPPORT", "CONSULT"],
            "DebtorId": [None, "10001", None, None],
            "Price": [Decimal("90.00"), Decimal("80.00"), Decimal("99.00"), Decimal("120.00")],
            "DateStart": pd.to_datetime(["2025-01-01", "2025-01-01", "2026-10-15", "2025-01-01"]).tz_localize(
                AMS
            ),
        }
    )


def masters(**overrides: pd.DataFrame) -> Masters:
    """The small AFAS world above."""
    frames = {
        "debtors": debtors(),
        "projects": projects(),
        "periods": periods(),
        "sales_prices": sales_prices(),
    }
    frames.update(overrides)
    return Masters(**frames)


def posted_from(
    result, version: int = 1, document_status: str = "posted"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(state, posted)`` as ``store.ledger`` returns them after every document of ``result`` was posted.

    ``state`` is ``billed_state`` (one row per registration, the given version and document status);
    ``posted`` is ``posted_lines`` (empty when the documents did not post).
    """
    lines = result.document_lines
    internal = lines["kind"].eq("internal_entry")
    posted = pd.DataFrame(
        {
            "registration_id": lines["registration_id"],
            "document_reference": lines["reference"],
            "line_kind": lines["line_kind"],
            "fields_hash": lines["fields_hash"],
            "minutes": lines["billed_minutes"],
            "amount": lines["amount"],
            "entry_date": lines["work_date"].dt.date,
            "customer_number": lines["customer_number"],
            "registration_kind": lines.get("registration_kind"),
            "ticket_id": lines.get("ticket_id"),
            "ticket_number": lines.get("ticket_number"),
            "item_code": lines["item_code"],
            "quantity": lines["quantity"],
            "unit_price": lines["unit_price"],
            "cost_account": lines.get("cost_account"),
            "cost_centre": lines.get("cost_centre"),
            "employee_id": lines.get("employee_id"),
            "base_minutes": lines.get("base_minutes"),
            "reverses": lines.get("reverses"),
            "kind": lines["kind"],
            "administration": lines["administration"],
            "debtor": lines["debtor_id"].where(~internal, None),
            "project": lines["project_id"].where(~internal & lines["project_id"].ne(""), None),
            "period": lines["period"],
        }
    ).reset_index(drop=True)
    last = posted.drop_duplicates("registration_id", keep="last")
    state = pd.DataFrame(
        {
            "registration_id": last["registration_id"],
            "fields_hash": last["fields_hash"],
            "document_reference": last["document_reference"],
            "status": "billed",
            "version": version,
            "document_status": document_status,
        }
    ).reset_index(drop=True)
    return state, posted if document_status == "posted" else posted.iloc[0:0]
