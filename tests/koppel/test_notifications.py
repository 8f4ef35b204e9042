"""Failure notifications: the message, and the hook sending through a real Prefect notification block."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from connectors.errors import BusinessError
from koppel.notifications import Failure, exception_references, log_references, message

REFERENCE = "4f1c0c5e9d2b4a7f8e6d5c4b3a291807"
DOCUMENT_REFERENCE = "aa11bb22cc33dd44ee55ff6677889900"


def test_log_references_are_found_once_in_order() -> None:
    text = f"AFAS said no (profitLogReference {REFERENCE.upper()}); again {REFERENCE}; id 1234"
    assert log_references(text, None, f"x {DOCUMENT_REFERENCE}") == [REFERENCE, DOCUMENT_REFERENCE]


def test_exception_references_follow_the_cause_chain() -> None:
    inner = BusinessError("Debiteur geblokkeerd", profit_log_reference=REFERENCE, system="AFAS")
    try:
        try:
            raise inner
        except BusinessError as error:
            raise RuntimeError("loading failed") from error
    except RuntimeError as outer:
        assert exception_references(outer) == [REFERENCE]
    assert exception_references(None) == []


def test_message_names_run_state_parameters_reference_and_link_without_secrets() -> None:
    failure = Failure(
        flow_name="invoice-hours",
        run_name="crimson-owl",
        run_id="5b0e",
        state_name="Failed",
        state_message="Flow run encountered an exception: BusinessError: AFAS POST FbDirectInvoice",
        parameters={
            "parameters": {"start_date": "2026-10-01", "dry_run": False, "api_token": "s3cret", "resend": []}
        },
        log_references=(REFERENCE,),
        ui_url="http://127.0.0.1:4200/",
    )
    subject, body = message(failure)
    assert subject == "Koppel: invoice-hours run crimson-owl failed"
    assert body.splitlines() == [
        "Flow: invoice-hours",
        "Run: crimson-owl (5b0e)",
        "State: Failed: Flow run encountered an exception: BusinessError: AFAS POST FbDirectInvoice",
        "Parameters: start_date=2026-10-01, dry_run=False, api_token=[redacted]",
        f"AFAS log reference: {REFERENCE}",
        "Open in Prefect: http://127.0.0.1:4200/runs/flow-run/5b0e",
    ]


class _Inbox(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Inbox.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def inbox() -> Iterator[str]:
    _Inbox.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Inbox)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.mark.prefect
def test_hook_sends_through_the_block_with_afas_references(
    prefect_harness: None, inbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow, runtime
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from koppel.notifications import notify_failure
    from store import ledger
    from store.db import connect
    from store.settings import StoreSettings
    from tests.store_support import charges

    CustomWebhookNotificationBlock(
        name="koppel", url=inbox, json_data={"subject": "{{subject}}", "body": "{{body}}"}
    ).save("koppel-test-alerts", overwrite=True)
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", url)
    monkeypatch.setenv("KOPPEL_NOTIFY_BLOCK", "custom-webhook/koppel-test-alerts")
    engine = connect(StoreSettings(db_url=url))

    @flow(name="koppel-failing", on_failure=[notify_failure])
    def failing(month: str) -> None:
        run_id = str(runtime.flow_run.id)
        ledger.claim(engine, run_id, charges("INV-9", ["r-9"]))
        ledger.mark_failed(engine, "INV-9", "Periode is geblokkeerd", DOCUMENT_REFERENCE)
        raise BusinessError("Debiteur 10001 is geblokkeerd", profit_log_reference=REFERENCE, system="AFAS")

    state = failing("2026-10", return_state=True)
    assert state.is_failed()
    [sent] = _Inbox.received
    assert sent["subject"].startswith("Koppel: koppel-failing run ") and sent["subject"].endswith(" failed")
    body = sent["body"].splitlines()
    assert f"AFAS log reference: {REFERENCE}, {DOCUMENT_REFERENCE}" in body
    assert "Parameters: month=2026-10" in body
    assert any(
        line.startswith("State: Failed: ") and "Debiteur 10001 is geblokkeerd" in line for line in body
    )
    engine.dispose()


@pytest.mark.prefect
def test_hook_without_a_block_only_logs(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from prefect import flow

    from koppel.notifications import notify_failure

    monkeypatch.delenv("KOPPEL_NOTIFY_BLOCK", raising=False)
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", f"sqlite:///{tmp_path / 'state.db'}")

    @flow(name="koppel-crashing", on_failure=[notify_failure])
    def crashing() -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.WARNING, logger="koppel.notifications"):
        assert crashing(return_state=True).is_failed()
    [record] = [r for r in caplog.records if r.name == "koppel.notifications"]
    assert "Koppel: koppel-crashing run" in record.getMessage()
    assert "no KOPPEL_NOTIFY_BLOCK set" in record.getMessage()


@pytest.mark.prefect
def test_a_run_with_a_refused_document_fails_logs_the_refusal_and_notifies_through_the_block(
    prefect_harness: None, inbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    from flows.invoice_hours import invoice_hours
    from sandbox.server import running_sandbox
    from store import ledger
    from store.db import connect
    from store.settings import StoreSettings
    from tests.invoice_support import OCTOBER, small_world, use_sandbox

    CustomWebhookNotificationBlock(
        name="koppel", url=inbox, json_data={"subject": "{{subject}}", "body": "{{body}}"}
    ).save("koppel-refusals", overwrite=True)
    monkeypatch.setenv("KOPPEL_NOTIFY_BLOCK", "custom-webhook/koppel-refusals")
    with running_sandbox(small_world()) as sandbox:
        use_sandbox(monkeypatch, sandbox, tmp_path)
        dry = invoice_hours(start_date=OCTOBER[0], end_date=OCTOBER[1], dry_run=True)
        assert _Inbox.received == []  # a green run sends nothing
        victim = dry["documents"][dry["documents"]["kind"].eq("direct_invoice")].iloc[0]
        sandbox.apps["afas"].state.sim.reject_next_post(victim["debtor"], "Debiteur is geblokkeerd.")
        state = invoice_hours(start_date=OCTOBER[0], end_date=OCTOBER[1], return_state=True)
    assert state.is_failed() and state.message == "1 document refused by AFAS"
    record = ledger.document(connect(StoreSettings()), victim["reference"])
    [sent] = _Inbox.received
    assert sent["subject"] == "Koppel: invoice-hours run invoice-hours 2026-10 failed"
    body = sent["body"].splitlines()
    assert "State: Failed: 1 document refused by AFAS" in body
    assert f"AFAS log reference: {record.profit_log_reference}" in body
    APILogWorker.drain_all(timeout=30)  # the run's logs are sent in the background: send them now
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    warnings = [log.message for log in logs if log.level == logging.WARNING]
    assert any(
        f"AFAS refused {victim['reference']}" in m
        and "Debiteur is geblokkeerd." in m
        and record.profit_log_reference in m
        and f"koppel resend {victim['reference']}" in m
        for m in warnings
    ), warnings


@pytest.mark.prefect
def test_a_block_that_cannot_notify_is_logged_not_raised(
    prefect_harness: None, caplog: pytest.LogCaptureFixture
) -> None:
    """KOPPEL_NOTIFY_BLOCK naming another kind of block (a Secret) must not break the run that notifies."""
    from prefect.blocks.system import Secret

    from koppel.notifications import send

    Secret(value="not a notifier").save("koppel-test-not-a-notifier", overwrite=True)
    with caplog.at_level(logging.ERROR, logger="koppel.notifications"):
        assert send("Koppel: subject", "body", "secret/koppel-test-not-a-notifier") is False
    [record] = [r for r in caplog.records if r.name == "koppel.notifications"]
    assert "secret/koppel-test-not-a-notifier" in record.getMessage()
    assert "not a notification block" in record.getMessage()
    assert "not a notifier" not in record.getMessage()  # the block's secret value is never shown
