"""Where the TOPdesk read's wall goes: requests per endpoint and the event loop's stalls.

``python -m bench.read_audit [--size 50000]`` serves a world of that size (``python -m sandbox serve``, 80 ms
per TOPdesk call, concurrency 4), primes the month's activity sweep like ``bench.invoice_hours`` and then
reads TOPdesk as the flow does (``read_topdesk`` with the tracked options, no completeness reads), with a
watcher beside it on the same event loop that sleeps 5 ms at a time and records how late it wakes. A late
wake-up is a stretch in which the loop ran something else without yielding (parsing a page, building
records, measuring id lists): no answer is taken in and no request is sent then, so with four requests
in flight every stall of ``s`` seconds costs up to ``s`` of wall on a read that is bound by its request
slots. Prints wall, CPU, the requests per endpoint and the stalls above 20 and 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.invoice_hours import WINDOW, counters_of, endpoint_counts, prime_activity_sweep, sandbox_process
from bench.invoice_hours import set_latency as bench_latency

TICK = 0.005


async def _watch(stalls: list[tuple[float, float]], started: float) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        late = time.perf_counter() - before - TICK
        if late > 0.02:
            stalls.append((before - started, late))


def audit(size: int) -> None:
    """Read the month of a world of ``size`` registrations and print where the wall went."""
    from connectors.topdesk.settings import TopdeskSettings
    from koppel.clock import AMSTERDAM
    from koppel.settings import load
    from store.db import connect
    from store.settings import StoreSettings
    from tasks.invoice_hours.extract import Window, read_topdesk, tracked_options
    from tasks.invoice_hours.sources import TopdeskSources

    with tempfile.TemporaryDirectory() as folder, sandbox_process(size) as info:
        bench_latency(info)
        os.environ.update(info["env"])
        os.environ["KOPPEL_STATE_DB_URL"] = f"sqlite:///{Path(folder) / 'audit.db'}"
        engine = connect(load(StoreSettings))
        window, sources = Window(*WINDOW), TopdeskSources(completeness=False)
        prime_activity_sweep(info, engine, window, sources, counters_of(info))
        options = tracked_options(sources, window, engine, datetime.now(tz=AMSTERDAM), frame_only=True)
        stalls: list[tuple[float, float]] = []

        async def read() -> int:
            started = time.perf_counter()
            watcher = asyncio.create_task(_watch(stalls, started))
            try:
                return len((await read_topdesk(load(TopdeskSettings), window, options)).frame)
            finally:
                watcher.cancel()

        before = endpoint_counts(info, "topdesk")
        wall, cpu = time.perf_counter(), time.process_time()
        rows = asyncio.run(read())
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = endpoint_counts(info, "topdesk")
    requests = {key: n - before.get(key, 0) for key, n in after.items() if n - before.get(key, 0)}
    total = sum(requests.values())
    out = sys.stdout.write
    out(
        f"TOPdesk read of {size:,}: {rows:,} rows, {total:,} requests (floor {total * 0.08 / 4:.2f} s), "
        f"wall {wall:.2f} s, CPU {cpu:.2f} s, load-1m {os.getloadavg()[0]:.2f}\n"
    )
    for key, n in sorted(requests.items(), key=lambda item: -item[1]):
        out(f"  {n:5,}  {key}\n")
    long = [(at, late) for at, late in stalls if late > 0.1]
    out(
        f"Event loop stalls: {sum(late for _, late in stalls):.2f} s in {len(stalls)} stalls > 20 ms; "
        f"{sum(late for _, late in long):.2f} s in {len(long)} > 100 ms, at (s into the read, length s): "
        + ", ".join(f"{at:.1f}: {late:.2f}" for at, late in long)
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the audit (see the module doc)."""
    parser = argparse.ArgumentParser(prog="python -m bench.read_audit", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000, help="registrations per month of the world")
    audit(parser.parse_args(argv).size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
