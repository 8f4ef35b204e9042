"""Company sync: validation with reasons and the plan (match by number, review by name, archive, gone)."""

from __future__ import annotations

import pandas as pd
import pytest

from schemas.companies import BRANCH_LIMITS, PERSON_LIMITS, branch_records_schema, person_records_schema
from tasks.company_sync.config import parse_companies_config
from tasks.company_sync.extract import AfasRelations, TopdeskRelations
from tasks.company_sync.fields import nest
from tasks.company_sync.pipeline import EmptyRead, plan_sync
from tasks.company_sync.plan import Target, hold_back_mass_removal, plan_branches, plan_persons
from tasks.company_sync.validate import Entity, split_unknown_countries, split_valid

BRANCH_FIELDS = ["name", "phone", "email", "address.city"]
PERSON_FIELDS = ["firstName", "surName", "email"]
SOURCES = {"name": ("DebtorName",), "phone": ("TelNr",), "email": ("Email",), "address.city": ("City",)}
DEBTOR = Entity("debtor", "clientReferenceNumber", "DebtorId", SOURCES, BRANCH_LIMITS)


def wanted(number, name, blocked=False, **fields) -> dict:
    base = {"phone": "030-1", "email": f"info@{number}.nl", "address.city": "Utrecht"}
    row = {"clientReferenceNumber": number, "afas_name": name, "blocked": blocked, "name": name}
    return {**row, **base, **fields}


def branch(id_, number, name, archived=False, **fields) -> dict:
    base = {"phone": "030-1", "email": f"info@{number}.nl", "address.city": "Utrecht"}
    return {"id": id_, "clientReferenceNumber": number, "name": name, "archived": archived, **base, **fields}


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), dtype=object)


def plan(wanted_rows, branches, present=None, known=(), clear=False):
    present = present if present is not None else {r["clientReferenceNumber"] for r in wanted_rows}
    return plan_branches(frame(*wanted_rows), frame(*branches), present, set(known), BRANCH_FIELDS, clear)


def only(result, **expected):
    (found,) = result.actions
    assert {k: found[k] for k in expected} == expected
    return found


def test_an_identical_branch_plans_nothing() -> None:
    result = plan([wanted("10001", "Alfa")], [branch("b1", "10001", "Alfa")])
    assert result.actions == [] and result.review == []
    assert result.notes["branch unchanged"] == 1 and result.targets["10001"] == Target("b1")


def test_an_update_sends_the_changed_fields_only() -> None:
    result = plan([wanted("10001", "Alfa Groep", phone="030-9")], [branch("b1", "10001", "Alfa")])
    action = only(result, action="update", key="10001", topdesk_id="b1")
    assert action["body"] == {"name": "Alfa Groep", "phone": "030-9"}
    assert action["changes"] == [
        {"field": "name", "before": "Alfa", "after": "Alfa Groep"},
        {"field": "phone", "before": "030-1", "after": "030-9"},
    ]


def test_an_empty_afas_value_leaves_the_field_unless_clearing_is_on() -> None:
    rows, current = [wanted("10001", "Alfa", phone=None)], [branch("b1", "10001", "Alfa")]
    assert plan(rows, current).actions == []
    assert only(plan(rows, current, clear=True), action="update")["body"] == {"phone": ""}


def test_a_new_debtor_becomes_a_branch_with_every_filled_field() -> None:
    result = plan(
        [wanted("10002", "Beta", email=None)], [branch("b1", "10001", "Alfa")], present={"10001", "10002"}
    )
    action = only(result, action="create", key="10002", topdesk_id=None)
    assert nest(action["body"]) == {
        "clientReferenceNumber": "10002",
        "name": "Beta",
        "phone": "030-1",
        "address": {"city": "Utrecht"},
    }
    assert result.targets["10002"] == Target(new=True)


def test_a_name_only_match_is_listed_for_review_and_never_linked() -> None:
    current = [branch("b9", "", "ALFA b.v."), branch("b8", "99999", "Alfa B.V.")]
    result = plan([wanted("10001", "Alfa B.V.")], current)
    assert result.actions == []
    assert sorted(r["topdesk_id"] for r in result.review) == ["b8", "b9"]
    reasons = {r["topdesk_id"]: r["reason"] for r in result.review}
    assert reasons["b9"].startswith("same name as AFAS debtor 10001 but number (none): link by hand")
    assert reasons["b8"].startswith("same name as AFAS debtor 10001 but number 99999")
    assert result.targets["10001"].topdesk_id is None and "review" in result.targets["10001"].problem


def test_blocked_debtors_archive_active_branches_only() -> None:
    rows = [wanted("1", "A", blocked=True), wanted("2", "B", blocked=True), wanted("3", "C", blocked=True)]
    result = plan(rows, [branch("b1", "1", "A"), branch("b2", "2", "B", archived=True)])
    action = only(result, action="archive", key="1", topdesk_id="b1", reason="blocked in AFAS")
    assert action["changes"] == [{"field": "archived", "before": "false", "after": "true"}]
    assert result.notes == {"branch unchanged": 1, "blocked debtor without branch: not created": 1}


