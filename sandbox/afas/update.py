"""UpdateConnectors of the AFAS sandbox: dispatch, DELETE paths, and the financial connectors.

Every body is parsed against AFAS's schema first (``sandbox/afas/schemas.py``), then checked against the
world (``AfasSim.require_*``), and only then stored: one body is one transaction (reference §5.1), so a
refused element leaves nothing behind, whichever element of an ``Element`` list it is, and no element of
the body is stored. POST answers ``{"results": {"<Connector>": keys}}`` (201) for one element and
``{"results": {"<Connector>": [keys, ...]}}`` for several, one entry per element in the order posted
(docs/sandbox.md; for ``PtRealization`` one per line, all with the call's ``Sessieguid``); PUT and DELETE
answer 200 with an empty body. Financial data is never deleted through the API (decision §11.12).
Unknown master data is refused as Profit refuses it: 500 ``De ingevulde waarde bij '<label>' bestaat niet.``
(reference §9) with the label of the field (Dagboek, Btw-code, Kostenplaats, Eenheid, Land, …).

- ``FbDirectInvoice`` (reference §6): debtor exists and is not blocked, project (header ``PrId``) exists,
  is the debtor's and is open, items, units (``BiUn``) and a journal given exist; ``OrNu`` assigned when
  omitted. Read back via
  ``Koppel_DirectInvoices`` / ``Koppel_DirectInvoiceLines``.
- ``FiEntries`` (root ``FiEntryPar``): journal, period open, accounts/debtors/creditors, VAT codes and
  dimension codes allowed on the account (``FiDimEntries``, axis 1 = cost centre) exist, debit = credit;
  ``EnNo`` per administration. Read back via ``Koppel_Entries`` (``BpNr`` carries the reference).
- ``PtRealization``: period of the date open, item, employee, unit, project (the debtor's, open) and
  debtor exist; ``Qu`` a multiple of 0.05 (configurable); ``XpRe`` unique. Read back via
  ``Koppel_Realizations`` and ``Profit_Realization``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

from sandbox.afas import hr as afas_hr
from sandbox.afas import relations as afas_relations
from sandbox.afas.errors import AfasError, unexpected
from sandbox.afas.schemas import Element, parse_body
from sandbox.afas.state import AfasSim, Posted, quantity_ok
from sandbox.afas.tables import fold

Handler = Callable[[AfasSim, list[Element]], Any]


def execute(sim: AfasSim, connector: str, verb: str, body: Any) -> Any:
    """Run one POST/PUT; returns the ``results`` value for a POST, ``None`` for a PUT."""
    if (connector, verb) not in HANDLERS:  # FiEntries has no PUT (corrections are counter-entries)
        raise AfasError("verb_not_supported", {"connector": connector, "verb": verb})
    elements = parse_body(connector, verb, body)
    pending = dict(sim.rejections)
    try:
        check_countries(sim, elements)
        result = HANDLERS[(connector, verb)](sim, elements)
    except AfasError:
        _keep_rejections(sim, pending, elements)
        raise
    sim.posted.append(Posted(connector, verb, body, result))
    return result if verb == "POST" else None


def check_countries(sim: AfasSim, elements: list[Element]) -> None:
    """Every country code (``CoId``) anywhere in the body must be one Profit knows (addresses, persons)."""
    for element in elements:
        if element.fields.get("CoId") is not None:
            sim.require_country(element.fields["CoId"])
        for children in element.objects.values():
            check_countries(sim, children)


def _keep_rejections(sim: AfasSim, pending: dict[str, str | None], elements: list[Element]) -> None:
    """A test rejection (``reject_next_post``) stands like a real refusal while the body holds other debtors.

    Profit refuses a blocked debtor every time; the one-shot test helper would otherwise be used up by the
    first batch holding it, and the same document would land when the caller bisects the batch.
    """
    for debtor in set(pending) - set(sim.rejections):
        if any(fold(debtor) not in _debtors_of(element) for element in elements):
            sim.rejections[debtor] = pending[debtor]


def _debtors_of(element: Element) -> set[str]:
    found = {fold(element.get("DbId"))} if element.get("DbId") is not None else set()
    for line in element.children("FiEntries"):
        if str(line.fields.get("VaAs")) == "2" and line.fields.get("AcNr") is not None:
            found.add(fold(line.fields["AcNr"]))
    return found


def one_or_many(results: list[dict[str, str]]) -> dict[str, str] | list[dict[str, str]]:
    """One element posted → its keys; several → a list of keys (one per element, in order)."""
    return results[0] if len(results) == 1 else results


# ---------------------------------------------------------------------------- FbDirectInvoice


def post_direct_invoice(sim: AfasSim, elements: list[Element]) -> Any:
    """Insert direct invoices (header + lines)."""
    plans = [_invoice_plan(sim, element) for element in elements]
    given = [p[0]["OrNu"] for p in plans if p[0]["OrNu"]]
    if len({fold(n) for n in given}) != len(given):
        raise AfasError("already_exists", {"label": "Nummer", "value": given[-1]})
    guids = [fold(line["GuLi"]) for _, lines in plans for line in lines]
    if len(set(guids)) != len(guids):  # two elements of one body cannot carry the same line GUID
        raise AfasError("already_exists", {"label": "Regel-GUID", "value": guids[-1]})
    results = []
    for header, lines in plans:
        number = header["OrNu"] or sim.next_id("invoices", 70000001)
        sim.tables["invoices"].add({**header, "OrNu": number})
        sim.tables["invoice_lines"].extend({**line, "OrNu": number} for line in lines)
        results.append({"OrNu": number})
    return one_or_many(results)


def _invoice_plan(sim: AfasSim, element: Element) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    f = element.fields
    debtor = sim.require_debtor(element.get("DbId"))
    unit = sim.require_unit(f.get("Unit") or sim.options.default_unit)
    if f.get("JoCo") is not None:
        sim.require_journal(unit, f["JoCo"])
    if f.get("PrId") is not None:
        sim.require_project(f["PrId"], debtor["DebtorId"])
    number = element.get("OrNu")
    if number is not None and sim.tables["invoices"].get(number) is not None:
        raise AfasError("already_exists", {"label": "Nummer", "value": number})
    lines = element.children("FbDirectInvoiceLines")
    if not lines:
        raise AfasError(
            "mandatory", {"label": "Factuurregels", "name": "FbDirectInvoiceLines", "obj": "FbDirectInvoice"}
        )
    header = {
        "OrNu": number,
        "DbId": debtor["DebtorId"],
        "RfCs": f.get("RfCs"),
        "Fref": f.get("Fref"),
        "PrId": f.get("PrId"),
        "OrDa": f.get("OrDa") or sim.now().replace(hour=0, minute=0, second=0),
        "Unit": unit,
        "Ds": f.get("Re"),
    }
    return header, [_invoice_line(sim, line) for line in lines]


def _invoice_line(sim: AfasSim, line: Element) -> dict[str, Any]:
    f = line.fields
    sim.require_item(f.get("VaIt"), f.get("ItCd"))
    if f.get("BiUn") is not None:
        sim.require_unit_of_measure(f["BiUn"])
    guid = f.get("GuLi") or sim.new_guid()
    if sim.tables["invoice_lines"].get(guid) is not None:
        raise AfasError("already_exists", {"label": "Regel-GUID", "value": guid})
    keys = ("VaIt", "ItCd", "Ds", "BiUn", "QuUn", "Upri")
    return {"GuLi": guid, **{key: f.get(key) for key in keys}}


def put_direct_invoice(sim: AfasSim, elements: list[Element]) -> None:
    """Update invoice headers; lines with ``GuLi`` are updated, lines without it are added."""
    for element in elements:
        header = sim.tables["invoices"].get(element.get("OrNu"))
        if header is None:
            raise AfasError("record_not_found", {"label": "Nummer", "value": element.get("OrNu")})
        changes = _invoice_changes(sim, element, header)
        updates, additions = _line_changes(sim, element, header)
        sim.tables["invoices"].update(header, changes)
        for row, change in updates:
            sim.tables["invoice_lines"].update(row, change)
        sim.tables["invoice_lines"].extend(additions)


def _invoice_changes(sim: AfasSim, element: Element, header: dict[str, Any]) -> dict[str, Any]:
    f = element.fields
    debtor = sim.require_debtor(f["DbId"])["DebtorId"] if f.get("DbId") else header["DbId"]
    if f.get("PrId"):
        sim.require_project(f["PrId"], debtor)
    names = {"RfCs": "RfCs", "Fref": "Fref", "PrId": "PrId", "OrDa": "OrDa", "Re": "Ds"}
    return {"DbId": debtor, **{target: f[source] for source, target in names.items() if source in f}}


def _line_changes(
    sim: AfasSim, element: Element, header: dict[str, Any]
) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[dict[str, Any]]]:
    updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    additions: list[dict[str, Any]] = []
    for line in element.children("FbDirectInvoiceLines"):
        f = line.fields
        if f.get("VaIt") is not None or f.get("ItCd") is not None:
            sim.require_item(f.get("VaIt") or "1", f.get("ItCd"))
        if f.get("BiUn") is not None:
            sim.require_unit_of_measure(f["BiUn"])
        existing = sim.tables["invoice_lines"].get(f["GuLi"]) if f.get("GuLi") else None
        if f.get("GuLi") and (existing is None or fold(existing["OrNu"]) != fold(header["OrNu"])):
            raise AfasError("record_not_found", {"label": "Regel-GUID", "value": f["GuLi"]})
        change: dict[str, Any] = {k: f[k] for k in ("VaIt", "ItCd", "Ds", "BiUn", "QuUn", "Upri") if k in f}
        if existing is not None:
            updates.append((existing, change))
        else:
            additions.append({"OrNu": header["OrNu"], "GuLi": sim.new_guid(), **change})
    return updates, additions


# ---------------------------------------------------------------------------- FiEntries


def post_entries(sim: AfasSim, elements: list[Element]) -> Any:
    """Insert journal entries (one ``FiEntryPar`` element = one entry with its lines)."""
    plans = [_entry_plan(sim, element) for element in elements]
    results = []
    for unit, header, lines, invoice in plans:
        number = sim.counter(f"EnNo/{unit}", 70001)
        sim.tables["entries"].extend({**header, **line, "EnNo": number} for line in lines)
        results.append({"EnNo": str(number), "UnId": str(unit), "InID": invoice or ""})
    return one_or_many(results)


def _entry_plan(
    sim: AfasSim, element: Element
) -> tuple[int, dict[str, Any], list[dict[str, Any]], str | None]:
    f = element.fields
    unit = sim.require_unit(f.get("UnId") or sim.options.default_unit)
    sim.require_journal(unit, f["JoCo"])
    sim.require_open_period(unit, int(f["Year"]), int(f["Peri"]))
    lines = element.children("FiEntries")
    if not lines:
        raise AfasError("mandatory", {"label": "Boekingsregels", "name": "FiEntries", "obj": "FiEntryPar"})
    debit = sum((line.fields.get("AmDe") or Decimal(0) for line in lines), Decimal(0))
    credit = sum((line.fields.get("AmCr") or Decimal(0) for line in lines), Decimal(0))
    for line in lines:
        _check_entry_line(sim, unit, line)
    if debit != credit:
        raise AfasError("unbalanced", {"debit": _amount(debit), "credit": _amount(credit)})
    given = next((line.fields["InId"] for line in lines if line.fields.get("InId")), None)
    invoice = given or (sim.next_id("invoices", 70000001) if f.get("AuNu") else None)
    header = {"UnId": unit, "JoCo": f["JoCo"], "Year": int(f["Year"]), "Peri": int(f["Peri"])}
    keys = ("BpNr", "InId", "VaAs", "AcNr", "EnDa", "Ds", "AmDe", "AmCr", "VaId")
    rows = [{**{k: line.fields.get(k) for k in keys}} for line in lines]
    for row in rows:
        row["InId"] = row["InId"] or (invoice if row["VaAs"] in ("2", "3") else None)
    return unit, header, rows, invoice


def _check_entry_line(sim: AfasSim, unit: int, line: Element) -> None:
    f = line.fields
    sim.require_account(unit, str(f.get("VaAs")), f.get("AcNr"))
    if f.get("VaId") is not None:
        sim.require_vat_code(f["VaId"])
    for allocation in line.children("FiDimEntries"):
        for axis in range(1, 6):
            code = allocation.fields.get(f"DiC{axis}")
            if code is not None:
                sim.require_allocation(unit, f.get("AcNr"), axis, code)
    for project_line in line.children("FiPrjEntries"):
        if project_line.fields.get("PrId") is not None:
            sim.require_project(project_line.fields["PrId"])


def _amount(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01")), "f").replace(".", ",")


# ---------------------------------------------------------------------------- PtRealization


def post_realizations(sim: AfasSim, elements: list[Element]) -> Any:
    """Insert project realisation lines (``Element`` may be a list); one session GUID per call."""
    rows = [_realization_row(sim, element) for element in elements]
    keys = [fold(row["XpRe"]) for row in rows if row["XpRe"]]
    if len(set(keys)) != len(keys):
        raise AfasError("already_exists", {"label": "Externe sleutel", "value": keys[-1]})
    session = sim.new_guid()
    results = []
    for row in rows:
        identity = int(sim.next_id("realizations", 1))
        sim.tables["realizations"].add({**row, "Identity": identity})
        results.append({"XpRe": row["XpRe"] or "", "Id": str(identity), "Sessieguid": session})
    return one_or_many(results)


def _realization_refs(
    sim: AfasSim, f: dict[str, Any]
) -> tuple[str | None, dict[str, Any] | None, dict[str, Any]]:
    """Check what a realisation line refers to; returns its debtor id, project row and period row."""
    sim.require_item(f.get("VaIt"), f.get("ItCd"))
    if f.get("EmId") is not None:
        sim.require_employee(f["EmId"])
    if f.get("UnId") is not None:
        sim.require_unit_of_measure(f["UnId"])
    debtor = sim.require_debtor(f["DbId"])["DebtorId"] if f.get("DbId") is not None else None
    project = sim.require_project(f["PrId"], debtor) if f.get("PrId") is not None else None
    period = sim.period_of(project["UnitId"] if project else sim.options.default_unit, f["DaTi"])
    _check_quantity(sim, f.get("Qu"))
    if f.get("XpRe") and sim.tables["realizations"].where(XpRe=f["XpRe"]):
        raise AfasError("already_exists", {"label": "Externe sleutel", "value": f["XpRe"]})
    return debtor, project, period


def _realization_row(sim: AfasSim, element: Element) -> dict[str, Any]:
    f = element.fields
    debtor, project, period = _realization_refs(sim, f)
    quantity = f.get("Qu") if f.get("Qu") is not None else f.get("QuUn")
    chargeable = f.get("Ch") if f.get("Ch") is not None else bool(project and project["Chargeable"])
    now = sim.now()
    return {
        "Year": period["Year"],
        "PeriodId": period["Period"],
        "DateTime": f["DaTi"],
        "EmployeeId": f.get("EmId"),
        "ProjectId": project["ProjectId"] if project else None,
        "Description": f.get("Ds"),
        "ItemType": f.get("VaIt"),
        "ItemCodeId": f.get("ItCd"),
        "InitId": f.get("UnId"),  # the unit (e.g. UUR), not an administration
        "QuantityUnit": quantity,
        "Chargeable": chargeable,
        "Approved": bool(f.get("Ap")),
        "Prepared": bool(f.get("Pr")),
        "DateModified": now,
        "SystemDate": now,
        "XpRe": f.get("XpRe"),
        "DebtorId": debtor or (project["DebtorId"] if project else None),
    }


def _check_quantity(sim: AfasSim, quantity: Decimal | None) -> None:
    if quantity is not None and sim.options.strict_quantity and not quantity_ok(quantity):
        raise AfasError("quantity_step", {"quantity": format(quantity, "f").replace(".", ",")})


def put_realizations(sim: AfasSim, elements: list[Element]) -> None:
    """Update realisation lines by ``Id``; a line cannot move to another period."""
    plans = []
    for element in elements:
        row = sim.tables["realizations"].get(int(element.get("Id")))
        if row is None:
            raise AfasError("record_not_found", {"label": "Regelnummer", "value": element.get("Id")})
        plans.append((row, _realization_changes(sim, element.fields, row)))
    for row, changes in plans:
        sim.tables["realizations"].update(row, {**changes, "DateModified": sim.now()})


def _realization_changes(sim: AfasSim, f: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    if f.get("DaTi") is not None and (f["DaTi"].year, f["DaTi"].month) != (
        row["DateTime"].year,
        row["DateTime"].month,
    ):
        raise AfasError("period_move")
    if f.get("ItCd") is not None:
        sim.require_item(f.get("VaIt") or row["ItemType"], f["ItCd"])
    if f.get("EmId") is not None:
        sim.require_employee(f["EmId"])
    _check_quantity(sim, f.get("Qu"))
    names = {"DaTi": "DateTime", "Qu": "QuantityUnit", "Ds": "Description", "ItCd": "ItemCodeId"}
    names |= {"EmId": "EmployeeId", "Ap": "Approved", "Pr": "Prepared", "Ch": "Chargeable"}
    return {target: f[source] for source, target in names.items() if f.get(source) is not None}


# ---------------------------------------------------------------------------- DELETE


def parse_delete_path(segments: list[str]) -> list[tuple[str, dict[str, str]]]:
    """``Obj/@Key/v`` or ``Obj/@K1,@K2/v1,v2``, nested as ``Parent/K1,K2/v1,v2/Child/@Key/v``."""
    if not segments or len(segments) % 3:
        raise unexpected()
    path = []
    for start in range(0, len(segments), 3):
        name, keys, values = segments[start : start + 3]
        names = [k.strip().lstrip("@") for k in keys.split(",")]
        texts = [unquote(v) for v in values.split(",")]
        if len(names) != len(texts) or not all(names):
            raise unexpected()
        path.append((name, dict(zip(names, texts, strict=True))))
    return path


def delete(sim: AfasSim, connector: str, segments: list[str]) -> None:
    """Hard-delete through an UpdateConnector (only where Profit allows it here)."""
    handler = DELETERS.get(connector)
    if handler is None:
        raise AfasError("delete_not_supported", {"connector": connector})
    path = parse_delete_path(segments)
    handler(sim, path)
    sim.posted.append(Posted(connector, "DELETE", "/".join(segments), None))


def _delete_invoice(sim: AfasSim, path: list[tuple[str, dict[str, str]]]) -> None:
    name, keys = path[-1]
    if fold(name) != fold("FbDirectInvoice") or "OrNu" not in keys:
        raise AfasError("unknown_object", {"name": name, "parent": "FbDirectInvoice"})
    header = sim.tables["invoices"].get(keys["OrNu"])
    if header is None:
        raise AfasError("record_not_found", {"label": "Nummer", "value": keys["OrNu"]})
    sim.tables["invoice_lines"].remove(sim.tables["invoice_lines"].where(OrNu=header["OrNu"]))
    sim.tables["invoices"].remove([header])


HANDLERS: dict[tuple[str, str], Handler] = {
    ("FbDirectInvoice", "POST"): post_direct_invoice,
    ("FbDirectInvoice", "PUT"): put_direct_invoice,
    ("FiEntries", "POST"): post_entries,
    ("PtRealization", "POST"): post_realizations,
    ("PtRealization", "PUT"): put_realizations,
    **afas_relations.HANDLERS,
    **afas_hr.HANDLERS,
}
DELETERS: dict[str, Callable[[AfasSim, list[tuple[str, dict[str, str]]]], None]] = {
    "FbDirectInvoice": _delete_invoice,
    **afas_hr.DELETERS,
}
UPDATE_DESCRIPTIONS: dict[str, str] = {
    "FbDirectInvoice": "Directe factuur",
    "FiEntries": "Financiële mutaties",
    "PtRealization": "Nacalculatie",
    "KnSalesRelationOrg": "Verkooprelatie organisatie",
    "KnOrganisation": "Organisatie",
    "KnPerson": "Persoon",
    "HrIllness": "Ziekteverzuim",
    "KnOrgUnit": "Organisatorische eenheid",
}
