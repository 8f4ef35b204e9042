"""AFAS rows → the TOPdesk records they should be: one branch per debtor, one person per contact person.

The field map comes from ``config/companies.toml`` (TOPdesk field → AFAS column, or a list of columns of
which the first non-empty one wins). Derived columns are added first, so the map can name them:
``Street``/``HouseNumber`` from ``AdressLine1``, ``PostalCode``/``City`` from ``AdressLine3``, ``Country``
from ``AdressLine4`` (debtors), ``FirstName``/``Prefix``/``LastName`` from ``FullName`` (contacts).

Records are object frames whose empty values are ``None``; besides the TOPdesk fields they carry
``afas_name`` (to name the record in reasons), ``blocked`` and, for persons, ``branch_key`` (the debtor
number of the person's organisation: the branch the person belongs to).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from schemas.companies import BRANCH_KEY, PERSON_KEY
from tasks.company_sync.fields import optional, split_name_parts, split_postcode, split_street, text

PERSON_CONTACT_TYPE = "PRS"  # Profit_Contacts.Type: PRS = a person at an organisation (AFD = department)


class MappingError(ValueError):
    """The field map names a column the AFAS read does not have (a configuration error)."""


def _column(frame: pd.DataFrame, name: str) -> list[Any]:
    return frame[name].tolist() if name in frame.columns else [None] * len(frame)


def with_address_parts(debtors: pd.DataFrame) -> pd.DataFrame:
    """``Profit_Debtor`` plus ``Street``, ``HouseNumber``, ``PostalCode``, ``City`` and ``Country``."""
    streets = [split_street(v) for v in _column(debtors, "AdressLine1")]
    places = [split_postcode(v) for v in _column(debtors, "AdressLine3")]
    return debtors.assign(
        Street=pd.Series([s for s, _ in streets], index=debtors.index, dtype=object),
        HouseNumber=pd.Series([n for _, n in streets], index=debtors.index, dtype=object),
        PostalCode=pd.Series([p for p, _ in places], index=debtors.index, dtype=object),
        City=pd.Series([c for _, c in places], index=debtors.index, dtype=object),
        Country=pd.Series(
            [optional(v) for v in _column(debtors, "AdressLine4")], index=debtors.index, dtype=object
        ),
    )


NAME_PARTS = ("FirstName", "Prefix", "LastName")


def with_name_parts(contacts: pd.DataFrame) -> pd.DataFrame:
    """``Profit_Contacts`` plus ``FirstName``, ``Prefix`` and ``LastName``.

    A read that has the three columns already (a GetConnector with AFAS's separate name fields) keeps
    them; otherwise they are split from ``FullName`` by the rule of ``tasks.names.split_dutch_name``.
    """
    if all(column in contacts.columns for column in NAME_PARTS):
        return contacts
    names = [split_name_parts(v) for v in _column(contacts, "FullName")]
    parts = {
        column: pd.Series([n[i] for n in names], index=contacts.index, dtype=object)
        for i, column in enumerate(NAME_PARTS)
    }
    return contacts.assign(**parts)


def first_filled(frame: pd.DataFrame, sources: Sequence[str], target: str) -> list[str | None]:
    """Per row, the first non-empty value of the ``sources`` columns (as stripped text), else ``None``."""
    missing = [s for s in sources if s not in frame.columns]
    if missing:
        raise MappingError(
            f"{target}: AFAS column {', '.join(missing)} not in the read (check the field map)"
        )
    values = [[optional(v) for v in frame[s].tolist()] for s in sources]
    return [next((v for v in row if v is not None), None) for row in zip(*values, strict=True)]


def _blocked(frame: pd.DataFrame) -> list[bool]:
    return [bool(v) if text(v) else False for v in _column(frame, "Blocked")]


def branch_records(debtors: pd.DataFrame, fields: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """One wanted TOPdesk branch per AFAS debtor (``clientReferenceNumber`` = ``DebtorId``)."""
    source = with_address_parts(debtors.reset_index(drop=True))
    records: dict[str, list[Any]] = {
        BRANCH_KEY: [optional(v) for v in _column(source, "DebtorId")],
        "afas_name": [optional(v) for v in _column(source, "DebtorName")],
        "bcco": [optional(v) for v in _column(source, "BcCo")],
        "blocked": _blocked(source),
    }
    for target, sources in fields.items():
        records[target] = first_filled(source, sources, f"branches.fields.{target}")
    return pd.DataFrame(records, dtype=object)


def debtor_of_organisation(debtors: pd.DataFrame) -> pd.DataFrame:
    """Organisation number → its debtor number and blocked flag (an active debtor wins, then the lowest)."""
    frame = pd.DataFrame(
        {
            "org": [optional(v) for v in _column(debtors, "BcCo")],
            "branch_key": [optional(v) for v in _column(debtors, "DebtorId")],
            "debtor_blocked": _blocked(debtors),
        },
        dtype=object,
    ).dropna(subset=["org", "branch_key"])
    ordered = frame.sort_values(["debtor_blocked", "branch_key"], kind="stable")
    return ordered.drop_duplicates("org").set_index("org")


def person_records(
    contacts: pd.DataFrame, debtors: pd.DataFrame, fields: Mapping[str, Sequence[str]], key: str = PERSON_KEY
) -> pd.DataFrame:
    """One wanted TOPdesk person per AFAS contact person; ``branch_key`` = the organisation's debtor.

    A contact of a blocked debtor counts as blocked: the branch is archived, so is the person.
    """
    people = contacts[[text(t).upper() == PERSON_CONTACT_TYPE for t in _column(contacts, "Type")]]
    source = with_name_parts(people.reset_index(drop=True))
    orgs = [optional(v) for v in _column(source, "OrgNumber")]
    debtor = debtor_of_organisation(debtors).reindex(orgs)
    blocked = [c or d is True for c, d in zip(_blocked(source), debtor["debtor_blocked"], strict=True)]
    records: dict[str, list[Any]] = {
        key: [optional(v) for v in _column(source, "PerNumber")],
        "afas_name": [optional(v) for v in _column(source, "FullName")],
        "contact_id": [optional(v) for v in _column(source, "ContactId")],
        "org": orgs,
        "branch_key": [optional(v) for v in debtor["branch_key"].tolist()],
        "blocked": blocked,
    }
    for target, sources in fields.items():
        records[target] = first_filled(source, sources, f"persons.fields.{target}")
    return pd.DataFrame(records, dtype=object)
