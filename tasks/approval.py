"""Approval before posting: the run pauses in the Prefect UI until finance approves exactly what it will post.

Administrations with ``approval = "required"`` (config/billing.toml) get this step between plan and load.
The run publishes its preview (documents and lines), then pauses for input: a form showing the totals
(documents, hours, customer revenue, internal charges, corrections), links to the preview tables and the
**fingerprint** of what will be posted (a SHA-256 over every document, line and amount). The approver
approves or rejects with a comment. On approval the run plans again from TOPdesk and the ledger; only if
that plan has the same fingerprint does it post. Otherwise nothing is posted and the form comes back with
the difference. Rejection, or no answer within ``approval_timeout_minutes``, ends the run without posting,
in a state named ``Rejected`` or ``ApprovalTimedOut``. Who decided, when and the fingerprint are stored with
the run (``store.runs.record_approval``) and shown in the summary.

The plain functions (``fingerprint``, ``totals``, ``plan_difference``, ``request_markdown``) take the plan's
``documents``/``document_lines`` frames; ``approval_gate`` is the Prefect part, called from the flow body.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, cast

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Failed
from pydantic import Field

from koppel.dispatch import synchronous
from schemas.kinds import INTERNAL_ENTRY
from store import runs
from tasks.artifacts import artifact_key, markdown_table, table_rows
from tasks.invoice_hours.money import minutes_to_hours
from tasks.state import close_run, state_engine

if TYPE_CHECKING:
    from prefect.input import RunInput

FLOW = "invoice-hours"
POLL_SECONDS = 10  # how often a paused run asks Prefect whether it was resumed
PAUSE_GRACE_SECONDS = 120  # Prefect's pause outlives our wait by this much (see ``wait_for_answer``)
MAX_ROUNDS = 10  # a plan that keeps changing stops asking (and posts nothing) after this many rounds
DOCUMENT_FIELDS = [
    "reference", "kind", "administration", "debtor_id", "project_id", "period", "amount_cents", "vat_code",
    "vat_amount",
]  # fmt: skip
LINE_FIELDS = ["reference", "registration_id", "line_kind", "fields_hash", "billed_minutes", "amount_cents"]


def in_scope(frame: pd.DataFrame, administrations: list[int]) -> pd.DataFrame:
    """The rows of documents/lines frames that belong to ``administrations``."""
    if frame.empty or "administration" not in frame:
        return frame
    return frame[frame["administration"].isin(administrations)]


def fingerprint(documents: pd.DataFrame, lines: pd.DataFrame) -> str:
    """SHA-256 (hex) over exactly what will be posted: each document's key and amount, each line and amount.

    Rows are sorted first, so the order in which planning produced them does not matter; any change in a
    document, a line, its minutes or its amount changes the fingerprint.
    """
    digest = hashlib.sha256()
    for frame, columns in ((documents, DOCUMENT_FIELDS), (lines, LINE_FIELDS)):
        rows = frame[columns].astype("str").sort_values(columns) if not frame.empty else frame
        for values in rows.itertuples(index=False, name=None) if not frame.empty else ():
            digest.update("\x1f".join(values).encode())
            digest.update(b"\x1e")
        digest.update(b"\x1d")
    return digest.hexdigest()


@dataclass(frozen=True)
class Totals:
    """What the approver sees first."""

    documents: int
    hours: Decimal
    customer_revenue: Decimal
    internal_charges: Decimal
    corrections: Decimal
    correction_documents: int

    def markdown(self) -> str:
        """The totals as a two-column markdown table."""
        rows = [
            ("Documents", f"{self.documents:,}"),
            ("Hours", f"{self.hours:,.2f}"),
            ("Customer revenue (excl. VAT)", f"{self.customer_revenue:,.2f} EUR"),
            ("Internal charges", f"{self.internal_charges:,.2f} EUR"),
            (f"Corrections ({self.correction_documents} documents)", f"{self.corrections:,.2f} EUR"),
        ]
        return "\n".join(["| | |", "|---|---:|", *(f"| {k} | {v} |" for k, v in rows)])


def totals(documents: pd.DataFrame) -> Totals:
    """Documents, hours, customer revenue, internal charges and corrections of a plan (cents exact)."""
    if documents.empty:
        zero = Decimal("0.00")
        return Totals(0, zero, zero, zero, zero, 0)
    internal = documents["kind"].eq(INTERNAL_ENTRY)
    correction = documents["is_correction"].astype(bool)

    def euros(mask: pd.Series) -> Decimal:
        return Decimal(int(documents.loc[mask, "amount_cents"].sum())).scaleb(-2)

    return Totals(
        documents=len(documents),
        hours=minutes_to_hours(int(documents["minutes"].sum())),
        customer_revenue=euros(~internal & ~correction),
        internal_charges=euros(internal & ~correction),
        corrections=euros(correction),
        correction_documents=int(correction.sum()),
    )


def plan_difference(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per registration line, what changed between two plans' ``document_lines``: added, gone or changed."""
    key = ["registration_id", "line_kind"]
    shown = ["billed_minutes", "amount_cents"]
    old = before[[*key, *shown]].set_index(key) if not before.empty else pd.DataFrame(columns=shown)
    new = after[[*key, *shown]].set_index(key) if not after.empty else pd.DataFrame(columns=shown)
    joined = old.merge(new, how="outer", left_index=True, right_index=True, suffixes=("_before", "_after"))
    change = pd.Series("changed", index=joined.index)
    change[joined["amount_cents_before"].isna()] = "new"
    change[joined["amount_cents_after"].isna()] = "gone"
    same = (joined["amount_cents_before"] == joined["amount_cents_after"]) & (
        joined["billed_minutes_before"] == joined["billed_minutes_after"]
    )
    joined = joined.assign(change=change)[~same.fillna(False).astype(bool)]
    result = joined.reset_index()
    for side in ("before", "after"):
        cents = result[f"amount_cents_{side}"]
        result[f"amount_{side}"] = ["" if pd.isna(c) else Decimal(int(c)).scaleb(-2) for c in cents]
        result[f"minutes_{side}"] = ["" if pd.isna(m) else int(m) for m in result[f"billed_minutes_{side}"]]
    columns = ["registration_id", "line_kind", "change", "minutes_before", "minutes_after"]
    return result[[*columns, "amount_before", "amount_after"]].sort_values(["change", "registration_id"])


