"""Master data on demand for the AFAS sandbox, and a synchronous in-process client for tests.

``ensure_master_data_for(sim, connector, body, verb)`` makes the world hold what a request body refers
to — debtors, organisations, projects (open, of the right debtor), items, employees, open periods,
ledger accounts, creditors, journals, VAT codes, dimension codes, units, country codes, and for PUT
bodies the documents they change — so that any of AFAS's published examples can be posted. It also
clears what would make a valid example collide (a debtor number or organisation the example creates).
Then the same body goes through the normal rules.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx

from sandbox.afas.schemas import Element, parse_body
from sandbox.afas.state import AfasSim, employment_key, token_header
from sandbox.afas.tables import fold
from sandbox.world.afas import first_of_month

_MONTHS = ("jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec")


def ensure_master_data_for(sim: AfasSim, connector: str, body: Any, verb: str = "POST") -> None:
    """Add (or reopen/unblock) whatever ``body`` references, so the rules will accept it."""
    elements = parse_body(connector, verb, body)
    add_countries(sim, elements)
    for element in elements:
        _ENSURERS[connector](sim, element, verb)


# ---------------------------------------------------------------------------- single facts


def add_unit(sim: AfasSim, unit: int) -> None:
    """An administration."""
    if sim.tables["administrations"].get(unit) is None:
        sim.tables["administrations"].add(
            {"AdminId": unit, "AdminNm": f"Administratie {unit}", "AdminCd": f"A{unit}"}
        )


def add_organisation(sim: AfasSim, number: str, name: str | None = None) -> dict[str, Any]:
    """An organisation (``BcCo``)."""
    row = sim.tables["relations"].get(number)
    if row is None:
        label = name or f"Organisatie {number}"
        row = sim.tables["relations"].add(
            {"BcCo": number, "Type": "O", "Name": label, "SearchName": label[:10].upper()}
        )
    return row


def add_debtor(sim: AfasSim, debtor_id: str, organisation: str | None = None) -> dict[str, Any]:
    """A debtor that accepts postings (unblocked), with its organisation."""
    row = sim.tables["debtors"].get(debtor_id)
    if row is not None:
        sim.tables["debtors"].update(row, {"Blocked": False})
        return row
    org = add_organisation(sim, organisation or sim.next_id("relations", 1000001))
    now = sim.now()
    values = {"DebtorName": org["Name"], "BcCo": org["BcCo"], "CurrencyId": "EUR", "Blocked": False}
    return sim.tables["debtors"].add(
        {"DebtorId": debtor_id, **values, "CreateDate": now, "ModifiedDate": now}
    )


def add_project(sim: AfasSim, project_id: str, debtor_id: str | None = None) -> None:
    """An open project of ``debtor_id`` (or of no debtor)."""
    debtor = add_debtor(sim, debtor_id)["DebtorId"] if debtor_id else None
    row = sim.tables["projects"].get(project_id)
    values = {"DebtorId": debtor, "DateReady": None, "CheckedOut": False}
    if row is not None:
        sim.tables["projects"].update(row, values if debtor else {"DateReady": None, "CheckedOut": False})
        return
    unit = sim.options.default_unit
    sim.tables["projects"].add(
        {"ProjectId": project_id, "Description": project_id, "UnitId": unit, "Chargeable": True, **values}
    )


def add_item(sim: AfasSim, item_type: object, code: object) -> None:
    """An item of a type (work types also show in ``Profit_Worktype``)."""
    kind = str(item_type if item_type is not None else "1")
    sim.items.setdefault(kind, set()).add(fold(str(code)))
    if kind == "1" and sim.tables["worktypes"].get(str(code)) is None:
        sim.tables["worktypes"].add({"ItemCode": str(code), "Description": str(code), "Group": "UREN"})


def add_employee(sim: AfasSim, employee_id: str) -> None:
    """An employee with one open employment in the first organisational unit."""
    if sim.tables["employees"].get(employee_id) is not None:
        return
    sim.tables["employees"].add(
        {"EmployeeId": employee_id, "FirstName": employee_id, "LastName": employee_id}
    )
    unit = sim.tables["org_units"].rows[0]["OrgUnitId"] if len(sim.tables["org_units"]) else None
    start = datetime(2000, 1, 1)  # noqa: DTZ001 - Profit dates are naive Amsterdam-local
    row = {"EmployeeId": employee_id, "DvId": 1, "DvSn": 1, "OrgUnitId": unit, "StartDate": start}
    sim.tables["employments"].add({"EmploymentKey": employment_key(employee_id, 1), **row})


def add_period(sim: AfasSim, unit: int, year: int, period: int) -> None:
    """An open monthly period (the whole year is created when it is missing)."""
    add_unit(sim, unit)
    table = sim.tables["periods"]
    for month in range(1, 13):
        if table.get(f"{unit}/{year}/{month}") is None:
            start = date(year, month, 1)
            end = first_of_month(start, 1) - timedelta(days=1)
            row = {"Unit": unit, "Year": year, "Period": month, "PeriodDesc": f"{_MONTHS[month - 1]} {year}"}
            row |= {"DateFrom": datetime(year, month, 1), "DateTo": datetime(end.year, end.month, end.day)}  # noqa: DTZ001
            table.add(
                {
                    **row,
                    "Blocked": False,
                    "Periodtable": 1,
                    "TableDesc": "Maanden",
                    "_key": f"{unit}/{year}/{month}",
                }
            )
    sim.open_period(unit, year, period)


def add_account(sim: AfasSim, unit: int, kind: str, number: str) -> None:
    """A ledger account (1), debtor (2) or creditor (3)."""
    if kind == "1":
        sim.accounts.add((unit, fold(number)))
    elif kind == "2":
        add_debtor(sim, number)
    else:
        sim.creditors.add(fold(number))


def add_journal(sim: AfasSim, unit: int, journal: str) -> None:
    """A journal (``JoCo``) of an administration."""
    key = f"{unit}/{journal}"
    if sim.tables["journals"].get(key) is None:
        row = {"UnitId": unit, "JournalId": journal, "Description": journal, "JournalType": "M"}
        sim.tables["journals"].add({**row, "Blocked": False, "_key": key})


def add_vat_code(sim: AfasSim, code: str) -> None:
    """A VAT code (``VaId``) at 0 %."""
    if sim.tables["vat_codes"].get(code) is None:
        row = {"VatCode": code, "Description": code, "VatPerc": Decimal(0), "VatDuty": "1"}
        sim.tables["vat_codes"].add({**row, "Blocked": False})


def add_allocation(sim: AfasSim, unit: int, account: str, axis: int, code: str) -> None:
    """A dimension code allowed on an account (axis 1 = cost centre)."""
    key = f"{unit}/{account}/{axis}/{code}"
    if sim.tables["allocations"].get(key) is None:
        row = {"Unit": unit, "Account": account, "DimAx": str(axis), "DimCode": code}
        sim.tables["allocations"].add({**row, "_key": key})


def add_unit_of_measure(sim: AfasSim, unit: str) -> None:
    """A unit of measure (``BiUn``)."""
    if sim.tables["units"].get(unit) is None:
        sim.tables["units"].add({"UnitId": unit, "Description": unit})


def add_countries(sim: AfasSim, elements: list[Element]) -> None:
    """Every country code (``CoId``) in the elements, at any depth."""
    for element in elements:
        if element.fields.get("CoId") is not None:
            sim.countries.add(fold(str(element.fields["CoId"])))
        for children in element.objects.values():
            add_countries(sim, children)


def add_org_unit(sim: AfasSim, unit: str) -> None:
    """An organisational unit."""
    if sim.tables["org_units"].get(unit) is None:
        sim.tables["org_units"].add({"OrgUnitId": unit, "Description": unit, "ModifiedDate": sim.now()})


# ---------------------------------------------------------------------------- per connector


def _direct_invoice(sim: AfasSim, element: Element, verb: str) -> None:
    f = element.fields
    debtor = f.get("DbId")
    if verb == "PUT":
        header = sim.tables["invoices"].get(f["OrNu"])
        debtor = (
            debtor or (header["DbId"] if header else None) or str(sim.tables["debtors"].rows[0]["DebtorId"])
        )
        if header is None:
            sim.tables["invoices"].add({"OrNu": f["OrNu"], "DbId": debtor, "Unit": sim.options.default_unit})
        for line in element.children("FbDirectInvoiceLines"):
            guid = line.fields.get("GuLi")
            if guid and sim.tables["invoice_lines"].get(guid) is None:
                sim.tables["invoice_lines"].add(
                    {"OrNu": f["OrNu"], "GuLi": guid, "VaIt": "2", "ItCd": "1000"}
                )
    add_debtor(sim, str(debtor))
    unit = int(f.get("Unit") or sim.options.default_unit)
    add_unit(sim, unit)
    if f.get("JoCo"):
        add_journal(sim, unit, f["JoCo"])
    if f.get("PrId"):
        add_project(sim, f["PrId"], str(debtor))
    for line in element.children("FbDirectInvoiceLines"):
        if line.fields.get("ItCd") is not None:
            add_item(sim, line.fields.get("VaIt"), line.fields["ItCd"])
        if line.fields.get("BiUn") is not None:
            add_unit_of_measure(sim, str(line.fields["BiUn"]))


def _entries(sim: AfasSim, element: Element, _: str) -> None:
    f = element.fields
    unit = int(f.get("UnId") or sim.options.default_unit)
    add_period(sim, unit, int(f["Year"]), int(f["Peri"]))
    add_journal(sim, unit, str(f["JoCo"]))
    for line in element.children("FiEntries"):
        add_account(sim, unit, str(line.fields["VaAs"]), str(line.fields["AcNr"]))
        if line.fields.get("VaId") is not None:
            add_vat_code(sim, str(line.fields["VaId"]))
        for allocation in line.children("FiDimEntries"):
            for axis in range(1, 6):
                if allocation.fields.get(f"DiC{axis}") is not None:
                    code = str(allocation.fields[f"DiC{axis}"])
                    add_allocation(sim, unit, str(line.fields["AcNr"]), axis, code)
        for project_line in line.children("FiPrjEntries"):
            if project_line.fields.get("PrId"):
                add_project(sim, project_line.fields["PrId"])


def _realization(sim: AfasSim, element: Element, verb: str) -> None:
    f = element.fields
    if f.get("EmId"):
        add_employee(sim, f["EmId"])
    if f.get("ItCd"):
        add_item(sim, f.get("VaIt") or "1", f["ItCd"])
    if f.get("UnId"):
        add_unit_of_measure(sim, str(f["UnId"]))
    if verb == "PUT":
        _existing_realization(sim, int(f["Id"]), f.get("DaTi"))
        return
    if f.get("DbId"):
        add_debtor(sim, f["DbId"])
    if f.get("PrId"):
        add_project(sim, f["PrId"], f.get("DbId"))
    project = sim.tables["projects"].get(f["PrId"]) if f.get("PrId") else None
    unit = project["UnitId"] if project and project.get("UnitId") else sim.options.default_unit
    add_period(sim, unit, f["DaTi"].year, f["DaTi"].month)


def _existing_realization(sim: AfasSim, identity: int, moment: datetime | None) -> None:
    if sim.tables["realizations"].get(identity) is None:
        when = moment or sim.now()
        row = {"Identity": identity, "Year": when.year, "PeriodId": when.month, "DateTime": when}
        sim.tables["realizations"].add({**row, "ItemType": "1", "QuantityUnit": Decimal(1)})


def _sales_relation(sim: AfasSim, element: Element, verb: str) -> None:
    orgs = element.children("KnOrganisation")
    org = orgs[0].fields if orgs else {}
    number = element.get("DbId")
    if verb == "PUT":
        add_debtor(sim, str(number), org.get("BcCo") if str(org.get("MatchOga")) == "0" else None)
        if org.get("BcCo") and str(org.get("MatchOga")) == "0":
            add_organisation(sim, org["BcCo"])
        return
    if number is not None and (existing := sim.tables["debtors"].get(number)) is not None:
        sim.tables["debtors"].remove([existing])  # the example creates this debtor number
    if str(org.get("MatchOga")) == "0" and org.get("BcCo"):
        add_organisation(sim, org["BcCo"])
        sim.tables["debtors"].remove(sim.tables["debtors"].where(BcCo=org["BcCo"]))  # not a debtor yet
    elif org.get("BcCo") and not org.get("AutoNum") and (taken := sim.tables["relations"].get(org["BcCo"])):
        sim.tables["relations"].remove([taken])  # the example creates an organisation with this number


def _organisation(sim: AfasSim, element: Element, verb: str) -> None:
    if verb == "PUT" and element.fields.get("BcCo"):
        add_organisation(sim, element.fields["BcCo"])


def _person(sim: AfasSim, element: Element, verb: str) -> None:
    number = element.fields.get("BcCo")
    if verb == "PUT" and number and sim.tables["relations"].get(number) is None:
        sim.tables["relations"].add({"BcCo": number, "Type": "P", "Name": number, "_LaNm": number})


def _illness(sim: AfasSim, element: Element, verb: str) -> None:
    f = element.fields
    add_employee(sim, f["EmId"])
    if verb == "PUT" and not [
        r
        for r in sim.tables["illness"].where(EmployeeId=f["EmId"])
        if r["StartDate"].date() == f["DaBe"].date()
    ]:
        row = {
            "EmployeeId": f["EmId"],
            "StartDate": f["DaBe"],
            "EndDate": f["DaBe"] + timedelta(days=10),
            "DvId": 1,
        }
        sim.tables["illness"].add(
            {**row, "AbsenceId": int(sim.next_id("illness", 1)), "GUID": sim.new_guid()}
        )


def _org_unit(sim: AfasSim, element: Element, verb: str) -> None:
    f = element.fields
    if verb == "PUT":
        add_org_unit(sim, str(element.get("OuId")))
    if f.get("ReOu"):
        add_org_unit(sim, f["ReOu"])
    if f.get("MaId"):
        add_employee(sim, f["MaId"])


_ENSURERS = {
    "FbDirectInvoice": _direct_invoice,
    "FiEntries": _entries,
    "PtRealization": _realization,
    "KnSalesRelationOrg": _sales_relation,
    "KnOrganisation": _organisation,
    "KnPerson": _person,
    "HrIllness": _illness,
    "KnOrgUnit": _org_unit,
}


# ---------------------------------------------------------------------------- in-process client


class InProcessClient:
    """A synchronous httpx client bound to an ASGI app (no sockets), authenticated as the sandbox."""

    def __init__(self, app: Any, token: str | None = None, base_url: str = "http://afas.sandbox") -> None:
        self._loop = asyncio.new_event_loop()
        self.headers = {"Authorization": token_header(token)} if token else {}
        self._client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send one request; the sandbox token is added unless ``headers`` says otherwise."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self._loop.run_until_complete(self._client.request(method, url, headers=headers, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        """PUT."""
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        """DELETE."""
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        """Close the client and its event loop."""
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()

    def __enter__(self) -> InProcessClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
