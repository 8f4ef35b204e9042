"""The world's core frames (``sandbox/world/__init__.py:generate_core``: who exists), as pandera schemas.

Both sides are rendered from these: the AFAS side (``afas_frames.py``) and the TOPdesk side
(``topdesk_frames.py``). ``check_world`` validates them with the rendered frames. All columns are ``str``
unless a schema says otherwise; ids of TOPdesk objects are UUIDs; decimals are kept as text.
"""

from __future__ import annotations

import pandera.pandas as pa

from sandbox.world.columns import flag, frame, key, number, text

FRAMES: dict[str, pa.DataFrameSchema] = {
    "customers": frame(
        {
            "customer_number": key("AFAS DebtorId = TOPdesk clientReferenceNumber, 5 digits"),
            "name": text(),
            **{name: text() for name in ("street", "house_number", "postcode", "city")},
            "country": text("ISO2"),
            **{name: text() for name in ("phone", "email", "vat_number", "coc_number")},
            "blocked": flag("blocked in AFAS"),
            "in_afas": flag("some customers exist on one side only"),
            "in_topdesk": flag(),
            "admin_id": number("the administration"),
        },
        "Customers",
    ),
    "contacts": frame(
        {
            "person_number": key("AFAS BcCo of the person"),
            "customer_number": text(),
            **{name: text() for name in ("first_name", "last_name", "email", "phone")},
        },
        "Contact persons of the customers",
    ),
    "projects": frame(
        {
            "project_id": key(),
            "customer_number": text(),
            "description": text(),
            "closed": flag(),
            "is_default": flag("one per customer"),
            "admin_id": number(),
        },
        "Projects",
    ),
    "items": frame(
        {"item_code": key("AFAS work type"), "description": text(), "unit": text(), "price": text("decimal")},
        "Items hours are billed with",
    ),
    "administrations": frame(
        {"admin_id": number(unique=True), "name": text(), "code": text()}, "Administrations"
    ),
    "departments": frame(
        {
            "code": key("the department's TOPdesk clientReferenceNumber"),
            "name": text(),
            "cost_account": text(),
            "cost_centre": text(),
            "admin_id": number(),
        },
        "Internal departments, charged internally",
    ),
    "operator_groups": frame(
        {"id": key(), "name": text(), "hourly_rate": text("decimal")}, "Operator groups"
    ),
    "operators": frame(
        {
            "id": key(),
            "first_name": text(),
            "last_name": text(),
            "login": key(),
            "group_id": text(),
            "hourly_rate": text("decimal"),
            "employee_number": key("AFAS EmId"),
        },
        "Operators",
    ),
    "reasons": frame({"id": key(), "name": text()}, "Time-spent reasons"),
    "categories": frame(
        {"id": text(), "name": text(), "subcategory_id": key(), "subcategory": text()},
        "Categories, one row per subcategory",
    ),
}
