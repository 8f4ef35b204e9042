"""``python -m bench --plan-only 1000000``: the billing plan alone at a size no sandbox extract reaches.

A month is extracted from the sandbox once at ``--from-size`` (no latency), then its registrations are
repeated with fresh ids (``<id>~<k>``; same tickets, operators and customers) up to the asked count, and
only the plan (validate, join, rules, reconcile) runs on them, in a child process of its own so that its
peak RSS is the plan's and nothing else's. Prints wall, CPU and peak RSS (before and after planning).
"""

from __future__ import annotations

import asyncio
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def extract(info: dict[str, Any], window: Any) -> tuple[Any, Any]:
    """The month's registrations and the AFAS masters, read from the sandbox."""
    from connectors.afas.settings import AfasSettings
    from connectors.topdesk.settings import TopdeskSettings
    from koppel.settings import load
    from tasks.invoice_hours.extract import read_masters, read_registrations

    os.environ.update(info["env"])
    read, _ = asyncio.run(read_registrations(load(TopdeskSettings), window))
    masters, _ = asyncio.run(read_masters(load(AfasSettings)))
    return read, masters


def repeated(read: Any, count: int) -> Any:
    """``read`` repeated with fresh registration ids up to ``count`` rows."""
    import pandas as pd

    # The text columns in this interpreter's default string storage (Arrow when pyarrow is installed), as
    # the extract would have built them; a pickle keeps the storage of the process that wrote it.
    read = read.astype({c: "str" for c, t in read.dtypes.items() if isinstance(t, pd.StringDtype)})
    copies = -(-count // max(len(read), 1))
    parts = []
    for k in range(copies):
        part = read.copy()
        part["registration_id"] = part["registration_id"].astype(str) + f"~{k}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True).iloc[:count]


def child(path: str, count: int) -> None:
    """In the child: plan ``count`` registrations and print the figures."""
    from tasks.invoice_hours.config import load_billing_config
    from tasks.invoice_hours.pipeline import Scope, bill

    with open(path, "rb") as handle:
        read, masters, run_range, last_day = pickle.load(handle)  # noqa: S301 — our own file, just written
    read = repeated(read, count)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    empty = _empty_state(last_day)
    scope = Scope(regular=True, window=run_range)
    result = bill(read, masters, load_billing_config(), scope=scope, **empty)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sys.stdout.write(
        f"plan of {len(read):,} registrations: {len(result.documents):,} documents, wall {wall:.2f} s, "
        f"CPU {cpu:.2f} s, peak RSS {peak:,.0f} MB (before planning {before:,.0f} MB, input included), "
        f"load-1m {os.getloadavg()[0]:.2f}\n"
    )


def _empty_state(last_day: Any) -> dict[str, Any]:
    """An empty ledger, no exclusions, no bundles: the state of a first run."""
    from store import bundles, exclusions, ledger
    from store.db import connect
    from store.settings import StoreSettings

    with tempfile.TemporaryDirectory() as folder:
        engine = connect(StoreSettings(db_url=f"sqlite:///{Path(folder) / 'plan.db'}"))
        state = {
            "ignore": exclusions.as_frame(engine),
            "state": ledger.billed_state(engine, []),
            "posted": ledger.posted_lines(engine, []),
            "bundles": bundles.balances(engine, last_day),
            "prior_draws": bundles.draws(engine, []),
        }
        engine.dispose()
    return state


def save_month(info: dict[str, Any], window: Any, path: Path) -> None:
    """Extract the month from the sandbox and pickle it (with its window) to ``path``."""
    read, masters = extract(info, window)
    with open(path, "wb") as handle:
        pickle.dump((read, masters, (window.start, window.end), window.last), handle)


def plan_children(path: Path, count: int, repeat: int = 1) -> None:
    """Plan ``count`` registrations of the month in ``path``, ``repeat`` times, each in a fresh child."""
    code = f"from bench.plan_only import child; child({str(path)!r}, {count})"
    for _ in range(repeat):
        subprocess.run([sys.executable, "-c", code], check=True)


def run(info: dict[str, Any], window: Any, count: int, repeat: int = 1) -> None:
    """Extract once, then plan ``count`` registrations in a child process (``repeat`` times)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "month.pickle"
        save_month(info, window, path)
        plan_children(path, count, repeat)
