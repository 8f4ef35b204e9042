"""Shared helpers for the invoice-hours flow tests: a small sandbox world and AFAS read-backs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pandas as pd

from sandbox.world import generate_world

OCTOBER = (date(2026, 10, 1), date(2026, 10, 31))


def small_world(seed: int = 11, scale: int = 240):
    """Two months (Sep-Oct 2026) of a small world: a few hundred registrations a month."""
    return generate_world(seed=seed, scale=scale, anchor=date(2026, 11, 1), months=2)


def use_sandbox(monkeypatch, sandbox, tmp_path, db_url: str | None = None) -> str:
    """Point Koppel's settings at the sandbox and a fresh state database; return the DB URL."""
    for key, value in sandbox.env().items():
        monkeypatch.setenv(key, value)
    url = db_url or f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("KOPPEL_STATE_DB_URL", url)
    return url


def child_env(sandbox, db_url: str) -> dict[str, str]:
    """Environment for a child process running a flow against the sandbox, state DB and our Prefect API."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("KOPPEL_") or k.startswith("KOPPEL_LOAD_")}
    env.update(sandbox.env(), KOPPEL_STATE_DB_URL=db_url, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    return env


def run_script(script: str, sandbox, db_url: str, *args: str) -> tuple[int, str]:
    """Run ``python -c script *args`` against the sandbox and state DB: its exit code and its stderr's end."""
    child = subprocess.run(
        [sys.executable, "-c", script, *args],
        env=child_env(sandbox, db_url),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return child.returncode, child.stderr[-3000:]


def decimal(value: Any) -> Decimal:
    """An AFAS number (float, str or Decimal) as Decimal with 2 places."""
    return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def afas_invoices(sim) -> dict[str, dict[str, Any]]:
    """Direct invoices in AFAS by reference (RfCs): header and lines."""
    headers = sim.documents("Koppel_DirectInvoices")
    lines = pd.DataFrame(sim.documents("Koppel_DirectInvoiceLines"))
    result = {}
    for header in headers:
        own = lines[lines["OrNu"] == header["OrNu"]] if not lines.empty else lines
        result.setdefault(header["RfCs"], []).append({"header": header, "lines": own.to_dict("records")})
    return result


def invoice_line_keys(lines: list[dict[str, Any]]) -> Counter:
    """Multiset of (item, quantity, unit price) of invoice lines."""
    return Counter((str(x["ItCd"]), decimal(x["QuUn"]), decimal(x["Upri"])) for x in lines)


def payload_line_keys(payload: dict[str, Any]) -> Counter:
    """The same multiset from a planned FbDirectInvoice payload."""
    element = payload["FbDirectInvoice"]["Element"]
    objects = element["Objects"]
    objects = objects if isinstance(objects, dict) else {k: v for o in objects for k, v in o.items()}
    rows = objects["FbDirectInvoiceLines"]["Element"]
    rows = rows if isinstance(rows, list) else [rows]
    return Counter(
        (str(r["Fields"]["ItCd"]), decimal(r["Fields"]["QuUn"]), decimal(r["Fields"]["Upri"])) for r in rows
    )


def entries_by_reference(sim) -> dict[str, list[dict[str, Any]]]:
    """Journal-entry lines in AFAS grouped by voucher number (BpNr)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in sim.documents("Koppel_Entries"):
        grouped.setdefault(str(row["BpNr"]), []).append(row)
    return grouped
