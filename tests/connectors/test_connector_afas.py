"""AFAS client units against httpx.MockTransport: tokens, filters, paging, frames, writes, errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
import pandas as pd
import pytest

from connectors.afas.client import AfasClient, as_body
from connectors.afas.filters import Filter, filter_params, groups_of, operator_code
from connectors.afas.getconnectors import GetConnector
from connectors.afas.payloads import Keys, Reference, body, delete_path, element, parse_keys
from connectors.afas.settings import AfasSettings
from connectors.afas.tokens import TokenFormatError, authorization_value, normalise_token
from connectors.errors import (
    AuthError,
    BusinessError,
    Maintenance,
    ProtocolError,
    QueryTooLong,
    Unavailable,
    UncertainOutcome,
)
from connectors.http import RetryPolicy

pytestmark = pytest.mark.anyio

HEX = "0123456789abcdef" * 4
XML = f"<token><version>1</version><data>{HEX}</data></token>"
FAST = RetryPolicy(max_attempts=5, base_delay=0.001, max_delay=0.01, max_total_seconds=30)
AMS = ZoneInfo("Europe/Amsterdam")


def settings(**overrides: object) -> AfasSettings:
    values = {
        "environment_number": "O12345AA",
        "token": XML,
        "base_url": "http://afas.invalid/ProfitRestServices",
    }
    return AfasSettings(**{**values, **overrides})


async def no_sleep(_: float) -> None:
    return None


def client(handler: Callable, **kwargs: object) -> AfasClient:
    return AfasClient.from_settings(
        settings(), transport=httpx.MockTransport(handler), policy=FAST, sleep=no_sleep, seed=1, **kwargs
    )


def query(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query, keep_blank_values=True).items()}


class FakeGetConnector:
    """Serves rows with AFAS's skip/take, compact filters (ops 1, 4) and orderbyfieldids."""

    def __init__(self, rows: list[dict]) -> None:
        self.rows = rows
        self.requests: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        q = query(request)
        self.requests.append(q)
        rows = [r for r in self.rows if self._match(r, q)]
        for key in reversed(q["orderbyfieldids"].split(",")):
            name = key.lstrip("-")
            rows.sort(key=lambda r, k=name: r[k], reverse=key.startswith("-"))
        skip, take = int(q.get("skip", 0)), int(q.get("take", 100))
        return httpx.Response(200, json={"skip": skip, "take": take, "rows": rows[skip : skip + take]})

    @staticmethod
    def _match(row: dict, q: dict[str, str]) -> bool:
        if "filterfieldids" not in q:
            return True
        groups = zip(
            q["filterfieldids"].split(";"),
            q["filtervalues"].split(";"),
            q["operatortypes"].split(";"),
            strict=True,
        )
        for fields, values, ops in groups:
            ok = True
            for f, v, op in zip(fields.split(","), values.split(","), ops.split(","), strict=True):
                cell = row[f]
                if op == "1":
                    ok &= str(cell) == v
                elif op == "4":
                    ok &= cell > (type(cell)(v))
            if ok:
                return True
        return False


# --- tokens -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["xml", "xml-spaced", "hex", "base64"])
def test_every_token_form_sends_the_same_header(form):
    raw = {
        "xml": XML,
        "xml-spaced": f"  <token>\n <version>1</version>\n <data>{HEX}</data>\n</token> ",
        "hex": HEX,
        "base64": base64.b64encode(XML.encode()).decode(),
    }[form]
    assert normalise_token(raw) == XML
    assert authorization_value(raw) == "AfasToken " + base64.b64encode(XML.encode()).decode()


def test_bad_token_is_refused_without_echo():
    with pytest.raises(TokenFormatError) as caught:
        normalise_token("not-a-token-abcdef")
    assert "not-a-token" not in str(caught.value)
    assert "KOPPEL_AFAS_TOKEN" in str(caught.value)


async def test_headers_sent():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"version": "6.6.9"})

    afas = AfasClient.from_settings(
        settings(integration_id="12345_678900", language="en-us", token=HEX),
        transport=httpx.MockTransport(handler),
    )
    async with afas:
        assert await afas.profit_version() == "6.6.9"
    headers = seen[0].headers
    assert headers["Authorization"] == authorization_value(XML)
    assert headers["IntegrationId"] == "12345_678900"
    assert headers["Accept-Language"] == "en-us"
    assert str(seen[0].url) == "http://afas.invalid/ProfitRestServices/profitversion"
    assert "AfasToken" not in repr(afas) and HEX not in repr(afas)


