"""The ``koppel`` command line: checks and management of the state store.

``koppel settings`` prints the settings in effect (secrets masked) or one line per wrong setting.
``koppel exclusions add|list|remove`` manages the ignore list, ``koppel resend`` frees failed documents so the
next invoice-hours run bills their registrations again, ``koppel ledger`` shows what the ledger knows about a
document or a registration, and ``koppel statistics`` sums up a billing month (examples: docs/operations.md).

Store commands read ``KOPPEL_STATE_DB_URL`` like the flows. Heavy imports (SQLAlchemy, pandas, Prefect) happen
inside the commands, so ``koppel settings`` stays quick. Expected failures (an unknown id, a document that
cannot be resent) print one line on stderr and exit with code 1.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from pydantic_settings import BaseSettings

from connectors.afas.settings import AfasSettings
from connectors.occupational_health.settings import OccupationalHealthSettings
from connectors.topdesk.settings import TopdeskSettings
from koppel.settings import SettingsError, load
from koppel.topdesk_cli import topdesk_app
from store.settings import StoreSettings

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from store.ledger import DocumentRecord

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Koppel: AFAS ↔ TOPdesk ↔ HR pipelines.")
exclusions_app = typer.Typer(no_args_is_help=True, help="The ignore list: what is never billed.")
app.add_typer(exclusions_app, name="exclusions")
app.add_typer(topdesk_app, name="topdesk")  # koppel/topdesk_cli.py

SYSTEMS: dict[str, type[BaseSettings]] = {
    "afas": AfasSettings,
    "topdesk": TopdeskSettings,
    "occupational-health": OccupationalHealthSettings,
    "state": StoreSettings,
}


@app.callback()
def _root() -> None:
    """Koppel: AFAS ↔ TOPdesk ↔ HR pipelines."""


@app.command("settings")
def settings_command(
    system: Annotated[
        list[str] | None, typer.Argument(help="afas, topdesk, occupational-health, state (default: all).")
    ] = None,
) -> None:
    """Show the settings in effect (secrets masked), or one clear line per wrong or missing setting."""
    failed = False
    for name in system or list(SYSTEMS):
        if name not in SYSTEMS:
            raise typer.BadParameter(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
        try:
            settings = load(SYSTEMS[name])
        except SettingsError as error:
            typer.echo(f"{name}: {error}", err=True)
            failed = True
            continue
        typer.echo(f"{name}: {settings!r}")
    if failed:
        raise typer.Exit(code=2)


def fail(message: str) -> NoReturn:
    """Print one line on stderr and exit with code 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=1)


@contextmanager
def state_store() -> Iterator[Engine]:
    """The state database from ``KOPPEL_STATE_DB_URL``, migrated, disposed of afterwards."""
    from store.db import connect

    engine = connect(load(StoreSettings))
    try:
        yield engine
    finally:
        engine.dispose()


def show(frame: pd.DataFrame, empty: str = "  (none)") -> None:
    """Print a frame as an aligned table, indented."""
    if frame.empty:
        typer.echo(empty)
        return
    text = frame.to_string(index=False, na_rep="")
    typer.echo("\n".join("  " + row for row in text.splitlines()))


def hours_text(minutes: int) -> str:
    """``90 min (1.50 h)``."""
    return f"{minutes} min ({(Decimal(minutes) / 60).quantize(Decimal('0.01'))} h)"


# --- exclusions ---------------------------------------------------------------------------------------------