def request_markdown(
    administrations: list[int],
    figures: Totals,
    print_: str,
    links: dict[str, str],
    difference: pd.DataFrame | None = None,
    note: str = "",
) -> str:
    """The text shown above the approval form in the Prefect UI."""
    lines = [
        f"## Approve invoice-hours for administration(s) {', '.join(map(str, administrations))}",
        "",
        figures.markdown(),
        "",
        "Preview: " + ", ".join(f"[{name}]({url})" if url else name for name, url in links.items()) + ".",
        "",
        f"Fingerprint of what will be posted: `{print_}`",
        "",
        "Choose *approve* or *reject*, put your name and a comment, and submit. On approval the run plans "
        "again and posts only if that plan has this fingerprint; otherwise it asks again.",
    ]
    if difference is not None:
        lines[1:1] = [
            "",
            f"**The plan changed since the last request ({len(difference)} registration lines).** "
            "Nothing was posted. What changed:",
            "",
            markdown_table(difference, limit=30),
        ]
    if note:
        lines[1:1] = ["", note]
    return "\n".join(lines)


# --- the Prefect part ---------------------------------------------------------------------------------


def approval_form() -> type[RunInput]:
    """The pydantic form shown in the Prefect UI (a ``RunInput``)."""
    from prefect.input import RunInput

    class InvoiceApproval(RunInput):
        """Approve or reject what this run will post."""

        decision: Literal["approve", "reject"] = Field(description="approve: post exactly this plan")
        approver: str = Field(min_length=1, max_length=100, description="Your name")
        comment: str = Field("", max_length=1000)
        fingerprint: str = Field(description="The plan's fingerprint (filled in; leave as is)")

    return InvoiceApproval


