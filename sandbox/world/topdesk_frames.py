"""The frames of the world's TOPdesk side (``sandbox/world/topdesk.py:render``), as pandera schemas.

They replace a prose catalogue that could drift: tests/sandbox/test_world_topdesk.py validates rendered worlds
against them. Columns named like TOPdesk's API fields hold what the simulator serves; dotted names are
references by id (``operator.id``) and mirror FIQL paths; snake_case columns are sandbox-only, never served.
An empty string means null; dates are ``datetime64[ms, UTC]`` (``NaT`` = null); durations are ``int64``.
Every schema is strict and ordered: a column added, dropped or moved fails the test.
"""

from __future__ import annotations

from typing import Any

import pandera.pandas as pa

UTC = "datetime64[ms, UTC]"


def _text(description: str = "", **options: Any) -> pa.Column:
    return pa.Column(str, description=description or None, **options)


def _one_of(values: tuple[str, ...], description: str = "") -> pa.Column:
    return pa.Column(str, pa.Check.isin(values), description=description or None)


def _flag(description: str = "") -> pa.Column:
    return pa.Column(bool, description=description or None)


def _date(description: str = "") -> pa.Column:
    return pa.Column(UTC, nullable=True, description=description or None)


def _count(description: str = "") -> pa.Column:
    return pa.Column("int64", description=description or None)


def _frame(columns: dict[str, pa.Column], description: str) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(columns, strict=True, ordered=True, description=description)


def _id() -> pa.Column:
    return _text(unique=True)


REGISTRATION_DIRT = ("", "zero", "negative", "absurd", "unit_mismatch", "bad_entry_date", "duplicate")
BRANCH_DIRT = ("branch_without_customer_number", "branch_unknown_customer_number")