@exclusions_app.command("add")
def exclusions_add(
    kind: str = typer.Argument(
        ..., help="registration, ticket, operator, operator_group, branch or customer."
    ),
    value: str = typer.Argument(..., help="The id or number to exclude (e.g. a customer number)."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why it is never billed (shown in every run)."),
    created_by: str = typer.Option(None, "--by", help="Who decided (default: the current user)."),
) -> None:
    """Exclude something from billing from now on."""
    from store import exclusions

    with state_store() as engine:
        try:
            new_id = exclusions.add(engine, kind, value, reason, created_by or getpass.getuser())
        except exclusions.ExclusionError as error:
            fail(str(error))
    typer.echo(f"added exclusion {new_id}: {kind} {value.strip()!r} ({reason.strip()})")


@exclusions_app.command("list")
def exclusions_list(
    kind: str = typer.Option(None, "--kind", "-k", help="Only this kind."),
) -> None:
    """List the ignore list, by kind and value."""
    import pandas as pd

    from store import exclusions

    with state_store() as engine:
        try:
            entries = exclusions.list_exclusions(engine, kind)
        except exclusions.ExclusionError as error:
            fail(str(error))
    columns = ["id", "kind", "value", "reason", "created_by", "created_at"]
    frame = pd.DataFrame([{c: getattr(e, c) for c in columns} for e in entries], columns=columns)
    frame["created_at"] = [stamp.strftime("%Y-%m-%d %H:%M UTC") for stamp in frame["created_at"]]
    show(frame, "  (no exclusions)")


@exclusions_app.command("remove")
def exclusions_remove(
    exclusion_id: int = typer.Argument(..., help="The id shown by `koppel exclusions list`."),
) -> None:
    """Remove an exclusion: what it excluded is billed again by the next run of its period."""
    from store import exclusions

    with state_store() as engine:
        try:
            removed = exclusions.remove(engine, exclusion_id)
        except exclusions.UnknownExclusion as error:
            fail(f"{error}; `koppel exclusions list` shows the ids")
    typer.echo(f"removed exclusion {removed.id}: {removed.kind} {removed.value!r} ({removed.reason})")


# --- ledger and resend --------------------------------------------------------------------------------------


def document_of(engine: Engine, item: str) -> str:
    """The document reference ``item`` names (see ``store.ledger.document_of``); one error line if none."""
    from store import ledger

    try:
        return ledger.document_of(engine, item)
    except ledger.UnknownDocument as error:
        fail(str(error))


@app.command("resend")
def resend(
    items: Annotated[
        list[str], typer.Argument(help="Document references or registration ids of failed documents.")
    ],
) -> None:
    """Free failed documents so that the next invoice-hours run of their period bills them again."""
    from store import ledger

    failed = False
    with state_store() as engine:
        for item in items:
            reference = document_of(engine, item)
            try:
                released = ledger.release(engine, reference)
            except ledger.InvalidTransition as error:
                typer.echo(f"error: {error} (only failed documents can be resent)", err=True)
                failed = True
                continue
            period = ledger.document(engine, reference).period
            typer.echo(
                f"released {reference} (period {period}): {len(released)} registrations are billed again by "
                f"the next invoice-hours run of {period}"
            )
    if failed:
        raise typer.Exit(code=1)


@app.command("ledger")
def ledger_command(
    item: str = typer.Argument(..., help="A document reference or a registration id."),
) -> None:
    """Show the ledger state of a document (with its lines) or of a registration (with its history)."""
    from store import ledger

    with state_store() as engine:
        try:
            record = ledger.document(engine, item)
        except ledger.UnknownDocument:
            show_registration(engine, item)
            return
        show_document(record, ledger.document_lines(engine, item))


def show_document(doc: DocumentRecord, lines: pd.DataFrame) -> None:
    """Print one document of the ledger and its lines."""
    keys = ", ".join(f"{k}={v}" for k, v in (doc.afas_keys or {}).items()) or "-"
    typer.echo(
        f"document {doc.reference}: {doc.kind}, administration {doc.administration}, period {doc.period}"
    )
    typer.echo(f"  status {doc.status}; invoice number {doc.invoice_number or '-'}; AFAS keys {keys}")
    typer.echo(
        f"  debtor {doc.debtor or '-'}, project {doc.project or '-'}, {hours_text(doc.minutes)}, "
        f"amount {doc.amount}"
    )
    typer.echo(
        f"  claimed by run {doc.claimed_by_run}, attempts {doc.attempts}, "
        f"created {doc.created_at:%Y-%m-%d %H:%M UTC}"
    )
    if doc.error_message:
        typer.echo(f"  error: {doc.error_message}")
    if doc.profit_log_reference:
        typer.echo(f"  AFAS log reference: {doc.profit_log_reference}")
    typer.echo(f"lines ({len(lines)}):")
    show(lines.drop(columns=["fields_hash"]))


def show_registration(engine: Engine, registration_id: str) -> None:
    """Print the current state of a registration and every ledger line it has had."""
    from store import ledger

    history = ledger.registration_history(engine, registration_id)
    if history.empty:
        fail(f"{registration_id!r} is neither a document reference nor a registration in the ledger")
    state = ledger.billed_state(engine, [registration_id])
    if state.empty:
        typer.echo(f"registration {registration_id}: not billed now (its documents were released)")
    else:
        now = state.iloc[0]
        typer.echo(
            f"registration {registration_id}: {now['status']} in {now['document_reference']} "
            f"({now['document_status']}), {hours_text(int(now['minutes']))}, amount {now['amount']}, "
            f"entry date {now['entry_date']}, customer {now['customer_number']}, version {now['version']}"
        )
    typer.echo(f"history ({len(history)} lines):")
    show(history.drop(columns=["fields_hash"]))


# --- statistics ---------------------------------------------------------------------------------------------


@app.command("statistics")
def statistics_command(
    period: str = typer.Argument(..., help="The billing month, YYYY-MM."),
    top: int = typer.Option(15, "--top", help="Customers listed."),
) -> None:
    """Sum up a billing month: documents by kind and status, hours and amounts per customer, runs."""
    from tasks import statistics as stats

    try:
        stats.check_period(period)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="PERIOD") from None
    with state_store() as engine:
        documents, history = stats.read_store(engine, [period])
    typer.echo(f"Billing period {period}")
    typer.echo("documents by kind and status:")
    show(stats.document_counts(documents), "  (no documents)")
    per_customer = stats.customer_months(documents)
    typer.echo(f"posted per customer (top {top} by amount of {per_customer['customer'].nunique()}):")
    show(stats.top_rows(per_customer, top), "  (nothing posted)")
    typer.echo(f"invoice-hours runs started in {period} (completed, not dry runs), registrations per bucket:")
    show(stats.bucket_totals(stats.run_history_frame(history, period, period)), "  (no runs)")
    failures = stats.afas_failures(documents)
    typer.echo(f"AFAS failures ({len(failures)}):")
    show(failures[["reference", "status", "error_message", "profit_log_reference"]], "  (none)")


def main() -> None:
    """Entry point of the ``koppel`` console script."""
    try:
        app()
    except SettingsError as error:
        typer.echo(str(error), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
