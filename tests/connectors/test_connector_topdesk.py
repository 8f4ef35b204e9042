"""TOPdesk client units against httpx.MockTransport: auth, version gate, paging families, errors, frames."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import httpx
import pandas as pd
import pytest

from connectors.errors import AuthError, BusinessError, ProtocolError, RequestRejected, UncertainOutcome
from connectors.http import RetryPolicy
from connectors.topdesk import masterdata
from connectors.topdesk.client import TopdeskClient, UnsupportedVersion, parse_version
from connectors.topdesk.dates import fiql_datetime, parse_datetime, parse_datetimes
from connectors.topdesk.endpoints import INCIDENTS, OPERATORS, PERSONS, TIME_REGISTRATIONS, Endpoint, odata
from connectors.topdesk.errors import error_text
from connectors.topdesk.paging import Family
from connectors.topdesk.settings import TopdeskSettings
from connectors.topdesk.timeregistrations import (
    COLUMNS,
    ActivityScope,
    TimeRegistrationOptions,
    bulk_query,
    contract_frame,
    incident_record,
    read_sources,
)

pytestmark = pytest.mark.anyio

PASSWORD = "abcde-fghij-klmno-pqrst-uvwxy"
FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01, max_total_seconds=30)


async def no_sleep(_: float) -> None:
    return None


def client(handler: Callable, *, login: str = "koppel.api", version: str = "4.2.6") -> TopdeskClient:
    def with_version(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/tas/api/version":
            return httpx.Response(200, json={"version": version})
        return handler(request)

    settings = TopdeskSettings(
        base_url="https://acme.topdesk.net", login=login, application_password=PASSWORD
    )
    return TopdeskClient.from_settings(
        settings, transport=httpx.MockTransport(with_version), policy=FAST, sleep=no_sleep, seed=3
    )


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True).items()}


# --- auth, version, errors ----------------------------------------------------------------------------


async def test_basic_auth_is_utf8_and_version_is_checked():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    async with client(handler, login="zoë.api") as topdesk:
        assert topdesk.version == "4.2.6"
        await topdesk.get_json("tas/api/timespent-reasons")
    expected = base64.b64encode(f"zoë.api:{PASSWORD}".encode()).decode()
    assert seen[0].headers["Authorization"] == f"Basic {expected}"
    assert PASSWORD not in repr(topdesk) and expected not in repr(topdesk)


@pytest.mark.parametrize(
    ("version", "ok"), [("3.3.9", False), ("3.4.0", True), ("4.2.6", True), ("10.0", True)]
)
async def test_version_gate(version, ok):
    topdesk = client(lambda r: httpx.Response(200, json=[]), version=version)
    if ok:
        async with topdesk:
            assert parse_version(topdesk.version) >= (3, 4)
    else:
        with pytest.raises(UnsupportedVersion, match=r"3\.4 or newer"):
            async with topdesk:
                pass


async def test_html_401_gives_one_clear_auth_error():
    page = (
        "<!doctype html><html><head><title>HTTP Status 401 – Unauthorized</title></head><body>"
        "<h1>HTTP Status 401 – Unauthorized</h1>"
        "<p>The request lacks valid authentication credentials.</p></body></html>"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text=page, headers={"content-type": "text/html"})

    settings = TopdeskSettings(base_url="https://acme.topdesk.net", login="x", application_password=PASSWORD)
    topdesk = TopdeskClient.from_settings(settings, transport=httpx.MockTransport(handler))
    with pytest.raises(AuthError) as caught:
        async with topdesk:
            pass
    text = str(caught.value)
    assert "\n" not in text and "<" not in text
    assert "lacks valid authentication credentials" in text
    assert "TOPdesk rejected the login" in text and "token" not in text
    assert "KOPPEL_TOPDESK_LOGIN" in text and "KOPPEL_TOPDESK_APPLICATION_PASSWORD" in text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'[{"message":"Input parameters malformed"}]', "Input parameters malformed"),
        (
            b'{"errors":[{"errorCode":"item_visibility_invalid","appliesTo":["name"],"errorMessage":"Bad"}]}',
            "item_visibility_invalid: Bad (name)",
        ),
        (b'[{"errorCode":"x","appliesTo":[],"errorMessage":"Too long"}]', "x: Too long"),
        (b"<html><body><p>Nope &amp; no</p></body></html>", "Nope & no"),
        (b"", ""),
        (b"   ", ""),
        (b"plain failure", "plain failure"),
    ],
)
def test_error_text_reads_every_shape(body, expected):
    assert error_text(body) == expected


async def test_refused_write_is_a_business_error_and_lost_write_is_uncertain():
    answers = [
        httpx.Response(400, json=[{"message": "Mandatory field 'name' is missing."}]),
        httpx.ReadTimeout("no answer"),
    ]
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async with client(handler) as topdesk:
        with pytest.raises(BusinessError, match="Mandatory field 'name' is missing"):
            await masterdata.create_branch(topdesk, {"clientReferenceNumber": "1"})
        with pytest.raises(UncertainOutcome):
            await masterdata.create_branch(topdesk, {"name": "X"})
    assert len(calls) == 2


async def test_bad_query_on_a_read_is_rejected():
    async with client(lambda r: httpx.Response(400, json=[{"message": "Unknown field: 'foo'"}])) as topdesk:
        with pytest.raises(RequestRejected, match="Unknown field"):
            await topdesk.read_all(OPERATORS)


# --- writes -------------------------------------------------------------------------------------------


async def test_branch_and_person_writes_use_patch_and_archiving_reasons():
    calls: list[tuple[str, str, object, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        calls.append((request.method, request.url.raw_path.decode(), body, request.headers.get("accept", "")))
        return httpx.Response(201 if request.method == "POST" else 200, json={"id": "b1"})

    async with client(handler) as topdesk:
        await masterdata.create_branch(topdesk, {"name": "Café Ünïcode"})
        await masterdata.update_branch(topdesk, "b 1/x", {"phone": "1"})
        await masterdata.archive_branch(topdesk, "b1", "r1")
        await masterdata.unarchive_branch(topdesk, "b1")
        await masterdata.create_person(topdesk, {"surName": "Visser", "branch": {"id": "b1"}})
        await masterdata.update_person(topdesk, "p1", {"email": "a@b.nl"})
        await masterdata.archive_person(topdesk, "p1", "r2")
        with pytest.raises(ValueError, match="branch"):
            await masterdata.create_person(topdesk, {"surName": "Zonder"})
    assert [(m, p) for m, p, _, _ in calls] == [
        ("POST", "/tas/api/branches"),
        ("PATCH", "/tas/api/branches/id/b%201%2Fx"),
        ("PATCH", "/tas/api/branches/id/b1/archive"),
        ("PATCH", "/tas/api/branches/id/b1/unarchive"),
        ("POST", "/tas/api/persons"),
        ("PATCH", "/tas/api/persons/p1"),
        ("PATCH", "/tas/api/persons/id/p1/archive"),
    ]
    assert calls[0][2] == {"name": "Café Ünïcode"}
    assert calls[2][2] == {"id": "r1"} and calls[6][2] == {"id": "r2"} and calls[3][2] is None
    assert calls[4][3] == "application/x.topdesk-person-v2+json"


# --- paging families ----------------------------------------------------------------------------------


def family_a(rows: list[dict], *, more_by_status: bool) -> tuple[Callable, list[dict]]:
    """Incidents (206 + x-next-page-url, 204 when empty) or bulk registrations (200, short page)."""
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        seen.append(q)
        start, size = int(q.get("pageStart", 0)), int(q.get("pageSize", 10))
        page = rows[start : start + size]
        if not more_by_status:
            return httpx.Response(200, json={"results": page})
        if not page:
            return httpx.Response(204)
        if start + size < len(rows):
            url = f"https://acme.topdesk.net/tas/api/incidents?pageStart={start + size}&pageSize={size}"
            return httpx.Response(206, json=page, headers={"x-next-page-url": url})
        return httpx.Response(200, json=page)

    return handler, seen


def family_b(rows: list[dict]) -> tuple[Callable, list[dict]]:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        seen.append(q)
        start, size = int(q.get("start", 0)), int(q.get("page_size", 10))
        page = rows[start : start + size]
        if not page:
            return httpx.Response(204)
        return httpx.Response(206 if start + size < len(rows) else 200, json=page)

    return handler, seen


def family_c(rows: list[dict], key: str = "item", odata_page: int = 7) -> tuple[Callable, list[dict]]:
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        seen.append(q)
        if key == "value":
            start, size = int(q.get("$skip", 0)), odata_page
            nxt = f"https://acme.topdesk.net/services/reporting/v2/odata/X?$skip={start + size}"
            body = {"value": rows[start : start + size]}
            if start + size < len(rows):
                body["@odata.nextLink"] = nxt
            return httpx.Response(200, json=body)
        start, size = int(q.get("pageStart", 0)), int(q.get("pageSize", 50))
        more = start + size < len(rows)
        nxt = f"/tas/api/persons?pageStart={start + size}&pageSize={size}" if more else None
        return httpx.Response(206 if more else 200, json={"item": rows[start : start + size], "next": nxt})

    return handler, seen


def numbered(n: int) -> list[dict]:
    return [{"id": f"r{i:05d}"} for i in range(n)]


SIZES = [0, 1, 10, 11, 25]


@pytest.mark.parametrize("n", SIZES)
async def test_family_a_incidents_follow_206(n):
    handler, seen = family_a(numbered(n), more_by_status=True)
    async with client(handler) as topdesk:
        rows = await topdesk.read_all(INCIDENTS, page_size=10)
    assert [r["id"] for r in rows] == [r["id"] for r in numbered(n)]
    assert len(seen) == max(1, -(-n // 10))  # 206 says "more"; 200 or 204 ends it at once


@pytest.mark.parametrize("n", SIZES)
async def test_family_a_bulk_stops_on_a_short_page(n):
    handler, seen = family_a(numbered(n), more_by_status=False)
    async with client(handler) as topdesk:
        rows = await topdesk.read_all(TIME_REGISTRATIONS, page_size=10)
    assert [r["id"] for r in rows] == [r["id"] for r in numbered(n)]
    assert len(seen) == n // 10 + 1  # a full page asks once more
    assert [q["pageStart"] for q in seen] == [str(10 * i) for i in range(n // 10 + 1)]


@pytest.mark.parametrize("n", SIZES)
async def test_family_b_pages_of_at_most_100(n):
    handler, seen = family_b(numbered(n))
    async with client(handler) as topdesk:
        rows = await topdesk.read_all(OPERATORS, page_size=10)
        with pytest.raises(ValueError, match="at most 100"):
            await topdesk.read_all(OPERATORS, page_size=101)
    assert [r["id"] for r in rows] == [r["id"] for r in numbered(n)]
    assert all("start" in q and "page_size" in q for q in seen)


@pytest.mark.parametrize("n", SIZES)
async def test_family_c_follows_body_next(n):
    handler, seen = family_c(numbered(n))
    async with client(handler) as topdesk:
        rows = await topdesk.read_all(PERSONS, page_size=10)
    assert [r["id"] for r in rows] == [r["id"] for r in numbered(n)]
    assert len(seen) == max(1, -(-n // 10))


@pytest.mark.parametrize("n", SIZES)
async def test_odata_follows_next_link(n):
    handler, seen = family_c(numbered(n), key="value")
    async with client(handler) as topdesk:
        rows = await topdesk.read_all(odata("X"), {"$select": "Id"})
    assert [r["id"] for r in rows] == [r["id"] for r in numbered(n)]
    assert seen[0] == {"$select": "Id"} and len(seen) == max(1, -(-n // 7))


@pytest.mark.parametrize("family", ["A-incidents", "A-bulk", "B", "C", "odata"])
async def test_25000_rows_in_every_family(family):
    rows = numbered(25_000)
    handler, seen = {
        "A-incidents": lambda: family_a(rows, more_by_status=True),
        "A-bulk": lambda: family_a(rows, more_by_status=False),
        "B": lambda: family_b(rows),
        "C": lambda: family_c(rows),
        "odata": lambda: family_c(rows, key="value", odata_page=1000),
    }[family]()
    endpoint, size = {
        "A-incidents": (INCIDENTS, 1000),
        "A-bulk": (TIME_REGISTRATIONS, 1000),
        "B": (OPERATORS, 100),
        "C": (PERSONS, 1000),
        "odata": (odata("X"), None),
    }[family]
    async with client(handler) as topdesk:
        got = await topdesk.read_all(endpoint, page_size=size)
    assert [r["id"] for r in got] == [r["id"] for r in rows]
    pages = 25_000 // (size or 1000)
    assert len(seen) == pages + (1 if family == "A-bulk" else 0)  # the bulk asks once more after a full page


async def test_repeated_next_link_is_a_loop():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(206, json={"item": [{"id": "a"}], "next": "/tas/api/persons?pageStart=1"})

    async with client(handler) as topdesk:
        with pytest.raises(ProtocolError, match="loop"):
            await topdesk.read_all(PERSONS)


async def test_206_with_an_empty_page_is_a_loop():
    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        rows = [{"id": "a"}] if q["pageStart"] == "0" else []
        return httpx.Response(206, json=rows)

    async with client(handler) as topdesk:
        with pytest.raises(ProtocolError, match="loop"):
            await topdesk.read_all(Endpoint("x", "tas/api/x", Family.A, page_size=5, signal="status"))


async def test_next_link_to_another_host_is_not_followed():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"item": [{"id": "a"}], "next": "https://evil.example/steal"})

    async with client(handler) as topdesk:
        with pytest.raises(ProtocolError, match="another host"):
            await topdesk.read_all(PERSONS)


async def test_path_values_are_percent_encoded():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json=[])

    endpoint = Endpoint("timespent", "tas/api/incidents/number/{id}/timespent", Family.UNPAGED)
    async with client(handler) as topdesk:
        await topdesk.read_all(endpoint, path_values={"id": "I 2301 104"})
    assert seen == ["/tas/api/incidents/number/I%202301%20104/timespent"]


# --- dates and the contract frame ---------------------------------------------------------------------


def test_dates_in_every_form():
    raw = pd.Series(
        [
            "2026-10-01T14:10:00.000+0000",
            "2026-10-01T14:10:00+00:00",
            "2026-10-01T14:10:00Z",
            "2026-10-01T16:10:00.000+0200",
            "2026-10-01T14:10:00",  # no offset: refused
            "01-10-2026 14:10",
            None,
        ]
    )
    parsed = parse_datetimes(raw)
    assert str(parsed.dtype) == "datetime64[ns, UTC]"
    expected = pd.Timestamp("2026-10-01T14:10:00", tz="UTC")
    assert parsed[:4].tolist() == [expected] * 4
    assert parsed[4:].isna().all()
    assert parse_datetime("2026-10-01T14:10:00.123Z").microsecond == 123000


def test_fiql_query_has_explicit_z():
    start = datetime(2026, 10, 1, tzinfo=timezone(timedelta(hours=2)))
    end = datetime(2026, 11, 1, tzinfo=UTC)
    assert (
        bulk_query(start, end, False) == "entryDate=ge=2026-09-30T22:00:00Z;entryDate=lt=2026-11-01T00:00:00Z"
    )
    assert bulk_query(start, end, True).endswith(
        ";status=in=(firstLine,secondLine,partial,firstLineArchived,secondLineArchived,partialArchived)"
    )
    with pytest.raises(ValueError):
        fiql_datetime(datetime(2026, 1, 1))  # noqa: DTZ001 — naive on purpose


def test_contract_frame_units_and_dtypes():
    frame = contract_frame(
        [
            {
                "registration_id": "a",
                "kind": "incident",
                "time_spent_raw": 3600,
                "time_unit": "seconds",
                "entry_date_raw": "2026-10-01T09:00:00.000+0000",
            },
            {
                "registration_id": "b",
                "kind": "incident",
                "time_spent_raw": 90,
                "time_unit": "seconds",
                "entry_date_raw": "1-10-2026",
            },
            {"registration_id": "c", "kind": "change", "time_spent_raw": 15, "time_unit": "minutes"},
            {"registration_id": "d", "kind": "change", "time_spent_raw": 7.5, "time_unit": "minutes"},
            {"registration_id": "e", "kind": "incident", "time_spent_raw": None, "time_unit": "seconds"},
            {"registration_id": "f", "kind": "incident", "time_spent_raw": -1800, "time_unit": "seconds"},
        ]
    )
    assert tuple(frame.columns) == COLUMNS
    assert frame["minutes"].dtype == "Int64"
    assert frame["minutes"].tolist()[:4] == [60, pd.NA, 15, pd.NA]
    assert frame["minutes"].isna().tolist() == [False, True, False, True, True, False]
    assert frame["minutes"].tolist()[5] == -30
    assert frame["time_spent_raw"].dtype == "float64" and pd.isna(frame["time_spent_raw"][4])
    assert str(frame["entry_date"].dtype) == "datetime64[ns, UTC]"
    assert frame["entry_date_raw"][1] == "1-10-2026" and pd.isna(frame["entry_date"][1])
    assert str(frame["creation_date"].dtype) == "datetime64[ns, UTC]"
    assert frame["registration_id"].dtype == "str" and pd.isna(frame["notes"][0])


def test_empty_contract_frame_keeps_columns_and_dtypes():
    frame = contract_frame([])
    assert tuple(frame.columns) == COLUMNS and frame.empty
    assert frame["minutes"].dtype == "Int64" and str(frame["entry_date"].dtype) == "datetime64[ns, UTC]"


def test_partials_are_billed_on_their_main_incident():
    tickets = {
        "p": {
            "id": "p",
            "number": "I 2610 002",
            "status": "partial",
            "briefDescription": "deel",
            "mainIncident": {"id": "m", "number": "I 2610 001"},
            "callerBranch": None,
            "category": {"name": "Netwerk"},
            "optionalFields1": {"text1": ""},
        },
        "m": {
            "id": "m",
            "number": "I 2610 001",
            "status": "secondLine",
            "optionalFields1": {"text1": "P1-01"},
            "callerBranch": {"id": "b", "name": "Klant", "clientReferenceNumber": "10001"},
        },
    }
    row = {
        "id": "r",
        "timeSpent": 600,
        "parent": {"id": "p", "status": "partial"},
        "operator": {"id": "o", "name": "Ann"},
    }
    record = incident_record(row, tickets, "optionalFields1.text1")
    assert record["billed_ticket_id"] == "m" and record["billed_ticket_number"] == "I 2610 001"
    assert record["ticket_number"] == "I 2610 002" and record["ticket_status"] == "partial"
    assert record["customer_number"] == "10001" and record["project_ref"] == "P1-01"
    assert (
        record["category"] == "Netwerk" and record["subcategory"] is None and record["operator_name"] == "Ann"
    )
    orphan = incident_record({"id": "x", "parent": {"id": "gone", "status": "firstLine"}}, tickets, "a.b")
    assert (
        orphan["ticket_id"] == "gone"
        and orphan["customer_number"] is None
        and orphan["ticket_status"] == "firstLine"
    )


def test_options_are_checked():
    with pytest.raises(ValueError, match="kinds"):
        TimeRegistrationOptions(kinds=("incident", "holiday"))
    with pytest.raises(ValueError, match="incident_batch"):
        TimeRegistrationOptions(incident_batch=10_001)
    with pytest.raises(ValueError, match="since"):
        ActivityScope(sweep=False)


# --- unit reconciliation and the FIQL fallback --------------------------------------------------------


def bulk_server(
    registrations: list[dict], per_incident_minutes: dict[str, int], *, refuse_fiql: bool = False
):
    """Bulk endpoint, incident look-up and per-incident /timespent over a few registrations."""
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path, q = request.url.path, query(request)
        seen.append({"path": path, **q})
        if path == "/tas/api/incidents/timeregistrations":
            if refuse_fiql and "query" in q:
                return httpx.Response(400, json=[{"message": "Unknown field in query"}])
            rows = registrations
            if q.get("sort") == "creationDate:desc":
                rows = sorted(rows, key=lambda r: r["creationDate"], reverse=True)
            start, size = int(q.get("pageStart", 0)), int(q["pageSize"])
            return httpx.Response(200, json={"results": rows[start : start + size]})
        if path == "/tas/api/incidents":
            ids = q["query"][len("id=in=(") : -1].split(",")
            return httpx.Response(
                200, json=[{"id": i, "number": f"I {i}", "status": "firstLine"} for i in ids]
            )
        if path.endswith("/timespent"):
            incident = path.split("/")[-2]
            items = [
                {"id": r["id"], "timeSpent": per_incident_minutes[r["id"]]}
                for r in registrations
                if r["parent"]["id"] == incident
            ]
            return httpx.Response(200, json=items) if items else httpx.Response(204)
        return httpx.Response(404, json=[{"message": "not here"}])

    return handler, seen


def registration(n: int, seconds: int, entry: str, created: str) -> dict:
    return {
        "id": f"r{n}",
        "timeSpent": seconds,
        "entryDate": entry,
        "creationDate": created,
        "parent": {"id": f"i{n % 3}", "status": "firstLine"},
    }


REGS = [
    registration(1, 1800, "2026-10-02T09:00:00.000+0000", "2026-10-02T09:30:00.000+0000"),
    registration(2, 3600, "2026-10-03T09:00:00.000+0000", "2026-10-03T10:00:00.000+0000"),
    registration(3, 900, "2026-10-30T09:00:00.000+0000", "2026-11-02T08:00:00.000+0000"),
    registration(4, 600, "2026-09-30T09:00:00.000+0000", "2026-09-30T09:10:00.000+0000"),
    registration(5, 600, "2026-08-01T09:00:00.000+0000", "2026-08-01T09:10:00.000+0000"),
    registration(6, 600, "2026-07-01T09:00:00.000+0000", "2026-07-01T09:10:00.000+0000"),
]
IN_OCTOBER = {"r1", "r2", "r3"}
OCT = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
INCIDENTS_ONLY = TimeRegistrationOptions(kinds=("incident",), page_size=2)


async def test_unit_check_accepts_seconds_and_stops_on_minutes():
    from connectors.topdesk.timeregistrations import read_time_registrations
    from connectors.topdesk.units import UnitMismatch

    in_window = [r for r in REGS if r["id"] in IN_OCTOBER]
    minutes = {r["id"]: r["timeSpent"] // 60 for r in REGS}
    handler, seen = bulk_server(in_window, minutes)
    async with client(handler) as topdesk:
        frame = await read_time_registrations(topdesk, *OCT, INCIDENTS_ONLY)
    assert sorted(frame["minutes"].tolist()) == [15, 30, 60]
    assert sum(s["path"].endswith("/timespent") for s in seen) == 3  # every sampled incident compared
    wrong = {r["id"]: r["timeSpent"] for r in REGS}  # the tenant answers the bulk in minutes after all
    handler, _ = bulk_server(in_window, wrong)
    async with client(handler) as topdesk:
        with pytest.raises(UnitMismatch, match="0 match seconds and 3 match minutes"):
            await read_time_registrations(topdesk, *OCT, INCIDENTS_ONLY)


async def test_refused_fiql_falls_back_to_creation_date_order():
    from connectors.topdesk.timeregistrations import read_time_registrations

    handler, seen = bulk_server(REGS, {r["id"]: r["timeSpent"] // 60 for r in REGS}, refuse_fiql=True)
    async with client(handler) as topdesk:
        frame = await read_time_registrations(topdesk, *OCT, INCIDENTS_ONLY)
    assert set(frame["registration_id"]) == IN_OCTOBER
    fallback = [s for s in seen if s["path"].endswith("/timeregistrations") and "query" not in s]
    # newest first, two per page: r3,r2 | r1,r4 | r5,r6 (created before 1 Sept: stop) — r6's page ends it
    assert [s["pageStart"] for s in fallback] == ["0", "2", "4"]


# --- bulk pages side by side (issue #15) -------------------------------------------------------------


def paged_bulk(rows: list[dict], *, failing_offset: int | None = None, cap: int | None = None):
    """The bulk endpoint over ``rows``: a 500 at one offset, or a server that caps the page size (206)."""
    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        q = query(request)
        if request.url.path != "/tas/api/incidents/timeregistrations":
            return httpx.Response(404, json=[{"message": "not here"}])
        start, size = int(q["pageStart"]), int(q["pageSize"])
        seen.append(start)
        if start == failing_offset:
            return httpx.Response(500, json=[{"message": "boom"}])
        page = rows[start : start + min(size, cap or size)]
        more = cap is not None and start + len(page) < len(rows)
        return httpx.Response(206 if more else 200, json={"results": page})

    return handler, seen


def october_rows(n: int) -> list[dict]:
    return [
        {"id": f"r{i}", "timeSpent": 60, "entryDate": "2026-10-02T09:00:00.000+0000", "parent": None}
        for i in range(n)
    ]


@pytest.mark.parametrize(
    ("rows", "pages"), [(0, [0]), (3, [0]), (4, [0, 4, 8, 12, 16]), (13, [0, 4, 8, 12, 16])]
)
async def test_bulk_pages_after_the_first_are_asked_side_by_side_and_every_served_row_is_kept(rows, pages):
    handler, seen = paged_bulk(october_rows(rows))
    options = TimeRegistrationOptions(kinds=("incident",), page_size=4, unit_sample=0, totals=False)
    async with client(handler) as topdesk:
        frame = await read_sources(topdesk, *OCT, options)
    assert sorted(seen) == pages  # the first page alone, then waves of `concurrency` (4) pages
    assert len(frame.frame) == rows and not frame.failed


async def test_a_bulk_page_that_fails_fails_the_incident_source_loudly():
    handler, _ = paged_bulk(october_rows(13), failing_offset=8)
    options = TimeRegistrationOptions(kinds=("incident",), page_size=4, unit_sample=0, totals=False)
    async with client(handler) as topdesk:
        extract = await read_sources(topdesk, *OCT, options)
    assert [s.kind for s in extract.failed] == ["incident"] and extract.frame.empty
    assert "500" in extract.failed[0].error or "boom" in extract.failed[0].error


async def test_a_server_capping_the_page_size_fails_the_source_instead_of_skipping_rows():
    handler, _ = paged_bulk(october_rows(13), cap=3)
    options = TimeRegistrationOptions(kinds=("incident",), page_size=4, unit_sample=0, totals=False)
    async with client(handler) as topdesk:
        extract = await read_sources(topdesk, *OCT, options)
    assert [s.kind for s in extract.failed] == ["incident"]
    assert "caps the page size" in extract.failed[0].error
