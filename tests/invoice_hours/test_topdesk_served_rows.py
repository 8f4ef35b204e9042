"""Served = read, without a server: every JSON value TOPdesk could serve becomes a row, none crashes.

Plain functions only (the connector's record builders, the contract frame, validation and the served
accounting): arbitrary rows go in, and every served row comes out valid, rejected with a reason naming
the field, or collapsed as a duplicate, counted.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.topdesk.timeregistrations import (
    ODataOptions,
    contract_frame,
    incident_record,
    odata_record,
)
from tasks.invoice_hours.buckets import assemble_buckets
from tasks.invoice_hours.served import served_conservation
from tasks.invoice_hours.validate import split_valid

PARENT = "11111111-2222-4333-8444-555555555555"
TICKETS = {PARENT: {"id": PARENT, "number": "I 2610 001", "callerBranch": {"clientReferenceNumber": "10001"}}}
GOOD = {
    "id": "aaaaaaaa-0000-4000-8000-000000000001",
    "timeSpent": 1800,
    "entryDate": "2026-10-05T10:00:00.000+0000",
    "parent": {"id": PARENT},
    "notes": "ok",
}


def reasons_of(*rows: object) -> list[str]:
    frame = contract_frame([incident_record(row, TICKETS, "optionalFields1.text1") for row in rows])
    _, rejects = split_valid(frame)
    return rejects["reason"].tolist()


def test_each_bad_value_is_a_reject_naming_the_field():
    cases = {
        "entryDate 9999": ({**GOOD, "entryDate": "9999-12-31T00:00:00.000+0000"}, "entry_date: unparseable"),
        "huge seconds": ({**GOOD, "timeSpent": 10**30}, "timeSpent: not a usable number"),
        "fractional seconds": ({**GOOD, "timeSpent": 90.5}, "minutes: unit mismatch"),
        "text seconds": ({**GOOD, "timeSpent": "3600"}, "timeSpent: not a usable number ('3600')"),
        "null element": (None, "row: not an object (None)"),
        "text element": ("garbage", "row: not an object ('garbage')"),
        "id object": ({**GOOD, "id": {"x": 1}}, "id: not an id ({'x': 1})"),
        "no id": ({**GOOD, "id": None}, "registration_id: missing"),
        "parent text": ({**GOOD, "parent": "x"}, "parent.id: missing"),
        "unknown parent": (
            {**GOOD, "parent": {"id": "ffff"}},
            "parent.id: incident 'ffff' unknown to TOPdesk",
        ),
    }
    for name, (row, expected) in cases.items():
        got = reasons_of(row)
        assert len(got) == 1 and expected in got[0], (name, got)


def test_odata_rows_name_their_own_property_names():
    c = ODataOptions()
    row = {"Id": "x1", "TicketId": None, "EntryDate": "2026-10-05T10:00:00Z", "TimeSpentMinutes": 12.5}
    frame = contract_frame([odata_record(row, "problem", {}, c), odata_record([1], "problem", {}, c)])
    _, rejects = split_valid(frame)
    assert rejects["reason"].str.startswith("TicketId: missing").tolist() == [True, False]
    assert "not a whole number of minutes (12.5 min)" in rejects["reason"].iloc[0]
    assert rejects["reason"].iloc[1] == "row: not an object ([1])"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
ids = st.sampled_from(["a", "b", "c", "", " "]) | json_values
mutations = st.fixed_dictionaries(
    {},
    optional={
        "id": ids,
        "timeSpent": st.sampled_from([60, 1800, 0, -60, 61]) | json_values,
        "entryDate": st.sampled_from(["2026-10-05T10:00:00.000+0000", "9999-12-31T00:00:00Z"]) | json_values,
        "parent": st.just({"id": PARENT}) | json_values,
        "notes": json_values,
    },
)
rows = st.lists(st.one_of(mutations.map(lambda m: {**GOOD, **m}), json_values), max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    served=rows.flatmap(
        lambda r: st.lists(st.sampled_from(r), max_size=5).map(lambda d: r + d) if r else st.just(r)
    )
)
def test_any_served_sequence_is_accounted_for_row_by_row(served):
    frame = contract_frame([incident_record(row, TICKETS, "optionalFields1.text1") for row in served])
    assert len(frame) == len(served)  # served = read: nothing dropped before validation
    valid, rejects = split_valid(frame)
    assert rejects["reason"].str.len().gt(0).all()
    assert valid["registration_id"].is_unique and valid["minutes"].gt(0).all()
    empty = valid.iloc[0:0]
    buckets = assemble_buckets(
        rejects=[rejects],
        excluded=empty.assign(reason=pd.Series(dtype="str")),
        billed_before=empty.assign(reason=pd.Series(dtype="str"), document_reference=pd.Series(dtype="str")),
        to_bill=pd.DataFrame(),
        outside=valid.assign(reason="kept aside in this test"),
    )
    result = served_conservation(frame, buckets)
    assert result["holds"], result
    assert result["total"]["served"] == len(served)
