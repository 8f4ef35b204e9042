"""absence-to-afas planning: match by employee, employment and start date; HrIllness payloads; watermark."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pandas as pd

from connectors.occupational_health.client import records_frame
from connectors.occupational_health.endpoints import REGISTERED_ABSENCES
from tasks.hr_sync.absences import PLAN_COLUMNS, plan_absences
from tasks.hr_sync.config import HrConfig
from tasks.hr_sync.mapping import columns_of
from tasks.hr_sync.tasks import absences_watermark

CONFIG = HrConfig()
STAMP = "2026-11-10T09:00:00+00:00"


def registered(*rows: dict) -> pd.DataFrame:
    base = {
        "employee_external_id": "1001",
        "employment_external_id": "1001-1",
        "start_date": "2026-11-02",
        "report_date": None,
        "expected_end": "2026-11-09",
        "end_date": None,
        "presence_pct": "0",
        "active": True,
        "version": 1,
        "created_at": STAMP,
        "updated_at": STAMP,
    }
    return records_frame([{**base, **row} for row in rows], REGISTERED_ABSENCES)


def afas(*rows: dict) -> pd.DataFrame:
    columns = columns_of("absences", CONFIG)
    return pd.DataFrame([{c: row.get(c) for c in columns} for row in rows], columns=columns, dtype=object)


def by_id(plan: pd.DataFrame) -> dict[str, dict]:
    assert list(plan.columns) == PLAN_COLUMNS
    return {row["external_id"]: row for row in plan.to_dict(orient="records")}


def test_a_new_absence_is_inserted_with_the_dienstverband_and_mandatory_fields():
    plan = by_id(plan_absences(registered({"external_id": "RA-00001", "presence_pct": "50"}), afas(), CONFIG))
    row = plan["RA-00001"]
    assert row["action"] == "insert" and row["employment_id"] == "1" and row["start_date"] == "2026-11-02"
    assert row["payload"] == {
        "Fields": {
            "EmId": "1001",
            "DaBe": "2026-11-02",
            "DMeB": "2026-11-02",  # no report date: the start
            "DaEs": "2026-11-09",
            "TPBe": 0,
            "ViIt": "Z",
            "EnSe": 1,
        },
        "Objects": {
            "HrAbsIllnessProgress": {"Element": {"Fields": {"DaTi": "2026-11-02", "PsPc": Decimal("50")}}}
        },
    }


def test_an_absence_already_in_afas_is_left_alone_or_updated_with_only_what_changed():
    existing = {
        "id": "77",
        "employee_id": "1001",
        "employment_id": "1",
        "start_date": "2026-11-02",
        "report_date": "2026-11-02",
        "expected_end": "2026-11-09",
        "end_date": None,
        "presence_pct": "0.00",
    }
    same = registered({"external_id": "RA-1"})
    assert by_id(plan_absences(same, afas(existing), CONFIG))["RA-1"]["action"] == "unchanged"

    closed = registered({"external_id": "RA-1", "end_date": "2026-11-06", "presence_pct": "50"})
    row = by_id(plan_absences(closed, afas(existing), CONFIG))["RA-1"]
    assert row["action"] == "update" and row["fields"] == "end_date, presence_pct"
    assert row["payload"]["Fields"] == {"EmId": "1001", "DaBe": "2026-11-02", "DaEn": "2026-11-06"}
    progress = row["payload"]["Objects"]["HrAbsIllnessProgress"]["Element"]["Fields"]
    assert progress == {
        "DaTi": "2026-11-10",
        "PsPc": Decimal("50"),
    }  # from the day it changed in the OH system

    reopened = by_id(plan_absences(same, afas({**existing, "end_date": "2026-11-05"}), CONFIG))["RA-1"]
    assert reopened["payload"]["Fields"] == {"EmId": "1001", "DaBe": "2026-11-02", "DaEn": ""}


def test_refusals_say_why():
    plan = by_id(
        plan_absences(
            registered(
                {"external_id": "RA-1", "expected_end": None},
                {"external_id": "RA-2", "employment_external_id": "1002-1"},
                {"external_id": "RA-3", "employment_external_id": "1001-2"},
                {"external_id": "RA-4", "end_date": "2026-11-01"},
            ),
            afas({"id": "5", "employee_id": "1001", "employment_id": "1", "start_date": "2026-11-02"}),
            CONFIG,
        )
    )
    assert {k: r["action"] for k, r in plan.items()} == {
        k: "rejected" for k in ("RA-1", "RA-2", "RA-3", "RA-4")
    }
    assert plan["RA-1"]["reason"] == "expected_end: missing (AFAS needs an expected end date, DaEs)"
    assert plan["RA-2"]["reason"] == "employment_external_id does not belong to employee_external_id"
    assert (
        plan["RA-3"]["reason"]
        == "AFAS has absence 5 of employee 1001 starting 2026-11-02 on employment 1, not 2"
    )
    assert plan["RA-4"]["reason"] == "end_date lies before start_date"


def test_the_watermark_moves_to_the_newest_absence_but_stays_before_a_failure():
    frame = registered(
        {"external_id": "RA-1", "updated_at": "2026-11-10T09:00:00+00:00"},
        {"external_id": "RA-2", "updated_at": "2026-11-11T09:00:00+00:00"},
        {"external_id": "RA-3", "updated_at": "2026-11-12T09:00:00+00:00"},
    )
    ok = pd.DataFrame(
        {"external_id": ["RA-1", "RA-2", "RA-3"], "outcome": ["inserted", "rejected", "unchanged"]}
    )
    assert absences_watermark(ok, frame) == datetime(2026, 11, 12, 9, 0, tzinfo=UTC)
    failed = ok.assign(outcome=["inserted", "failed", "inserted"])
    assert absences_watermark(failed, frame) == datetime(2026, 11, 11, 8, 59, 59, 999999, tzinfo=UTC)
    assert absences_watermark(ok.iloc[0:0], frame.iloc[0:0]) is None


def test_registered_frame_dates_are_dates():
    frame = registered({"external_id": "RA-1"})
    assert frame.at[0, "start_date"] == date(2026, 11, 2) and frame.at[0, "presence_pct"] == Decimal("0")
