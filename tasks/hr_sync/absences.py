"""absence-to-afas: absences registered in the OH system → AFAS ``HrIllness`` inserts and updates.

Each registered absence is matched with AFAS's absences (``Profit_Illness``) by employee and start date —
AFAS allows one absence per employee at a time — and must then be on the same employment (Dienstverband,
``EnSe``/``DvId``). No match: insert (POST). A match that differs in end date, expected end, report date
or presence: update (PUT, found by ``EmId`` + ``DaBe``). Otherwise nothing. Because the match is made
against AFAS itself, a rerun never duplicates an absence; after a lost answer to a POST the absence is
looked up again before it is posted again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd
from pandera.errors import SchemaErrors

from connectors.afas.client import AfasClient
from connectors.afas.filters import Filter
from connectors.afas.payloads import element
from connectors.errors import AuthError, BusinessError, ConnectorError, UncertainOutcome
from connectors.occupational_health.endpoints import split_employment_external_id
from schemas.hr import ValidRegisteredAbsences, as_decimal
from tasks.hr_sync.config import HrConfig
from tasks.hr_sync.extract import describe
from tasks.hr_sync.mapping import empty, normalise
from tasks.hr_sync.validate import phrase

PLAN_COLUMNS = [
    "external_id",
    "employee_id",
    "employment_id",
    "start_date",
    "action",
    "fields",
    "reason",
    "updated_at",
    "payload",
]
BATCH = 20  # employees per Profit_Illness read: OR-groups must stay inside AFAS's 2049-character query
POST_ATTEMPTS = 3


def _day(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, date) else None


def _presence(value: Any) -> Decimal:
    number = as_decimal(value) if value is not None else None
    return number if number is not None else Decimal(0)


def validate_registered(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """``(valid, reasons)``: registered absences AFAS can take, and a reason per refused external id."""
    frame = frame.reset_index(drop=True)
    try:
        ValidRegisteredAbsences.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return frame, {}
    texts: dict[int, list[str]] = {}
    for case in cases.itertuples(index=False):
        text = phrase(case.schema_context, case.column, str(case.check), case.failure_case)
        if case.column == "expected_end" and case.check == "not_nullable":
            text = "expected_end: missing (AFAS needs an expected end date, DaEs)"
        texts.setdefault(int(case.index), []).append(text)
    reasons = {str(frame.at[i, "external_id"]): "; ".join(dict.fromkeys(t)) for i, t in texts.items()}
    return frame.drop(index=list(texts)).reset_index(drop=True), reasons


def afas_employees(registered: pd.DataFrame) -> list[str]:
    """The employees whose AFAS absences must be read (sorted, distinct)."""
    return sorted({str(e) for e in registered["employee_external_id"].dropna()})


async def read_afas_absences(client: AfasClient, config: HrConfig, employees: list[str]) -> pd.DataFrame:
    """The normalised AFAS absences of ``employees``, read in batches of OR-ed employee filters."""
    source, column = config.absences, config.absences.columns.employee_id
    frames = []
    for start in range(0, len(employees), BATCH):
        groups = [[Filter(column, "=", e)] for e in employees[start : start + BATCH]]
        raw = await client.read_frame(describe(source), filters=groups)
        frames.append(normalise("absences", raw, config))
    return pd.concat(frames, ignore_index=True) if frames else empty("absences", config)


@dataclass(frozen=True)
class _Registered:
    """One valid registered absence in plain values."""

    external_id: str
    employee: str
    employment: str
    start: str
    report: str
    expected: str
    end: str | None
    presence: Decimal
    updated_at: Any


def _registered(row: dict[str, Any]) -> _Registered:
    employee, employment = split_employment_external_id(row["employment_external_id"])
    start = _day(row["start_date"]) or ""
    return _Registered(
        external_id=str(row["external_id"]),
        employee=str(row["employee_external_id"]),
        employment=employment if employee == row["employee_external_id"] else "",
        start=start,
        report=_day(row["report_date"]) or start,
        expected=_day(row["expected_end"]) or "",
        end=_day(row["end_date"]),
        presence=_presence(row["presence_pct"]),
        updated_at=row["updated_at"],
    )


def plan_absences(registered: pd.DataFrame, afas: pd.DataFrame, config: HrConfig) -> pd.DataFrame:
    """One row per registered absence: ``insert``, ``update``, ``unchanged`` or ``rejected`` (with reason)."""
    valid, reasons = validate_registered(registered)
    rows = [
        {"external_id": key, "action": "rejected", "reason": reason, "fields": ""}
        for key, reason in reasons.items()
    ]
    index = {(a["employee_id"], a["start_date"]): a for a in afas.to_dict(orient="records")}
    for row in valid.to_dict(orient="records"):
        absence = _registered(row)
        rows.append(_decide(absence, index.get((absence.employee, absence.start)), config))
    frame = pd.DataFrame(rows, columns=PLAN_COLUMNS, dtype=object)
    return frame.sort_values("external_id", kind="stable").reset_index(drop=True)


def _decide(absence: _Registered, match: dict[str, Any] | None, config: HrConfig) -> dict[str, Any]:
    base = {
        "external_id": absence.external_id,
        "employee_id": absence.employee,
        "employment_id": absence.employment,
        "start_date": absence.start,
        "updated_at": absence.updated_at,
        "reason": "",
        "fields": "",
    }
    if not absence.employment:
        reason = "employment_external_id does not belong to employee_external_id"
        return {**base, "action": "rejected", "reason": reason}
    if match is None:
        return {**base, "action": "insert", "payload": illness_insert(absence, config)}
    if str(match["employment_id"]) != absence.employment:
        reason = (
            f"AFAS has absence {match['id']} of employee {absence.employee} starting {absence.start} "
            f"on employment {match['employment_id']}, not {absence.employment}"
        )
        return {**base, "action": "rejected", "reason": reason}
    changed = _differences(absence, match)
    if not changed:
        return {**base, "action": "unchanged", "reason": f"AFAS absence {match['id']} is up to date"}
    return {
        **base,
        "action": "update",
        "fields": ", ".join(changed),
        "payload": illness_update(absence, changed),
    }


def _differences(absence: _Registered, match: dict[str, Any]) -> list[str]:
    wanted = {
        "end_date": absence.end,
        "expected_end": absence.expected,
        "report_date": absence.report,
    }
    changed = [name for name, value in wanted.items() if (match.get(name) or None) != value]
    if _presence(match.get("presence_pct")) != absence.presence:
        changed.append("presence_pct")
    return changed


def _progress(day: str, presence: Decimal) -> dict[str, Any]:
    # HrAbsIllnessProgress: DaTi = from when, PsPc = presence percentage (reference §8).
    return {"HrAbsIllnessProgress": element({"DaTi": day, "PsPc": presence})}


def illness_insert(absence: _Registered, config: HrConfig) -> dict[str, Any]:
    """The ``HrIllness`` element of a new absence (reference §8; dates ``YYYY-MM-DD``, decision §11.16)."""
    fields: dict[str, Any] = {
        "EmId": absence.employee,  # Medewerker
        "DaBe": absence.start,  # Begindatum verzuim
        "DMeB": absence.report,  # Begin verzuimmelding
        "DaEs": absence.expected,  # Verwachte einddatum
        "TPBe": 0,  # Eerste dag aanwezig: nee
        "ViIt": config.absence_to_afas.absence_type,  # Type verzuim (Z = Ziek)
        "EnSe": int(absence.employment),  # Dienstverband (never DvSn, decision §11.15)
    }
    if absence.end:
        fields["DaEn"] = absence.end  # Einddatum verzuim
    return element(fields, objects=_progress(absence.start, absence.presence))


def illness_update(absence: _Registered, changed: list[str]) -> dict[str, Any]:
    """The ``HrIllness`` PUT element: the absence is found by ``EmId`` + ``DaBe``; only changed fields."""
    fields: dict[str, Any] = {"EmId": absence.employee, "DaBe": absence.start}
    if "end_date" in changed:
        fields["DaEn"] = absence.end or ""  # "" reopens the absence
    if "expected_end" in changed:
        fields["DaEs"] = absence.expected
    if "report_date" in changed:
        fields["DMeB"] = absence.report
    objects = None
    if "presence_pct" in changed:
        changed_on = pd.Timestamp(absence.updated_at).tz_convert("Europe/Amsterdam").date().isoformat()
        objects = _progress(max(changed_on, absence.start), absence.presence)
    return element(fields, objects=objects)


async def load_absences(client: AfasClient, plan: pd.DataFrame, config: HrConfig) -> pd.DataFrame:
    """Post the inserts and updates; every row gets an ``outcome`` and a ``message``."""
    outcomes, messages = [], []
    for row in plan.to_dict(orient="records"):
        outcome, message = await _load_one(client, row, config)
        outcomes.append(outcome)
        messages.append(message)
    return plan.assign(outcome=outcomes, message=messages)


async def _load_one(client: AfasClient, row: dict[str, Any], config: HrConfig) -> tuple[str, str]:
    if row["action"] not in ("insert", "update"):
        return row["action"], row["reason"]
    try:
        if row["action"] == "update":
            await client.update("HrIllness", row["payload"])
            return "updated", f"fields {row['fields']}"
        return await _insert_once(client, row, config)
    except AuthError:
        raise
    except BusinessError as exc:
        return "rejected", exc.external_message
    except ConnectorError as exc:
        return "failed", str(exc)


async def _insert_once(client: AfasClient, row: dict[str, Any], config: HrConfig) -> tuple[str, str]:
    """POST; after a lost answer, look the absence up (employee + start date) before posting again."""
    last: UncertainOutcome | None = None
    for _ in range(POST_ATTEMPTS):
        try:
            keys = await client.insert("HrIllness", row["payload"])
            return "inserted", f"AFAS absence {keys.get('AbId', '?')}"
        except UncertainOutcome as exc:
            last = exc
        found = await read_afas_absences(client, config, [row["employee_id"]])
        match = found[found["start_date"] == row["start_date"]]
        if not match.empty:
            return "inserted", f"AFAS absence {match['id'].iloc[0]} (found after a lost answer)"
    assert last is not None  # noqa: S101 — the loop only ends here after uncertain outcomes
    raise last