def test_default_base_url_per_environment_type():
    assert settings(base_url=None, environment_type="test").rest_base_url == (
        "https://12345.resttest.afas.online/ProfitRestServices"
    )


# --- filters ------------------------------------------------------------------------------------------


def test_operator_names_and_codes():
    assert [operator_code(x) for x in ("=", ">=", "<=", ">", "<", "contains", "!=", "[]", "![]")] == list(
        range(1, 10)
    )
    assert [operator_code(x) for x in ("starts_with", "!*", "!@", "ends_with", "!&", "Sf", 7, "12")] == [
        10,
        11,
        12,
        13,
        14,
        15,
        7,
        12,
    ]
    for bad in (0, 16, "like"):
        with pytest.raises(ValueError):
            operator_code(bad)


def test_compact_filters_and_or_groups():
    groups = groups_of([[Filter("A", "=", 1), Filter("B", "contains", "x")], [Filter("C", 1, 2)]])
    assert filter_params(groups) == {
        "filterfieldids": "A,B;C",
        "filtervalues": "1,x;2",
        "operatortypes": "1,6;1",
    }


def test_valueless_operators_dates_and_booleans():
    when = datetime(2026, 7, 1, 10, 0, tzinfo=ZoneInfo("UTC"))
    params = filter_params(
        groups_of(
            [Filter("DateReady", "[]", "ignored"), Filter("Mod", ">=", when), Filter("Blocked", "=", False)]
        )
    )
    assert params["filtervalues"] == ",2026-07-01T12:00:00,false"  # Amsterdam summer time, no Z
    assert params["operatortypes"] == "8,2,1"
    with pytest.raises(ValueError):
        filter_params(groups_of(Filter("Mod", ">=", datetime(2026, 7, 1))))  # noqa: DTZ001 — naive on purpose


def test_value_with_comma_or_semicolon_switches_to_filterjson():
    params = filter_params(groups_of([[Filter("RfCs", "=", "a,b")], [Filter("RfCs", "=", "c;d")]]))
    assert set(params) == {"filterjson"}
    tree = json.loads(params["filterjson"])
    assert tree == {
        "Filters": {
            "Filter": [
                {
                    "@FilterId": "Filter 1",
                    "Field": [{"@FieldId": "RfCs", "@OperatorType": "1", "#text": "a,b"}],
                },
                {
                    "@FilterId": "Filter 2",
                    "Field": [{"@FieldId": "RfCs", "@OperatorType": "1", "#text": "c;d"}],
                },
            ]
        }
    }


async def test_query_over_2049_chars_raises_before_sending():
    fake = FakeGetConnector([])
    afas = client(fake)
    many = [[Filter("DebtorId", "=", f"{n:08d}")] for n in range(200)]
    with pytest.raises(QueryTooLong):
        await afas.read_frame("Profit_Administrations", filters=many)
    await afas.aclose()
    assert fake.requests == []


# --- paging -------------------------------------------------------------------------------------------


def admin_rows(n: int) -> list[dict]:
    return [{"AdminId": i + 1, "AdminNm": f"Adm {i + 1}", "AdminCd": f"C{(i * 7) % 13}"} for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 10, 11, 95])