FRAMES: dict[str, pa.DataFrameSchema] = {
    "td_branches": _frame(
        {
            "id": _id(),
            "name": _text(),
            "clientReferenceNumber": _text("AFAS debtor number, or a department code"),
            "archived": _flag(),
            **{name: _text() for name in ("phone", "email", "street", "number", "postcode", "city")},
            "country": _text("country name"),
            "timeZone": _text(),
            "branchType": _text(),
            "kind": _one_of(("customer", "department", "extra")),
            "dirty": _one_of(
                (
                    "",
                    "no_customer_number",
                    "unknown_customer_number",
                    "odd_unicode_name",
                    "archived_duplicate",
                ),
                "odd_unicode_name: no-break, zero-width and combining characters and an emoji in the name; "
                "archived_duplicate: an archived second branch with an existing number",
            ),
        },
        "TOPdesk branches: customers (AFAS debtors), internal departments and extra branches",
    ),
    "td_persons": _frame(
        {
            "id": _id(),
            "employeeNumber": _text("AFAS person number; empty for the callers of extra branches"),
            **{name: _text() for name in ("firstName", "surName", "email", "phoneNumber", "branch.id")},
            "archived": _flag("about 2 %"),
        },
        "TOPdesk persons (callers)",
    ),
    "td_operators": _frame(
        {
            "id": _id(),
            **{name: _text() for name in ("firstName", "surName", "dynamicName", "loginName", "email")},
            "employeeNumber": _text("AFAS EmId"),
            "hourlyRate": _text("decimal as text"),
            "operatorGroup.id": _text(),
            "apiAccount": _flag("the last row is the API account koppel.api the simulator logs in as"),
            "archived": _flag(),
        },
        "TOPdesk operators",
    ),
    "td_operator_groups": _frame(
        {"id": _id(), "groupName": _text(), "hourlyRate": _text("decimal as text")}, "Operator groups"
    ),
    "td_reasons": _frame({"id": _id(), "name": _text()}, "Time-spent reasons"),
    "td_categories": _frame(
        {"id": _text(), "name": _text(), "subcategory_id": _text(unique=True), "subcategory": _text()},
        "Categories, one row per subcategory",
    ),
    "td_archiving_reasons": _frame({"id": _id(), "name": _text()}, "Archiving reasons"),
    "td_countries": _frame({"id": _id(), "name": _text()}, "Countries"),
    "td_incidents": _frame(
        {
            "id": _id(),
            "number": _text("I 2610 123 or I2610-0042"),
            "line": _one_of(("firstLine", "secondLine", "partial")),
            "archived": _flag("archived incidents are closed"),
            "status": _one_of(
                tuple(
                    f"{line}{suffix}"
                    for line in ("firstLine", "secondLine", "partial")
                    for suffix in ("", "Archived")
                )
            ),
            "mainIncident.id": _text("partials only: a second-line incident with the same caller branch"),
            **{
                name: _text()
                for name in (
                    "briefDescription",
                    "callerBranch.id",
                    "caller.id",
                    "category.id",
                    "subcategory.id",
                    "operator.id",
                    "operatorGroup.id",
                )
            },
            "optionalFields1.text1": _text("project code, on about 30 % of customer tickets"),
            "project_kind": _one_of(
                ("", "own", "other_debtor", "closed"), "own: an open project of the caller branch's debtor"
            ),
            "callDate": _date(),
            "creationDate": _date(),
            "closed": _flag(),
            "modificationDate": _date(),
            "closedDate": _date(),
        },
        "Incidents",
    ),
    "td_registrations": _frame(
        {
            "id": _id(),
            "parent.id": _text("the incident"),
            "timeSpent": _count(
                "SECONDS as the bulk endpoint serves them: minutes * 60 except on unit_mismatch"
            ),
            "minutes": _count("what the per-incident /timespent and the incident totals show"),
            "entryDate": _date(),
            "entry_date_text": _text("the wrongly formatted text served on bad_entry_date rows, else empty"),
            "creationDate": _date(),
            "modificationDate": _date(),
            **{name: _text() for name in ("operator.id", "operatorGroup.id", "reason.id", "notes")},
            "dirty": _one_of(
                REGISTRATION_DIRT + BRANCH_DIRT,
                "about 4 % of rows; absurd: 30 h or 36 h; duplicate: a clean row served twice, a page apart",
            ),
        },
        "Incident time registrations",
    ),
    "td_om_activities": _frame(
        {
            "id": _id(),
            "number": _text("OA 2610 0007"),
            "briefDescription": _text(),
            "status": _text(),
            "archived": _flag(),
            "operator.id": _text(),
            "operatorGroup.id": _text(),
            "linkedBranches": _text("branch ids joined by ';', the first one billed; empty = none"),
            "estimatedTime": _count("minutes"),
            "plannedStartDate": _date(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Operational activities",
    ),
    "td_om_registrations": _frame(
        {
            "id": _id(),
            "activity.id": _text(),
            "timeSpent": _count("SECONDS on GET"),
            "minutes": _count(),
            "note": _text(),
            "entryDate": _date(),
            "creationDate": _date(),
            **{name: _text() for name in ("operator.id", "operatorGroup.id", "reason.id")},
            "dirty": _one_of(("", "zero", "unit_mismatch", "no_linked_branch")),
        },
        "Operational-activity time registrations",
    ),
    "td_changes": _frame(
        {
            "id": _id(),
            "number": _text("C 2610 0012"),
            "briefDescription": _text(),
            "changeType": _one_of(("simple", "extensive")),
            "requester.id": _text(),
            "requesterBranch.id": _text(),
            "status": _text(),
            "archived": _flag(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Changes",
    ),
    "td_change_activities": _frame(
        {
            "id": _id(),
            "number": _text("CA 2610 0003"),
            "change.id": _text(),
            "briefDescription": _text(),
            "status": _text(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Change activities",
    ),
    "td_problems": _frame(
        {
            "id": _id(),
            "number": _text("P 2610 0004"),
            "briefDescription": _text(),
            "branch.id": _text(),
            "status": _text(),
            "archived": _flag(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Problems",
    ),
    "td_odata_registrations": _frame(
        {
            "id": _id(),
            "kind": _one_of(("change", "change_activity", "problem")),
            "ticket.id": _text(),
            "minutes": _count("served only through OData, in MINUTES, as TimeSpentMinutes"),
            "entryDate": _date(),
            "creationDate": _date(),
            "modificationDate": _date(),
            **{name: _text() for name in ("operator.id", "operatorGroup.id", "reason.id", "notes")},
            "dirty": _one_of(("", "zero", "absurd", *BRANCH_DIRT)),
        },
        "Time registrations of changes, change activities and problems",
    ),
}
