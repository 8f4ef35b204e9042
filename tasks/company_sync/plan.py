"""Decide what to write in TOPdesk: create, update (changed fields only), archive or unarchive.

Matching follows decision §9.13: a branch is the AFAS debtor whose number is in ``clientReferenceNumber``,
a person the AFAS person whose number is in ``employeeNumber``. Active TOPdesk records win over archived
ones; two active records with one number are a review item, not a guess. A record that only matches by
name (same name, no or an unknown number) is never linked automatically: it goes on the review list and
nothing is written for it.

Removal is archiving, never deleting (decision §9.14): a blocked debtor or contact is archived, and so is
a record whose number AFAS used to have (``known``: every number ever seen in the nightly snapshots) but
has no more. Numbers AFAS never had (TOPdesk-only customers, internal departments) are left alone: those
are for create-missing-debtors or for people to decide.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from schemas.companies import BRANCH_KEY, PERSON_KEY
from tasks.company_sync.fields import name_key, text

ACTION_COLUMNS = [
    "entity",
    "action",
    "key",
    "name",
    "topdesk_id",
    "branch_key",
    "branch_id",
    "body",
    "changes",
    "reason",
]
REVIEW_COLUMNS = ["entity", "key", "name", "topdesk_id", "topdesk_name", "reason"]
LINK_FIELD = "branch"  # a person's branch, sent as {"id": ...} by the writer
GONE = "gone from AFAS"  # the archiving reason shown for numbers AFAS no longer has


@dataclass(frozen=True)
class Target:
    """The branch a debtor's persons belong to: an existing id, a branch created in this run, or none."""

    topdesk_id: str | None = None
    new: bool = False
    problem: str = ""  # why there is none


@dataclass
class Plan:
    """Actions, review items, unchanged counts and notes of one entity (branch or person)."""

    actions: list[dict[str, Any]] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)  # unchanged, skipped (why)
    targets: dict[str, Target] = field(default_factory=dict)  # branches only: debtor number → target


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts (no index)."""
    return frame.to_dict(orient="records") if not frame.empty else []


def is_archived(row: Mapping[str, Any]) -> bool:
    """TOPdesk's ``archived`` flag (missing = active)."""
    value = row.get("archived")
    return bool(value) if text(value) else False


def index_by(rows: Iterable[Mapping[str, Any]], column: str) -> dict[str, list[Mapping[str, Any]]]:
    """Rows grouped by their (stripped) ``column`` value; rows without a value are left out."""
    index: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if text(row.get(column)):
            index[text(row.get(column))].append(row)
    return index


def pick(candidates: Sequence[Mapping[str, Any]]) -> tuple[Mapping[str, Any] | None, str]:
    """The record a number points at: the one active record, else an archived one; or a problem."""
    active = [c for c in candidates if not is_archived(c)]
    if len(active) > 1:
        ids = ", ".join(text(c["id"]) for c in active)
        return None, f"{len(active)} active TOPdesk records carry this number ({ids}): merge or renumber them"
    if active:
        return active[0], ""
    return (candidates[0], "") if candidates else (None, "")


def diff(
    wanted: Mapping[str, Any], current: Mapping[str, Any], fields: Iterable[str], clear_when_empty: bool
) -> list[dict[str, str]]:
    """The mapped fields whose TOPdesk value differs from AFAS's (empty AFAS values only if clearing)."""
    changes = []
    for name in fields:
        after, before = text(wanted.get(name)), text(current.get(name))
        if after != before and (after or clear_when_empty):
            changes.append({"field": name, "before": before, "after": after})
    return changes