@pytest.mark.parametrize("keyset", [True, False], ids=["keyset", "skip"])
async def test_paging_reads_every_row_once(n, keyset):
    fake = FakeGetConnector(admin_rows(n))
    spec = GetConnector("Profit_Administrations", ("AdminId",), keyset=keyset, take=10)
    afas = client(fake)
    rows = [r async for r in afas.iter_rows(spec)]
    await afas.aclose()
    assert [r["AdminId"] for r in rows] == list(range(1, n + 1))
    assert len(fake.requests) == n // 10 + 1  # stops on the first short page
    assert all(q["orderbyfieldids"] == "AdminId" and q["take"] == "10" for q in fake.requests)
    assert all(q["skip"] != "-1" for q in fake.requests)
    if keyset and n > 10:
        assert fake.requests[1]["filterfieldids"] == "AdminId"
        assert (fake.requests[1]["filtervalues"], fake.requests[1]["operatortypes"]) == ("10", "4")
        assert all(q["skip"] == "0" for q in fake.requests)
    if not keyset:
        assert [q["skip"] for q in fake.requests] == [str(10 * i) for i in range(n // 10 + 1)]


async def test_keyset_paging_keeps_or_groups():
    fake = FakeGetConnector(admin_rows(30))
    spec = GetConnector("Profit_Administrations", ("AdminId",), keyset=True, take=5)
    afas = client(fake)
    filters = [[Filter("AdminCd", "=", "C0")], [Filter("AdminCd", "=", "C1")]]
    rows = [r async for r in afas.iter_rows(spec, filters=filters)]
    await afas.aclose()
    expected = [r["AdminId"] for r in admin_rows(30) if r["AdminCd"] in ("C0", "C1")]
    assert [r["AdminId"] for r in rows] == expected
    assert fake.requests[-1]["filterfieldids"] == "AdminCd,AdminId;AdminCd,AdminId"


async def test_default_take_and_registered_sort_key():
    fake = FakeGetConnector([{"DebtorId": "10001"}])
    afas = client(fake)
    assert [r async for r in afas.iter_rows("Profit_Debtor")] == [{"DebtorId": "10001"}]
    await afas.aclose()
    # Profit_Debtor has 21 columns: the largest page within 150,000 cells (reference §3.4).
    assert fake.requests[0]["take"] == "7142" and fake.requests[0]["orderbyfieldids"] == "DebtorId"


async def test_unregistered_connector_needs_a_sort_key():
    afas = client(FakeGetConnector([]))
    with pytest.raises(KeyError, match="no configured sort key"):
        [r async for r in afas.iter_rows("Profit_Unknown")]
    await afas.aclose()


def test_getconnector_description_is_checked():
    with pytest.raises(ValueError, match="keyset"):
        GetConnector("X", ("A", "B"), keyset=True)
    with pytest.raises(ValueError, match="dotted"):
        GetConnector("X", ("Debtor.Id",))
    with pytest.raises(ValueError, match="too much"):
        GetConnector("X", ("A",), take=5000, columns=40)


async def test_a_key_that_does_not_grow_is_a_paging_loop():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"skip": 0, "take": 2, "rows": [{"AdminId": 1}, {"AdminId": 2}]})

    afas = client(handler)
    spec = GetConnector("Profit_Administrations", ("AdminId",), keyset=True, take=2)
    with pytest.raises(ProtocolError, match="loop"):
        [r async for r in afas.iter_rows(spec)]
    await afas.aclose()


# --- frames -------------------------------------------------------------------------------------------

META = {
    "name": "Koppel_Sales_Prices",
    "fields": [
        {"id": "ItemCode", "dataType": "string"},
        {"id": "DebtorId", "dataType": "string"},
        {"id": "Price", "dataType": "decimal", "decimals": 2},
        {"id": "DateStart", "dataType": "date"},
        {"id": "Qty", "dataType": "int"},
        {"id": "Blocked", "dataType": "boolean"},
    ],
}


def frame_handler(rows: list[dict]) -> Callable:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/metainfo/get/" in request.url.path:
            return httpx.Response(200, json=META)
        q = query(request)
        skip, take = int(q["skip"]), int(q["take"])
        text = json.dumps({"skip": skip, "take": take, "rows": rows[skip : skip + take]})
        return httpx.Response(200, content=text.replace('"PRICE"', "95.10"))

    return handler


async def test_read_frame_types_columns_from_metainfo():
    rows = [
        {
            "ItemCode": "SUPPORT",
            "DebtorId": None,
            "Price": "PRICE",
            "DateStart": "2026-03-29T02:30:00Z",
            "Qty": 3,
            "Blocked": False,
        },
        {
            "ItemCode": "CONSULT",
            "DebtorId": "10001",
            "Price": 125,
            "DateStart": "2026-10-25T02:30:00Z",
            "Qty": None,
            "Blocked": True,
        },
        {
            "ItemCode": "ONSITE",
            "DebtorId": "10002",
            "Price": None,
            "DateStart": "2026-07-01T00:00:00Z",
            "Qty": 1,
            "Blocked": None,
        },
    ]
    afas = client(frame_handler(rows))
    frame = await afas.read_frame("Koppel_Sales_Prices")
    again = await afas.read_frame("Koppel_Sales_Prices")
    stats = afas.stats()
    await afas.aclose()
    assert list(frame.columns) == ["ItemCode", "DebtorId", "Price", "DateStart", "Qty", "Blocked"]
    assert frame["Price"].tolist() == [Decimal("95.10"), Decimal("125"), None]
    assert str(frame["DateStart"].dtype) == "datetime64[ns, Europe/Amsterdam]"
    # 02:30 on 29 March does not exist (spring forward); 02:30 on 25 October exists twice (summer time taken)
    assert frame["DateStart"][0] == pd.Timestamp("2026-03-29T03:00:00", tz=AMS)
    assert frame["DateStart"][1].utcoffset().total_seconds() == 7200
    assert frame["DateStart"][2] == pd.Timestamp(datetime(2026, 7, 1, tzinfo=AMS))
    assert frame["Qty"].dtype == "Int64" and frame["Qty"].isna().tolist() == [False, True, False]
    assert frame["Blocked"].dtype == "boolean"
    assert pd.isna(frame["DebtorId"][0]) and frame["DebtorId"][1] == "10001"
    assert again.equals(frame)
    assert stats["GET metainfo/get/{connector}"]["count"] == 1  # cached per client


