"""Helpers for the reconciliation tests: regular runs on a pinned date, AFAS read-backs per ticket and
registration, and the oracle (a clean dry run over the final TOPdesk state in an empty ledger)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from typing import Any

import pandas as pd

from flows.invoice_hours import InvoiceHoursParameters, invoice_hours
from tests.invoice_support import decimal
from tests.run_support import finished as finished_run

TODAY = date(2026, 11, 5)  # the regular run's horizon is then September and October 2026


def pin_today(monkeypatch) -> None:
    """Regular runs behave as on 5 November 2026 (cut-off 31 October)."""
    monkeypatch.setattr("tasks.invoice_hours.horizon.today", lambda timezone="": TODAY, raising=False)


def finished(parameters: InvoiceHoursParameters) -> dict[str, Any]:
    """The run's result; a run that did its work but ends Failed (refusals) says why in ``not_clean``."""
    return finished_run(invoice_hours, **parameters.model_dump())


def regular(**kwargs: Any) -> dict[str, Any]:
    """A run without dates (the monthly schedule)."""
    return finished(InvoiceHoursParameters(**kwargs))


def backfill(first: date, last: date, **kwargs: Any) -> dict[str, Any]:
    """A run with explicit dates."""
    return finished(InvoiceHoursParameters(start_date=first, end_date=last, **kwargs))


def oracle(monkeypatch, tmp_path, name: str = "oracle", **kwargs: Any) -> dict[str, Decimal]:
    """Desired amount per registration: what one clean regular run would charge now (empty ledger)."""
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    with monkeypatch.context() as patch:
        patch.setenv("KOPPEL_STATE_DB_URL", url)
        result = regular(dry_run=True, **kwargs)
    buckets = result["buckets"]
    charged = buckets[buckets["bucket"].isin(["invoiced", "internal"])]
    return {str(r): Decimal(a) for r, a in zip(charged["registration_id"], charged["amount"], strict=True)}


def invoice_lines(sim) -> pd.DataFrame:
    """Every direct-invoice line in AFAS with its amount (quantity × price, half-up to cents)."""
    lines = pd.DataFrame(sim.documents("Koppel_DirectInvoiceLines"))
    if lines.empty:
        return pd.DataFrame(columns=["Ds", "QuUn", "Upri", "amount"])
    return lines.assign(
        amount=[decimal(decimal(q) * decimal(p)) for q, p in zip(lines["QuUn"], lines["Upri"], strict=True)]
    )


def ticket_net(sim, ticket_number: str) -> Decimal:
    """Net amount AFAS holds for one ticket over all direct invoices (charges and credits)."""
    lines = invoice_lines(sim)
    mine = lines[lines["Ds"].astype(str).str.contains(ticket_number, regex=False)]
    return sum(mine["amount"], Decimal("0.00"))


def realisation_hours(sim) -> dict[str, Decimal]:
    """Net hours per registration over all realisations in AFAS (``XpRe`` = id, ``~`` suffix per version)."""
    net: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
    for row in sim.documents("Koppel_Realizations"):
        net[str(row["XpRe"]).split("~")[0]] += decimal(row["QuantityUnit"])
    return dict(net)


def single_registration_tickets(world) -> pd.DataFrame:
    """Incident registrations that are the only registration of an incident without a main incident."""
    regs = world.extra["td_registrations"]
    incidents = world.extra["td_incidents"].set_index("id")
    counts = regs["parent.id"].value_counts()
    alone = regs[regs["parent.id"].map(counts).eq(1)]
    main = alone["parent.id"].map(incidents["mainIncident.id"]).fillna("")
    alone = alone[main.eq("")]
    return alone.assign(number=alone["parent.id"].map(incidents["number"]))


def pick(
    result: dict[str, Any], world, kind: str, month: int = 10, alone_on_ticket: bool = True
) -> pd.Series:
    """An invoiced incident registration of October on a document of ``kind`` (alone on its ticket)."""
    buckets = result["buckets"]
    documents = result["documents"].set_index("reference")
    if alone_on_ticket:
        alone = single_registration_tickets(world)
    else:
        alone = world.extra["td_registrations"]
        numbers = world.extra["td_incidents"].set_index("id")["number"]
        alone = alone.assign(number=alone["parent.id"].map(numbers))
    alone = alone[alone["entryDate"].dt.tz_convert("Europe/Amsterdam").dt.month.eq(month)]
    rows = buckets[buckets["bucket"].eq("invoiced") & buckets["registration_id"].isin(alone["id"])]
    rows = rows[rows["reference"].map(documents["kind"]).eq(kind)]
    row = rows.sort_values("registration_id").iloc[0]
    number = alone.set_index("id").loc[row["registration_id"], "number"]
    return pd.Series(
        {**row.to_dict(), "ticket_number": number, "debtor": documents.loc[row["reference"], "debtor"]}
    )


def refused_victim(result: dict[str, Any], world) -> pd.Series:
    """A registration of the document AFAS refused in ``result``, with its ticket number."""
    documents = result["documents"]
    failed = documents[documents["status"].eq("failed")].iloc[0]
    buckets = result["buckets"]
    regs = world.extra["td_registrations"].set_index("id")
    incidents = world.extra["td_incidents"].set_index("id")
    mine = buckets[buckets["reference"].eq(failed["reference"]) & buckets["registration_id"].isin(regs.index)]
    row = mine.sort_values("registration_id").iloc[0]
    parent = regs.loc[row["registration_id"], "parent.id"]
    return pd.Series(
        {
            **row.to_dict(),
            "reference": failed["reference"],
            "ticket_number": incidents.loc[parent, "number"],
            "ticket_ids": sorted(regs.index[regs["parent.id"].eq(parent)]),
        }
    )


def ticket_desired(desired: dict[str, Decimal], ids: list[str]) -> Decimal:
    """Desired net of a ticket: the sum of its registrations' desired amounts."""
    return sum((desired.get(rid, Decimal("0.00")) for rid in ids), Decimal("0.00"))
