"""The shared HTTP layer: retries, write safety, limits, counters, redaction (httpx.MockTransport)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

import httpx
import pytest

from connectors.errors import (
    AuthError,
    Maintenance,
    ProtocolError,
    RequestRejected,
    Unavailable,
    UncertainOutcome,
)
from connectors.http import (
    HttpConfig,
    HttpLayer,
    RetryPolicy,
    Where,
    decode_json,
    encode_json,
    endpoint_label,
    parse_retry_after,
)
from connectors.redaction import redact, redact_headers

pytestmark = pytest.mark.anyio


FAST = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.05, max_total_seconds=60)
SECRET = "s3cr3t-password-value"


class Recorder:
    """Collects the sleeps the layer asks for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def layer(
    handler: Callable, *, policy: RetryPolicy = FAST, concurrency: int = 4
) -> tuple[HttpLayer, Recorder]:
    sleep = Recorder()
    config = HttpConfig(
        system="TEST",
        base_url="http://test.invalid/api",
        auth=httpx.BasicAuth("user", SECRET),
        policy=policy,
        max_concurrency=concurrency,
        secrets=[SECRET],
        transport=httpx.MockTransport(handler),
        seed=7,
    )
    return HttpLayer(config, sleep=sleep), sleep


def scripted(*answers: int | Exception | httpx.Response) -> tuple[Callable, list[httpx.Request]]:
    """A handler that plays ``answers`` in order (the last one repeats)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        answer = answers[min(len(seen), len(answers) - 1)]
        seen.append(request)
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, httpx.Response):
            return answer
        return httpx.Response(answer, json={"ok": answer < 300})

    return handler, seen


async def test_get_retries_503_then_succeeds_and_counts():
    handler, seen = scripted(503, 503, 200)
    http, sleep = layer(handler)
    response = await http.request("GET", "items", endpoint="items")
    await http.aclose()
    assert response.status_code == 200
    assert len(seen) == 3
    assert len(sleep.delays) == 2
    stats = http.stats.as_dict()["GET items"]
    assert (stats["count"], stats["errors"], stats["retries"]) == (3, 2, 2)
    assert stats["seconds"] >= 0


async def test_retry_after_header_is_honoured():
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": "3"}), 200)
    http, sleep = layer(handler)
    await http.request("GET", "items")
    await http.aclose()
    assert sleep.delays == [3.0]


async def test_get_exhaustion_raises_unavailable_with_last_status():
    handler, seen = scripted(502, 503, 504, 503)
    http, _ = layer(handler)
    with pytest.raises(Unavailable) as caught:
        await http.request("GET", "items")
    await http.aclose()
    assert len(seen) == FAST.max_attempts
    assert caught.value.last_status == 503
    assert "gave up after 4 attempts" in str(caught.value)


async def test_total_retry_time_is_capped():
    policy = RetryPolicy(max_attempts=10, base_delay=0.01, max_total_seconds=5)
    handler, seen = scripted(httpx.Response(503, headers={"Retry-After": "4"}))
    http, sleep = layer(handler, policy=policy)
    with pytest.raises(Unavailable):
        await http.request("GET", "items")
    await http.aclose()
    assert sleep.delays == [4.0]  # the second 4 s wait would pass the 5 s budget
    assert len(seen) == 2


async def test_wait_above_max_retry_after_stops_as_maintenance():
    handler, seen = scripted(httpx.Response(503, headers={"Retry-After": "7200"}))
    http, sleep = layer(handler)
    with pytest.raises(Maintenance):
        await http.request("GET", "items")
    await http.aclose()
    assert len(seen) == 1 and sleep.delays == []


async def test_get_retries_connection_errors_and_read_timeouts():
    handler, seen = scripted(httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 200)
    http, _ = layer(handler)
    assert (await http.request("GET", "items")).status_code == 200
    await http.aclose()
    assert len(seen) == 3


@pytest.mark.parametrize("status", [429, 503])
async def test_write_refused_before_processing_is_retried(status):
    handler, seen = scripted(status, 201)
    http, _ = layer(handler)
    response = await http.request("POST", "items", body={"a": 1})
    await http.aclose()
    assert response.status_code == 201 and len(seen) == 2


async def test_write_that_never_connected_is_retried():
    handler, seen = scripted(httpx.ConnectError("refused"), 201)
    http, _ = layer(handler)
    assert (await http.request("POST", "items", body={})).status_code == 201
    await http.aclose()
    assert len(seen) == 2


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("lost"), httpx.RemoteProtocolError("reset"), httpx.ReadError("reset"), 502, 504],
    ids=["read-timeout", "protocol-error", "read-error", "502", "504"],
)
async def test_write_with_unknown_fate_is_uncertain_and_not_resent(failure):
    handler, seen = scripted(failure, 201)
    http, _ = layer(handler)
    with pytest.raises(UncertainOutcome) as caught:
        await http.request("PATCH", "items/1", body={"a": 1})
    await http.aclose()
    assert len(seen) == 1
    assert "may have been executed" in str(caught.value)


async def test_auth_failure_is_not_retried():
    handler, seen = scripted(httpx.Response(401, json=[{"message": "No authentication token provided"}]))
    http, _ = layer(handler)
    with pytest.raises(AuthError) as caught:
        await http.request("GET", "items")
    await http.aclose()
    assert len(seen) == 1
    assert "check the token / app connector / permissions" in str(caught.value)
    assert "No authentication token provided" in str(caught.value)


async def test_client_errors_are_rejected_without_retry():
    handler, seen = scripted(httpx.Response(400, text="Input parameters malformed"))
    http, _ = layer(handler)
    with pytest.raises(RequestRejected) as caught:
        await http.request("GET", "items")
    await http.aclose()
    assert len(seen) == 1 and caught.value.status == 400


async def test_concurrency_is_bounded():
    active = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return httpx.Response(200, json={})

    http, _ = layer(handler, concurrency=3)
    await asyncio.gather(*(http.request("GET", f"items/{i}") for i in range(12)))
    await http.aclose()
    assert peak == 3
    assert http.stats.as_dict()["GET items/{id}"]["count"] == 12


def test_backoff_is_full_jitter_and_capped():
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0)
    rng = random.Random(1)
    samples = [policy.backoff(retry, rng) for retry in (1, 2, 3, 4, 5, 6) for _ in range(200)]
    assert min(samples) >= 0.0 and max(samples) <= 8.0
    first = [policy.backoff(1, rng) for _ in range(500)]
    assert max(first) <= 1.0 and min(first) < 0.1  # full jitter: anywhere in [0, base]


def test_parse_retry_after_seconds_and_dates():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    assert 85 <= parse_retry_after(later) <= 90


def test_encode_json_keeps_decimals_exact():
    data = encode_json(
        {"Upri": Decimal("95.00"), "QuUn": Decimal("0.05"), "big": Decimal("12345678901234567.891")}
    )
    assert data == b'{"Upri":95.0,"QuUn":0.05,"big":"12345678901234567.891"}'
    assert encode_json({"Ds": "café", "d": datetime(2026, 10, 1, tzinfo=UTC).date()}) == (
        '{"Ds":"café","d":"2026-10-01"}'.encode()
    )


def test_encode_json_refuses_what_is_not_json_and_writes_any_mapping():
    from types import MappingProxyType

    with pytest.raises(ValueError, match="not a finite number"):
        encode_json({"Upri": Decimal("NaN")})
    with pytest.raises(ValueError):
        encode_json({"Upri": float("inf")})
    with pytest.raises(TypeError):
        encode_json({"x": object()})
    body = MappingProxyType({"Element": ({"Fields": MappingProxyType({"Upri": Decimal("2.50")})},)})
    assert encode_json(body) == b'{"Element":[{"Fields":{"Upri":2.5}}]}'


def test_decode_json_shapes():
    where = Where("TEST", "GET", "x")
    assert decode_json(httpx.Response(200, content=b""), where) is None
    assert decode_json(httpx.Response(200, content=b'{"a": 1.10}'), where, decimals=True) == {
        "a": Decimal("1.10")
    }
    with pytest.raises(ProtocolError) as caught:
        decode_json(httpx.Response(200, content=b"<html>gateway</html>"), where)
    assert "<html>gateway</html>" in str(caught.value)


def test_endpoint_labels_hide_ids():
    assert endpoint_label("/incidents/id/8f2a0c1e-4b7d-4d6e-9a1b-2c3d4e5f6a7b") == "incidents/id/{id}"
    assert endpoint_label("connectors/Profit_Debtor?skip=0") == "connectors/Profit_Debtor"
    assert endpoint_label("branches/id/123/archive") == "branches/id/{id}/archive"


async def test_secrets_never_logged_or_in_errors(caplog):
    handler, _ = scripted(httpx.ReadTimeout("timed out"), httpx.Response(500, text=f"echo {SECRET}"))
    http, _ = layer(handler)
    for name in ("", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name or None)
    with pytest.raises(Unavailable) as caught:
        await http.request("GET", "items")
    await http.aclose()
    basic = httpx.BasicAuth("user", SECRET)._auth_header.split(" ", 1)[1]  # the encoded form too
    text = caplog.text + str(caught.value) + repr(caught.value) + repr(http)
    assert "GET" in caplog.text  # the request was logged …
    assert SECRET not in text and basic not in text  # … without the password in either form


def test_redaction_helpers():
    from connectors.redaction import forget_secrets, register_secrets

    register_secrets(["topsecretvalue"])
    try:
        assert redact("x topsecretvalue y") == "x *** y"
        assert redact_headers({"Authorization": "Basic abc", "Accept": "topsecretvalue"}) == {
            "Authorization": "***",
            "Accept": "***",
        }
    finally:
        forget_secrets(["topsecretvalue"])
    assert redact("topsecretvalue") == "topsecretvalue"
