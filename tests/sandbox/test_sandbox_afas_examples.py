"""Every request example AFAS publishes is accepted when its master data exists, and refused without
a mandatory field, in AFAS's error shape."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.afas import create_app
from sandbox.afas.fixtures import InProcessClient, ensure_master_data_for
from sandbox.afas.schemas import MANDATORY, UPDATE_CONNECTORS, examples, schema
from tests.fixtures.worlds import afas_world

RESULT_KEYS = {
    "FbDirectInvoice": {"OrNu"},
    "FiEntries": {"EnNo", "UnId", "InID"},
    "PtRealization": {"XpRe", "Id", "Sessieguid"},
    "KnSalesRelationOrg": {"DbId", "BcCo"},
    "KnOrganisation": {"BcCo", "BcId"},
    "KnPerson": {"BcCo", "BcId"},
    "HrIllness": {"AbId", "GUID"},
    "KnOrgUnit": {"OuId"},
}
REQUIRED_BY_THE_BRIEF = ("FbDirectInvoice", "FiEntries", "PtRealization", "KnSalesRelationOrg")


def _all_examples() -> list[tuple[str, str, str]]:
    cases = []
    for connector in UPDATE_CONNECTORS:
        for verb in ("POST", "PUT"):
            try:
                found = examples(connector, verb)
            except KeyError:  # FiEntries has no PUT
                continue
            cases += [(connector, verb, name) for name in found]
    return cases


EXAMPLES = _all_examples()


def _raw_elements(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, raw element) for every element of a body, depth first."""
    ((root, holder),) = body.items()
    yield from _walk(root, holder)


def _walk(name: str, holder: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    elements = holder["Element"]
    for element in elements if isinstance(elements, list) else [elements]:
        yield name, element
        objects = element.get("Objects") or {}
        for mapping in objects if isinstance(objects, list) else [objects]:
            for sub, sub_holder in mapping.items():
                yield from _walk(sub, sub_holder)


def _present(element: dict[str, Any], name: str) -> bool:
    fields = element.get("Fields") or {}
    if isinstance(fields, list):
        fields = {k: v for item in fields for k, v in item.items()}
    return fields.get(name) not in (None, "") or element.get("@" + name) not in (None, "")


def _mandatory_cases() -> list[tuple[str, str, str, str, str]]:
    cases = []
    for connector, verb, name in EXAMPLES:
        if connector not in REQUIRED_BY_THE_BRIEF:
            continue
        mandatory = MANDATORY.get((connector, verb), {})
        done = set()
        for obj, element in _raw_elements(examples(connector, verb)[name]):
            for field in mandatory.get(obj, ()):
                if (obj, field) not in done and _present(element, field):
                    done.add((obj, field))
                    cases.append((connector, verb, name, obj, field))
    return cases


MANDATORY_CASES = _mandatory_cases()


def _without(body: dict[str, Any], obj: str, field: str) -> dict[str, Any]:
    stripped = copy.deepcopy(body)
    for name, element in _raw_elements(stripped):
        if name == obj and _present(element, field):
            element.pop("@" + field, None)
            fields = element.get("Fields") or {}
            for mapping in fields if isinstance(fields, list) else [fields]:
                mapping.pop(field, None)
            return stripped
    raise AssertionError(f"{field} not found in {obj}")


@pytest.fixture(scope="module")
def world():
    return afas_world(seed=21, scale=200)


def test_the_examples_cover_every_connector_and_verb_the_brief_names():
    counted = {(c, v) for c, v, _ in EXAMPLES}
    assert {("FbDirectInvoice", "POST"), ("FbDirectInvoice", "PUT"), ("FiEntries", "POST")} <= counted
    assert {("PtRealization", "POST"), ("PtRealization", "PUT"), ("KnSalesRelationOrg", "POST")} <= counted
    assert len([c for c in EXAMPLES if c[0] in REQUIRED_BY_THE_BRIEF]) == 18 + 5 + 35 + 18 + 6 + 7 + 9
    assert len(MANDATORY_CASES) > 300


@pytest.mark.parametrize(
    ("connector", "verb", "name"), EXAMPLES, ids=[f"{c}-{v}-{n}" for c, v, n in EXAMPLES]
)
def test_every_official_example_is_accepted_when_its_master_data_exists(world, connector, verb, name):
    body = examples(connector, verb)[name]
    app = create_app(world)
    app.state.sim.ensure_master_data_for(connector, body, verb)
    with InProcessClient(app, app.state.sim.token) as client:
        response = client.request(verb, f"/ProfitRestServices/connectors/{connector}", json=body)
    if verb == "PUT":
        assert (response.status_code, response.content) == (200, b""), response.text
        return
    assert response.status_code == 201, response.text
    result = response.json()["results"][connector]
    for keys in result if isinstance(result, list) else [result]:
        assert set(keys) == RESULT_KEYS[connector]
    assert app.state.sim.posted[-1].connector == connector


@pytest.fixture(scope="module")
def refusing_client(world):
    """One app for all refusals: a body missing a mandatory field changes nothing."""
    app = create_app(world)
    for connector, verb, name in EXAMPLES:
        ensure_master_data_for(app.state.sim, connector, examples(connector, verb)[name], verb)
    with InProcessClient(app, app.state.sim.token) as client:
        yield client


@pytest.mark.parametrize(
    ("connector", "verb", "name", "obj", "field"),
    MANDATORY_CASES,
    ids=[f"{c}-{v}-{n}-{o}.{f}" for c, v, n, o, f in MANDATORY_CASES],
)
def test_the_same_example_without_a_mandatory_field_is_refused(
    refusing_client, connector, verb, name, obj, field
):
    body = _without(examples(connector, verb)[name], obj, field)
    response = refusing_client.request(verb, f"/ProfitRestServices/connectors/{connector}", json=body)
    assert response.status_code == 500, response.text
    error = response.json()
    assert set(error) == {"externalMessage", "errorNumber", "profitLogReference"}
    label = _label(connector, verb, obj, field)
    assert error["externalMessage"] == f"Het veld '{label}' ({field}) in object '{obj}' is verplicht."
    assert error["errorNumber"] == -2147220469


def _label(connector: str, verb: str, obj: str, field: str) -> str:
    definition = schema(connector, verb)
    stack = [definition]
    while stack:
        current = stack.pop()
        if current.name == obj and field in current.fields:
            return current.fields[field].label
        stack += current.objects.values()
    return field
