"""``make demo``: the invoice-hours flow against the sandbox, on Prefect's ephemeral API and SQLite state.

Starts the simulated AFAS Profit and TOPdesk on loopback (seeded world, previous month full of work),
runs the real flow twice — the second run must post nothing — and prints what really happened, read back
from the flow's result, the state database and the simulators' own records and counters, and where the
hours specifications of the documents are (with the first lines of one).

``make demo DEMO_ARGS=--approval`` (or ``KOPPEL_DEMO_APPROVAL=1``) shows the approval step instead: it
starts a Prefect server with its UI, runs the flow once with ``approval = "required"`` for administration 1,
prints the link to the paused run and waits until someone approves or rejects it in the UI
(docs/invoice-hours.md, "Approval before posting").
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("PREFECT_HOME", str(Path(".koppel/prefect").resolve()))
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")

import pandas as pd

from koppel import clock
from koppel.settings import SettingsError

DEMO_DB = Path(".koppel/demo.db")
DEMO_CONFIG = Path(".koppel/demo-billing.toml")
SPECIFICATIONS = Path(".koppel/specifications")
BILLING = Path(__file__).resolve().parents[1] / "config" / "billing.toml"
APPROVAL_TIMEOUT_MINUTES = 30
ALLOWANCE_CUSTOMER = "10001"  # the demo gives this customer 4 contract hours a month (shown as included)
ALLOWANCE = f"""
[[allowances]]
name = "demo-contract"
customer_number = "{ALLOWANCE_CUSTOMER}"
hours_per_month = "4"
valid_from = 2026-01-01
"""


def demo_config(approval: bool) -> Path:
    """``config/billing.toml`` + a specification folder, an allowance (and approval for administration 1)."""
    text = BILLING.read_text()
    if approval:
        text = text.replace("[administrations.1]\n", '[administrations.1]\napproval = "required"\n', 1)
        text = f"approval_timeout_minutes = {APPROVAL_TIMEOUT_MINUTES}\n" + text
    DEMO_CONFIG.write_text(text + f'\n[specifications]\nfolder = "{SPECIFICATIONS}"\n' + ALLOWANCE)
    return DEMO_CONFIG


def say(text: str = "") -> None:
    """Write a line of the demo's report."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def show_frame(frame: pd.DataFrame, limit: int = 15) -> None:
    """Print a frame as an aligned text table."""
    if frame.empty:
        say("  (none)")
        return
    text = frame.head(limit).to_string(index=False)
    say("\n".join("  " + line for line in text.splitlines()))
    if len(frame) > limit:
        say(f"  ... {len(frame) - limit} more")


def run_flow(label: str) -> dict:
    """Run invoice-hours for the previous month and print its outcome."""
    from flows.invoice_hours import invoice_hours
    from tasks.state import RunNotClean

    started = time.perf_counter()
    state = invoice_hours(config_path=str(DEMO_CONFIG), return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, RunNotClean):  # refused documents: the run is Failed, its figures still count
        say(f"\n!! invoice-hours ended {state.name}: {state.message}")
        result = result.result
    elif isinstance(result, BaseException):
        raise result
    conservation = result["conservation"]
    table = result["documents"]
    say(f"\n== {label}: invoice-hours {result['context']['window']} ({time.perf_counter() - started:.1f} s)")
    say(f"  {conservation['line']}")
    statuses = table["status"].value_counts().to_dict() if not table.empty else {}
    say(f"  documents: {len(table)} {statuses}")
    return result


def print_details(result: dict) -> None:
    """Documents posted, and rejects/exclusions by reason."""
    table = result["documents"]
    say("\nDocuments posted in AFAS (first 15):")
    show_frame(table[["reference", "kind", "debtor", "project", "hours", "amount", "afas_number", "status"]])
    buckets = result["buckets"]
    for name in ("rejected", "excluded"):
        reasons = buckets.loc[buckets["bucket"].eq(name), "reason"].astype(str).str.slice(0, 70)
        say(f"\n{name.capitalize()} registrations by reason:")
        show_frame(reasons.value_counts().rename_axis("reason").reset_index(name="registrations"))


def print_specifications(result: dict) -> None:
    """Where the hours specifications are, and the first lines of one."""
    files = result["context"].get("specifications") or {}
    if not files:
        say("\nNo hours specifications were written.")
        return
    folder = Path(next(iter(files.values()))).parent
    say(f"\nHours specifications: {len(files)} documents, CSV + XLSX each, in {folder}/")
    documents = result["documents"]
    theirs = documents.loc[documents["debtor"].astype(str).eq(ALLOWANCE_CUSTOMER), "reference"]
    reference = next((r for r in sorted(theirs) if r in files), sorted(files)[0])
    xlsx = files[reference]
    csv = Path(xlsx).with_suffix(".csv")
    say(f"  {csv} (debtor {documents.set_index('reference').loc[reference, 'debtor']}; first lines, the XLSX")
    say("  has the same rows under a header with the document; included_minutes: the contract hours):")
    lines = csv.read_text(encoding="utf-8").splitlines()
    for line in [*lines[:5], *(["  ..."] if len(lines) > 6 else []), lines[-1]]:
        say("    " + line[:150])


def main() -> int:
    """Start the sandbox, run the flow twice, print the results; 0 when all went as it should."""
    if "--approval" in sys.argv[1:] or os.environ.get("KOPPEL_DEMO_APPROVAL") == "1":
        from koppel.demo_approval import approval_demo

        return approval_demo()
    # Prefect creates its home without parents: on a fresh clone `.koppel` does not exist yet.
    Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from sandbox.server import running_sandbox
    from sandbox.world import generate_world

    anchor = clock.today().replace(day=1)
    DEMO_DB.parent.mkdir(exist_ok=True)
    DEMO_DB.unlink(missing_ok=True)
    demo_config(approval=False)
    say("Koppel demo: generating the sandbox world and starting AFAS + TOPdesk simulators on loopback ...")
    world = generate_world(seed=42, scale=2_000, anchor=anchor, months=2)
    with running_sandbox(world) as sandbox, temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        os.environ.update(sandbox.env())
        os.environ["KOPPEL_STATE_DB_URL"] = f"sqlite:///{DEMO_DB}"
        say(f"  AFAS {sandbox.afas_url}\n  TOPdesk {sandbox.topdesk_url}\n  state {DEMO_DB}")
        first = run_flow("first run")
        print_details(first)
        print_specifications(first)
        second = run_flow("second run (same month again)")
        posted_twice = int(second["documents"]["status"].isin(["posted", "recovered"]).sum())
        say(f"\nSecond run posted {posted_twice} documents (must be 0).")
        say(
            f"AFAS simulator requests: {sandbox.counters('afas')['total']}, "
            f"TOPdesk simulator requests: {sandbox.counters('topdesk')['total']}"
        )
    ok = first["conservation"]["holds"] and second["conservation"]["holds"] and posted_twice == 0
    say(
        "\nDemo " + ("finished: every registration accounted for, nothing billed twice." if ok else "FAILED.")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SettingsError as error:
        sys.stderr.write(f"{error}\n")
        sys.exit(2)
