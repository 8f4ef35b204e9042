"""Write-back of the billed status into TOPdesk, end to end against the sandbox.

Every test reads TOPdesk back (the actions on each ticket, the optional fields) and compares it per
posted document and ticket with what the ledger says AFAS confirmed: exactly one Koppel note each, with
the document's reference and minutes, whatever failed or crashed on the way.
"""

from __future__ import annotations

import signal
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from connectors.http import RetryPolicy
from sandbox.server import running_sandbox
from sandbox.topdesk.ticket_writes import knobs
from store import ledger
from store import writeback as store
from store.db import connect
from store.settings import StoreSettings
from tasks.invoice_hours.config import BillingConfigError, parse_billing_config
from tasks.invoice_hours.writeback_load import CONCURRENT_TICKETS
from tests.invoice_support import OCTOBER, afas_invoices, run_script, small_world, use_sandbox
from tests.reconcile_support import backfill, pick, pin_today, regular

pytestmark = pytest.mark.prefect
CONFIG = Path(__file__).resolve().parents[2] / "config" / "billing.toml"
WRITEBACK = """
[writeback.incident]
memo = true
optional_field = "optionalFields1.text2"

[writeback.change]
memo = true

[writeback.change_activity]
memo = true

[writeback.operational_activity]
optional_field = "optionalFields2.text1"
"""
MEMO_KINDS = ("incident", "change", "change_activity")


@pytest.fixture
def sandbox(sandbox, monkeypatch):
    """The session's small-world sandbox (tests/conftest.py), with today pinned."""
    pin_today(monkeypatch)
    return sandbox


def config_path(tmp_path: Path, extra: str = WRITEBACK) -> str:
    path = tmp_path / "billing.toml"
    path.write_text(CONFIG.read_text() + "\n" + extra)
    return str(path)


def topdesk(sandbox):
    return sandbox.apps["topdesk"].state.sim


def expected_notes() -> dict[tuple[str, str, str], tuple[int, int]]:
    """(reference, kind, ticket) → (minutes charged, minutes credited) of every posted document line."""
    lines = ledger.posted_lines(connect(StoreSettings()))
    lines = lines[lines["registration_kind"].isin(MEMO_KINDS) & lines["ticket_id"].notna()]
    out: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in lines.itertuples():
        key = (row.document_reference, row.registration_kind, row.ticket_id)
        out[key][0 if row.line_kind == "charge" else 1] += abs(int(row.minutes))
    return {key: (charged, credited) for key, (charged, credited) in out.items()}


def koppel_actions(sandbox) -> dict[tuple[str, str], list[dict]]:
    """Koppel's actions per (kind, ticket) as TOPdesk holds them."""
    held = knobs(topdesk(sandbox)).actions
    return {key: [a for a in rows if "[Koppel " in a["memoText"]] for key, rows in held.items()}


def assert_one_note_per_document_and_ticket(sandbox) -> dict[tuple[str, str, str], tuple[int, int]]:
    expected = expected_notes()
    assert expected, "nothing was billed on tickets"
    actions = koppel_actions(sandbox)
    for (reference, kind, ticket), (charged, credited) in expected.items():
        mine = [a for a in actions.get((kind, ticket), []) if f"[Koppel {reference}]" in a["memoText"]]
        assert len(mine) == 1, (reference, kind, ticket, mine)
        assert mine[0]["invisibleForCaller"] is True
        if charged:
            assert f"{charged} minutes billed" in mine[0]["plainText"], mine[0]
        if credited:
            assert f"{credited} minutes credited" in mine[0]["plainText"], mine[0]
    assert sum(len(rows) for rows in actions.values()) == len(expected)  # no stray or double notes
    return expected


def test_config_is_off_by_default_and_refuses_what_topdesk_cannot_take() -> None:
    base = CONFIG.read_text()
    assert not parse_billing_config(base).writeback.enabled
    config = parse_billing_config(base + WRITEBACK)
    assert config.writeback.incident.optional_field == "optionalFields1.text2"
    with pytest.raises(BillingConfigError, match="where incidents keep their AFAS project"):
        parse_billing_config(base + '[writeback.incident]\noptional_field = "optionalFields1.text1"\n')
    assert config.writeback.change.optional_field is None
    with pytest.raises(BillingConfigError, match="REST API for problems"):
        parse_billing_config(base + "[writeback.problem]\nmemo = true\n")
    with pytest.raises(BillingConfigError, match="optional text field"):
        parse_billing_config(base + '[writeback.incident]\noptional_field = "optionalFields1.memo1"\n')
    with pytest.raises(BillingConfigError, match="Operations"):
        parse_billing_config(base + "[writeback.operational_activity]\nmemo = true\n")


def test_off_by_default_writes_nothing(prefect_harness, sandbox) -> None:
    result = backfill(*OCTOBER)
    assert result["documents"]["status"].eq("posted").any()
    assert koppel_actions(sandbox) == {} and knobs(topdesk(sandbox)).writes == 0


