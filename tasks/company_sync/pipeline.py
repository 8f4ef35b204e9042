"""The sync-companies plan in one call: map → validate → match and plan, for branches and then persons.

Plain function over the frames read (no Prefect, HTTP or SQL), so tests and dry runs see exactly what
a real run would write. ``tasks/company_sync/apply.py`` carries the plan out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field

import pandas as pd

from schemas.companies import (
    BRANCH_KEY,
    BRANCH_LIMITS,
    OPTIONAL_TEXT_KEYS,
    OPTIONAL_TEXT_LENGTH,
    PERSON_LIMITS,
    branch_records_schema,
    person_records_schema,
)
from tasks.company_sync.apply import resolve_reason
from tasks.company_sync.config import CompaniesConfig
from tasks.company_sync.extract import AfasRelations, TopdeskRelations
from tasks.company_sync.fields import text
from tasks.company_sync.mapping import PERSON_CONTACT_TYPE, branch_records, person_records
from tasks.company_sync.plan import (
    ACTION_COLUMNS,
    REVIEW_COLUMNS,
    Plan,
    hold_back_mass_removal,
    plan_branches,
    plan_persons,
)
from tasks.company_sync.validate import REJECT_COLUMNS, Entity, split_unknown_countries, split_valid


class EmptyRead(ValueError):
    """AFAS returned no debtors at all: a broken read, never a reason to archive everything."""


@dataclass(frozen=True)
class SyncPlan:
    """Everything a run would write, what needs a person's eye, and what was rejected."""

    actions: pd.DataFrame  # ACTION_COLUMNS, branches before persons
    review: pd.DataFrame  # REVIEW_COLUMNS
    rejects: pd.DataFrame  # REJECT_COLUMNS
    notes: dict[str, int] = field(default_factory=dict)  # unchanged and skipped counts
    read: dict[str, int] = field(default_factory=dict)  # rows read per source
    reason_id: str | None = None  # archiving reason
    reason_problem: str = ""


def _numbers(frame: pd.DataFrame, column: str) -> set[str]:
    return {text(v) for v in frame[column]} - {""} if column in frame.columns else set()


def valid_records(
    records: pd.DataFrame, schema, entity: Entity, countries: Collection[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Records that pass their schema and name countries TOPdesk knows, and the rejects of both checks."""
    valid, rejects = split_valid(records, schema, entity)
    parts = [rejects]
    for name in [f for f in entity.sources if f.endswith("country.name")]:
        valid, unknown = split_unknown_countries(valid, name, countries, entity)
        parts.append(unknown)
    found = [p for p in parts if not p.empty]
    return valid, (pd.concat(found, ignore_index=True) if found else rejects)


def plan_sync(
    afas: AfasRelations,
    topdesk: TopdeskRelations,
    known_debtors: Collection[str],
    known_persons: Collection[str],
    config: CompaniesConfig,
) -> SyncPlan:
    """The plan of one sync-companies run."""
    present = _numbers(afas.debtors, "DebtorId")
    if not present:
        raise EmptyRead("AFAS returned no debtors: refusing to compare (it would archive every branch)")
    fields = config.branches.fields
    entity = Entity("debtor", BRANCH_KEY, "DebtorId", fields, BRANCH_LIMITS)
    wanted = branch_records(afas.debtors, fields)
    valid, rejects = valid_records(wanted, branch_records_schema(fields), entity, topdesk.countries)
    branches = plan_branches(
        valid, topdesk.branches, present, known_debtors, list(fields), config.clear_when_empty
    )
    plans, all_rejects = [hold_back_mass_removal(branches, config.max_gone)], [rejects]
    if config.persons.enabled:
        persons, person_rejects = _plan_persons(afas, topdesk, known_persons, branches, config)
        plans.append(hold_back_mass_removal(persons, config.max_gone))
        all_rejects.append(person_rejects)
    reason_id, problem = resolve_reason(topdesk.archiving_reasons, config.archiving_reason)
    return SyncPlan(
        actions=pd.DataFrame([a for p in plans for a in p.actions], columns=ACTION_COLUMNS, dtype=object),
        review=pd.DataFrame([r for p in plans for r in p.review], columns=REVIEW_COLUMNS, dtype=object),
        rejects=pd.concat(all_rejects, ignore_index=True).reindex(columns=REJECT_COLUMNS),
        notes=dict(sum((p.notes for p in plans), Counter())),
        read=read_counts(afas, topdesk),
        reason_id=reason_id,
        reason_problem=problem,
    )


def read_counts(afas: AfasRelations, topdesk: TopdeskRelations) -> dict[str, int]:
    """Rows read per source, for the run summary."""
    return {
        "AFAS debtors": len(afas.debtors),
        "AFAS contacts": len(afas.contacts),
        "TOPdesk branches": len(topdesk.branches),
        "TOPdesk persons": len(topdesk.persons),
    }


def _plan_persons(
    afas: AfasRelations,
    topdesk: TopdeskRelations,
    known: Collection[str],
    branches: Plan,
    config: CompaniesConfig,
) -> tuple[Plan, pd.DataFrame]:
    fields = config.persons.fields
    key = config.persons.key
    limits = {**PERSON_LIMITS, **dict.fromkeys(OPTIONAL_TEXT_KEYS, OPTIONAL_TEXT_LENGTH)}
    entity = Entity("contact person", key, "PerNumber", fields, limits)
    wanted = person_records(afas.contacts, afas.debtors, fields, key)
    valid, rejects = valid_records(wanted, person_records_schema(fields, key), entity, topdesk.countries)
    people = afas.contacts[[text(t).upper() == PERSON_CONTACT_TYPE for t in afas.contacts["Type"]]]
    present = _numbers(people, "PerNumber")
    plan = plan_persons(
        valid, topdesk.persons, present, known, branches.targets, list(fields), config.clear_when_empty, key
    )
    return plan, rejects
