"""UpdateConnectors for organisations, persons and sales relations (reference §7).

``KnOrganisation.MatchOga`` decides how an organisation in the body is found: 0 by ``BcCo``, 1 by KvK
number (``CcNr``), 2 by fiscal number (``FiNr``), 3 by name, 4 by visiting address, 5 by postal address
(postcode + house number), 6 always new, 9 the parent's (the debtor's own organisation on a PUT).
A ``KnSalesRelationOrg`` POST whose organisation is found and already a debtor is refused, so a rerun
cannot create a second debtor; a new debtor gets ``@DbId``/``DbId`` when given, else the next number.
``KnPerson.MatchPer`` 0 matches ``BcCo``, 7 always adds, the others match first + last name (+ e-mail).
Organisation changes are mirrored onto its debtors (``Profit_Debtor``) and contacts (``Profit_Contacts``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.afas.errors import AfasError
from sandbox.afas.schemas import Element
from sandbox.afas.state import AfasSim
from sandbox.afas.tables import fold
from sandbox.world.afas import COUNTRIES

_COUNTRIES = dict(COUNTRIES)
# KnOrganisation field → Profit_OrgPer column (hidden ``_`` columns serve matching only).
_ORG_FIELDS = {"Nm": "Name", "SeNm": "SearchName", "CcNr": "ChOfCommNr", "FiNr": "_FiNr", "EmAd": "MailWork"}
_ORG_FIELDS |= {"TeNr": "TelWork", "HoPa": "Homepage", "Re": "Note"}
# KnSalesRelationOrg field → Profit_Debtor column.
_DEBTOR_FIELDS = {"Bl": "Blocked", "PaCd": "PayCon", "VaDu": "VatDuty", "CuId": "CurrencyId"}
_DEBTOR_FIELDS |= {"ColA": "CollectAccount", "VaId": "VatNr", "Krli": "CreditLimit"}


# ---------------------------------------------------------------------------- organisations


def organisation_changes(element: Element) -> dict[str, Any]:
    """Profit_OrgPer columns changed by a KnOrganisation element (fields and address sub-objects)."""
    f = element.fields
    changes = {column: f[name] for name, column in _ORG_FIELDS.items() if name in f}
    for address in element.children("KnBasicAddressAdr")[:1]:
        a = address.fields
        number = " ".join(str(x) for x in (a.get("HmNr"), a.get("HmAd")) if x)
        changes["AdressLine1"] = " ".join(str(x) for x in (a.get("Ad"), number) if x) or None
        changes["AdressLine3"] = " ".join(str(x) for x in (a.get("ZpCd"), a.get("Rs")) if x) or None
        changes["AdressLine4"] = _COUNTRIES.get(str(a.get("CoId") or "NL"), a.get("CoId"))
        changes |= {"_ZpCd": _postcode(a.get("ZpCd")), "_HmNr": a.get("HmNr")}
    for address in element.children("KnBasicAddressPad")[:1]:
        changes |= {"_PZpCd": _postcode(address.fields.get("ZpCd")), "_PHmNr": address.fields.get("HmNr")}
    return changes


def _postcode(value: object) -> str | None:
    return str(value).replace(" ", "").upper() if value else None


def find_organisation(
    sim: AfasSim, element: Element, parent: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The organisation ``MatchOga`` points at, or ``None`` (always ``None`` for 6)."""
    f, how = element.fields, str(element.fields.get("MatchOga") or "0")
    orgs = [r for r in sim.tables["relations"] if r["Type"] == "O"] if how in "12345" else []
    changes = organisation_changes(element)
    probes = {
        "0": lambda: sim.tables["relations"].get(f["BcCo"]) if f.get("BcCo") else None,
        "1": lambda: _first(orgs, "ChOfCommNr", f.get("CcNr")),
        "2": lambda: _first(orgs, "_FiNr", f.get("FiNr")),
        "3": lambda: _first(orgs, "Name", f.get("Nm")),
        "4": lambda: _first_pair(orgs, ("_ZpCd", "_HmNr"), (changes.get("_ZpCd"), changes.get("_HmNr"))),
        "5": lambda: _first_pair(orgs, ("_PZpCd", "_PHmNr"), (changes.get("_PZpCd"), changes.get("_PHmNr"))),
        "9": lambda: parent,
    }
    found = probes.get(how, lambda: None)()
    return found if found is None or found["Type"] == "O" else None


