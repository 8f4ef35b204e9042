"""HR UpdateConnectors: absence (``HrIllness``, reference §8) and departments (``KnOrgUnit``).

``HrIllness`` POST needs an existing employee (``EmId``, else Profit's ``De ingevulde waarde bij
'Medewerker' bestaat niet.``) and refuses an absence overlapping one the employee already has; the
employment (``EnSe`` = Dienstverband) defaults to the one active on the start date. PUT finds the absence
by employee + start date (``DaBe``); an empty ``DaEn`` reopens it. DELETE takes ``@EmId`` (one absence),
``@EmId,@DaBe`` or ``@AbId``. ``KnOrgUnit`` (root ``KnOrgunit``) needs a known parent (``ReOu``, possibly
created earlier in the same body) and manager (``MaId``); DELETE ``@OuId`` refuses units with children.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.afas.errors import AfasError
from sandbox.afas.schemas import Element
from sandbox.afas.state import AfasSim
from sandbox.afas.tables import fold

_ABSENCE_TYPES = {
    "Z": "Ziek",
    "ZW": "Ziektewet",
    "ZZW": "Zwangerschap",
    "AO": "Arbeidsongeval",
    "B": "Bedrijfsongeval",
}
_ILLNESS_FIELDS = {"DaEn": "EndDate", "DaEs": "ExEndDate", "ViIt": "AbsenceTypeId", "ViIr": "ReasonId"}
_ILLNESS_FIELDS |= {"DMeB": "ReportDate", "DMeE": "ReportEndDate", "ViRs": "ReasonEnd", "TPBe": "FirstDay"}

Path = list[tuple[str, dict[str, str]]]


# ---------------------------------------------------------------------------- HrIllness


def post_illness(sim: AfasSim, elements: list[Element]) -> Any:
    """Register absences; returns ``AbId`` and the braced ``GUID`` per absence."""
    rows = [_illness_row(sim, element) for element in elements]
    results = []
    for row in rows:
        absence, guid = int(sim.next_id("illness", 1)), sim.new_guid()
        sim.tables["illness"].add({**row, "AbsenceId": absence, "GUID": guid})
        results.append({"AbId": str(absence), "GUID": guid})
    return results[0] if len(results) == 1 else results


def _illness_row(sim: AfasSim, element: Element) -> dict[str, Any]:
    f = element.fields
    employee = sim.require_employee(f["EmId"])["EmployeeId"]
    employment = _employment(sim, employee, f.get("EnSe"), f["DaBe"])
    _check_overlap(sim, employee, f["DaBe"], f.get("DaEn"))
    kind = str(f["ViIt"])
    return {
        "EmployerId": employment.get("EmployerId") or "1",
        "EmployeeId": employee,
        "StartDate": f["DaBe"],
        "AbsenceTypeDesc": _ABSENCE_TYPES.get(kind, kind),
        "Presence": _presence(element) or Decimal(0),
        "ModifiedDate": sim.now(),
        "DvId": employment["DvId"],
        "Continuous": False,
        "Vangnet": int(bool(f.get("SfNt"))),
        "NoStatistic": 0,
        "ApplyQualifyingDays": 0,
        **{column: f.get(name) for name, column in _ILLNESS_FIELDS.items()},
        "ReportEndDate": f.get("DMeE") or f.get("DaEn"),
    }


def _employment(sim: AfasSim, employee: str, number: object, start: datetime) -> dict[str, Any]:
    mine = sorted(sim.tables["employments"].where(EmployeeId=employee), key=lambda row: row["DvId"])
    if number is not None:
        chosen = [row for row in mine if str(row["DvId"]) == str(number)]
    else:
        chosen = [
            row
            for row in mine
            if row["StartDate"] <= start and (row["EndDate"] is None or row["EndDate"] >= start)
        ]
        chosen = chosen or mine
    if not chosen:
        raise AfasError("not_exists", {"label": "Dienstverband"})
    return chosen[0]


def _check_overlap(sim: AfasSim, employee: str, start: datetime, end: datetime | None) -> None:
    for row in sim.tables["illness"].where(EmployeeId=employee):
        starts_before_end = end is None or row["StartDate"] <= end
        if starts_before_end and (row["EndDate"] is None or row["EndDate"] >= start):
            raise AfasError("absence_overlap", {"employee": employee})


def _presence(element: Element) -> Decimal | None:
    progress = element.children("HrAbsIllnessProgress")
    return progress[-1].fields.get("PsPc") if progress else None


def put_illness(sim: AfasSim, elements: list[Element]) -> None:
    """Update absences found by employee + start date; an empty ``DaEn`` reopens one."""
    plans = [(_absence(sim, element.fields["EmId"], element.fields["DaBe"]), element) for element in elements]
    for row, element in plans:
        f = element.fields
        changes = {column: f[name] for name, column in _ILLNESS_FIELDS.items() if name in f}
        if "DaEn" in f:
            changes["ReportEndDate"] = f["DaEn"]
        if (presence := _presence(element)) is not None:
            changes["Presence"] = presence
        sim.tables["illness"].update(row, {**changes, "ModifiedDate": sim.now()})


def _absence(sim: AfasSim, employee: object, start: datetime | None) -> dict[str, Any]:
    rows = sim.tables["illness"].where(EmployeeId=employee)
    if start is not None:
        rows = [row for row in rows if row["StartDate"].date() == start.date()]
    if len(rows) != 1:
        key = "record_not_found" if not rows else "ambiguous"
        raise AfasError(key, {"label": "Verzuimmelding van medewerker", "value": employee})
    return rows[0]


def _delete_illness(sim: AfasSim, path: Path) -> None:
    _, keys = path[-1]
    if "AbId" in keys:
        row = sim.tables["illness"].get(int(keys["AbId"])) if keys["AbId"].isdigit() else None
        if row is None:
            raise AfasError("record_not_found", {"label": "Verzuimmelding", "value": keys["AbId"]})
    elif "EmId" in keys:
        start = datetime.fromisoformat(keys["DaBe"][:19]) if keys.get("DaBe") else None
        row = _absence(sim, keys["EmId"], start)
    else:
        raise AfasError("bad_shape", {"where": "DELETE HrIllness"})
    sim.tables["illness"].remove([row])


# ---------------------------------------------------------------------------- KnOrgUnit


def post_org_units(sim: AfasSim, elements: list[Element]) -> Any:
    """Insert organisational units (parents may be inserted earlier in the same body)."""
    planned: dict[str, dict[str, Any]] = {}
    for element in elements:
        unit = str(element.get("OuId"))
        if sim.tables["org_units"].get(unit) is not None or fold(unit) in planned:
            raise AfasError("already_exists", {"label": "Organisatorische eenheid", "value": unit})
        planned[fold(unit)] = {"OrgUnitId": unit, **_unit_changes(sim, element.fields, planned)}
    sim.tables["org_units"].extend(planned.values())
    results = [{"OuId": row["OrgUnitId"]} for row in planned.values()]
    return results[0] if len(results) == 1 else results


def _unit_changes(sim: AfasSim, f: dict[str, Any], planned: dict[str, dict[str, Any]]) -> dict[str, Any]:
    parent = f.get("ReOu")
    if parent is not None and sim.tables["org_units"].get(parent) is None and fold(parent) not in planned:
        raise AfasError("not_exists", {"label": "Org. eenheid rapporteert aan"})
    if f.get("MaId") is not None:
        sim.require_employee(f["MaId"])
    names = {"Ds": "Description", "ReOu": "ParentId", "MaId": "ManagerId"}
    return {column: f[name] for name, column in names.items() if name in f} | {"ModifiedDate": sim.now()}


def put_org_units(sim: AfasSim, elements: list[Element]) -> None:
    """Update organisational units by ``OuId``."""
    for element in elements:
        row = sim.tables["org_units"].get(element.get("OuId"))
        if row is None:
            raise AfasError(
                "record_not_found", {"label": "Organisatorische eenheid", "value": element.get("OuId")}
            )
        if fold(element.fields.get("ReOu")) == fold(row["OrgUnitId"]):
            raise AfasError("not_exists", {"label": "Org. eenheid rapporteert aan"})
        sim.tables["org_units"].update(row, _unit_changes(sim, element.fields, {}))


def _delete_org_unit(sim: AfasSim, path: Path) -> None:
    _, keys = path[-1]
    row = sim.tables["org_units"].get(keys.get("OuId"))
    if row is None:
        raise AfasError("record_not_found", {"label": "Organisatorische eenheid", "value": keys.get("OuId")})
    if sim.tables["org_units"].where(ParentId=row["OrgUnitId"]):
        raise AfasError("has_children", {"unit": row["OrgUnitId"]})
    sim.tables["org_units"].remove([row])


HANDLERS = {
    ("HrIllness", "POST"): post_illness,
    ("HrIllness", "PUT"): put_illness,
    ("KnOrgUnit", "POST"): post_org_units,
    ("KnOrgUnit", "PUT"): put_org_units,
}
DELETERS = {"HrIllness": _delete_illness, "KnOrgUnit": _delete_org_unit}