async def test_empty_result_gives_typed_empty_frame():
    afas = client(frame_handler([]))
    frame = await afas.read_frame("Koppel_Sales_Prices")
    await afas.aclose()
    assert frame.empty and list(frame.columns) == [f["id"] for f in META["fields"]]
    assert "Europe/Amsterdam" in str(frame["DateStart"].dtype) and frame["Qty"].dtype == "Int64"


# --- payloads and answers -----------------------------------------------------------------------------


def test_payload_builder_and_root_names():
    line = element({"VaIt": 1, "ItCd": "SUPPORT", "BiUn": "uur", "QuUn": Decimal("1.5")})
    invoice = element({"DbId": "10001", "RfCs": "K-1"}, objects={"FbDirectInvoiceLines": [line, line]})
    assert body("FbDirectInvoice", invoice) == {
        "FbDirectInvoice": {
            "Element": {
                "Fields": {"DbId": "10001", "RfCs": "K-1"},
                "Objects": {"FbDirectInvoiceLines": {"Element": [line, line]}},
            }
        }
    }
    assert list(body("FiEntries", [line, line])) == ["FiEntryPar"]
    assert list(body("KnOrgUnit", line)) == ["KnOrgunit"]
    assert list(body("KnEmployee", line)) == ["AfasEmployee"]
    assert element({"Ds": "x"}, keys={"DbId": "10001"}) == {"@DbId": "10001", "Fields": {"Ds": "x"}}
    assert as_body("FiEntries", {"FiEntries": {"Element": line}}) == {"FiEntryPar": {"Element": line}}
    assert as_body("PtRealization", [line]) == {"PtRealization": {"Element": line}}


def test_delete_paths():
    assert (
        delete_path("FbDirectInvoice", {"OrNu": "12 3"})
        == "connectors/FbDirectInvoice/FbDirectInvoice/@OrNu/12%203"
    )
    assert (
        delete_path("HrAbsenceID", {"Id": 4, "EmId": "E1"})
        == "connectors/HrAbsenceID/HrAbsenceID/@Id,@EmId/4,E1"
    )
    assert delete_path("KnOrgUnit", {"OuId": "D1"}) == "connectors/KnOrgUnit/KnOrgunit/@OuId/D1"


@pytest.mark.parametrize(
    ("answer", "expected", "name"),
    [
        ({"results": {"FbDirectInvoice": {"OrNu": "123"}}}, {"OrNu": "123"}, "FbDirectInvoice"),
        (
            {"results": {"FiEntries": {"EnNo": "70001", "UnId": "1", "InID": "X1"}}},
            {"EnNo": "70001", "UnId": "1", "InID": "X1"},
            "FiEntries",
        ),
        (
            {"FiEntryPar": {"UnId": "1", "EnNo": "48227", "InId": "IH001057X"}},
            {"UnId": "1", "EnNo": "48227", "InId": "IH001057X"},
            "FiEntryPar",
        ),
        ({"OrNu": 5}, {"OrNu": "5"}, ""),
        (None, {}, ""),
        ({}, {}, ""),
    ],
)
def test_answers_in_every_shape(answer, expected, name):
    keys = parse_keys(answer)
    assert dict(keys) == expected and keys.object_name == name
    if "InID" in expected or "InId" in expected:
        assert keys["inid"] == keys["InID"] == keys["InId"]


