"""AFAS sandbox: authentication, routes, metainfo, profitversion, and serving over real sockets."""

from __future__ import annotations

import base64
import importlib.util
import re
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from starlette.applications import Starlette

from sandbox.afas import AfasOptions, create_app
from sandbox.afas.connectors import CONNECTORS, markdown
from sandbox.afas.fixtures import InProcessClient
from sandbox.afas.state import default_token, token_header, token_xml
from tests.fixtures.worlds import afas_world

ROOT = "/ProfitRestServices"


@pytest.fixture(scope="module")
def world():
    return afas_world(seed=17, scale=1_000)


# ---------------------------------------------------------------------------- authentication


def test_the_token_is_afas_shaped_and_derived_from_the_seed(app, world):
    token = app.state.sim.token
    assert re.fullmatch(r"<token><version>1</version><data>[0-9A-F]{64}</data></token>", token)
    assert token == default_token(world.seed) != default_token(world.seed + 1)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer abc",
        "AfasToken",
        "AfasToken not-base64!",
        "AfasToken <token><version>1</version><data>" + "A" * 64 + "</data></token>",  # not encoded
        "AfasToken " + base64.b64encode(b"A" * 64).decode(),  # data part only, no XML
        token_header(token_xml("B" * 64)),  # well-formed, wrong token
    ],
)
def test_missing_malformed_unencoded_or_wrong_tokens_get_401_with_afas_error_body(app, header):
    with InProcessClient(app) as client:
        response = client.get(
            f"{ROOT}/connectors/Profit_Debtor", headers={"Authorization": header} if header else {}
        )
    assert response.status_code == 401
    body = response.json()
    assert set(body) == {"externalMessage", "errorNumber", "profitLogReference"}
    assert body["externalMessage"] == "Het token is ongeldig, verlopen of niet (base64) gecodeerd."


def test_a_configured_token_replaces_the_default(world):
    app = create_app(world, AfasOptions(token="c" * 64))
    assert app.state.sim.token == token_xml("C" * 64)
    with InProcessClient(app, token_xml("c" * 64)) as client:
        assert client.get(f"{ROOT}/profitversion").status_code == 200


def test_connectors_outside_the_app_connector_get_profits_401_messages(world):
    options = AfasOptions(
        get_connectors=frozenset({"Profit_Debtor"}), update_connectors=frozenset({"FiEntries"})
    )
    app = create_app(world, options)
    with InProcessClient(app, app.state.sim.token) as client:
        assert client.get(f"{ROOT}/connectors/Profit_Debtor").status_code == 200
        denied = client.get(f"{ROOT}/connectors/Profit_Projects")
        unknown = client.get(f"{ROOT}/connectors/No_Such_Connector")
        update = client.post(f"{ROOT}/connectors/FbDirectInvoice", json={})
        meta = client.get(f"{ROOT}/metainfo").json()
    get_message = "GetConnector niet ondersteund voor deze app of de gebruiker is niet geautoriseerd"
    assert (denied.status_code, denied.json()["externalMessage"]) == (401, get_message)
    assert (unknown.status_code, unknown.json()["externalMessage"]) == (401, get_message)
    update_message = (
        "General message: Deze UpdateConnector wordt niet ondersteund of de gebruiker is niet geautoriseerd."
    )
    assert (update.status_code, update.json()["externalMessage"]) == (401, update_message)
    assert [c["id"] for c in meta["getConnectors"]] == ["Profit_Debtor"]
    assert [c["id"] for c in meta["updateConnectors"]] == ["FiEntries"]


def test_ip_allow_list_answers_403(world):
    app = create_app(world, AfasOptions(allowed_ips=frozenset({"10.1.2.3"})))
    with InProcessClient(app, app.state.sim.token) as client:
        response = client.get(f"{ROOT}/profitversion")
    assert response.status_code == 403
    assert response.json()["externalMessage"] == "Toegang vanaf dit IP-adres is niet toegestaan."


# ---------------------------------------------------------------------------- routes


@pytest.mark.parametrize(
    "path",
    [
        "/ProfitRestServices/profitversion",
        "/profitrestservices/ProfitVersion",
        "/PROFITRESTSERVICES/PROFITVERSION",
    ],
)
def test_routes_are_case_insensitive(client, path):
    assert client.get(path).json() == {"version": "6.6.9"}


def test_connector_ids_are_case_insensitive_too(client):
    assert client.get(f"{ROOT}/connectors/profit_administrations").json()["rows"]


@pytest.mark.parametrize(
    "path", ["/ProfitRestServices/nothing", "/other/profitversion", "/", f"{ROOT}/connectors/Profit_Debtor/x"]
)
def test_unknown_paths_are_404(client, path):
    assert client.get(path).status_code == 404


# ---------------------------------------------------------------------------- metainfo


