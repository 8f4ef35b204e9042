"""``koppel topdesk …``: look at what the TOPdesk tenant offers before configuring the sources."""

from __future__ import annotations

import asyncio

import pandas as pd
import typer

from connectors.topdesk.catalog import EntitySet, odata_catalog
from connectors.topdesk.client import TopdeskClient
from connectors.topdesk.settings import TopdeskSettings
from koppel.settings import load
from tasks.invoice_hours.config import load_billing_config
from tasks.invoice_hours.sources import TopdeskSources

topdesk_app = typer.Typer(no_args_is_help=True, help="TOPdesk: what the tenant offers.")


def mapping_check(sets: list[EntitySet], sources: TopdeskSources) -> pd.DataFrame:
    """Per configured OData kind: whether the tenant has its entity sets and the configured properties."""
    offered = {s.name: s for s in sets}
    fields = sources.odata_fields
    wanted_reg = [fields.id, fields.ticket_id, fields.entry_date, fields.time_spent]
    wanted_ticket = [fields.ticket_key, fields.ticket_number, fields.customer_number]
    rows = []
    for kind, names in sources.entity_sets.items():
        if kind not in sources.kinds:
            continue
        for role, name, wanted in (
            ("registrations", names.registrations, wanted_reg),
            ("tickets", names.tickets, wanted_ticket),
        ):
            found = offered.get(name)
            missing = [
                w for w in wanted if found is not None and found.properties and w not in found.properties
            ]
            status = (
                "MISSING"
                if found is None
                else ("missing properties: " + ", ".join(missing) if missing else "ok")
            )
            rows.append({"kind": kind, "role": role, "entity set": name, "status": status})
    return pd.DataFrame(rows, columns=["kind", "role", "entity set", "status"])


@topdesk_app.command("sources")
def sources(
    config: str = typer.Option("config/billing.toml", "--config", help="Billing config with [topdesk]."),
) -> None:
    """List the tenant's OData entity sets and check the [topdesk] mapping against them."""

    async def read() -> list[EntitySet]:
        async with TopdeskClient.from_settings(load(TopdeskSettings)) as client:
            return await odata_catalog(client)

    sets = asyncio.run(read())
    typer.echo(f"OData entity sets offered by the tenant ({len(sets)}):")
    for entity_set in sets:
        props = ", ".join(entity_set.properties) or "(properties not given)"
        typer.echo(f"  {entity_set.name}: {props}")
    check = mapping_check(sets, load_billing_config(config).topdesk)
    typer.echo("Configured sources ([topdesk] in the billing config):")
    typer.echo(
        "\n".join("  " + line for line in check.to_string(index=False).splitlines())
        if len(check)
        else "  (no OData kinds)"
    )
    if (check["status"] != "ok").any():
        raise typer.Exit(code=1)
