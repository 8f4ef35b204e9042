"""Contracts of the company and person sync: what is read from AFAS and TOPdesk, and what may be written.

Two kinds of schema live here:

- **Input contracts** (``AfasDebtors``, ``AfasContacts``, ``TopdeskBranches``, ``TopdeskPersons``): the
  columns the sync needs from each read. A frame that breaks them is a connector or configuration bug and
  stops the run.
- **Record schemas** (``branch_records_schema``, ``person_records_schema``): the TOPdesk records the sync
  wants to write, one row per AFAS debtor or contact, checked against TOPdesk's own limits (reference
  topdesk-api.md §5; the sandbox enforces the same lengths). They are built from the configured field map,
  so only mapped fields are checked, and they are run lazily: every failing row is rejected with a reason
  naming the AFAS record and the field, while the other rows go on.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

# TOPdesk branch fields Koppel may fill, with their maximum length (None = no limit; reference §5).
BRANCH_LIMITS: dict[str, int | None] = {
    "name": 60,
    "clientReferenceNumber": 30,
    "specification": 70,
    "phone": 25,
    "fax": 25,
    "email": 100,
    "website": 100,
    "vatNumber": 25,
    "membershipNumber": 60,
    "address.street": 50,
    "address.number": 50,
    "address.county": 50,
    "address.city": 30,
    "address.postcode": 15,
    "address.country.name": None,
    "postalAddress.street": 50,
    "postalAddress.number": 50,
    "postalAddress.county": 50,
    "postalAddress.city": 30,
    "postalAddress.postcode": 15,
    "postalAddress.country.name": None,
}
# TOPdesk person fields Koppel may fill (v2; reference §5).
PERSON_LIMITS: dict[str, int | None] = {
    "surName": 50,
    "firstName": 30,
    "firstInitials": 10,
    "prefixes": 10,
    "employeeNumber": 20,
    "email": 100,
    "phoneNumber": 25,
    "mobileNumber": 25,
    "fax": 25,
    "title": 35,
    "jobTitle": 100,
}
EMAIL_FIELDS = frozenset({"email"})
BRANCH_KEY = "clientReferenceNumber"  # decision §9.13: the AFAS debtor number
PERSON_KEY = "employeeNumber"  # decision §9.13: the AFAS person number (BcCo)
# Decision §9.13 also allows an optional text field of the person card as the key ([persons] key).
OPTIONAL_TEXT_KEYS = tuple(f"optionalFields{card}.text{n}" for card in (1, 2) for n in range(1, 6))
PERSON_KEYS = (PERSON_KEY, *OPTIONAL_TEXT_KEYS)
OPTIONAL_TEXT_LENGTH = 100
# The same pattern TOPdesk (and the sandbox) apply: something@something.tld, no spaces.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class MappedRead(pa.DataFrameModel):
    """An input read: the columns named are checked, the others are let through.

    Address, phone, e-mail and the other columns are read because the field map in companies.toml names them.
    """

    class Config:
        """Columns beyond the contract follow the configured field map."""

        strict = False


class AfasDebtors(MappedRead):
    """``Profit_Debtor`` as the sync reads it; a missing ``DebtorId`` is a bad row, not a broken frame."""

    DebtorId: Series[str] = pa.Field(nullable=True, coerce=True)
    DebtorName: Series[str] = pa.Field(nullable=True, coerce=True)
    BcCo: Series[str] = pa.Field(nullable=True, coerce=True)
    Blocked: Series[pd.BooleanDtype] = pa.Field(nullable=True, coerce=True)


class AfasContacts(MappedRead):
    """``Profit_Contacts``: ``PerNumber`` is the person (``BcCo``), ``OrgNumber`` the organisation."""

    ContactId: Series[pd.Int64Dtype] = pa.Field(unique=True, coerce=True)
    Type: Series[str] = pa.Field(nullable=True, coerce=True)
    OrgNumber: Series[str] = pa.Field(nullable=True, coerce=True)
    PerNumber: Series[str] = pa.Field(nullable=True, coerce=True)
    FullName: Series[str] = pa.Field(nullable=True, coerce=True)
    Blocked: Series[pd.BooleanDtype] = pa.Field(nullable=True, coerce=True)


class TopdeskBranches(MappedRead):
    """Branches, archived ones included, flattened (``address.city``)."""

    id: Series[str] = pa.Field(unique=True, coerce=True)
    name: Series[str] = pa.Field(nullable=True, coerce=True)
    clientReferenceNumber: Series[str] = pa.Field(nullable=True, coerce=True)
    archived: Series[pd.BooleanDtype] = pa.Field(nullable=True, coerce=True)


class TopdeskPersons(MappedRead):
    """Persons (v2), archived ones included, flattened (``branch.id``)."""

    id: Series[str] = pa.Field(unique=True, coerce=True)
    employeeNumber: Series[str] = pa.Field(nullable=True, coerce=True)
    archived: Series[pd.BooleanDtype] = pa.Field(nullable=True, coerce=True)
    branch_id: Series[str] = pa.Field(nullable=True, coerce=True, alias="branch.id")


def _column(field: str, limit: int | None, mandatory: bool) -> pa.Column:
    checks = [pa.Check.str_length(max_value=limit)] if limit else []
    if field in EMAIL_FIELDS:
        checks.append(pa.Check.str_matches(EMAIL_PATTERN))
    return pa.Column(None, checks=checks, nullable=not mandatory)


def records_schema(
    limits: dict[str, int | None], fields: Iterable[str], mandatory: Iterable[str], key: str
) -> pa.DataFrameSchema:
    """The schema of records to write: ``key`` and ``mandatory`` fields present, lengths and e-mails checked.

    Empty values must be ``None`` (not ``""``) so that optional fields skip their checks.
    """
    required = {key, *mandatory}
    columns = {f: _column(f, limits[f], f in required) for f in dict.fromkeys([key, *fields])}
    return pa.DataFrameSchema(columns, strict=False)


def branch_records_schema(fields: Iterable[str]) -> pa.DataFrameSchema:
    """Branches to write: debtor number and name are mandatory (TOPdesk: ``name``)."""
    return records_schema(BRANCH_LIMITS, fields, ("name",), BRANCH_KEY)


def person_records_schema(fields: Iterable[str], key: str = PERSON_KEY) -> pa.DataFrameSchema:
    """Persons to write: person number (in ``key``) and surname are mandatory (TOPdesk: ``surName``)."""
    limits = {**PERSON_LIMITS, **dict.fromkeys(OPTIONAL_TEXT_KEYS, OPTIONAL_TEXT_LENGTH)}
    return records_schema(limits, fields, ("surName",), key)