def test_every_billed_ticket_gets_one_note_and_a_reversal_writes_its_own(
    prefect_harness, sandbox, tmp_path
) -> None:
    path = config_path(tmp_path)
    first = regular(config_path=path)
    assert first["not_clean"] is None
    expected = assert_one_note_per_document_and_ticket(sandbox)
    rows = store.state(connect(StoreSettings()))
    assert set(rows["status"]) == {"written"}
    assert knobs(topdesk(sandbox)).writes == len(rows)  # one TOPdesk write per note, memo and field together
    held = afas_invoices(sandbox.apps["afas"].state.sim)
    direct = {ref for (ref, _, _) in expected if ref in set(first["documents"]["reference"])}
    assert direct & set(held)  # the notes name documents AFAS holds
    assert first["context"]["writeback"].startswith("**TOPdesk write-back:** ")
    sim = topdesk(sandbox)
    incidents = {ticket for (_, kind, ticket) in expected if kind == "incident"}
    fields = knobs(sim).incident_fields
    texts = {fields[t]["optionalFields1"]["text2"] for t in incidents}
    assert texts and all(text.startswith("Koppel KPL") for text in texts)
    activities = ledger.posted_lines(connect(StoreSettings()))
    activities = activities[activities["registration_kind"].eq("operational_activity")]
    for ticket in set(activities["ticket_id"].dropna()):
        assert sim.om_activities.by_id[ticket]["optionalFields2"]["text1"].startswith("Koppel KPL")

    assert regular(config_path=path)["not_clean"] is None  # a rerun writes nothing new
    assert_one_note_per_document_and_ticket(sandbox)

    victim = pick(first, sandbox.world, "direct_invoice")
    rid = victim["registration_id"]
    rule = f'[[exclusions.rules]]\nkind = "registration"\nvalue = "{rid}"\nreason = "x"\n'
    Path(path).write_text(Path(path).read_text() + "\n" + rule)
    third = regular(config_path=path)
    reversal = third["documents"][third["documents"]["status"].eq("posted")]
    assert len(reversal) >= 1
    expected = assert_one_note_per_document_and_ticket(sandbox)
    credits = [k for k, (_, credited) in expected.items() if credited and k[0] in set(reversal["reference"])]
    assert credits, "the reversal wrote no note"
    ref, kind, ticket = credits[0]
    [note] = [a for a in koppel_actions(sandbox)[(kind, ticket)] if f"[Koppel {ref}]" in a["memoText"]]
    assert f"reverses {victim['reference']}" in note["plainText"]


def test_a_refused_write_back_leaves_billing_intact_and_is_retried_next_run(
    prefect_harness, sandbox, tmp_path
) -> None:
    path = config_path(tmp_path)
    knobs(topdesk(sandbox)).deny = True  # the API account lacks write rights: TOPdesk answers 403
    first = backfill(*OCTOBER, config_path=path)
    assert first["not_clean"] is None  # billing ended clean: the write-back does not change the verdict
    assert first["documents"]["status"].eq("posted").all()
    assert koppel_actions(sandbox) == {}
    rows = store.state(connect(StoreSettings()))
    assert set(rows["status"]) == {"failed"}
    assert rows["error_message"].str.contains("403").all()
    assert rows["error_message"].str.contains("No permission to edit").all()

    knobs(topdesk(sandbox)).deny = False
    second = backfill(*OCTOBER, config_path=path)
    assert second["documents"]["status"].isin(["posted"]).sum() == 0  # nothing billed twice
    assert_one_note_per_document_and_ticket(sandbox)
    assert set(store.state(connect(StoreSettings()))["status"]) == {"written"}


def test_unavailable_and_lost_answers_still_write_each_note_once(
    prefect_harness, sandbox, tmp_path, monkeypatch
) -> None:
    fast = RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02)
    monkeypatch.setattr("tasks.invoice_hours.writeback_load.POLICY", fast)  # the policy, without waiting
    state = knobs(topdesk(sandbox))
    state.fail_next, state.lose_next = 3, 6  # 503 before applying; 504 after applying
    result = backfill(*OCTOBER, config_path=config_path(tmp_path))
    assert result["not_clean"] is None
    assert (state.fail_next, state.lose_next) == (0, 0)  # every fault was served
    assert_one_note_per_document_and_ticket(sandbox)
    assert set(store.state(connect(StoreSettings()))["status"]) == {"written"}


# The child: invoice-hours with write-back, dying by SIGKILL right after TOPdesk applied the first note
# (its answer was read) and before the ledger recorded it as written.
KILLED_AFTER_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import date
    from connectors.topdesk import writeback
    from flows.invoice_hours import invoice_hours

    real_add = writeback.add_memo

    async def add_then_die(*args, **kwargs):
        await real_add(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    if sys.argv[2] == "kill":
        writeback.add_memo = add_then_die
    invoice_hours(
        start_date=date(2026, 10, 1), end_date=date(2026, 10, 31), config_path=sys.argv[1],
        recover_after_minutes=0,
    )
    """
)


def run_in_child(sandbox, db_url: str, path: str, mode: str) -> tuple[int, str]:
    return run_script(KILLED_AFTER_WRITE, sandbox, db_url, path, mode)


@pytest.mark.slow
def test_a_sigkill_between_the_topdesk_write_and_the_ledger_confirm_writes_no_second_note(
    prefect_harness, monkeypatch, tmp_path
) -> None:
    with running_sandbox(small_world()) as sandbox:
        db_url = use_sandbox(monkeypatch, sandbox, tmp_path)
        path = config_path(tmp_path)
        code, log = run_in_child(sandbox, db_url, path, "kill")
        assert code == -signal.SIGKILL, log
        actions = koppel_actions(sandbox)
        # TOPdesk holds the first note (and any other that was in flight when the process died) ...
        assert 1 <= sum(len(rows) for rows in actions.values()) <= CONCURRENT_TICKETS
        rows = store.state(connect(StoreSettings(db_url=db_url)))
        counts = rows["status"].value_counts().to_dict()
        assert counts.get("claimed", 0) >= 1 and "written" not in counts  # ... the ledger does not know
        # (the next run reads every claimed row back: what TOPdesk holds is confirmed, the rest written)

        code, log = run_in_child(sandbox, db_url, path, "run")  # a new process, same state DB
        assert code == 0, log
        assert_one_note_per_document_and_ticket(sandbox)
        assert set(store.state(connect(StoreSettings(db_url=db_url)))["status"]) == {"written"}