def test_only_numbers_afas_had_before_are_archived_as_gone() -> None:
    current = [
        branch("b1", "10001", "Alfa"),
        branch("b7", "77777", "Was in AFAS"),
        branch("b8", "INT-ICT", "ICT"),
    ]
    current.append(branch("b6", "66666", "Also gone, archived already", archived=True))
    result = plan([wanted("10001", "Alfa")], current, known={"10001", "77777", "66666"})
    only(result, action="archive", key="77777", topdesk_id="b7", reason="gone from AFAS")


def test_an_archived_branch_comes_back_with_its_changes_and_an_active_duplicate_wins() -> None:
    back = plan([wanted("1", "A2")], [branch("b1", "1", "A", archived=True)])
    action = only(back, action="unarchive", topdesk_id="b1")
    assert action["body"] == {"name": "A2"}
    assert action["changes"][0] == {"field": "archived", "before": "true", "after": "false"}
    duplicate = plan(
        [wanted("1", "A")], [branch("old", "1", "A (oud)", archived=True), branch("b1", "1", "A")]
    )
    assert duplicate.actions == [] and duplicate.targets["1"] == Target("b1")


def test_two_active_branches_with_one_number_go_to_review() -> None:
    result = plan([wanted("1", "A")], [branch("b1", "1", "A"), branch("b2", " 1 ", "A bis")])
    assert result.actions == []
    assert result.review[0]["reason"].startswith("2 active TOPdesk records carry this number (b1, b2)")


def test_a_rejected_debtor_is_not_gone_and_its_branch_still_takes_persons() -> None:
    result = plan([], [branch("b1", "10001", "Alfa")], present={"10001"}, known={"10001"})
    assert result.actions == [] and result.targets["10001"] == Target("b1")


def test_validation_rejects_rows_with_a_reason_per_field_and_keeps_the_rest() -> None:
    rows = frame(
        wanted("1", "Good"),
        wanted("2", "X" * 61),
        wanted(None, "No number"),
        wanted("4", "Bad mail", email="info@@x.nl", phone="0" * 26),
    )
    valid, rejects = split_valid(rows, branch_records_schema(BRANCH_FIELDS), DEBTOR)
    assert valid["clientReferenceNumber"].tolist() == ["1"]
    assert sorted(rejects["reason"]) == [
        'debtor 2 "'
        + "X" * 61
        + '": name (from DebtorName): 61 characters, TOPdesk allows 60: '
        + repr("X" * 61),
        "debtor 4 \"Bad mail\": email (from Email): 'info@@x.nl' is not a valid e-mail address",
        'debtor 4 "Bad mail": phone (from TelNr): 26 characters, TOPdesk allows 25: ' + repr("0" * 26),
        'debtor without DebtorId "No number": clientReferenceNumber (from DebtorId): '
        "missing, TOPdesk needs it",
    ]
    assert set(rejects["field"]) == {"name", "email", "phone", "clientReferenceNumber"}


def test_unknown_countries_are_rejected_before_topdesk_refuses_them() -> None:
    rows = frame(
        wanted("1", "A", country="Nederland"),
        wanted("2", "B", country="Atlantis"),
        wanted("3", "C", country=None),
    )
    valid, rejects = split_unknown_countries(rows, "country", ["Nederland", "België"], DEBTOR)
    assert valid["clientReferenceNumber"].tolist() == ["1", "3"]
    assert rejects["reason"].tolist() == ["debtor 2 \"B\": country: 'Atlantis' is not a TOPdesk country"]


# ---------------------------------------------------------------------------- persons


def contact(
    number, first, last, branch_key="10001", blocked=False, org="O1", contact_id="1", **fields
) -> dict:
    row = {"employeeNumber": number, "afas_name": f"{first} {last}", "contact_id": contact_id, "org": org}
    row |= {"branch_key": branch_key, "blocked": blocked, "firstName": first, "surName": last}
    return {**row, "email": f"{first.lower()}@x.nl", **fields}


def person(id_, number, first, last, branch_id="b1", archived=False, **fields) -> dict:
    row = {"id": id_, "employeeNumber": number, "firstName": first, "surName": last, "archived": archived}
    return {
        **row,
        "branch.id": branch_id,
        "branch.clientReferenceNumber": "10001",
        "email": f"{first.lower()}@x.nl",
        **fields,
    }


def person_plan(contacts, persons, targets=None, present=None, known=()):
    present = present if present is not None else {c["employeeNumber"] for c in contacts}
    targets = targets if targets is not None else {"10001": Target("b1"), "10002": Target(new=True)}
    return plan_persons(frame(*contacts), frame(*persons), present, set(known), targets, PERSON_FIELDS)


