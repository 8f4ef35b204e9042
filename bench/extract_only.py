"""``python -m bench --extract-only 1000000``: the TOPdesk extract alone, its CPU and peak RSS.

The sandbox (``python -m sandbox serve``, its own process, zero latency) serves a world of the given size;
the month is read with ``read_registrations`` (every source, every page, every ticket look-up) in a fresh
child process, so the peak RSS printed is the extract's alone: the frame and everything built on the way.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any


def child(info_json: str, start: str, end: str) -> None:
    """In the child: read the month and print rows, requests, wall, CPU and peak RSS."""
    from datetime import date

    from connectors.topdesk.settings import TopdeskSettings
    from koppel.settings import load
    from tasks.invoice_hours.extract import Window, read_registrations

    os.environ.update(json.loads(info_json)["env"])
    window = Window(date.fromisoformat(start), date.fromisoformat(end))
    settings = load(TopdeskSettings)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    frame, stats = asyncio.run(read_registrations(settings, window))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frame_mb = frame.memory_usage(deep=True).sum() / 2**20
    requests = sum(int(counts.get("count", 0)) for counts in stats.values())
    sys.stdout.write(
        f"extract of {len(frame):,} registrations: {requests:,} requests, wall {wall:.2f} s, "
        f"CPU {cpu:.2f} s, peak RSS {peak:,.0f} MB (before the extract {before:,.0f} MB; the frame "
        f"{frame_mb:,.0f} MB counted deep), load-1m {os.getloadavg()[0]:.2f}\n"
    )


def run(info: dict[str, Any], window: Any, repeat: int = 1) -> None:
    """Read the month ``repeat`` times, each in a fresh child process, from the running sandbox."""
    code = (
        "from bench.extract_only import child; "
        f"child({json.dumps(info)!r}, {window.first.isoformat()!r}, {window.last.isoformat()!r})"
    )
    for _ in range(repeat):
        subprocess.run([sys.executable, "-c", code], check=True)


def main(argv: list[str]) -> int:
    """``--extract-only N [--repeat R]``: start the sandbox at size N and read its month ``R`` times."""
    import argparse

    from bench.invoice_hours import WINDOW, sandbox_process
    from tasks.invoice_hours.extract import Window

    parser = argparse.ArgumentParser(prog="python -m bench --extract-only")
    parser.add_argument("--extract-only", type=int, required=True, metavar="N", help="registrations a month")
    parser.add_argument("--repeat", type=int, default=1, help="reads, each in a fresh process")
    args = parser.parse_args(argv)
    with sandbox_process(args.extract_only) as info:
        run(info, Window(*WINDOW), args.repeat)
    return 0
