"""AFAS sandbox GetConnectors: skip/take, filters, ordering, shuffling, rendering and speed."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from urllib.parse import quote

import pytest

from sandbox.afas import AfasOptions, create_app
from sandbox.afas.fixtures import InProcessClient
from sandbox.world import afas as world_afas
from sandbox.world import generate_core
from tests.fixtures.worlds import afas_world

BASE = "/ProfitRestServices/connectors"


@pytest.fixture(scope="module")
def world():
    return afas_world(seed=5, scale=2_000)


def rows(client, connector, **params):
    response = client.get(f"{BASE}/{connector}", params=params)
    assert response.status_code == 200, response.text
    return response.json()["rows"]


def ids(client, connector, key, **params):
    return [row[key] for row in rows(client, connector, **params)]


def error(response, status=500):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"externalMessage", "errorNumber", "profitLogReference"}
    assert len(body["profitLogReference"]) == 32 and int(body["profitLogReference"], 16) >= 0
    return body


# ---------------------------------------------------------------------------- skip / take


def test_defaults_are_skip_0_take_100_and_are_echoed(client, world):
    body = client.get(f"{BASE}/Profit_Debtor", params={"orderbyfieldids": "DebtorId"}).json()
    assert (body["skip"], body["take"]) == (0, 100)
    assert len(body["rows"]) == 100
    assert len(world.extra["afas_debtors"]) > 100


def test_requested_skip_and_take_are_echoed(client):
    body = client.get(
        f"{BASE}/Profit_Debtor", params={"skip": 7, "take": 3, "orderbyfieldids": "DebtorId"}
    ).json()
    assert (body["skip"], body["take"]) == (7, 3)
    everything = ids(client, "Profit_Debtor", "DebtorId", skip=-1, take=-1, orderbyfieldids="DebtorId")
    assert [r["DebtorId"] for r in body["rows"]] == everything[7:10]


def test_minus_one_minus_one_returns_everything_and_skip_minus_one_ignores_take(client, world):
    total = len(world.extra["afas_debtors"])
    assert len(rows(client, "Profit_Debtor", skip=-1, take=-1)) == total
    assert len(rows(client, "Profit_Debtor", skip=-1, take=5)) == total


@pytest.mark.parametrize(
    "params", [{"skip": 2, "take": -1}, {"skip": -2}, {"take": -5}, {"skip": "x"}, {"take": "1.5"}]
)
def test_other_negative_or_invalid_paging_is_profits_unexpected_error(client, params):
    body = error(client.get(f"{BASE}/Profit_Debtor", params=params))
    assert body["externalMessage"] == "Er is een onverwachte fout opgetreden."
    assert body["errorNumber"] == -2147180999


@pytest.mark.parametrize("count", [0, 1, 10, 11])
def test_paging_to_the_last_page_at_the_edges(client, world, count):
    """0, 1, page size and page size + 1 matching rows: every row once, stop on the short page."""
    wanted = list(world.extra["afas_debtors"]["DebtorId"][:count]) or ["no-such-debtor"]
    filters = {
        "filterfieldids": ";".join("DebtorId" for _ in wanted),
        "filtervalues": ";".join(wanted),
        "operatortypes": ";".join("1" for _ in wanted),
    }
    seen, skip, calls = [], 0, 0
    while True:
        page = ids(
            client, "Profit_Debtor", "DebtorId", skip=skip, take=10, orderbyfieldids="DebtorId", **filters
        )
        calls += 1
        seen += page
        if len(page) < 10:
            break
        skip += 10
    assert seen == sorted(wanted[:count])
    assert calls == count // 10 + 1


# ---------------------------------------------------------------------------- filters


TEXT_CASES = [
    (1, "10005", lambda d: d == "10005"),
    (2, "10159", lambda d: d >= "10159"),
    (3, "10002", lambda d: d <= "10002"),
    (4, "10160", lambda d: d > "10160"),
    (5, "10003", lambda d: d < "10003"),
    (10, "1016", lambda d: d.startswith("1016")),
    (10, "1016%", lambda d: d.startswith("1016")),
    (13, "%62", lambda d: d.endswith("62")),
    (6, "%016%", lambda d: "016" in d),
    (15, "016", lambda d: "016" in d),
    (7, "10005", lambda d: d != "10005"),
    (11, "%016%", lambda d: "016" not in d),
    (12, "1016", lambda d: not d.startswith("1016")),
    (14, "62%", lambda d: not d.endswith("62")),
]


@pytest.mark.parametrize(("operator", "value", "keep"), TEXT_CASES)
def test_compact_filter_operators_on_text(client, world, operator, value, keep):
    every = sorted(world.extra["afas_debtors"]["DebtorId"])
    params = {"filterfieldids": "DebtorId", "filtervalues": value, "operatortypes": operator}
    found = ids(client, "Profit_Debtor", "DebtorId", skip=-1, orderbyfieldids="DebtorId", **params)
    expected = [d for d in every if keep(d)]
    assert found == expected
    assert 0 < len(expected) < len(every)


def test_empty_and_not_empty_ignore_the_value(client, world):
    prices = world.extra["afas_sales_prices"]
    general = rows(
        client,
        "Koppel_Sales_Prices",
        skip=-1,
        filterfieldids="DebtorId",
        filtervalues="whatever",
        operatortypes=8,
    )
    specific = rows(
        client, "Koppel_Sales_Prices", skip=-1, filterfieldids="DebtorId", filtervalues="", operatortypes=9
    )
    assert len(general) == prices["DebtorId"].isna().sum() == len(world.items)
    assert len(specific) == prices["DebtorId"].notna().sum() > 0
    assert all(r["DebtorId"] is None for r in general) and all(r["DebtorId"] for r in specific)


def test_comma_ands_and_semicolon_ors(client, world):
    debtors = world.extra["afas_debtors"]
    blocked = sorted(debtors.loc[debtors["Blocked"], "DebtorId"])
    params = {"filterfieldids": "Blocked,DebtorId;DebtorId", "operatortypes": "1,1;1"}
    params["filtervalues"] = f"true,{blocked[0]};10003"
    found = ids(client, "Profit_Debtor", "DebtorId", skip=-1, orderbyfieldids="DebtorId", **params)
    assert found == sorted({blocked[0], "10003"})


def test_filterjson_ands_fields_and_ors_filters_and_takes_commas_in_values(client, world):
    tree = {
        "Filters": {
            "Filter": [
                {
                    "@FilterId": "Filter 1",
                    "Field": [{"@FieldId": "AdminId", "@OperatorType": "1", "#text": "2"}],
                },
                {
                    "@FilterId": "Filter 2",
                    "Field": {"@FieldId": "AdminNm", "@OperatorType": "6", "#text": "x,y;z"},
                },
            ]
        }
    }
    found = rows(client, "Profit_Administrations", filterjson=json.dumps(tree))
    assert [r["AdminId"] for r in found] == [2]


def test_text_filters_are_case_insensitive(client):
    assert ids(
        client,
        "Profit_Worktype",
        "ItemCode",
        filterfieldids="ItemCode",
        filtervalues="support",
        operatortypes=1,
    ) == ["SUPPORT"]


def test_date_filters_with_or_without_z_are_amsterdam_local(client, world):
    debtors = world.extra["afas_debtors"]
    cut = debtors["ModifiedDate"].sort_values().iloc[len(debtors) // 2]
    local = cut.tz_localize(None).floor("s")
    expected = sorted(debtors.loc[debtors["ModifiedDate"].dt.tz_localize(None) >= local, "DebtorId"])
    for text in (local.strftime("%Y-%m-%dT%H:%M:%S"), local.strftime("%Y-%m-%dT%H:%M:%SZ")):
        found = ids(
            client, "Profit_Debtor", "DebtorId", skip=-1, orderbyfieldids="DebtorId",
            filterfieldids="ModifiedDate", filtervalues=text, operatortypes=2,
        )  # fmt: skip
        assert found == expected


def test_hr_connectors_read_incrementally_by_modified_date(client, world):
    employees = world.extra["hr_employees"]
    since = employees["modified"].sort_values().iloc[-5].tz_localize(None).floor("s")
    found = rows(
        client,
        "Koppel_HR_Employees",
        skip=-1,
        filterfieldids="ModifiedDate",
        filtervalues=since.isoformat(),
        operatortypes=2,
    )
    expected = employees.loc[employees["modified"].dt.tz_localize(None) >= since, "employee_id"]
    assert sorted(r["EmployeeId"] for r in found) == sorted(expected)
    assert len(found) >= 5


def test_unknown_filter_or_sort_field_and_dotted_sort_field(client):
    body = error(
        client.get(
            f"{BASE}/Profit_Debtor",
            params={"filterfieldids": "Nope", "filtervalues": "1", "operatortypes": "1"},
        )
    )
    assert body["externalMessage"] == "Connector-veld 'Nope' niet gevonden"
    body = error(client.get(f"{BASE}/Profit_Debtor", params={"orderbyfieldids": "-Nope"}))
    assert body["externalMessage"] == "Connector-veld 'Nope' niet gevonden"
    body = error(client.get(f"{BASE}/Profit_Debtor", params={"orderbyfieldids": "Debtor.Id"}))
    assert body["externalMessage"] == "General message: Invalid Index field"


def test_a_value_that_does_not_fit_the_column_type_is_an_unexpected_error(client):
    body = error(
        client.get(
            f"{BASE}/Profit_Administrations",
            params={"filterfieldids": "AdminId", "filtervalues": "abc", "operatortypes": "1"},
        )
    )
    assert body["errorNumber"] == -2147180999


def test_query_string_over_2049_characters_is_a_404(client):
    value = "x" * 2100
    assert (
        client.get(
            f"{BASE}/Profit_Debtor?filterfieldids=DebtorId&filtervalues={value}&operatortypes=1"
        ).status_code
        == 404
    )
    short = "x" * (2049 - len("?filterfieldids=DebtorId&operatortypes=1&filtervalues="))
    assert (
        client.get(
            f"{BASE}/Profit_Debtor?filterfieldids=DebtorId&operatortypes=1&filtervalues={short}"
        ).status_code
        == 200
    )


# ---------------------------------------------------------------------------- ordering and shuffling


def test_order_by_with_minus_is_descending_and_ties_keep_a_stable_order(client, world):
    down = ids(client, "Profit_Debtor", "DebtorId", skip=-1, orderbyfieldids="-DebtorId")
    assert down == sorted(world.extra["afas_debtors"]["DebtorId"], reverse=True)
    periods = rows(client, "Profit_periods_per_administration", skip=-1, orderbyfieldids="-Unit,Period")
    keys = [(p["Unit"], p["Period"]) for p in periods]
    assert keys == sorted(keys, key=lambda k: (-k[0], k[1]))


def test_without_order_every_call_comes_back_in_another_order(client):
    first = ids(client, "Profit_Debtor", "DebtorId", skip=-1)
    second = ids(client, "Profit_Debtor", "DebtorId", skip=-1)
    assert sorted(first) == sorted(second)
    assert first != second


@pytest.fixture(scope="module")
def big_world():
    return afas_world(seed=9, scale=32_000)


def test_unsorted_paging_over_5000_rows_duplicates_and_misses_sorted_paging_does_not(big_world):
    app = create_app(big_world)
    total = len(big_world.extra["afas_contacts"])
    assert total >= 5_000
    with InProcessClient(app, app.state.sim.token) as client:
        unsorted, sorted_ = Counter(), Counter()
        for skip in range(0, total, 1000):
            unsorted.update(ids(client, "Profit_Contacts", "ContactId", skip=skip, take=1000))
            sorted_.update(
                ids(client, "Profit_Contacts", "ContactId", skip=skip, take=1000, orderbyfieldids="ContactId")
            )
    assert len(sorted_) == total and set(sorted_.values()) == {1}
    assert sum(unsorted.values()) == total
    assert len(unsorted) < total  # some rows never came back ...
    assert max(unsorted.values()) > 1  # ... and others came back twice


# ---------------------------------------------------------------------------- rendering


def test_body_is_single_line_json_with_nulls_z_datetimes_and_decimals(client):
    response = client.get(f"{BASE}/Profit_Projects", params={"skip": -1, "orderbyfieldids": "ProjectId"})
    text = response.text
    assert "\n" not in text and text.startswith('{"skip":-1,"take":100,"rows":[')
    assert response.headers["content-type"].startswith("application/json")
    projects = response.json()["rows"]
    open_ = next(p for p in projects if not p["CheckedOut"])
    assert open_["DateReady"] is None and "DateReady" in open_
    assert open_["CreateDate"].endswith("Z") and len(open_["CreateDate"]) == 20
    prices = client.get(f"{BASE}/Koppel_Sales_Prices", params={"orderbyfieldids": "ItemCode", "take": 1}).text
    assert '"Price":125.00' in prices  # CONSULT, two decimals as metainfo says


def test_datetimes_are_local_time_with_a_z_not_utc(client, world):
    debtor = world.extra["afas_debtors"].iloc[0]
    row = rows(
        client, "Profit_Debtor", filterfieldids="DebtorId", filtervalues=debtor["DebtorId"], operatortypes=1
    )[0]
    assert row["CreateDate"] == debtor["CreateDate"].strftime("%Y-%m-%dT%H:%M:%SZ")


def test_out_of_memory_above_the_configured_rows_times_columns(world):
    app = create_app(world, AfasOptions(oom_cells=21 * 50))
    with InProcessClient(app, app.state.sim.token) as client:
        assert client.get(f"{BASE}/Profit_Debtor", params={"take": 50}).status_code == 200
        body = error(client.get(f"{BASE}/Profit_Debtor", params={"take": 51}))
    assert body["externalMessage"] == "Out of memory"


# ---------------------------------------------------------------------------- speed


@pytest.mark.slow
def test_pages_of_1000_over_tens_of_thousands_of_rows_are_fast():
    """CPU time per call (client and server share this thread), so other processes on the box don't count."""
    core = generate_core(seed=2, scale=240_000)
    core.extra.update(world_afas.render(core))
    app = create_app(core)
    total = len(core.extra["afas_contacts"])
    assert total > 30_000
    with InProcessClient(app, app.state.sim.token) as client:
        sorted_times, keyset_times, last = [], [], 0
        for skip in range(0, total, 1000):
            started = time.process_time()
            page = ids(
                client, "Profit_Contacts", "ContactId", skip=skip, take=1000, orderbyfieldids="ContactId"
            )
            sorted_times.append(time.process_time() - started)
            assert len(page) == min(1000, total - skip)
        while True:
            started = time.process_time()
            page = ids(
                client, "Profit_Contacts", "ContactId", take=1000, orderbyfieldids="ContactId",
                filterfieldids="ContactId", filtervalues=str(last), operatortypes=4,
            )  # fmt: skip
            keyset_times.append(time.process_time() - started)
            if len(page) < 1000:
                break
            last = page[-1]
    assert statistics.median(sorted_times) < 0.05, sorted_times
    assert statistics.median(keyset_times) < 0.1, keyset_times
    assert max(sorted_times[1:]) < 0.1, sorted_times


def test_paging_url_encoding_of_filter_values(client):
    found = client.get(
        f"{BASE}/Profit_Debtor?filterfieldids=DebtorId&filtervalues={quote('10001')}&operatortypes=1"
    )
    assert [r["DebtorId"] for r in found.json()["rows"]] == ["10001"]
