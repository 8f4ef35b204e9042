"""Read what the company sync compares: AFAS debtors and contact persons, TOPdesk branches and persons.

Plain async readers over one client each (testable without Prefect); the Prefect tasks in
``tasks/company_sync/tasks.py`` open the clients and call them. Everything is read in full: removals are only
visible in a complete read, and a few thousand debtors are a handful of pages.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from connectors.afas.client import AfasClient
from connectors.topdesk import masterdata as md
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.endpoints import API, Endpoint
from connectors.topdesk.paging import Family
from schemas.companies import AfasContacts, AfasDebtors, TopdeskBranches, TopdeskPersons

COUNTRIES = Endpoint("countries", f"{API}/countries", Family.UNPAGED)
BRANCH_BASE = ("id", "name", "clientReferenceNumber", "archived")
PERSON_BASE = ("id", "firstName", "surName", "employeeNumber", "archived", "branch")


@dataclass(frozen=True)
class AfasRelations:
    """``Profit_Debtor`` and ``Profit_Contacts`` as read."""

    debtors: pd.DataFrame
    contacts: pd.DataFrame


@dataclass(frozen=True)
class TopdeskRelations:
    """Branches and persons (archived ones too), archiving reasons and countries."""

    branches: pd.DataFrame
    persons: pd.DataFrame
    archiving_reasons: pd.DataFrame
    countries: list[str]


async def read_afas_relations(client: AfasClient, with_contacts: bool = True) -> AfasRelations:
    """Every debtor and (unless ``with_contacts`` is off) every contact, checked against their contracts."""
    debtors = client.read_frame("Profit_Debtor")
    if not with_contacts:
        return AfasRelations(AfasDebtors.validate(await debtors), pd.DataFrame())
    frames = await asyncio.gather(debtors, client.read_frame("Profit_Contacts"))
    return AfasRelations(AfasDebtors.validate(frames[0]), AfasContacts.validate(frames[1]))


def top_level(fields: Iterable[str], base: Iterable[str]) -> tuple[str, ...]:
    """The fields to ask TOPdesk for: the base ones plus the top level of each mapped dotted field."""
    return tuple(dict.fromkeys([*base, *(name.split(".")[0] for name in fields)]))


async def read_topdesk_relations(
    client: TopdeskClient,
    branch_fields: Iterable[str],
    person_fields: Iterable[str],
    with_persons: bool = True,
) -> TopdeskRelations:
    """All branches and persons (archived too) with the mapped fields, archiving reasons and countries."""
    branches = md.read_branches(client, include_archived=True, fields=top_level(branch_fields, BRANCH_BASE))
    reasons = md.read_archiving_reasons(client)
    countries = client.read_all(COUNTRIES)
    if with_persons:
        fields = top_level(person_fields, PERSON_BASE)
        persons = md.read_persons(client, include_archived=True, fields=fields)
        found = await asyncio.gather(branches, reasons, countries, persons)
        people = TopdeskPersons.validate(with_branch_columns(found[3]))
    else:
        found = await asyncio.gather(branches, reasons, countries)
        people = pd.DataFrame()
    names = [str(c.get("name")) for c in found[2] if c.get("name")]
    return TopdeskRelations(TopdeskBranches.validate(found[0]), people, found[1], names)


def with_branch_columns(persons: pd.DataFrame) -> pd.DataFrame:
    """A person without a branch has no ``branch.*`` columns after flattening; add them empty."""
    for column in ("branch.id", "branch.clientReferenceNumber"):
        if column not in persons.columns:
            persons[column] = pd.Series([None] * len(persons), dtype=object)
    return persons