async def test_writes_return_keys_and_accept_empty_bodies():
    calls: list[tuple[str, str, dict | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        content = json.loads(request.content) if request.content else None
        calls.append((request.method, request.url.path, content))
        if request.method == "POST":
            return httpx.Response(201, json={"results": {"PtRealization": {"XpRe": "u-1", "Id": 7}}})
        return httpx.Response(200, content=b"")

    afas = client(handler)
    inserted = await afas.insert("PtRealization", element({"Qu": Decimal("0.25"), "XpRe": "u-1"}))
    updated = await afas.update("PtRealization", element({"Qu": Decimal("0.5")}, keys={"Id": 7}))
    deleted = await afas.delete("FbDirectInvoice", {"OrNu": "9"})
    await afas.aclose()
    assert dict(inserted) == {"XpRe": "u-1", "Id": "7"} and not inserted.recovered
    assert len(updated) == 0 and len(deleted) == 0
    assert calls[0][2] == {"PtRealization": {"Element": {"Fields": {"Qu": 0.25, "XpRe": "u-1"}}}}
    assert calls[1][0] == "PUT" and calls[2][1].endswith(
        "/connectors/FbDirectInvoice/FbDirectInvoice/@OrNu/9"
    )


# --- errors -------------------------------------------------------------------------------------------


def afas_500(message: str) -> httpx.Response:
    return httpx.Response(
        500, json={"externalMessage": message, "errorNumber": -2147180999, "profitLogReference": "ab" * 16}
    )


async def test_business_error_is_raised_at_once():
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return afas_500("De ingevulde waarde bij 'Debiteur' bestaat niet.")

    afas = client(handler)
    with pytest.raises(BusinessError) as caught:
        await afas.insert("FbDirectInvoice", element({"DbId": "99999"}))
    await afas.aclose()
    error = caught.value
    assert len(seen) == 1
    assert error.external_message == "De ingevulde waarde bij 'Debiteur' bestaat niet."
    assert error.error_number == -2147180999 and error.profit_log_reference == "ab" * 16
    assert "ab" * 16 in str(error)


@pytest.mark.parametrize(
    "message",
    [
        "De maximale tijdsduur voor het uitvoeren van de opdracht is verstreken.",
        "The maximum duration for executing the command has been exceeded.",
        "De boekingslay-out is vergrendeld door een andere gebruiker.",
    ],
)
async def test_transient_500_is_retried_three_times_on_get(message):
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return afas_500(message)

    afas = client(handler)
    with pytest.raises(Unavailable) as caught:
        await afas.profit_version()
    await afas.aclose()
    assert len(seen) == 4 and caught.value.last_status == 500


async def test_locked_layout_write_is_retried_but_timed_out_write_is_uncertain():
    answers = [afas_500("Booking layout is locked by another user."), httpx.Response(201, json={})]

    def handler(request: httpx.Request) -> httpx.Response:
        return (
            answers.pop(0)
            if answers
            else afas_500("De maximale tijdsduur voor het uitvoeren van de opdracht is verstreken.")
        )

    afas = client(handler)
    assert len(await afas.insert("FiEntries", element({"Year": 2026}))) == 0
    with pytest.raises(UncertainOutcome):
        await afas.insert("FiEntries", element({"Year": 2026}))
    await afas.aclose()


async def test_503_body_retry_after_is_honoured_and_long_waits_stop():
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    body_503 = {"error": {"code": "503", "message": "maintenance"}, "retry_after": 2}
    answers = [
        httpx.Response(503, json=body_503),
        httpx.Response(200, json={"version": "1"}),
        httpx.Response(503, json={**body_503, "retry_after": 7200}),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    afas = AfasClient.from_settings(
        settings(), transport=httpx.MockTransport(handler), policy=FAST, sleep=sleep
    )
    assert await afas.profit_version() == "1"
    assert delays == [2.0]
    with pytest.raises(Maintenance, match="AFAS maintenance"):
        await afas.profit_version()
    await afas.aclose()


async def test_bad_token_gives_one_clear_auth_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"externalMessage": "Token is ongeldig"})

    afas = client(handler)
    with pytest.raises(AuthError) as caught:
        await afas.profit_version()
    await afas.aclose()
    text = str(caught.value)
    assert "\n" not in text
    hint = "check the token / app connector / permissions"
    settings_hint = (
        "check KOPPEL_AFAS_TOKEN (an app connector switched to OAuth only needs "
        "KOPPEL_AFAS_AUTH=client_secret or private_key_jwt)"
    )
    assert text == f"AFAS GET profitversion (HTTP 401): Token is ongeldig; {settings_hint} — {hint}"


# --- insert once --------------------------------------------------------------------------------------


class LosingServer:
    """Stores posted invoices; loses the answer of the first ``lose`` posts; serves the read-back."""

    def __init__(self, lose: int, commit_lost: bool = True) -> None:
        self.lose = lose
        self.commit_lost = commit_lost
        self.invoices: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            fields = json.loads(request.content)["FbDirectInvoice"]["Element"]["Fields"]
            if self.lose and not self.commit_lost:
                self.lose -= 1
                raise httpx.ReadTimeout("lost before commit")
            self.invoices.append({"OrNu": str(len(self.invoices) + 1), "RfCs": fields["RfCs"]})
            if self.lose:
                self.lose -= 1
                raise httpx.RemoteProtocolError("connection dropped after commit")
            return httpx.Response(
                201, json={"results": {"FbDirectInvoice": {"OrNu": self.invoices[-1]["OrNu"]}}}
            )
        q = query(request)
        rows = [r for r in self.invoices if r["RfCs"] == q.get("filtervalues")]
        return httpx.Response(200, json={"skip": 0, "take": 1000, "rows": rows})


async def test_insert_once_recovers_a_lost_answer_without_reposting():
    server = LosingServer(lose=1)
    afas = client(server)
    ref = Reference("Koppel_DirectInvoices", "RfCs", "KOPPEL-2026-10-A")
    keys = await afas.insert_once("FbDirectInvoice", element({"DbId": "1", "RfCs": ref.value}), reference=ref)
    await afas.aclose()
    assert keys.recovered and dict(keys) == {"OrNu": "1"}
    assert len(server.invoices) == 1


async def test_insert_once_reposts_when_the_document_is_not_there():
    server = LosingServer(lose=1, commit_lost=False)
    afas = client(server)
    ref = Reference("Koppel_DirectInvoices", "RfCs", "KOPPEL-2026-10-B")
    keys = await afas.insert_once("FbDirectInvoice", element({"DbId": "1", "RfCs": ref.value}), reference=ref)
    await afas.aclose()
    assert not keys.recovered and dict(keys) == {"OrNu": "1"}
    assert len(server.invoices) == 1


async def test_find_by_reference_with_a_comma_uses_filterjson():
    seen: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(query(request))
        return httpx.Response(200, json={"skip": 0, "take": 1000, "rows": []})

    afas = client(handler)
    assert await afas.find_by_reference(Reference("Koppel_DirectInvoices", "RfCs", "a,b")) is None
    await afas.aclose()
    assert "filterjson" in seen[0] and seen[0]["orderbyfieldids"] == "OrNu"


def test_keys_mapping_behaviour():
    keys = Keys({"InID": "X", "EnNo": 5}, object_name="FiEntries")
    assert keys["inid"] == "X" and "ENNO" in keys and keys == {"InID": "X", "EnNo": "5"}
    assert "recovered" not in repr(keys)


def test_incremental_reads_overlap_five_minutes():
    from connectors.afas.filters import modified_since

    since = datetime(2026, 10, 1, 8, 0, tzinfo=ZoneInfo("UTC"))
    params = filter_params(groups_of(modified_since("ModifiedDate", since)))
    assert params == {
        "filterfieldids": "ModifiedDate",
        "filtervalues": "2026-10-01T09:55:00",
        "operatortypes": "2",
    }


async def test_503_without_retry_after_waits_the_30_second_fallback():
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    answers = [httpx.Response(503, content=b""), httpx.Response(200, json={"version": "1"})]
    afas = AfasClient.from_settings(
        settings(), transport=httpx.MockTransport(lambda r: answers.pop(0)), policy=RetryPolicy(), sleep=sleep
    )
    assert await afas.profit_version() == "1"
    await afas.aclose()
    assert delays == [30.0]


async def test_transient_500_cap_counts_only_its_own_kind():
    timeout = "De maximale tijdsduur voor het uitvoeren van de opdracht is verstreken."
    answers = [httpx.Response(503, json={"retry_after": 0}) for _ in range(3)]
    answers += [afas_500(timeout), httpx.Response(200, json={"version": "2"})]
    policy = RetryPolicy(max_attempts=10, base_delay=0.001, max_delay=0.01, max_total_seconds=30)
    afas = AfasClient.from_settings(
        settings(), transport=httpx.MockTransport(lambda r: answers.pop(0)), policy=policy, sleep=no_sleep
    )
    assert await afas.profit_version() == "2"  # the 4th attempt was only the 1st time-out
    answers[:] = [httpx.Response(503, json={"retry_after": 0})] + [afas_500(timeout) for _ in range(5)]
    with pytest.raises(Unavailable, match="gave up after 5 attempts"):
        await afas.profit_version()  # 1 throttle + 4 time-outs: the time-out's own cap of 4
    await afas.aclose()
    assert len(answers) == 1
