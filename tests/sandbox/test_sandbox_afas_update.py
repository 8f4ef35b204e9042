"""AFAS sandbox UpdateConnectors: business rules, answers, read-back, helpers, DELETE."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest

from sandbox.afas import AfasOptions, create_app
from sandbox.afas.fixtures import InProcessClient
from sandbox.afas.update import parse_delete_path
from tests.fixtures.worlds import afas_world

URL = "/ProfitRestServices/connectors"


@pytest.fixture(scope="module")
def world():
    return afas_world(seed=13, scale=2_000)


@pytest.fixture
def sim(app):
    return app.state.sim


@pytest.fixture
def facts(world):
    """An open debtor with an open project, a blocked debtor, a closed project, the first open month."""
    debtors, projects = world.extra["afas_debtors"], world.extra["afas_projects"]
    open_projects = projects[~projects["CheckedOut"]]
    usable = open_projects[open_projects["DebtorId"].isin(debtors.loc[~debtors["Blocked"], "DebtorId"])]
    closed = projects[projects["CheckedOut"] & projects["DebtorId"].isin(usable["DebtorId"])]
    return {
        "debtor": usable["DebtorId"].iloc[0],
        "project": usable["ProjectId"].iloc[0],
        "other_project": usable.loc[usable["DebtorId"] != usable["DebtorId"].iloc[0], "ProjectId"].iloc[0],
        "closed_project": closed["ProjectId"].iloc[0],
        "closed_debtor": closed["DebtorId"].iloc[0],
        "blocked": debtors.loc[debtors["Blocked"], "DebtorId"].iloc[0],
        "employee": world.operators["employee_number"].iloc[0],
    }


def invoice(debtor, project=None, item="SUPPORT", reference="KPL-1-202610-abc", **header):
    fields = {"DbId": debtor, "RfCs": reference, "OrDa": "2026-10-31", **header}
    if project:
        fields["PrId"] = project
    line = {"VaIt": "1", "ItCd": item, "BiUn": "uur", "QuUn": "1.5", "Upri": "95.00", "Ds": "Support"}
    return {
        "FbDirectInvoice": {
            "Element": {
                "Fields": fields,
                "Objects": [{"FbDirectInvoiceLines": {"Element": [{"Fields": line}]}}],
            }
        }
    }


def entry(lines, year=2026, period=10, unit=1):
    header = {"Year": year, "Peri": period, "UnId": unit, "JoCo": "90"}
    return {"FiEntryPar": {"Element": {"Fields": header, "Objects": [{"FiEntries": {"Element": lines}}]}}}


def line(kind, account, debit="0", credit="0", reference="KPL-1-202610-e1"):
    fields = {"VaAs": kind, "AcNr": account, "EnDa": "2026-10-31", "BpDa": "2026-10-31", "BpNr": reference}
    return {"Fields": {**fields, "AmDe": debit, "AmCr": credit, "Ds": "Uren oktober"}}


def realisation(xpre, quantity="1.25", **fields):
    values = {"DaTi": "2026-10-15", "VaIt": "1", "ItCd": "SUPPORT", "Qu": quantity, "XpRe": xpre, **fields}
    return {"Fields": values}


def refused(response, message=None):
    assert response.status_code == 500, response.text
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["profitLogReference"])
    if message is not None:
        assert body["externalMessage"] == message
    return body["externalMessage"]


# ---------------------------------------------------------------------------- FbDirectInvoice


def test_invoice_is_stored_with_an_assigned_number_and_found_by_its_reference(client, sim, facts):
    response = client.post(f"{URL}/FbDirectInvoice", json=invoice(facts["debtor"], facts["project"]))
    assert response.status_code == 201
    number = response.json()["results"]["FbDirectInvoice"]["OrNu"]
    assert re.fullmatch(r"\d{1,12}", number)
    params = {"filterfieldids": "RfCs", "filtervalues": "KPL-1-202610-abc", "operatortypes": "1"}
    headers = client.get(f"{URL}/Koppel_DirectInvoices", params=params).json()["rows"]
    assert headers == [
        {
            "OrNu": number,
            "DbId": facts["debtor"],
            "RfCs": "KPL-1-202610-abc",
            "Fref": None,
            "PrId": facts["project"],
            "OrDa": "2026-10-31T00:00:00Z",
            "Unit": 1,
            "Ds": None,
        }
    ]
    lines = client.get(
        f"{URL}/Koppel_DirectInvoiceLines",
        params={"filterfieldids": "OrNu", "filtervalues": number, "operatortypes": "1"},
    ).json()["rows"]
    assert [(r["ItCd"], r["QuUn"], r["Upri"], r["BiUn"]) for r in lines] == [("SUPPORT", 1.5, 95.0, "uur")]
    assert re.fullmatch(r"\{[0-9A-F-]{36}\}", lines[0]["GuLi"])


def test_a_given_invoice_number_is_kept_and_may_not_be_reused(client, facts):
    body = invoice(facts["debtor"], OrNu="KPL26000001")
    assert client.post(f"{URL}/FbDirectInvoice", json=body).json()["results"]["FbDirectInvoice"] == {
        "OrNu": "KPL26000001"
    }
    assert "KPL26000001" in refused(client.post(f"{URL}/FbDirectInvoice", json=body))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"debtor": "99999"}, "De ingevulde waarde bij 'Verkooprelatie' bestaat niet."),
        ({"item": "NOPE"}, "De ingevulde waarde bij 'Itemcode' bestaat niet."),
        ({"project": "P-NONE"}, "De ingevulde waarde bij 'Project' bestaat niet."),
    ],
)
def test_invoice_references_must_exist(client, sim, facts, change, message):
    args = {"debtor": facts["debtor"], "project": facts["project"], "item": "SUPPORT", **change}
    refused(client.post(f"{URL}/FbDirectInvoice", json=invoice(**args)), message)
    assert sim.documents("Koppel_DirectInvoices") == []


def test_blocked_debtor_other_debtors_project_and_closed_project_are_refused(client, facts):
    blocked = facts["blocked"]
    refused(
        client.post(f"{URL}/FbDirectInvoice", json=invoice(blocked)),
        f"Verkooprelatie {blocked} is geblokkeerd.",
    )
    message = refused(
        client.post(f"{URL}/FbDirectInvoice", json=invoice(facts["debtor"], facts["other_project"]))
    )
    assert message == f"Project {facts['other_project']} hoort niet bij verkooprelatie {facts['debtor']}."
    closed = invoice(facts["closed_debtor"], facts["closed_project"])
    refused(
        client.post(f"{URL}/FbDirectInvoice", json=closed),
        f"Project {facts['closed_project']} is afgesloten.",
    )


def test_messages_are_english_when_asked(client, facts):
    response = client.post(
        f"{URL}/FbDirectInvoice", json=invoice("99999"), headers={"Accept-Language": "en-us"}
    )
    assert refused(response) == "The value entered for 'Verkooprelatie' does not exist."


def test_invoice_put_updates_header_and_lines_and_delete_removes_it(client, sim, facts):
    number = client.post(f"{URL}/FbDirectInvoice", json=invoice(facts["debtor"])).json()["results"][
        "FbDirectInvoice"
    ]["OrNu"]
    guid = sim.documents("Koppel_DirectInvoiceLines")[0]["GuLi"]
    put = {
        "FbDirectInvoice": {
            "Element": {
                "Fields": {"OrNu": number, "RfCs": "changed"},
                "Objects": {
                    "FbDirectInvoiceLines": {
                        "Element": [
                            {"Fields": {"GuLi": guid, "QuUn": 2}},
                            {"Fields": {"VaIt": "1", "ItCd": "CONSULT", "BiUn": "uur", "QuUn": 1}},
                        ]
                    }
                },
            }
        }
    }
    response = client.put(f"{URL}/FbDirectInvoice", json=put)
    assert (response.status_code, response.content) == (200, b"")
    assert sim.documents("Koppel_DirectInvoices")[0]["RfCs"] == "changed"
    assert [(r["ItCd"], r["QuUn"]) for r in sim.documents("Koppel_DirectInvoiceLines")] == [
        ("SUPPORT", Decimal(2)),
        ("CONSULT", Decimal(1)),
    ]
    response = client.delete(f"{URL}/FbDirectInvoice/FbDirectInvoice/@OrNu/{number}")
    assert (response.status_code, response.content) == (200, b"")
    assert sim.documents("Koppel_DirectInvoices") == [] and sim.documents("Koppel_DirectInvoiceLines") == []
    refused(client.delete(f"{URL}/FbDirectInvoice/FbDirectInvoice/@OrNu/{number}"))


# ---------------------------------------------------------------------------- FiEntries


def test_balanced_entry_gets_a_number_and_is_found_by_its_voucher_number(client, facts):
    body = entry(
        [
            line("2", facts["debtor"], debit="121.00"),
            line("1", "8000", credit="100.00"),
            line("1", "1500", credit="21.00"),
        ]
    )
    response = client.post(f"{URL}/FiEntries", json=body)
    assert response.status_code == 201, response.text
    keys = response.json()["results"]["FiEntries"]
    assert keys["UnId"] == "1" and keys["EnNo"].isdigit()
    found = client.get(
        f"{URL}/Koppel_Entries",
        params={
            "filterfieldids": "BpNr",
            "filtervalues": "KPL-1-202610-e1",
            "operatortypes": "1",
            "orderbyfieldids": "AcNr",
        },
    ).json()["rows"]
    assert [(r["AcNr"], r["AmDe"], r["AmCr"], r["EnNo"]) for r in found] == [
        (facts["debtor"], 121.0, 0.0, int(keys["EnNo"])),  # text order: "10001" < "1500"
        ("1500", 0.0, 21.0, int(keys["EnNo"])),
        ("8000", 0.0, 100.0, int(keys["EnNo"])),
    ]


def test_unbalanced_entry_closed_period_and_unknown_account_are_refused(client, sim, facts):
    unbalanced = entry([line("1", "4300", debit="10.00"), line("1", "8900", credit="9.99")])
    refused(
        client.post(f"{URL}/FiEntries", json=unbalanced),
        "De boeking is niet in balans: debet 10,00, credit 9,99.",
    )
    blocked = entry([line("1", "4300", debit="10"), line("1", "8900", credit="10")], period=1)
    refused(
        client.post(f"{URL}/FiEntries", json=blocked), "Periode 2026/1 van administratie 1 is geblokkeerd."
    )
    unknown = entry([line("1", "4999", debit="10"), line("1", "8900", credit="10")])
    refused(
        client.post(f"{URL}/FiEntries", json=unknown),
        "De ingevulde waarde bij 'Grootboekrekening' bestaat niet.",
    )
    sim.close_period(1, 2026, 10)
    closed = entry([line("1", "4300", debit="10"), line("1", "8900", credit="10")])
    refused(
        client.post(f"{URL}/FiEntries", json=closed), "Periode 2026/10 van administratie 1 is geblokkeerd."
    )
    sim.open_period(1, 2026, 10)
    assert client.post(f"{URL}/FiEntries", json=closed).status_code == 201
    assert len(sim.documents("Koppel_Entries")) == 2


def test_financial_data_cannot_be_deleted(client):
    message = refused(client.delete(f"{URL}/FiEntries/FiEntryPar/UnId,JoCo/1,73/FiEntries/@EnNo/70001"))
    assert message == "Verwijderen via de UpdateConnector 'FiEntries' wordt niet ondersteund."
    refused(client.delete(f"{URL}/PtRealization/PtRealization/@Id/1"))


def test_delete_paths_with_composite_keys_and_nested_segments():
    assert parse_delete_path(["FiEntryPar", "UnId,JoCo", "1,73", "FiEntries", "@EnNo", "70001"]) == [
        ("FiEntryPar", {"UnId": "1", "JoCo": "73"}),
        ("FiEntries", {"EnNo": "70001"}),
    ]
    assert parse_delete_path(["HrAbsenceID", "@Id,@EmId", "7,1001"]) == [
        ("HrAbsenceID", {"Id": "7", "EmId": "1001"})
    ]
    assert parse_delete_path(["KnOrgunit", "@OuId", "T%2001"]) == [("KnOrgunit", {"OuId": "T 01"})]


# ---------------------------------------------------------------------------- PtRealization


def test_realisations_return_keys_per_line_and_read_back_by_external_key(client, sim, facts):
    lines = [
        realisation("reg-1", EmId=facts["employee"], PrId=facts["project"]),
        realisation("reg-2", "0.05", PrId=facts["project"]),
    ]
    response = client.post(f"{URL}/PtRealization", json={"PtRealization": {"Element": lines}})
    assert response.status_code == 201, response.text
    keys = response.json()["results"]["PtRealization"]
    assert [k["XpRe"] for k in keys] == ["reg-1", "reg-2"]
    assert keys[0]["Sessieguid"] == keys[1]["Sessieguid"] and keys[0]["Id"] != keys[1]["Id"]
    found = client.get(
        f"{URL}/Koppel_Realizations",
        params={"filterfieldids": "XpRe", "filtervalues": "REG-2", "operatortypes": "1"},
    ).json()["rows"]
    assert found == [
        {
            "Identity": int(keys[1]["Id"]),
            "XpRe": "reg-2",
            "ProjectId": facts["project"],
            "DebtorId": facts["debtor"],
            "DateTime": "2026-10-15T00:00:00Z",
            "ItemCodeId": "SUPPORT",
            "QuantityUnit": 0.05,
            "EmployeeId": None,
            "Description": None,
        }
    ]
    standard = client.get(f"{URL}/Profit_Realization", params={"orderbyfieldids": "Identity"}).json()["rows"]
    assert [(r["Year"], r["PeriodId"], r["EmployeeId"]) for r in standard] == [
        (2026, 10, facts["employee"]),
        (2026, 10, None),
    ]


def test_quantity_must_be_a_multiple_of_five_hundredths_unless_configured(world, facts):
    body = {"PtRealization": {"Element": realisation("q-1", "0.07")}}
    strict = create_app(world)
    with InProcessClient(strict, strict.state.sim.token) as client:
        assert (
            refused(client.post(f"{URL}/PtRealization", json=body))
            == "Het aantal 0,07 is geen veelvoud van 0,05 uur."
        )
    lenient = create_app(world, AfasOptions(strict_quantity=False))
    with InProcessClient(lenient, lenient.state.sim.token) as client:
        assert client.post(f"{URL}/PtRealization", json=body).status_code == 201


def test_one_bad_line_refuses_the_whole_body(client, sim, facts):
    lines = [realisation("ok-1"), realisation("ok-2", EmId="nobody")]
    refused(
        client.post(f"{URL}/PtRealization", json={"PtRealization": {"Element": lines}}),
        "De ingevulde waarde bij 'Medewerker' bestaat niet.",
    )
    assert sim.documents("Koppel_Realizations") == []


def test_an_external_key_is_accepted_once(client, sim):
    body = {"PtRealization": {"Element": realisation("once")}}
    assert client.post(f"{URL}/PtRealization", json=body).status_code == 201
    refused(client.post(f"{URL}/PtRealization", json=body))
    assert len(sim.documents("Koppel_Realizations")) == 1


def test_realisation_put_changes_quantity_but_not_the_period(client, sim):
    identity = client.post(
        f"{URL}/PtRealization", json={"PtRealization": {"Element": realisation("p-1")}}
    ).json()["results"]["PtRealization"]["Id"]
    put = {"PtRealization": {"Element": {"Fields": {"Id": identity, "Qu": "2.50", "Ds": "bijgewerkt"}}}}
    assert client.put(f"{URL}/PtRealization", json=put).status_code == 200
    row = sim.documents("Koppel_Realizations")[0]
    assert (row["QuantityUnit"], row["Description"]) == (Decimal("2.50"), "bijgewerkt")
    move = {"PtRealization": {"Element": {"Fields": {"Id": identity, "DaTi": "2026-09-30"}}}}
    refused(
        client.put(f"{URL}/PtRealization", json=move),
        "Een regel kan niet naar een andere periode worden verplaatst.",
    )


# ---------------------------------------------------------------------------- sales relations


def _sales_relation(name, coc, match="1", **fields):
    org = {"MatchOga": match, "Nm": name, "CcNr": coc, "PadAdr": True, "AutoNum": True}
    address = {
        "Ad": "Kerkstraat",
        "HmNr": "1",
        "ZpCd": "1012 AB",
        "Rs": "Amsterdam",
        "CoId": "NL",
        "PbAd": False,
    }
    organisation = {
        "Element": {"Fields": org, "Objects": [{"KnBasicAddressAdr": {"Element": {"Fields": address}}}]}
    }
    return {
        "KnSalesRelationOrg": {
            "Element": {
                "Fields": {"CuId": "EUR", "IsDb": True, "PaCd": "30", **fields},
                "Objects": [{"KnOrganisation": organisation}],
            }
        }
    }


def test_a_new_sales_relation_appears_in_profit_debtor_and_a_rerun_cannot_create_a_second(client, sim, world):
    body = _sales_relation("Nieuwe Klant B.V.", "55667788")
    response = client.post(f"{URL}/KnSalesRelationOrg", json=body)
    assert response.status_code == 201, response.text
    keys = response.json()["results"]["KnSalesRelationOrg"]
    assert int(keys["DbId"]) == max(int(d) for d in world.extra["afas_debtors"]["DebtorId"]) + 1
    rows = client.get(
        f"{URL}/Profit_Debtor",
        params={"filterfieldids": "DebtorId", "filtervalues": keys["DbId"], "operatortypes": "1"},
    ).json()["rows"]
    assert [(r["DebtorName"], r["BcCo"], r["ChOfCommNr"], r["AdressLine3"], r["Blocked"]) for r in rows] == [
        ("Nieuwe Klant B.V.", keys["BcCo"], "55667788", "1012 AB Amsterdam", False)
    ]
    again = refused(client.post(f"{URL}/KnSalesRelationOrg", json=body))
    assert again == f"Organisatie {keys['BcCo']} is al verkooprelatie {keys['DbId']}."
    by_name = _sales_relation("nieuwe klant b.v.", "00000000", match="3")
    assert keys["DbId"] in refused(client.post(f"{URL}/KnSalesRelationOrg", json=by_name))
    assert len([d for d in sim.documents("Profit_Debtor") if d["DebtorName"] == "Nieuwe Klant B.V."]) == 1


def test_matching_an_existing_debtors_organisation_by_number_is_refused(client, sim, facts):
    organisation = sim.tables["debtors"].get(facts["debtor"])["BcCo"]
    org = {"Element": {"Fields": {"MatchOga": "0", "BcCo": organisation}}}
    body = {
        "KnSalesRelationOrg": {"Element": {"Fields": {"CuId": "EUR"}, "Objects": {"KnOrganisation": org}}}
    }
    message = refused(client.post(f"{URL}/KnSalesRelationOrg", json=body))
    assert message == f"Organisatie {organisation} is al verkooprelatie {facts['debtor']}."


def test_put_on_a_connector_without_put_is_refused(client):
    body = entry([line("1", "4300", debit="10"), line("1", "8900", credit="10")])
    refused(client.put(f"{URL}/FiEntries", json=body), "De UpdateConnector 'FiEntries' ondersteunt geen PUT.")


def test_a_sales_relation_takes_the_given_debtor_number(client, world):
    existing = world.extra["afas_debtors"]["DebtorId"].iloc[0]
    body = _sales_relation("Alleen TOPdesk B.V.", "11223344", match="6", DbId="20999")
    assert (
        client.post(f"{URL}/KnSalesRelationOrg", json=body).json()["results"]["KnSalesRelationOrg"]["DbId"]
        == "20999"
    )
    taken = _sales_relation("Dubbel B.V.", "99887766", match="6", DbId=existing)
    refused(
        client.post(f"{URL}/KnSalesRelationOrg", json=taken),
        f"Er bestaat al een record met Debiteurnummer '{existing}'.",
    )


def test_sales_relation_put_blocks_the_debtor_and_invoices_are_refused_after(client, facts):
    put = {"KnSalesRelationOrg": {"Element": {"@DbId": facts["debtor"], "Fields": {"Bl": True}}}}
    assert client.put(f"{URL}/KnSalesRelationOrg", json=put).status_code == 200
    row = client.get(
        f"{URL}/Profit_Debtor",
        params={"filterfieldids": "DebtorId", "filtervalues": facts["debtor"], "operatortypes": "1"},
    ).json()["rows"][0]
    assert row["Blocked"] is True
    refused(
        client.post(f"{URL}/FbDirectInvoice", json=invoice(facts["debtor"])),
        f"Verkooprelatie {facts['debtor']} is geblokkeerd.",
    )


# ---------------------------------------------------------------------------- helpers on app.state.sim


def test_helpers_block_rename_and_reject_the_next_post(client, sim, facts, world):
    sim.block_debtor(facts["debtor"])
    refused(client.post(f"{URL}/FbDirectInvoice", json=invoice(facts["debtor"])))
    sim.unblock_debtor(facts["debtor"])
    sim.rename_organisation(facts["debtor"], "Hernoemd B.V.")
    debtor = sim.tables["debtors"].get(facts["debtor"])
    assert debtor["DebtorName"] == "Hernoemd B.V."
    contacts = [c for c in sim.documents("Profit_Contacts") if c["OrgNumber"] == debtor["BcCo"]]
    assert contacts and {c["Name"] for c in contacts} == {"Hernoemd B.V."}
    sim.reject_next_post(facts["debtor"], "Boekingslayout is vergrendeld door een andere gebruiker.")
    refused(
        client.post(f"{URL}/FbDirectInvoice", json=invoice(facts["debtor"])),
        "Boekingslayout is vergrendeld door een andere gebruiker.",
    )
    assert client.post(f"{URL}/FbDirectInvoice", json=invoice(facts["debtor"])).status_code == 201
    assert [p.connector for p in sim.posted] == ["FbDirectInvoice"]
    assert len(sim.errors) == 2


# ---------------------------------------------------------------------------- HR


def test_illness_is_registered_for_known_employees_only(client, sim, facts):
    body = {
        "HrIllness": {
            "Element": {
                "Fields": {
                    "EmId": facts["employee"],
                    "DaBe": "2026-10-20T09:00:00",
                    "DMeB": "2026-10-20T10:00:00",
                    "DaEs": "2026-10-27",
                    "TPBe": 0,
                    "ViIt": "Z",
                },
                "Objects": [
                    {"HrAbsIllnessProgress": {"Element": {"Fields": {"DaTi": "2026-10-20", "PsPc": 0}}}}
                ],
            }
        }
    }
    sim.tables["illness"].remove(sim.tables["illness"].where(EmployeeId=facts["employee"]))
    response = client.post(f"{URL}/HrIllness", json=body)
    assert response.status_code == 201, response.text
    keys = response.json()["results"]["HrIllness"]
    assert keys["AbId"].isdigit() and re.fullmatch(r"\{[0-9A-F-]{36}\}", keys["GUID"])
    row = client.get(
        f"{URL}/Profit_Illness",
        params={"filterfieldids": "AbsenceId", "filtervalues": keys["AbId"], "operatortypes": "1"},
    ).json()["rows"][0]
    assert (row["EmployeeId"], row["GUID"], row["EndDate"], row["AbsenceTypeId"]) == (
        facts["employee"],
        keys["GUID"],
        None,
        "Z",
    )
    assert "heeft al een verzuimmelding" in refused(client.post(f"{URL}/HrIllness", json=body))
    body["HrIllness"]["Element"]["Fields"]["EmId"] = "nobody"
    refused(client.post(f"{URL}/HrIllness", json=body), "De ingevulde waarde bij 'Medewerker' bestaat niet.")
    close = {
        "HrIllness": {
            "Element": {
                "Fields": {"EmId": facts["employee"], "DaBe": "2026-10-20", "DaEn": "2026-10-25T17:00:00"}
            }
        }
    }
    assert client.put(f"{URL}/HrIllness", json=close).status_code == 200
    assert sim.tables["illness"].get(int(keys["AbId"]))["EndDate"].isoformat() == "2026-10-25T17:00:00"
    reopen = {
        "HrIllness": {"Element": {"Fields": {"EmId": facts["employee"], "DaBe": "2026-10-20", "DaEn": ""}}}
    }
    assert client.put(f"{URL}/HrIllness", json=reopen).status_code == 200
    assert sim.tables["illness"].get(int(keys["AbId"]))["EndDate"] is None


def test_org_units_with_parents_in_the_same_body_and_no_orphan_delete(client, sim, facts):
    units = [
        {
            "@OuId": "NEW",
            "Fields": {"Ds": "Nieuw", "OTId": "AFD", "StUn": False, "Empl": True, "ReOu": "KOPPEL"},
        },
        {
            "@OuId": "NEWSUB",
            "Fields": {
                "Ds": "Sub",
                "OTId": "AFD",
                "StUn": False,
                "Empl": True,
                "ReOu": "NEW",
                "MaId": facts["employee"],
            },
        },
    ]
    response = client.post(f"{URL}/KnOrgUnit", json={"KnOrgunit": {"Element": units}})
    assert response.json()["results"]["KnOrgUnit"] == [{"OuId": "NEW"}, {"OuId": "NEWSUB"}]
    rows = client.get(
        f"{URL}/Koppel_HR_OrgUnits",
        params={
            "filterfieldids": "OrgUnitId",
            "filtervalues": "NEW",
            "operatortypes": "10",
            "orderbyfieldids": "OrgUnitId",
        },
    ).json()["rows"]
    assert [(r["OrgUnitId"], r["ParentId"], r["ManagerId"]) for r in rows] == [
        ("NEW", "KOPPEL", None),
        ("NEWSUB", "NEW", facts["employee"]),
    ]
    orphan = {
        "KnOrgunit": {
            "Element": {
                "@OuId": "X",
                "Fields": {"Ds": "x", "OTId": "AFD", "StUn": 0, "Empl": 1, "ReOu": "NOPE"},
            }
        }
    }
    refused(client.post(f"{URL}/KnOrgUnit", json=orphan))
    refused(
        client.delete(f"{URL}/KnOrgUnit/KnOrgunit/@OuId/NEW"),
        "De organisatorische eenheid NEW heeft nog onderliggende eenheden.",
    )
    assert client.delete(f"{URL}/KnOrgUnit/KnOrgunit/@OuId/NEWSUB").status_code == 200
    assert sim.tables["org_units"].get("NEWSUB") is None


# ---------------------------------------------------------------------------- malformed bodies


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"FiEntries": {"Element": {}}},
            "Het object 'FiEntries' is onbekend in UpdateConnector 'FiEntries'; verwacht 'FiEntryPar'.",
        ),
        (
            {"FiEntryPar": {"Element": {"Fields": {"Year": 2026, "Peri": 10, "JoCo": "90", "Bogus": 1}}}},
            "Het veld 'Bogus' is onbekend in object 'FiEntryPar'.",
        ),
        (
            {"FiEntryPar": {"Element": {"Fields": {"Year": "twenty", "Peri": 10, "JoCo": "90"}}}},
            "De waarde 'twenty' is ongeldig voor veld 'Financial year' (Year): verwacht een geheel getal.",
        ),
        (
            {"FiEntryPar": {"Element": {"Fields": {"Year": 2026, "Peri": 10, "JoCo": "1234567"}}}},
            "De waarde voor veld 'Journal' (JoCo) is te lang: 7 tekens, maximaal 6.",
        ),
    ],
)
def test_schema_violations_are_refused_like_profit(client, body, message):
    refused(client.post(f"{URL}/FiEntries", json=body), message)


def test_bad_enum_and_invalid_json(client, facts):
    body = invoice(facts["debtor"])
    body["FbDirectInvoice"]["Element"]["Objects"][0]["FbDirectInvoiceLines"]["Element"][0]["Fields"][
        "VaIt"
    ] = "99"
    assert "niet toegestaan" in refused(client.post(f"{URL}/FbDirectInvoice", json=body))
    response = client.post(
        f"{URL}/FbDirectInvoice", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (
        response.status_code == 400
        and response.json()["externalMessage"] == "Ongeldige JSON in de body van het verzoek."
    )


# ---------------------------------------------------------------------------- Element lists (batches)


def several(connector_root, bodies):
    """One body holding the elements of several one-element bodies, in order."""
    return {connector_root: {"Element": [b[connector_root]["Element"] for b in bodies]}}


def test_several_invoices_in_one_body_answer_keys_per_element_in_order(client, sim, facts):
    bodies = [invoice(facts["debtor"], facts["project"], reference=f"KPL-B-{n}") for n in range(3)]
    response = client.post(f"{URL}/FbDirectInvoice", json=several("FbDirectInvoice", bodies))
    assert response.status_code == 201, response.text
    keys = response.json()["results"]["FbDirectInvoice"]
    stored = {row["RfCs"]: row["OrNu"] for row in sim.documents("Koppel_DirectInvoices")}
    assert [k["OrNu"] for k in keys] == [stored[f"KPL-B-{n}"] for n in range(3)]
    assert len(set(stored.values())) == 3


@pytest.mark.parametrize("bad", [0, 1, 2])
def test_one_refused_invoice_of_a_list_leaves_nothing_of_the_body(client, sim, facts, bad):
    bodies = [invoice(facts["debtor"], facts["project"], reference=f"KPL-X-{n}") for n in range(3)]
    bodies[bad] = invoice(facts["blocked"], reference=f"KPL-X-{bad}")
    refused(client.post(f"{URL}/FbDirectInvoice", json=several("FbDirectInvoice", bodies)))
    assert sim.documents("Koppel_DirectInvoices") == []
    assert sim.documents("Koppel_DirectInvoiceLines") == []
    assert sim.posted == []


def test_a_line_guid_may_appear_once_in_a_body(client, sim, facts):
    bodies = [invoice(facts["debtor"], reference=f"KPL-G-{n}") for n in range(2)]
    for b in bodies:
        b["FbDirectInvoice"]["Element"]["Objects"][0]["FbDirectInvoiceLines"]["Element"][0]["Fields"][
            "GuLi"
        ] = "{11111111-2222-3333-4444-555555555555}"
    refused(client.post(f"{URL}/FbDirectInvoice", json=several("FbDirectInvoice", bodies)))
    assert sim.documents("Koppel_DirectInvoices") == []


def test_several_entries_in_one_body_get_numbers_in_order_or_none_at_all(client, sim, facts):
    def balanced(ref, amount="10.00"):
        return entry(
            [line("1", "4300", debit=amount, reference=ref), line("1", "8900", credit="10.00", reference=ref)]
        )

    good = [balanced(f"KPL-E-{n}") for n in range(3)]
    response = client.post(f"{URL}/FiEntries", json=several("FiEntryPar", good))
    assert response.status_code == 201, response.text
    numbers = [int(k["EnNo"]) for k in response.json()["results"]["FiEntries"]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    by_ref = {row["BpNr"]: row["EnNo"] for row in sim.documents("Koppel_Entries")}
    assert [by_ref[f"KPL-E-{n}"] for n in range(3)] == numbers
    mixed = [balanced("KPL-F-0"), balanced("KPL-F-1", amount="9.99"), balanced("KPL-F-2")]
    refused(client.post(f"{URL}/FiEntries", json=several("FiEntryPar", mixed)))
    assert {row["BpNr"] for row in sim.documents("Koppel_Entries")} == {f"KPL-E-{n}" for n in range(3)}


def test_an_element_list_is_validated_against_the_schema_element_by_element(client, sim, facts):
    bodies = [invoice(facts["debtor"], reference=f"KPL-S-{n}") for n in range(2)]
    bodies[1]["FbDirectInvoice"]["Element"]["Fields"]["NoSuchField"] = "x"
    refused(client.post(f"{URL}/FbDirectInvoice", json=several("FbDirectInvoice", bodies)))
    assert sim.documents("Koppel_DirectInvoices") == []


def test_a_body_over_the_size_limit_is_refused_with_413_and_nothing_stored(world, facts):
    bodies = [invoice(facts["debtor"], reference=f"KPL-L-{n}") for n in range(40)]
    big = several("FbDirectInvoice", bodies)
    app = create_app(world, AfasOptions(max_body_bytes=4_000))
    with InProcessClient(app, app.state.sim.token) as client:
        response = client.post(f"{URL}/FbDirectInvoice", json=big)
        assert response.status_code == 413
        assert response.json()["externalMessage"] == "Het verzoek is groter dan 4000 bytes."
        assert app.state.sim.documents("Koppel_DirectInvoices") == []
        small = several("FbDirectInvoice", bodies[:2])
        assert client.post(f"{URL}/FbDirectInvoice", json=small).status_code == 201