def test_persons_are_created_at_their_branch_even_a_new_one() -> None:
    result = person_plan([contact("1", "Eva", "Bos"), contact("2", "Sem", "Smits", branch_key="10002")], [])
    existing, new = result.actions
    assert (existing["action"], existing["branch_id"], existing["branch_key"]) == ("create", "b1", "10001")
    assert (new["action"], new["branch_id"], new["branch_key"]) == ("create", None, "10002")
    assert new["body"] == {"employeeNumber": "2", "firstName": "Sem", "surName": "Smits", "email": "sem@x.nl"}
    assert new["changes"][-1] == {"field": "branch", "before": "", "after": "10002"}


def test_a_person_moves_with_its_organisation_and_unchanged_ones_stay() -> None:
    contacts = [contact("1", "Eva", "Bos", branch_key="10002"), contact("2", "Sem", "Smits")]
    result = person_plan(contacts, [person("p1", "1", "Eva", "Bos"), person("p2", "2", "Sem", "Smits")])
    action = only(result, action="update", key="1", topdesk_id="p1", branch_key="10002", branch_id=None)
    assert action["body"] == {} and action["changes"] == [
        {"field": "branch", "before": "10001", "after": "10002"}
    ]
    assert result.notes["person unchanged"] == 1


def test_a_person_matching_by_name_only_is_listed_for_review() -> None:
    result = person_plan([contact("1", "Eva", "Bos")], [person("p9", "", "EVA", "bos")])
    assert result.actions == []
    assert result.review[0]["topdesk_id"] == "p9" and "link by hand" in result.review[0]["reason"]


def test_a_contact_of_two_organisations_is_kept_once_and_reported() -> None:
    contacts = [
        contact("1", "Eva", "Bos", org="O2", branch_key="10002", contact_id="9"),
        contact("1", "Eva", "Bos"),
    ]
    result = person_plan(contacts, [])
    only(result, action="create", branch_key="10001")
    assert "contact person of organisations O1 and O2" in result.review[0]["reason"]


def test_blocked_contacts_are_archived_and_gone_ones_only_when_afas_had_them() -> None:
    contacts = [contact("1", "Eva", "Bos", blocked=True), contact("3", "Ben", "Kok", branch_key=None)]
    persons = [
        person("p1", "1", "Eva", "Bos"),
        person("p2", "2", "Sem", "Smits"),
        person("p4", "4", "Ad", "Hoc"),
    ]
    result = person_plan(contacts, persons, known={"1", "2"})
    assert [(a["key"], a["action"], a["reason"]) for a in result.actions] == [
        ("1", "archive", "blocked in AFAS (contact or debtor)"),
        ("2", "archive", "gone from AFAS"),
    ]
    assert result.notes["contact of an organisation that is no debtor: skipped"] == 1


def test_a_person_whose_branch_is_unavailable_is_listed_not_created() -> None:
    targets = {"10001": Target(problem="branch of debtor 10001 is on the review list")}
    result = person_plan([contact("1", "Eva", "Bos")], [], targets=targets)
    assert result.actions == []
    assert result.review[0]["reason"] == "not created: branch of debtor 10001 is on the review list"


def test_person_records_are_validated_like_branches() -> None:
    entity = Entity(
        "contact person", "employeeNumber", "PerNumber", {"surName": ("LastName",)}, PERSON_LIMITS
    )
    rows = frame(
        contact("1", "Eva", "Bos"), contact("2", "Eva", None), contact("3", "Eva", "Bos", email="geen")
    )
    valid, rejects = split_valid(rows, person_records_schema(PERSON_FIELDS), entity)
    assert valid["employeeNumber"].tolist() == ["1"]
    assert rejects["reason"].tolist() == [
        'contact person 2 "Eva None": surName (from LastName): missing, TOPdesk needs it',
        "contact person 3 \"Eva Bos\": email: 'geen' is not a valid e-mail address",
    ]


def test_many_records_gone_at_once_are_held_back_for_review() -> None:
    current = [branch(f"b{i}", str(i), f"N{i}") for i in range(5)]
    result = plan([wanted("0", "N0")], current, known={str(i) for i in range(5)})
    assert len(hold_back_mass_removal(result, 4).actions) == 4
    held = hold_back_mass_removal(result, 3)
    assert held.actions == []
    assert [r["topdesk_id"] for r in held.review] == ["b1", "b2", "b3", "b4"]
    assert held.review[0]["reason"] == "not archived: 4 records gone from AFAS at once exceeds max_gone = 3"


def test_an_empty_afas_read_is_refused_before_anything_is_planned() -> None:
    config = parse_companies_config('archiving_reason = "x"')
    topdesk = TopdeskRelations(frame(branch("b1", "1", "A")), pd.DataFrame(), pd.DataFrame(), ["Nederland"])
    no_debtors = pd.DataFrame(columns=["DebtorId", "DebtorName", "BcCo", "Blocked"])
    with pytest.raises(EmptyRead, match="AFAS returned no debtors"):
        plan_sync(AfasRelations(no_debtors, pd.DataFrame()), topdesk, {"1"}, set(), config)