@dataclass
class Gate:
    """What the flow does after the approval step: post ``billing`` (re-planned), or end in ``stop``."""

    read: pd.DataFrame
    billing: Any
    approval: dict[str, Any] | None = None
    stop: State | None = None
    rounds: list[str] = field(default_factory=list)

    def summary_markdown(self) -> str:
        """The approval line of the run summary (empty when no approval was needed)."""
        if not self.approval:
            return ""
        a = self.approval
        return (
            f"**Approval:** {a['decision']} by {a['approver']} at {a['decided_at']} "
            f"(fingerprint `{a['fingerprint']}`){': ' + a['comment'] if a.get('comment') else ''}."
        )


def publish_preview(billing: Any, administrations: list[int], attempt: int) -> dict[str, str]:
    """Table artifacts of the documents and lines awaiting approval; name → link in the UI ('' unknown)."""
    from prefect.artifacts import create_table_artifact
    from prefect.settings import PREFECT_UI_URL

    documents = in_scope(billing.documents, administrations)
    lines = billing.document_lines[billing.document_lines["reference"].isin(documents["reference"])]
    shown_lines = lines[[c for c in [*LINE_FIELDS, "quantity", "unit_price", "amount"] if c in lines]]
    ui = (PREFECT_UI_URL.value() or "").rstrip("/")
    links = {}
    for name, frame in (("documents", documents), ("lines", shown_lines)):
        key = artifact_key(FLOW, "approval", name)
        artifact_id = create_table_artifact(
            key=key, table=table_rows(frame), description=f"Awaiting approval (request {attempt}): {name}"
        )
        links[f"{name} ({len(frame)})"] = f"{ui}/artifacts/artifact/{artifact_id}" if ui else ""
    return links


def notify_waiting(administrations: list[int], figures: Totals) -> None:
    """Tell finance (the notification block of ``KOPPEL_NOTIFY_BLOCK``) that a run waits, with its link."""
    from prefect import runtime

    from koppel.notifications import NotifySettings, send

    subject = f"Koppel: invoice-hours run {runtime.flow_run.name} waits for approval"
    body = "\n".join(
        [
            f"Administration(s): {', '.join(map(str, administrations))}",
            f"Documents: {figures.documents}, hours {figures.hours}, "
            f"customer revenue {figures.customer_revenue} "
            f"EUR, internal {figures.internal_charges} EUR, corrections {figures.corrections} EUR",
            f"Approve or reject: {runtime.flow_run.ui_url or runtime.flow_run.id}",
        ]
    )
    send(subject, body, NotifySettings().block)


