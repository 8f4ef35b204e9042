"""The ``koppel`` command line: checks and management of the state store.

``koppel settings`` prints the settings in effect with where each came from (env, block, default; secrets
masked) or one line per wrong setting; ``koppel check`` checks every setting and calls each system once (the
flows' preflight); ``koppel afas keygen`` makes the key pair and certificate for AFAS OAuth (private-key JWT).
``koppel exclusions add|list|remove`` manages the ignore list, ``koppel resend`` frees failed documents so the
next invoice-hours run bills their registrations again, ``koppel bundles add|list|correct|close|balance``
manages prepaid hour bundles, ``koppel ledger`` shows what the ledger knows about a
document or a registration, and ``koppel statistics`` sums up a billing month (examples: docs/operations.md).

Store commands read ``KOPPEL_STATE_DB_URL`` like the flows. Heavy imports (SQLAlchemy, pandas, Prefect) happen
inside the commands, so ``koppel settings`` stays quick. Expected failures (an unknown id, a document that
cannot be resent) print one line on stderr and exit with code 1.
"""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, overload

import typer
from pydantic import SecretStr
from pydantic_settings import BaseSettings

from connectors.afas.settings import AfasSettings
from connectors.occupational_health.settings import OccupationalHealthSettings
from connectors.topdesk.settings import TopdeskSettings
from koppel import clock
from koppel.settings import Resolved, SettingsError, env_name, load, mask_url_password, resolve
from koppel.topdesk_cli import topdesk_app
from store.settings import StoreSettings
from tasks.invoice_hours.money import minutes_to_hours

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

    from store.ledger import DocumentRecord

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Koppel: AFAS ↔ TOPdesk ↔ HR pipelines.")
exclusions_app = typer.Typer(no_args_is_help=True, help="The ignore list: what is never billed.")
app.add_typer(exclusions_app, name="exclusions")
afas_app = typer.Typer(no_args_is_help=True, help="AFAS Profit: OAuth key material.")
app.add_typer(afas_app, name="afas")
bundles_app = typer.Typer(no_args_is_help=True, help="Prepaid hour bundles (strippenkaarten) per customer.")
app.add_typer(bundles_app, name="bundles")
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
    """Show each setting in effect and where it came from (env, block, default), secrets masked.

    Blocks are consulted when a Prefect API is configured (``PREFECT_API_URL``); a wrong or missing
    setting is one clear line per system.
    """
    failed = False
    for name in system or list(SYSTEMS):
        if name not in SYSTEMS:
            raise typer.BadParameter(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
        try:
            resolved = resolve_for_cli(SYSTEMS[name])
        except SettingsError as error:
            typer.echo(f"{name}: {error}", err=True)
            failed = True
            continue
        typer.echo(f"{name}:")
        for field, source in resolved.sources.items():
            value = shown_value(getattr(resolved.settings, field))
            typer.echo(f"  {env_name(SYSTEMS[name], field)} = {value}  ({source})")
    if failed:
        raise typer.Exit(code=2)


def resolve_for_cli(cls: type[BaseSettings]) -> Resolved[BaseSettings]:
    """Settings with their sources; blocks only when a Prefect API is configured (stays quick otherwise)."""
    if not os.environ.get("PREFECT_API_URL"):
        return resolve(cls)
    from tasks.secrets import resolve_settings

    return resolve_settings(cls)


def shown_value(value: object) -> str:
    """A setting as ``koppel settings`` prints it: secrets masked, a database URL without its password."""
    if isinstance(value, SecretStr):
        text = value.get_secret_value()
        if not text:
            return "(empty)"
        return mask_url_password(text) if "@" in text and "://" in text else "***"
    return "(not set)" if value is None else repr(value)


@app.command("check")
def check_command(
    system: Annotated[
        list[str] | None,
        typer.Argument(help="state, afas, topdesk, occupational-health (default: all)."),
    ] = None,
) -> None:
    """Check every setting and call each system once, as every flow's first task does (exit 2: not ok)."""
    import asyncio

    from tasks.preflight import SYSTEMS as CHECKS
    from tasks.preflight import check_systems

    chosen = system or ["state", "afas", "topdesk", "occupational-health"]
    unknown = [name for name in chosen if name not in CHECKS]
    if unknown:
        raise typer.BadParameter(f"unknown system {unknown[0]!r}; choose from {', '.join(CHECKS)}")
    checks = asyncio.run(check_systems(chosen, load))
    for item in checks:
        typer.echo(item.line, err=not item.ok)
    if not all(item.ok for item in checks):
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
    return f"{minutes} min ({minutes_to_hours(minutes)} h)"


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
    """Free failed documents so that the next invoice-hours run bills them again (idempotent).

    A posted or released document is left alone ("nothing to do"); an uncertain one is looked up in AFAS
    by its reference by the next run. Only a name that is no document or registration is an error.
    """
    from store import ledger

    with state_store() as engine:
        for item in items:
            reference = document_of(engine, item)
            _, message = ledger.resend(engine, reference)
            typer.echo(message)


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


# --- bundles ------------------------------------------------------------------------------------------------


def minutes_of(hours: str) -> int:
    """``"7.5"`` hours → 450 minutes; a bad or fractional-minute value is a usage error."""
    from decimal import InvalidOperation

    try:
        minutes = Decimal(hours.strip()) * 60
    except InvalidOperation:
        raise typer.BadParameter(f"not a number of hours: {hours!r}", param_hint="--hours") from None
    if minutes <= 0 or minutes != minutes.to_integral_value():
        raise typer.BadParameter(f"{hours} h is not a positive whole number of minutes", param_hint="--hours")
    return int(minutes)


@overload
def day(text: str, hint: str) -> date: ...
@overload
def day(text: str | None, hint: str) -> date | None: ...
def day(text: str | None, hint: str) -> date | None:
    """An ISO date option, or None."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not a date (YYYY-MM-DD): {text!r}", param_hint=hint) from None


def today() -> date:
    """Today in Europe/Amsterdam, where billing days are cut."""
    return clock.today()


def signed(reason: str, by: str | None) -> str:
    """What a correction or closing adds to a bundle's description: date, who and why."""
    return f"{today().isoformat()} {by or getpass.getuser()} ({reason.strip()})"


@bundles_app.command("add")
def bundles_add(
    customer: str = typer.Argument(..., help="TOPdesk customer number (= AFAS debtor)."),
    hours: str = typer.Option(..., "--hours", help="Size in hours, e.g. 20 or 7.5."),
    valid_from: str = typer.Option(..., "--from", help="First day it may be used (YYYY-MM-DD)."),
    valid_to: str | None = typer.Option(None, "--to", help="Last day it may be used (default: open end)."),
    description: str = typer.Option("", "--description", "-d", help="E.g. the order or invoice number."),
) -> None:
    """Add a prepaid bundle: the customer's hours on its days are billed at zero until it is used up."""
    from store import bundles

    with state_store() as engine:
        try:
            new_id = bundles.add_bundle(
                engine, customer.strip(), minutes_of(hours), day(valid_from, "--from"), day(valid_to, "--to"),
                description,
            )  # fmt: skip
        except bundles.BundleError as error:
            fail(str(error))
    typer.echo(f"added bundle {new_id} for {customer.strip()}: {hours_text(minutes_of(hours))}")


@bundles_app.command("list")
def bundles_list(
    customer: str = typer.Option(None, "--customer", "-c", help="Only this customer's bundles."),
) -> None:
    """List every bundle with its size, what was drawn and what is left."""
    from store import bundles

    with state_store() as engine:
        show(bundles.bundle_status(engine, customer).drop(columns=["drawn_since"]), "  (no bundles)")


@bundles_app.command("correct")
def bundles_correct(
    bundle_id: int = typer.Argument(..., help="The id shown by `koppel bundles list`."),
    hours: str = typer.Option(..., "--hours", help="The right size in hours (not below what was drawn)."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (kept in the bundle's description)."),
    by: str = typer.Option(None, "--by", help="Who corrects (default: the current user)."),
) -> None:
    """Correct a bundle's size; what was drawn stays drawn."""
    from store import bundles

    with state_store() as engine:
        try:
            old, new = bundles.correct_bundle(engine, bundle_id, minutes_of(hours), signed(reason, by))
        except (bundles.BundleError, bundles.UnknownBundle) as error:
            fail(str(error))
    typer.echo(f"bundle {bundle_id}: {hours_text(old)} → {hours_text(new)}")


@bundles_app.command("close")
def bundles_close(
    bundle_id: int = typer.Argument(..., help="The id shown by `koppel bundles list`."),
    on: str | None = typer.Option(None, "--on", help="Last day it may be used (default: today)."),
    reason: str = typer.Option(..., "--reason", "-r", help="Why (kept in the bundle's description)."),
    by: str = typer.Option(None, "--by", help="Who closes (default: the current user)."),
) -> None:
    """Close a bundle: registrations after its last day no longer draw from it (the rest is not refunded)."""
    from store import bundles

    last = day(on, "--on") or today()
    with state_store() as engine:
        try:
            bundles.close_bundle(engine, bundle_id, last, signed(reason, by))
        except (bundles.BundleError, bundles.UnknownBundle) as error:
            fail(str(error))
    typer.echo(f"bundle {bundle_id} closed: valid until {last}")


@bundles_app.command("balance")
def bundles_balance(
    customer: str = typer.Argument(None, help="One customer (default: every customer with a bundle)."),
    on: str | None = typer.Option(
        None,
        "--on",
        help="Balance of the bundles valid on this day (default: today).",
    ),
) -> None:
    """Minutes and hours left per customer in the bundles valid on a day."""
    from store import bundles

    when = day(on, "--on") or today()
    with state_store() as engine:
        frame = bundles.balances(engine, when)
    if customer is not None:
        frame = frame[frame["customer_number"].eq(customer)]
    frame = frame.assign(hours=[f"{Decimal(int(m)) / 60:.2f}" for m in frame["minutes_available"]])
    typer.echo(f"bundle balance on {when}:")
    show(frame, "  (no valid bundles)")


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


# --- afas ---------------------------------------------------------------------------------------------------


CURRENT_FOLDER = Path(".")


@afas_app.command("keygen")
def afas_keygen(
    environment: str = typer.Argument(..., help="The customer environment it is for, e.g. O12345AA."),
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the two files.")] = CURRENT_FOLDER,
    kind: str = typer.Option("rsa", "--kind", help="rsa (3072 bits, RS256) or ec (P-256, ES256)."),
    days: int = typer.Option(730, "--days", help="Validity of the certificate in days."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing files."),
) -> None:
    """Make a key pair and self-signed X.509 certificate for one AFAS environment (private-key JWT).

    Writes ``<environment>-private-key.pem`` (mode 600: keep it on the worker or in the koppel-afas block)
    and ``<environment>-certificate.pem`` (upload it to the app connector in Profit). Prints the
    certificate's SHA-1 thumbprint, the ``kid`` AFAS expects unless you set a key id in Profit.
    """
    from koppel.keygen import generate

    if kind not in ("rsa", "ec"):
        raise typer.BadParameter("choose rsa or ec", param_hint="--kind")
    key_path = out / f"{environment}-private-key.pem"
    cert_path = out / f"{environment}-certificate.pem"
    existing = [str(p) for p in (key_path, cert_path) if p.exists()]
    if existing and not force:
        fail(f"{', '.join(existing)} already exists; use --force to replace (and upload the new certificate)")
    material = generate(f"koppel {environment}", kind=kind, days=days)  # type: ignore[arg-type]  # typer validated kind against the key kinds generate() takes
    out.mkdir(parents=True, exist_ok=True)
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_text(material.private_key_pem, encoding="ascii")
    cert_path.write_text(material.certificate_pem, encoding="ascii")
    typer.echo(
        f"private key: {key_path} (keep it secret; KOPPEL_AFAS_PRIVATE_KEY_PATH or the koppel-afas block)"
    )
    typer.echo(f"certificate: {cert_path} (upload it to the app connector in Profit)")
    typer.echo(f"thumbprint (SHA-1, the default kid): {material.thumbprint}")


def main() -> None:
    """Entry point of the ``koppel`` console script."""
    try:
        app()
    except SettingsError as error:
        typer.echo(str(error), err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
