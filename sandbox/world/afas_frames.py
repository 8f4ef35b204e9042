"""The frames of the world's AFAS side (``sandbox/world/afas.py:render``), as pandera schemas.

They replace a prose catalogue that could drift: ``generate_world`` checks the frames it renders against
them when asked (``check=True``; the test session's worlds always are), and tests/sandbox/test_world_afas.py
validates rendered worlds. ``afas_`` frames hold what Profit's GetConnectors serve, columns named as in the
reference §6 and AFAS's OpenAPI specs; ``hr_`` frames hold the HR data behind the project's HR GetConnectors
(snake_case). Strings are ``str``; money, hours and percentages are ``Decimal``; every date and date-time is
``datetime64[ns, Europe/Amsterdam]`` (AFAS keeps local time; plain dates are local midnights), ``NaT`` = null.
Every schema is strict and ordered: a column added, dropped or moved fails the check.
"""

from __future__ import annotations

from typing import Any

import pandera.pandas as pa

import schemas.checks  # noqa: F401  (registers pa.Check.cents and friends)
from sandbox.world.columns import flag, frame, key, number, one_of, text

LOCAL = "datetime64[ns, Europe/Amsterdam]"
GUID = r"^\{[0-9A-F-]{36}\}$"


def _money(description: str = "", **options: Any) -> pa.Column:
    return pa.Column(object, pa.Check.cents(), description=description or None, **options)


def _decimal(description: str = "") -> pa.Column:
    return pa.Column(object, pa.Check.finite_decimal(), description=description or None)


def _date(description: str = "", nullable: bool = False) -> pa.Column:
    return pa.Column(LOCAL, nullable=nullable, description=description or None)