def test_metainfo_lists_every_served_connector_and_the_environment(client):
    meta = client.get(f"{ROOT}/metainfo").json()
    assert [c["id"] for c in meta["getConnectors"]] == [c.id for c in CONNECTORS]
    assert {c["id"] for c in meta["updateConnectors"]} == {
        "FbDirectInvoice", "FiEntries", "PtRealization", "KnSalesRelationOrg",
        "KnOrganisation", "KnPerson", "HrIllness", "KnOrgUnit",
    }  # fmt: skip
    assert meta["info"] == {
        "envid": "T12345AA",
        "appName": "Koppel",
        "group": "AuthorizationGroup 1 (12345.KOPPEL)",
        "tokenExpiry": "0",
    }


_JSON_TYPES = {"string": str, "int": int, "decimal": (int, float), "boolean": bool}


@pytest.mark.parametrize("connector", [c.id for c in CONNECTORS])
def test_metainfo_get_matches_what_the_getconnector_returns(client, connector):
    meta = client.get(f"{ROOT}/metainfo/get/{connector}").json()
    assert meta["name"] == connector
    fields = meta["fields"]
    assert {
        "id",
        "fieldId",
        "dataType",
        "label",
        "length",
        "controlType",
        "decimals",
        "decimalsFieldId",
    } == set(fields[0])
    rows = client.get(f"{ROOT}/connectors/{connector}", params={"take": 50}).json()["rows"]
    for row in rows:
        assert list(row) == [f["id"] for f in fields]
        for field in fields:
            value = row[field["id"]]
            if value is None:
                continue
            if field["dataType"] == "date":
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", value), (field, value)
            else:
                assert isinstance(value, _JSON_TYPES[field["dataType"]]), (field, value)
                assert field["dataType"] == "boolean" or not isinstance(value, bool)


def test_metainfo_update_describes_fields_mandatory_flags_and_nested_objects(client):
    meta = client.get(f"{ROOT}/metainfo/update/FbDirectInvoice").json()
    fields = {f["fieldId"]: f for f in meta["fields"]}
    assert fields["DbId"]["mandatory"] is True and fields["DbId"]["length"] == 16
    assert fields["OrNu"]["primaryKey"] is True and fields["OrNu"]["mandatory"] is False
    assert fields["OrDa"]["dataType"] == "date" and fields["Unit"]["dataType"] == "int"
    lines = next(o for o in meta["objects"] if o["name"] == "FbDirectInvoiceLines")
    line_fields = {f["fieldId"]: f for f in lines["fields"]}
    assert {k for k, f in line_fields.items() if f["mandatory"]} == {"VaIt", "ItCd", "BiUn", "QuUn"}
    assert {"id": "1", "description": "Werksoort"} in line_fields["VaIt"]["values"]
    assert line_fields["QuUn"]["dataType"] == "decimal"
    assert "FbOrderBatchLines" in [o["name"] for o in lines["objects"]]  # recursive
    entries = client.get(f"{ROOT}/metainfo/update/FiEntries").json()
    assert entries["objects"][0]["name"] == "FiEntries"
    assert {f["fieldId"] for f in entries["fields"] if f["mandatory"]} == {"Year", "Peri", "JoCo"}


def test_metainfo_for_unknown_connectors_is_401(client):
    assert client.get(f"{ROOT}/metainfo/get/Nope").status_code == 401
    assert client.get(f"{ROOT}/metainfo/update/Nope").status_code == 401


# ---------------------------------------------------------------------------- documentation


def test_the_getconnector_document_is_generated_from_the_definitions():
    text = (Path(__file__).resolve().parents[2] / "docs" / "afas-getconnectors.md").read_text(
        encoding="utf-8"
    )
    assert markdown() in text


# ---------------------------------------------------------------------------- real sockets


def _stand_in(credentials: dict[str, str]):
    def factory(world, options=None):
        app = Starlette()
        app.state.sim = SimpleNamespace(**credentials)
        return app

    return factory


def test_served_over_loopback_by_running_sandbox(world):
    server = pytest.importorskip("sandbox.server")
    factories = {}
    if importlib.util.find_spec("sandbox.topdesk") is None:  # the TOPdesk simulator may not exist yet
        factories["topdesk"] = _stand_in({"login": "op", "password": "pw"})
    with server.running_sandbox(world, factories=factories) as sandbox:
        headers = {"Authorization": token_header(sandbox.afas_token)}
        with httpx.Client(base_url=sandbox.afas_url, headers=headers, timeout=10) as client:
            assert client.get("/profitversion").json() == {"version": "6.6.9"}
            page = client.get(
                "/connectors/Profit_Debtor", params={"take": 3, "orderbyfieldids": "DebtorId"}
            ).json()
            assert [r["DebtorId"] for r in page["rows"]] == sorted(world.extra["afas_debtors"]["DebtorId"])[
                :3
            ]
            assert (
                client.get("/connectors/Profit_Debtor", headers={"Authorization": "AfasToken x"}).status_code
                == 401
            )
        assert sandbox.afas_environment == "12345"
