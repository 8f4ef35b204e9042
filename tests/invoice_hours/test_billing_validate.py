import pandas as pd
import pytest

from schemas.billing import Rejects
from schemas.registrations import ValidRegistrations
from tasks.invoice_hours.validate import RegistrationContractError, split_valid
from tests.billing_factories import registration, registrations


def reasons(rejects: pd.DataFrame) -> dict[str, str]:
    return dict(zip(rejects["registration_id"], rejects["reason"], strict=True))


def test_valid_rows_pass_with_whole_minutes_as_int():
    frame = registrations(registration(registration_id="a", minutes=45), registration(registration_id="b"))
    valid, rejects = split_valid(frame)
    assert list(valid["registration_id"]) == ["a", "b"]
    assert valid["minutes"].dtype == "int64"
    assert list(valid["minutes"]) == [45, 60]
    assert rejects.empty
    ValidRegistrations.validate(valid)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (
            {"entry_date": pd.NaT, "entry_date_raw": "31-10-2026 14:00"},
            "entry_date: unparseable '31-10-2026 14:00'",
        ),
        ({"entry_date": pd.NaT, "entry_date_raw": None}, "entry_date: missing"),
        (
            {"minutes": pd.NA, "time_spent_raw": 1234.0, "time_unit": "seconds"},
            "minutes: unit mismatch (bulk value 1234 s is not whole minutes)",
        ),
        ({"minutes": pd.NA, "time_spent_raw": float("nan")}, "minutes: missing"),
        (
            {"minutes": pd.NA, "time_spent_raw": 12.5, "time_unit": "minutes"},
            "minutes: not a whole number of minutes (12.5 min)",
        ),
        ({"minutes": 0}, "minutes: must be > 0"),
        ({"minutes": -30}, "minutes: must be > 0"),
        ({"minutes": 1800}, "minutes: 1800 exceeds the maximum of 720 per registration"),
        ({"kind": "task"}, "kind: unknown 'task'"),
    ],
)
def test_each_reject_reason_names_the_field_and_value(overrides, reason):
    frame = registrations(
        registration(registration_id="ok"), registration(registration_id="bad", **overrides)
    )
    valid, rejects = split_valid(frame)
    assert list(valid["registration_id"]) == ["ok"]
    assert reasons(rejects) == {"bad": reason}
    assert list(rejects["step"]) == ["validate"]
    Rejects.validate(rejects)


def test_missing_registration_id_is_rejected_and_kept():
    frame = registrations(registration(registration_id=None), registration(registration_id=""))
    valid, rejects = split_valid(frame)
    assert valid.empty
    assert list(rejects["reason"]) == ["registration_id: missing", "registration_id: missing"]


def test_several_failures_give_one_reject_with_the_reasons_joined():
    bad = registration(registration_id="bad", minutes=-5, entry_date=pd.NaT, entry_date_raw="gisteren")
    _, rejects = split_valid(registrations(bad))
    assert len(rejects) == 1
    assert rejects.loc[0, "reason"] == "entry_date: unparseable 'gisteren'; minutes: must be > 0"


def test_rejects_keep_every_original_column_and_value():
    bad = registration(registration_id="bad", minutes=0, notes="héél ✓ raar\x00", customer_number=" 10001 ")
    frame = registrations(bad)
    _, rejects = split_valid(frame)
    assert list(rejects.columns) == [*frame.columns, "reason", "step"]
    assert rejects.loc[0, "notes"] == "héél ✓ raar\x00"
    assert rejects.loc[0, "customer_number"] == " 10001 "
    assert rejects.loc[0, "time_spent_raw"] == 0.0


def test_exact_duplicates_count_once_and_are_not_rejected():
    row = registration(registration_id="twice")
    valid, rejects = split_valid(registrations(row, dict(row), registration(registration_id="other")))
    assert list(valid["registration_id"]) == ["twice", "other"]
    assert rejects.empty


def test_same_id_with_different_content_is_one_reject():
    first = registration(registration_id="dup", minutes=30)
    second = {**first, "minutes": 45, "time_spent_raw": 2700.0}
    third = {**first, "minutes": 0, "time_spent_raw": 0.0}
    valid, rejects = split_valid(registrations(first, second, third, registration(registration_id="ok")))
    assert list(valid["registration_id"]) == ["ok"]
    assert reasons(rejects) == {"dup": "registration_id: duplicate (3 rows with different content)"}
    assert rejects.loc[0, "minutes"] == 30  # the first row stands for the registration


def test_a_conflicting_duplicate_keeps_its_own_other_failures():
    first = registration(registration_id="dup", entry_date=pd.NaT, entry_date_raw="x")
    second = {**first, "notes": "changed"}
    _, rejects = split_valid(registrations(first, second))
    assert reasons(rejects) == {
        "dup": "registration_id: duplicate (2 rows with different content); entry_date: unparseable 'x'"
    }


def test_configured_maximum():
    frame = registrations(registration(registration_id="long", minutes=300))
    _, rejects = split_valid(frame, max_minutes=240)
    assert reasons(rejects) == {"long": "minutes: 300 exceeds the maximum of 240 per registration"}


def test_microsecond_datetimes_from_pandas_3_parsing_are_accepted():
    frame = registrations(registration(registration_id="us"))
    for column in ("entry_date", "creation_date", "modification_date"):
        frame[column] = frame[column].astype("datetime64[us, UTC]")
    valid, _ = split_valid(frame)
    assert str(valid["entry_date"].dtype) == "datetime64[ns, UTC]"
    assert valid.loc[0, "entry_date"] == pd.Timestamp("2026-10-06T08:00:00Z")


def test_a_missing_column_is_a_contract_error_not_a_reject():
    frame = registrations(registration()).drop(columns=["customer_number"])
    with pytest.raises(RegistrationContractError, match="lacks columns: customer_number"):
        split_valid(frame)


def test_an_empty_read_gives_empty_frames():
    valid, rejects = split_valid(registrations())
    assert valid.empty and rejects.empty