def approval_gate(
    read: pd.DataFrame,
    billing: Any,
    config: Any,
    dry_run: bool,
    replan: Callable[[], tuple[pd.DataFrame, Any]],
    run_id: str,
) -> Gate:
    """Pause the flow until the plan is approved; re-plan on resume and post only an unchanged plan.

    ``replan()`` returns a fresh ``(read, billing)``; the decision is stored with the run ``run_id``.
    """
    administrations = config.approval_required()
    timeout_minutes = config.approval_timeout_minutes
    record = partial(record_approval, run_id)
    gate = Gate(read, billing)
    difference, note = None, ""
    for attempt in range(1, MAX_ROUNDS + 1):
        scoped_docs = in_scope(gate.billing.documents, administrations)
        if dry_run or not administrations or scoped_docs.empty:
            return gate
        scoped_lines = in_scope(gate.billing.document_lines, administrations)
        print_ = fingerprint(scoped_docs, scoped_lines)
        figures = totals(scoped_docs)
        links = publish_preview(gate.billing, administrations, attempt)
        description = request_markdown(administrations, figures, print_, links, difference, note)
        form = approval_form().with_initial_data(description=description, fingerprint=print_)
        notify_waiting(administrations, figures)
        answer = wait_for_answer(form, timeout_minutes * 60, f"approval-{attempt}")
        if answer is None:
            record(_decision("timed out", "", "", print_))
            message = f"no approval within {timeout_minutes:g} minutes: nothing was posted"
            gate.stop = Failed(name="ApprovalTimedOut", message=message)
            return gate
        decision = _decision(answer.decision, answer.approver, answer.comment, print_)
        if answer.decision == "reject":
            record(decision)
            message = f"rejected by {answer.approver}: {answer.comment or '(no comment)'}; nothing was posted"
            gate.stop = Cancelled(name="Rejected", message=message)
            return gate
        if answer.fingerprint != print_:
            difference = None
            note = (
                f"**The approval named fingerprint `{answer.fingerprint[:64]}`, not the one shown.** "
                "Nothing was posted; approve again with the fingerprint below."
            )
            continue
        note = ""
        new_read, new_billing = replan()
        new_docs = in_scope(new_billing.documents, administrations)
        new_print = fingerprint(new_docs, in_scope(new_billing.document_lines, administrations))
        if new_print == print_:
            decision["rounds"] = attempt
            record(decision)
            return Gate(new_read, new_billing, approval=decision)
        difference = plan_difference(scoped_lines, in_scope(new_billing.document_lines, administrations))
        gate = Gate(new_read, new_billing)
    gate.stop = Failed(
        name="ApprovalNotSettled", message=f"the plan changed {MAX_ROUNDS} times: nothing posted"
    )
    return gate


def wait_for_answer(form: type[RunInput], timeout_seconds: float, key: str) -> Any | None:
    """Pause the current flow run for ``form`` and return the answer, or None after ``timeout_seconds``.

    This is ``prefect.flow_runs.pause_flow_run(wait_for_input=...)`` with one difference: the pause Prefect's
    server holds lasts ``PAUSE_GRACE_SECONDS`` longer than we wait. After a pause expires the server turns
    every next state into an anonymous ``Failed`` ("The flow was paused and never resumed"); stopping first
    lets the run end in its own named state (``ApprovalTimedOut``).
    """
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext
    from prefect.input import keyset_from_paused_state
    from prefect.states import Paused

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        raise RuntimeError("the approval step pauses a flow run: call it from a flow")
    flow_run_id = context.flow_run.id
    paused: State[Any] = Paused(timeout_seconds=int(timeout_seconds) + PAUSE_GRACE_SECONDS, pause_key=key)
    keyset = keyset_from_paused_state(paused)
    # cast: Prefect's Keyset is dict[Literal[...], str], its StateDetails field dict[str, str]; same dict.
    paused.state_details.run_input_keyset = cast(dict[str, str], keyset)
    with get_client(sync_client=True) as client:
        result = client.set_flow_run_state(flow_run_id, paused)
        if result.state is None or not result.state.is_paused():
            raise RuntimeError(f"Prefect did not pause the run for approval: {result.details}")
        synchronous(form.save(keyset))
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
            state = client.read_flow_run(flow_run_id).state
            if state is not None and state.is_running():
                return synchronous(form.load(keyset))
    return None


def _decision(decision: str, approver: str, comment: str, print_: str) -> dict[str, Any]:
    return {
        "decision": decision,
        "approver": approver,
        "comment": comment,
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fingerprint": print_,
    }


@task(name="record-approval", cache_policy=NO_CACHE)
def record_approval(run_id: str, approval: dict[str, Any]) -> None:
    """Store the decision with the run record (``store.runs.record_approval``)."""
    runs.record_approval(state_engine(), run_id, approval)


def end_unposted(run_id: str, gate: Gate) -> State:
    """Close the run record of a run that posts nothing after the approval step and return its final state.

    A rejected run is recorded as cancelled here; a timed-out one ends failed, and the flow's
    ``on_failure`` hooks record it and notify (``koppel.notifications``) with the link to the run.
    """
    if gate.stop is None:
        raise ValueError("end_unposted is for a run the approval step stopped")
    if gate.stop.is_cancelled():
        close_run(run_id, "cancelled", {})
    return gate.stop