FRAMES: dict[str, pa.DataFrameSchema] = {
    "afas_debtors": frame(
        {
            "DebtorId": key("= TOPdesk clientReferenceNumber, 5 digits"),
            "DebtorName": text(),
            "BcCo": key("organisation number, its own range (1000000 + number - 10000)"),
            "SearchName": text("upper-case ASCII, at most 10 characters"),
            "AdressLine1": text("street and house number"),
            "AdressLine3": text("postcode and city"),
            "AdressLine4": text("country name"),
            **{name: text() for name in ("TelNr", "Email")},
            "IBAN": text("Dutch IBAN with a correct mod-97 check"),
            "VatNr": text(),
            "ChOfCommNr": text(),
            "CollectAccount": text("ledger account 1300"),
            "PayCon": one_of(("14", "30"), "payment condition in days"),
            "VatDuty": one_of(("1", "3"), "1 = domestic; 3 = reverse charge (about one debtor in twenty)"),
            "Blocked": flag(),
            "CreditLimit": _money(),
            "CurrencyId": text(),
            "AutoPayment": flag(),
            "CreateDate": _date(),
            "ModifiedDate": _date("never before CreateDate"),
        },
        "Debtors (sales relations): the world's customers that exist in AFAS",
    ),
    "afas_administrations": frame(
        {"AdminId": number(unique=True), "AdminNm": text(), "AdminCd": text()}, "Administrations"
    ),
    "afas_projects": frame(
        {
            "ProjectId": key(),
            "Description": text(),
            "UnitId": number("the administration"),
            "ProjectGroup": one_of(("SERVICE", "PROJECT"), "SERVICE: the debtor's default project"),
            "CheckedOut": flag("closed"),
            "BcCo": text("the debtor's organisation"),
            "DebtorId": text(),
            "DateStart": _date(),
            "DateReady": _date("closed projects only", nullable=True),
            "Chargeable": flag(),
            "CreateDate": _date(),
            "ModifiedDate": _date(),
        },
        "Projects of the AFAS debtors",
    ),
    "afas_worktypes": frame(
        {
            "ItemCode": key(),
            "Description": text(),
            "CreateDate": _date(),
            "ModifiedDate": _date(),
            "Group": text(),
        },
        "Items (work types) hours are billed with",
    ),
    "afas_periods": frame(
        {
            "Unit": number(),
            "Year": number(),
            "Period": number(checks=pa.Check.in_range(1, 12)),
            "PeriodDesc": text("januari 2026"),
            "DateFrom": _date(),
            "DateTo": _date(),
            "Blocked": flag("the months before the world's first month"),
            "Periodtable": number(),
            "TableDesc": text(),
        },
        "Monthly periods of every administration and every year the world touches",
    ),
    "afas_sales_prices": frame(
        {
            "ItemCode": text(),
            "DebtorId": text("empty (null) for the general price", nullable=True),
            "Price": _money(),
            "DateStart": _date(),
        },
        "A general price per item, plus a discounted price for about one debtor in 25",
    ),
    "afas_contacts": frame(
        {
            "ContactId": number(unique=True),
            "BcCo": key("the person"),
            **{name: text() for name in ("FirstName", "LastName", "Email", "Phone")},
            "OrgBcCo": text("the organisation"),
            "DebtorId": text(),
        },
        "Contact persons of the organisations behind the debtors",
    ),
    "afas_gl_accounts": frame(
        {
            "Unit": number(),
            "AccountNr": text(),
            "Description": text(),
            "AccountType": one_of(("Balans", "Winst en verlies")),
        },
        "Ledger accounts per administration, departments' cost accounts included",
    ),
    "afas_journals": frame(
        {
            "UnitId": number(),
            "JournalId": text(),
            "Description": text(),
            "JournalType": text(),
            "Blocked": flag(),
        },
        "Journals per administration",
    ),
    "afas_vat_codes": frame(
        {
            "VatCode": key(),
            "Description": text(),
            "AccountNr": text("empty: no VAT account"),
            "VatPerc": _money(),
            "VatDuty": text(),
            "Blocked": flag(),
            "VatMethod": text(),
            "VatType": text(),
        },
        "VAT codes of the sandbox company (standard Dutch rates)",
    ),
    "afas_allocations": frame(
        {
            "Unit": number(),
            "Account": text(),
            "DimAx": text(),
            "AxDescription": text(),
            "DimCode": text(),
            "CodeDescription": text(),
        },
        "Cost centres (dimension axis 1) allowed on each department's cost account",
    ),
    "afas_units": frame({"UnitId": key(), "Description": text()}, "Units of measure"),
    "afas_countries": frame({"CountryId": key(), "Description": text()}, "Country codes"),
    "hr_org_units": frame(
        {
            "org_unit_id": key(),
            "description": text(),
            "parent_id": text("null for the company at the root", nullable=True),
            "manager_employee_id": text("an employee placed in the unit"),
            "modified": _date(),
        },
        "Organisational units: company, departments, one team per operator group",
    ),
    "hr_employees": frame(
        {
            "employee_id": key("every operator (same number, AFAS EmId), plus staff who never register time"),
            "first_name": text(),
            "last_name": text(),
            "birth_date": _date(),
            "email": text(),
            "gender": one_of(("M", "V", "O")),
            "modified": _date(),
        },
        "Employees",
    ),
    "hr_employments": frame(
        {
            "employee_id": text(),
            "employment_id": number("Dienstverband (DvId)"),
            "sequence_number": number("DvSn, usually equal to DvId"),
            "org_unit_id": text(),
            "function": text(),
            "start_date": _date(),
            "end_date": _date("NaT = open", nullable=True),
            "hours_per_week": _decimal(),
            "salary_monthly": _money(),
            "salary_four_weekly": _money(),
            "sv_wage": _money(),
            "modified": _date(),
        },
        "Employments: one open each; some had an earlier one, some left, a few hold two at once (flex)",
    ),
    "hr_illness": frame(
        {
            "absence_id": number(unique=True),
            "guid": text("{UPPER-CASE-UUID}", unique=True, checks=pa.Check.str_matches(GUID)),
            "employee_id": text(),
            "employment_id": number(),
            "start_date": _date(),
            "report_date": _date(),
            "expected_end": _date(),
            "end_date": _date("NaT = still open", nullable=True),
            "presence_pct": _decimal(),
            "modified": _date(),
        },
        "Sick leave over the 30 months before the anchor; recent ones may still be open",
    ),
    "hr_users": frame(
        {
            "user_id": key("12345.jdevries"),
            "employee_id": key(),
            "upn": text(),
            "email": text(),
            "blocked": flag("leavers are blocked"),
        },
        "Profit user accounts: every manager and about one in ten other employees",
    ),
}