def _first(rows: list[dict[str, Any]], column: str, value: object) -> dict[str, Any] | None:
    if value in (None, ""):
        return None
    wanted = fold(str(value))
    return next((r for r in rows if fold(r.get(column)) == wanted), None)


def _first_pair(rows: list[dict[str, Any]], columns: tuple[str, str], values: tuple[object, object]) -> Any:
    if None in values:
        return None
    wanted = tuple(fold(str(v)) for v in values)
    return next((r for r in rows if (fold(r.get(columns[0])), fold(str(r.get(columns[1])))) == wanted), None)


def save_organisation(sim: AfasSim, element: Element, parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Update the matched organisation or add a new one; then its contacts. Returns the row."""
    found = find_organisation(sim, element, parent)
    changes = organisation_changes(element)
    if found is not None:
        sim.apply_organisation(found, changes)
    else:
        found = _new_organisation(sim, element, changes)
    for contact in element.children("KnContact"):
        _save_contact(sim, found, contact)
    return found


def _new_organisation(sim: AfasSim, element: Element, changes: dict[str, Any]) -> dict[str, Any]:
    f = element.fields
    if not f.get("Nm"):
        raise AfasError("mandatory", {"label": "Naam", "name": "Nm", "obj": "KnOrganisation"})
    number = f.get("BcCo") if f.get("BcCo") and not f.get("AutoNum") else sim.next_id("relations", 1000001)
    if sim.tables["relations"].get(number) is not None:
        raise AfasError("already_exists", {"label": "Nummer", "value": number})
    search = changes.pop("SearchName", None) or str(f["Nm"]).upper().replace(" ", "")[:10]
    row = {"BcCo": number, "Type": "O", "SearchName": search, "_BcId": sim.counter("BcId", 100001), **changes}
    return sim.tables["relations"].add(row)


def check_organisation(sim: AfasSim, element: Element, parent: dict[str, Any] | None = None) -> None:
    """Refuse before anything is stored: a new organisation needs a name and a free number."""
    if find_organisation(sim, element, parent) is not None:
        return
    f = element.fields
    if not f.get("Nm"):
        raise AfasError("mandatory", {"label": "Naam", "name": "Nm", "obj": "KnOrganisation"})
    if f.get("BcCo") and not f.get("AutoNum") and sim.tables["relations"].get(f["BcCo"]) is not None:
        raise AfasError("already_exists", {"label": "Nummer", "value": f["BcCo"]})


def bc_id(row: dict[str, Any]) -> str:
    """The internal id (``BcId``) Profit returns next to ``BcCo``."""
    return str(row.get("_BcId") or row["BcCo"])


# ---------------------------------------------------------------------------- persons and contacts


def _person_changes(f: dict[str, Any]) -> dict[str, Any]:
    name = " ".join(str(x) for x in (f.get("FiNm") or f.get("CaNm"), f.get("Is"), f.get("LaNm")) if x)
    changes = {"Name": name or None, "MailWork": f.get("EmAd"), "TelWork": f.get("TeNr") or f.get("MbNr")}
    changes |= {"DateBirth": f.get("DaBi"), "_FiNm": f.get("FiNm") or f.get("CaNm"), "_LaNm": f.get("LaNm")}
    return {k: v for k, v in changes.items() if v is not None}


def find_person(sim: AfasSim, element: Element) -> dict[str, Any] | None:
    """The person ``MatchPer`` points at, or ``None``."""
    f, how = element.fields, str(element.fields.get("MatchPer") or "0")
    if how == "0":
        found = sim.tables["relations"].get(f["BcCo"]) if f.get("BcCo") else None
        return found if found is not None and found["Type"] == "P" else None
    if how == "7" or not f.get("LaNm"):
        return None
    first, last, mail = (fold(f.get(k)) for k in ("FiNm", "LaNm", "EmAd"))
    for row in sim.tables["relations"]:
        same_name = row["Type"] == "P" and fold(row.get("_LaNm")) == last and fold(row.get("_FiNm")) == first
        if same_name and (mail is None or fold(row.get("MailWork")) == mail):
            return row
    return None


def save_person(sim: AfasSim, element: Element) -> dict[str, Any]:
    """Update the matched person or add a new one."""
    found = find_person(sim, element)
    changes = _person_changes(element.fields)
    if found is not None:
        sim.tables["relations"].update(found, changes)
        return found
    if not element.fields.get("LaNm"):
        raise AfasError("mandatory", {"label": "Achternaam", "name": "LaNm", "obj": "KnPerson"})
    f = element.fields
    number = f.get("BcCo") if f.get("BcCo") and not f.get("AutoNum") else sim.next_id("relations", 1000001)
    search = f.get("SeNm") or str(f["LaNm"]).upper().replace(" ", "")[:10]
    row = {"BcCo": number, "Type": "P", "SearchName": search, "_BcId": sim.counter("BcId", 100001), **changes}
    return sim.tables["relations"].add(row)


def _save_contact(sim: AfasSim, org: dict[str, Any], contact: Element) -> None:
    people = contact.children("KnPerson")
    person = save_person(sim, people[0]) if people else None
    f, now = contact.fields, sim.now()
    row = {
        "Type": "PRS" if person else "AFD",
        "Name": org.get("Name"),
        "OrgNumber": org["BcCo"],
        "PerNumber": person["BcCo"] if person else None,
        "Blocked": False,
        "TelWork": f.get("TeNr"),
        "MobWork": f.get("MbNr"),
        "MailWork": f.get("EmAd") or (person or {}).get("MailWork"),
        "Function": f.get("FuDs"),
        "Department": f.get("ExAd"),
        "FullName": (person or {}).get("Name"),
        "ModifiedDate": now,
    }
    existing = [
        c
        for c in sim.tables["contacts"].where(OrgNumber=org["BcCo"])
        if person and c["PerNumber"] == person["BcCo"]
    ]
    if existing:
        sim.tables["contacts"].update(existing[0], row)
    else:
        sim.tables["contacts"].add({**row, "ContactId": int(sim.next_id("contacts", 1)), "CreateDate": now})


# ---------------------------------------------------------------------------- connectors


def post_sales_relation(sim: AfasSim, elements: list[Element]) -> Any:
    """Insert sales relations (debtors) with their organisation (matched or new)."""
    results = []
    for element in elements:
        org_element = _organisation_element(element)
        number = element.get("DbId")
        if number is not None and sim.tables["debtors"].get(number) is not None:
            raise AfasError("already_exists", {"label": "Debiteurnummer", "value": number})
        found = find_organisation(sim, org_element)
        if found is not None and (taken := sim.tables["debtors"].where(BcCo=found["BcCo"])):
            raise AfasError("already_debtor", {"bcco": found["BcCo"], "debtor": taken[0]["DebtorId"]})
        check_organisation(sim, org_element)
        org = save_organisation(sim, org_element)
        debtor = _new_debtor(sim, element, org, number or sim.next_id("debtors", 10001))
        results.append({"DbId": debtor["DebtorId"], "BcCo": org["BcCo"]})
    return results[0] if len(results) == 1 else results


def _organisation_element(element: Element) -> Element:
    found = element.children("KnOrganisation")
    if not found:
        raise AfasError(
            "mandatory", {"label": "Organisatie", "name": "KnOrganisation", "obj": element.object}
        )
    return found[0]


def _new_debtor(sim: AfasSim, element: Element, org: dict[str, Any], number: str) -> dict[str, Any]:
    f, now = element.fields, sim.now()
    row = {
        "DebtorId": number,
        "DebtorName": org.get("Name"),
        "BcCo": org["BcCo"],
        "SearchName": org.get("SearchName"),
        **{column: org.get(column) for column in ("AdressLine1", "AdressLine3", "AdressLine4", "ChOfCommNr")},
        "TelNr": org.get("TelWork"),
        "Email": org.get("MailWork"),
        "IBAN": _iban(_organisation_element(element)),
        "CollectAccount": "1300",
        "PayCon": "30",
        "VatDuty": "1",
        "Blocked": False,
        "CreditLimit": Decimal("0.00"),
        "AutoPayment": False,
        "CreateDate": now,
        "ModifiedDate": now,
    }
    row |= {column: f[name] for name, column in _DEBTOR_FIELDS.items() if f.get(name) is not None}
    return sim.tables["debtors"].add(row)


def _iban(org_element: Element) -> str | None:
    accounts = org_element.children("KnBankAccount")
    return accounts[0].fields.get("Iban") if accounts else None


def put_sales_relation(sim: AfasSim, elements: list[Element]) -> None:
    """Update debtors (blocking, payment terms, …) and, nested, their organisation."""
    for element in elements:
        debtor = sim.tables["debtors"].get(element.get("DbId"))
        if debtor is None:
            raise AfasError("record_not_found", {"label": "Debiteurnummer", "value": element.get("DbId")})
        changes = {
            c: element.fields[n] for n, c in _DEBTOR_FIELDS.items() if element.fields.get(n) is not None
        }
        for org_element in element.children("KnOrganisation")[:1]:
            parent = sim.tables["relations"].get(debtor["BcCo"])
            org = find_organisation(sim, org_element, parent) or parent
            if org is None:
                raise AfasError("record_not_found", {"label": "Organisatie", "value": debtor["BcCo"]})
            sim.apply_organisation(org, organisation_changes(org_element))
            for contact in org_element.children("KnContact"):
                _save_contact(sim, org, contact)
            changes |= {"IBAN": _iban(org_element)} if _iban(org_element) else {}
        sim.tables["debtors"].update(debtor, {**changes, "ModifiedDate": sim.now()})


def post_organisation(sim: AfasSim, elements: list[Element]) -> Any:
    """Insert (or, when matched, update) organisations."""
    for element in elements:
        check_organisation(sim, element)
    rows = [save_organisation(sim, element) for element in elements]
    results = [{"BcCo": row["BcCo"], "BcId": bc_id(row)} for row in rows]
    return results[0] if len(results) == 1 else results


def put_organisation(sim: AfasSim, elements: list[Element]) -> None:
    """Update organisations found by ``MatchOga``."""
    for element in elements:
        if find_organisation(sim, element) is None:
            raise AfasError("record_not_found", {"label": "Organisatie", "value": element.fields.get("BcCo")})
        save_organisation(sim, element)


def post_person(sim: AfasSim, elements: list[Element]) -> Any:
    """Insert (or, when matched, update) persons."""
    rows = [save_person(sim, element) for element in elements]
    results = [{"BcCo": row["BcCo"], "BcId": bc_id(row)} for row in rows]
    return results[0] if len(results) == 1 else results


def put_person(sim: AfasSim, elements: list[Element]) -> None:
    """Update persons found by ``MatchPer``."""
    for element in elements:
        if find_person(sim, element) is None:
            raise AfasError("record_not_found", {"label": "Persoon", "value": element.fields.get("BcCo")})
        save_person(sim, element)


HANDLERS = {
    ("KnSalesRelationOrg", "POST"): post_sales_relation,
    ("KnSalesRelationOrg", "PUT"): put_sales_relation,
    ("KnOrganisation", "POST"): post_organisation,
    ("KnOrganisation", "PUT"): put_organisation,
    ("KnPerson", "POST"): post_person,
    ("KnPerson", "PUT"): put_person,
}