def body_of(changes: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """A flat PATCH/POST body (dotted names; ``fields.nest`` makes it nested): ``""`` clears a field.

    The person's branch is not in it: its id may only exist once this run created the branch.
    """
    return {c["field"]: c["after"] for c in changes if c["field"] not in (LINK_FIELD, "archived")}


def creation(wanted: Mapping[str, Any], fields: Iterable[str], key: str) -> list[dict[str, str]]:
    """Every filled field of a new record, the key first, as changes from nothing."""
    names = [key, *(f for f in fields if f != key)]
    return [{"field": n, "before": "", "after": text(wanted.get(n))} for n in names if text(wanted.get(n))]


def action(entity: str, kind: str, key: str, name: str, **extra: Any) -> dict[str, Any]:
    """One action row."""
    row = dict.fromkeys(ACTION_COLUMNS)
    row.update(entity=entity, action=kind, key=key, name=name, body={}, changes=[], reason="")
    row.update(extra)
    return row


def review(entity: str, key: str, name: str, reason: str, match: Mapping[str, Any] | None = None) -> dict:
    """One review row."""
    topdesk_name = _display_name(match) if match is not None else None
    return {
        "entity": entity,
        "key": key,
        "name": name,
        "topdesk_id": text(match.get("id")) if match is not None else None,
        "topdesk_name": topdesk_name,
        "reason": reason,
    }


def _display_name(row: Mapping[str, Any]) -> str:
    if "surName" in row or "firstName" in row:
        return " ".join(p for p in (text(row.get("firstName")), text(row.get("surName"))) if p)
    return text(row.get("name"))


def archive_action(entity: str, match: Mapping[str, Any], key: str, reason: str) -> dict[str, Any]:
    """Archive ``match`` (shown as the change ``archived: false → true``)."""
    change = [{"field": "archived", "before": "false", "after": "true"}]
    return action(
        entity,
        "archive",
        key,
        _display_name(match),
        topdesk_id=text(match["id"]),
        changes=change,
        reason=reason,
    )


def gone(
    current: Iterable[Mapping[str, Any]],
    key: str,
    present: Collection[str],
    known: Collection[str],
    entity: str,
) -> list[dict[str, Any]]:
    """Archive actions for active records whose number AFAS had before (``known``) and has no more."""
    return [
        archive_action(entity, row, text(row.get(key)), GONE)
        for row in current
        if not is_archived(row) and text(row.get(key)) not in present and text(row.get(key)) in known
    ]


# ---------------------------------------------------------------------------- branches


def unlinked_by_name(current: Iterable[Mapping[str, Any]], key: str, present: Collection[str], name) -> dict:
    """Active records without a number AFAS has, by name key: the candidates of a name-only match."""
    index: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for row in current:
        if not is_archived(row) and text(row.get(key)) not in present and name(row):
            index[name(row)].append(row)
    return index


def plan_branches(
    wanted: pd.DataFrame,
    branches: pd.DataFrame,
    present: Collection[str],
    known: Collection[str],
    fields: Sequence[str],
    clear_when_empty: bool = False,
) -> Plan:
    """Branch actions for the valid debtor records ``wanted``.

    ``present``: every debtor number AFAS returned (rejected rows too: a bad row is not a removed debtor);
    ``known``: every debtor number seen in AFAS before.
    """
    plan, current = Plan(), records(branches)
    index = index_by(current, BRANCH_KEY)
    by_name = unlinked_by_name(current, BRANCH_KEY, present, lambda r: name_key(r.get("name")))
    for row in records(wanted):
        _plan_branch(plan, row, index.get(text(row[BRANCH_KEY]), []), by_name, fields, clear_when_empty)
    plan.actions += gone(current, BRANCH_KEY, present, known, "branch")
    for number in set(present) - set(plan.targets):  # rejected debtors: persons may use their branch
        match, _ = pick(index.get(number, []))
        if match is not None and not is_archived(match):
            plan.targets[number] = Target(text(match["id"]))
        else:
            plan.targets[number] = Target(problem=f"debtor {number} was rejected")
    return plan


def _plan_branch(
    plan: Plan, row: dict, candidates: list, by_name: dict, fields: Sequence[str], clear: bool
) -> None:
    key, name = text(row[BRANCH_KEY]), text(row.get("afas_name") or row.get("name"))
    match, problem = pick(candidates)
    if problem:
        plan.review.append(review("branch", key, name, problem))
        plan.targets[key] = Target(problem=f"branch of debtor {key} is on the review list")
    elif match is None:
        _plan_new_branch(plan, row, key, name, by_name, fields)
    elif row["blocked"]:
        plan.targets[key] = Target(problem=f"debtor {key} is blocked")
        if is_archived(match):
            plan.notes["branch unchanged"] += 1
        else:
            plan.actions.append(archive_action("branch", match, key, "blocked in AFAS"))
    else:
        plan.targets[key] = Target(text(match["id"]))
        _plan_existing(plan, "branch", match, key, name, diff(row, match, fields, clear))


def _plan_new_branch(
    plan: Plan, row: dict, key: str, name: str, by_name: dict, fields: Sequence[str]
) -> None:
    if row["blocked"]:
        plan.targets[key] = Target(problem=f"debtor {key} is blocked")
        plan.notes["blocked debtor without branch: not created"] += 1
        return
    similar = by_name.get(name_key(row.get("name")), [])
    if similar:
        plan.targets[key] = Target(problem=f"branch of debtor {key} is on the review list")
        for match in similar:
            number = text(match.get(BRANCH_KEY)) or "(none)"
            reason = (
                f"same name as AFAS debtor {key} but number {number}: "
                "link by hand (set clientReferenceNumber) or rename"
            )
            plan.review.append(review("branch", key, name, reason, match))
        return
    changes = creation(row, fields, BRANCH_KEY)
    plan.actions.append(action("branch", "create", key, name, body=body_of(changes), changes=changes))
    plan.targets[key] = Target(new=True)


def _plan_existing(
    plan: Plan, entity: str, match: Mapping[str, Any], key: str, name: str, changes: list, **extra: Any
) -> None:
    """Unarchive (and update) an archived match, update a changed one, or count it unchanged."""
    common = {"topdesk_id": text(match["id"]), "body": body_of(changes), **extra}
    if is_archived(match):
        changes = [{"field": "archived", "before": "true", "after": "false"}, *changes]
        plan.actions.append(
            action(entity, "unarchive", key, name, changes=changes, reason="active in AFAS", **common)
        )
    elif changes:
        plan.actions.append(action(entity, "update", key, name, changes=changes, **common))
    else:
        plan.notes[f"{entity} unchanged"] += 1


# ---------------------------------------------------------------------------- persons


def person_name_key(row: Mapping[str, Any]) -> str:
    """Name key of a TOPdesk person (first name and surname)."""
    return name_key(f"{text(row.get('firstName'))} {text(row.get('surName'))}")


def plan_persons(
    wanted: pd.DataFrame,
    persons: pd.DataFrame,
    present: Collection[str],
    known: Collection[str],
    targets: Mapping[str, Target],
    fields: Sequence[str],
    clear_when_empty: bool = False,
    key: str = PERSON_KEY,
) -> Plan:
    """Person actions for the valid contact records ``wanted``; ``targets`` come from ``plan_branches``.

    ``key``: the TOPdesk person field holding the AFAS person number (``[persons] key``).
    """
    plan, current = Plan(), records(persons)
    index = index_by(current, key)
    by_name = unlinked_by_name(current, key, present, _branch_and_name)
    for row in unique_persons(wanted, plan, key):
        context = (index.get(text(row[key]), []), by_name, targets, fields, clear_when_empty, key)
        _plan_person(plan, row, *context)
    plan.actions += gone(current, key, present, known, "person")
    return plan


def _branch_and_name(row: Mapping[str, Any]) -> str:
    key = person_name_key(row)
    return f"{text(row.get('branch.id'))}|{key}" if key else ""


def unique_persons(wanted: pd.DataFrame, plan: Plan, key_field: str = PERSON_KEY) -> list[dict[str, Any]]:
    """One record per person number; the other organisations go on the review list.

    AFAS lets one person be the contact of several organisations; TOPdesk gives a person one branch. The
    contact at a debtor wins, then an active one, then the oldest contact.
    """
    rows = records(wanted)
    rows.sort(key=lambda row: _preference(row, key_field))
    kept: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = text(row[key_field])
        first = kept.setdefault(key, row)
        if first is not row and text(row.get("org")) != text(first.get("org")):
            reason = (
                f"contact person of organisations {text(first.get('org'))} and {text(row.get('org'))}: "
                f"kept at the branch of debtor {text(first.get('branch_key')) or '(none)'}"
            )
            plan.review.append(review("person", key, text(row.get("afas_name")), reason))
    return list(kept.values())


def _preference(row: Mapping[str, Any], key: str) -> tuple:
    no_debtor = not text(row.get("branch_key"))
    return text(row[key]), no_debtor, bool(row["blocked"]), text(row.get("contact_id")).zfill(12)


def _plan_person(
    plan: Plan,
    row: dict,
    candidates: list,
    by_name: dict,
    targets: Mapping,
    fields: Sequence[str],
    clear: bool,
    key_field: str = PERSON_KEY,
) -> None:
    key, name, branch_key = text(row[key_field]), text(row.get("afas_name")), text(row.get("branch_key"))
    match, problem = pick(candidates)
    if not branch_key:
        plan.notes["contact of an organisation that is no debtor: skipped"] += 1
    elif problem:
        plan.review.append(review("person", key, name, problem))
    elif row["blocked"]:
        if match is not None and not is_archived(match):
            plan.actions.append(archive_action("person", match, key, "blocked in AFAS (contact or debtor)"))
        else:
            plan.notes["blocked contact without active person: nothing to do"] += 1
    else:
        target = targets.get(branch_key) or Target(problem=f"debtor {branch_key} has no branch")
        if match is None:
            _plan_new_person(plan, row, key, name, branch_key, target, by_name, fields, key_field)
        else:
            changes, link = diff(row, match, fields, clear), branch_change(match, target, branch_key)
            extra = {"branch_key": branch_key, "branch_id": target.topdesk_id} if link else {}
            _plan_existing(plan, "person", match, key, name, changes + ([link] if link else []), **extra)


def branch_change(match: Mapping[str, Any], target: Target, branch_key: str) -> dict[str, str] | None:
    """The change of a person's branch, if AFAS puts the person at another (existing or new) branch."""
    current_id = text(match.get("branch.id"))
    if not target.new and (target.topdesk_id is None or target.topdesk_id == current_id):
        return None
    before = text(match.get("branch.clientReferenceNumber")) or current_id
    return {"field": LINK_FIELD, "before": before, "after": branch_key}


def _plan_new_person(
    plan: Plan,
    row: dict,
    key: str,
    name: str,
    branch_key: str,
    target: Target,
    by_name: dict,
    fields: Sequence[str],
    key_field: str = PERSON_KEY,
) -> None:
    if target.topdesk_id is None and not target.new:
        plan.review.append(review("person", key, name, f"not created: {target.problem}"))
        return
    similar = by_name.get(f"{target.topdesk_id}|{name_key(name)}", []) if target.topdesk_id else []
    for match in similar:
        number = text(match.get(key_field)) or "(none)"
        reason = f"same name at the branch of debtor {branch_key} but {key_field} {number}: link by hand"
        plan.review.append(review("person", key, name, reason, match))
    if similar:
        return
    changes = [*creation(row, fields, key_field), {"field": LINK_FIELD, "before": "", "after": branch_key}]
    plan.actions.append(
        action(
            "person",
            "create",
            key,
            name,
            body=body_of(changes),
            changes=changes,
            branch_key=branch_key,
            branch_id=target.topdesk_id,
        )
    )


def hold_back_mass_removal(plan: Plan, max_gone: int) -> Plan:
    """Move the "gone" archives to the review list when there are more than ``max_gone`` of them.

    So many records gone at once is far likelier a broken AFAS read (a changed GetConnector filter) than a
    real clean-up; raise ``max_gone`` to let a real one through.
    """
    gone_now = [a for a in plan.actions if a["action"] == "archive" and a["reason"] == GONE]
    if len(gone_now) <= max_gone:
        return plan
    plan.actions = [a for a in plan.actions if a not in gone_now]
    reason = f"not archived: {len(gone_now)} records gone from AFAS at once exceeds max_gone = {max_gone}"
    plan.review += [
        review(a["entity"], a["key"], a["name"], reason, {"id": a["topdesk_id"], "name": a["name"]})
        for a in gone_now
    ]
    return plan
