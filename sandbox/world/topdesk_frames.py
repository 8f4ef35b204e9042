"""The frames of the world's TOPdesk side (``sandbox/world/topdesk.py:render``), as pandera schemas.

They replace a prose catalogue that could drift: tests/sandbox/test_world_topdesk.py validates rendered worlds
against them. Columns named like TOPdesk's API fields hold what the simulator serves; dotted names are
references by id (``operator.id``) and mirror FIQL paths; snake_case columns are sandbox-only, never served.
An empty string means null; dates are ``datetime64[ms, UTC]`` (``NaT`` = null); durations are ``int64``.
Every schema is strict and ordered: a column added, dropped or moved fails the test.
"""

from __future__ import annotations

import pandera.pandas as pa

from sandbox.world.columns import flag, frame, key, number, one_of, text

UTC = "datetime64[ms, UTC]"


def _date(description: str = "") -> pa.Column:
    return pa.Column(UTC, nullable=True, description=description or None)


REGISTRATION_DIRT = ("", "zero", "negative", "absurd", "unit_mismatch", "bad_entry_date", "duplicate")
BRANCH_DIRT = ("branch_without_customer_number", "branch_unknown_customer_number")

FRAMES: dict[str, pa.DataFrameSchema] = {
    "td_branches": frame(
        {
            "id": key(),
            "name": text(),
            "clientReferenceNumber": text("AFAS debtor number, or a department code"),
            "archived": flag(),
            **{name: text() for name in ("phone", "email", "street", "number", "postcode", "city")},
            "country": text("country name"),
            "timeZone": text(),
            "branchType": text(),
            "kind": one_of(("customer", "department", "extra")),
            "dirty": one_of(
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
    "td_persons": frame(
        {
            "id": key(),
            "employeeNumber": text("AFAS person number; empty for the callers of extra branches"),
            **{name: text() for name in ("firstName", "surName", "email", "phoneNumber", "branch.id")},
            "archived": flag("about 2 %"),
        },
        "TOPdesk persons (callers)",
    ),
    "td_operators": frame(
        {
            "id": key(),
            **{name: text() for name in ("firstName", "surName", "dynamicName", "loginName", "email")},
            "employeeNumber": text("AFAS EmId"),
            "hourlyRate": text("decimal as text"),
            "operatorGroup.id": text(),
            "apiAccount": flag("the last row is the API account koppel.api the simulator logs in as"),
            "archived": flag(),
        },
        "TOPdesk operators",
    ),
    "td_operator_groups": frame(
        {"id": key(), "groupName": text(), "hourlyRate": text("decimal as text")}, "Operator groups"
    ),
    "td_reasons": frame({"id": key(), "name": text()}, "Time-spent reasons"),
    "td_categories": frame(
        {"id": text(), "name": text(), "subcategory_id": text(unique=True), "subcategory": text()},
        "Categories, one row per subcategory",
    ),
    "td_archiving_reasons": frame({"id": key(), "name": text()}, "Archiving reasons"),
    "td_countries": frame({"id": key(), "name": text()}, "Countries"),
    "td_incidents": frame(
        {
            "id": key(),
            "number": text("I 2610 123 or I2610-0042"),
            "line": one_of(("firstLine", "secondLine", "partial")),
            "archived": flag("archived incidents are closed"),
            "status": one_of(
                tuple(
                    f"{line}{suffix}"
                    for line in ("firstLine", "secondLine", "partial")
                    for suffix in ("", "Archived")
                )
            ),
            "mainIncident.id": text("partials only: a second-line incident with the same caller branch"),
            **{
                name: text()
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
            "optionalFields1.text1": text("project code, on about 30 % of customer tickets"),
            "project_kind": one_of(
                ("", "own", "other_debtor", "closed"), "own: an open project of the caller branch's debtor"
            ),
            "callDate": _date(),
            "creationDate": _date(),
            "closed": flag(),
            "modificationDate": _date(),
            "closedDate": _date(),
        },
        "Incidents",
    ),
    "td_registrations": frame(
        {
            "id": key(),
            "parent.id": text("the incident"),
            "timeSpent": number(
                "SECONDS as the bulk endpoint serves them: minutes * 60 except on unit_mismatch"
            ),
            "minutes": number("what the per-incident /timespent and the incident totals show"),
            "entryDate": _date(),
            "entry_date_text": text("the wrongly formatted text served on bad_entry_date rows, else empty"),
            "creationDate": _date(),
            "modificationDate": _date(),
            **{name: text() for name in ("operator.id", "operatorGroup.id", "reason.id", "notes")},
            "dirty": one_of(
                REGISTRATION_DIRT + BRANCH_DIRT,
                "about 4 % of rows; absurd: 30 h or 36 h; duplicate: a clean row served twice, a page apart",
            ),
        },
        "Incident time registrations",
    ),
    "td_om_activities": frame(
        {
            "id": key(),
            "number": text("OA 2610 0007"),
            "briefDescription": text(),
            "status": text(),
            "archived": flag(),
            "operator.id": text(),
            "operatorGroup.id": text(),
            "linkedBranches": text("branch ids joined by ';', the first one billed; empty = none"),
            "estimatedTime": number("minutes"),
            "plannedStartDate": _date(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Operational activities",
    ),
    "td_om_registrations": frame(
        {
            "id": key(),
            "activity.id": text(),
            "timeSpent": number("SECONDS on GET"),
            "minutes": number(),
            "note": text(),
            "entryDate": _date(),
            "creationDate": _date(),
            **{name: text() for name in ("operator.id", "operatorGroup.id", "reason.id")},
            "dirty": one_of(("", "zero", "unit_mismatch", "no_linked_branch")),
        },
        "Operational-activity time registrations",
    ),
    "td_changes": frame(
        {
            "id": key(),
            "number": text("C 2610 0012"),
            "briefDescription": text(),
            "changeType": one_of(("simple", "extensive")),
            "requester.id": text(),
            "requesterBranch.id": text(),
            "status": text(),
            "archived": flag(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Changes",
    ),
    "td_change_activities": frame(
        {
            "id": key(),
            "number": text("CA 2610 0003"),
            "change.id": text(),
            "briefDescription": text(),
            "status": text(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Change activities",
    ),
    "td_problems": frame(
        {
            "id": key(),
            "number": text("P 2610 0004"),
            "briefDescription": text(),
            "branch.id": text(),
            "status": text(),
            "archived": flag(),
            "creationDate": _date(),
            "modificationDate": _date(),
        },
        "Problems",
    ),
    "td_odata_registrations": frame(
        {
            "id": key(),
            "kind": one_of(("change", "change_activity", "problem")),
            "ticket.id": text(),
            "minutes": number("served only through OData, in MINUTES, as TimeSpentMinutes"),
            "entryDate": _date(),
            "creationDate": _date(),
            "modificationDate": _date(),
            **{name: text() for name in ("operator.id", "operatorGroup.id", "reason.id", "notes")},
            "dirty": one_of(("", "zero", "absurd", *BRANCH_DIRT)),
        },
        "Time registrations of changes, change activities and problems",
    ),
}
