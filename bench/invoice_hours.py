"""Benchmark of invoice-hours: per-stage wall and CPU time, peak memory, requests, and the API floor.

The sandbox runs in its own process (``python -m sandbox serve``) so that this process measures only
Koppel. Latency per call: AFAS 150 ms, TOPdesk 80 ms (set through the control endpoints); AFAS
concurrency 4. The API floor of a stage is requests × latency ÷ concurrency: no client can be faster, so
``wall ÷ floor`` shows how much Koppel adds on top of waiting for the APIs.

Usage: ``python -m bench [--sizes 2000 50000 250000] [--batches 1 50] [--no-flow]``. The ``--sizes`` are
registrations per month of the generated world; the run bills October 2026 of that world. Each size runs
once per ``--batches`` value (documents per AFAS body, ``KOPPEL_LOAD_BATCH_DOCUMENTS``; 1 = one post per
document, as before batching), each on a fresh sandbox and database, so before/after come from one
invocation. The load stage also shows its **minimum-request floor**: AFAS posts needed with the batch
limits in force (one per batch of ``tasks.invoice_hours.load.batches``) × latency ÷ concurrency.

The window is known beforehand, so TOPdesk and AFAS are read side by side (``read_tracked_and_masters``).
Per stage the table shows the sandbox process's CPU too (``/proc/<pid>/stat``): on a machine with few cores
the simulator competes with Koppel for them. The whole run is compared with issue #15's floor and with
the **honest floor** (``honest_floor``), which counts one call per operational activity with hours in the
period (counted in the world, in a child process) and lets AFAS's reads overlap TOPdesk's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

AFAS_LATENCY_MS = 150
TOPDESK_LATENCY_MS = 80
CONCURRENCY = 4
SEED = 42
WINDOW = (date(2026, 10, 1), date(2026, 10, 31))


@dataclass
class Stage:
    name: str
    wall: float = 0.0
    cpu: float = 0.0
    peak_mb: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)
    sandbox_cpu: float = 0.0  # CPU seconds of the ``python -m sandbox serve`` process during the stage
    own_floor: float | None = None  # the total's: the sum of its stages' floors

    def floor(self) -> float:
        """Requests × latency ÷ concurrency; systems read side by side (own limits) count the longest."""
        if self.own_floor is not None:
            return self.own_floor
        latency = {"afas": AFAS_LATENCY_MS, "topdesk": TOPDESK_LATENCY_MS}
        return max((n * latency[s] / 1000 / CONCURRENCY for s, n in self.requests.items()), default=0.0)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (``/proc/<pid>/stat`` fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # not Linux, or the process is gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def measured(stages: list[Stage], name: str, counters: Callable[[], dict[str, int]], sandbox_pid: int = 0):
    before = counters()
    wall, cpu, served = time.perf_counter(), time.process_time(), process_cpu(sandbox_pid)
    yield
    stage = Stage(name, time.perf_counter() - wall, time.process_time() - cpu, peak_mb())
    stage.sandbox_cpu = process_cpu(sandbox_pid) - served
    after = counters()
    stage.requests = {k: after[k] - before[k] for k in after if after[k] - before[k]}
    stages.append(stage)


@contextmanager
def sandbox_process(scale: int):
    """``python -m sandbox serve`` in a child process; yields its JSON description."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "serve", "--scale", str(scale), "--seed", str(SEED)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None  # noqa: S101  # stdout=PIPE above
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the sandbox did not start")
        yield {**json.loads(line), "pid": proc.pid}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def set_latency(info: dict[str, Any]) -> None:
    for system, ms in (("afas", AFAS_LATENCY_MS), ("topdesk", TOPDESK_LATENCY_MS)):
        httpx.put(f"{info['control'][system]}/knobs", json={"latency_ms": ms}, timeout=10).raise_for_status()


def counters_of(info: dict[str, Any]) -> Callable[[], dict[str, int]]:
    def read() -> dict[str, int]:
        return {
            s: httpx.get(f"{info['control'][s]}/counters", timeout=10).json()["total"]
            for s in ("afas", "topdesk")
        }

    return read


def endpoint_counts(info: dict[str, Any], system: str) -> dict[str, int]:
    """Requests per ``METHOD /normalised/path`` the sandbox counted for ``system`` so far."""
    endpoints = httpx.get(f"{info['control'][system]}/counters", timeout=10).json()["endpoints"]
    return {key: tally["count"] for key, tally in endpoints.items()}


def run_stages(info: dict[str, Any], db_url: str) -> tuple[list[Stage], dict[str, Any]]:
    """The flow's stages, called as the flow's tasks call them, each measured."""
    from connectors.afas.client import AfasClient
    from connectors.afas.settings import AfasSettings
    from connectors.topdesk.settings import TopdeskSettings
    from koppel.settings import load
    from store import bundles, exclusions, ledger
    from store.db import connect
    from store.runs import start_run
    from store.settings import StoreSettings
    from tasks.invoice_hours.buckets import conservation, settle_buckets
    from tasks.invoice_hours.config import load_billing_config
    from tasks.invoice_hours.extract import Window, read_tracked_and_masters
    from tasks.invoice_hours.load import BatchLoader, LoadPlan, LoadSettings, batches
    from tasks.invoice_hours.payloads import build_payloads
    from tasks.invoice_hours.pipeline import Scope, bill
    from tasks.invoice_hours.sources import TopdeskSources

    os.environ.update(info["env"])
    os.environ["KOPPEL_STATE_DB_URL"] = db_url
    counters = counters_of(info)
    stages: list[Any] = []
    window, config = Window(*WINDOW), load_billing_config()
    engine = connect(load(StoreSettings))
    # The flow's read (issue #15): operational activities by scope from the state database. A month's
    # sweep is primed first at zero latency (not timed): the measured read is a run after it.
    sources = TopdeskSources(completeness=False)  # like before: no completeness reads in the bench
    sweep = prime_activity_sweep(info, engine, window, sources, counters)
    pid = info["pid"]
    # The window is known before AFAS is read (as in a backfill): TOPdesk and AFAS are read side by side.
    before = endpoint_counts(info, "topdesk")
    with measured(stages, "extract TOPdesk ‖ AFAS", counters, pid):
        topdesk, masters, _ = read_tracked_and_masters(
            load(TopdeskSettings), load(AfasSettings), window, sources, engine, frame_only=True
        )
        read = topdesk.frame
    after = endpoint_counts(info, "topdesk")
    read_endpoints = {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}
    with measured(stages, "ledger state", counters, pid):
        ids = read["registration_id"].dropna().astype(str).unique().tolist()
        days = (window.first, window.last + timedelta(days=1))
        posted = ledger.posted_lines(engine, ids, days)
        billed = ledger.billed_state(engine, ids, days)
        ignore, balances = exclusions.as_frame(engine), bundles.balances(engine, window.last)
        prior = bundles.draws(engine, ids)
    with measured(stages, "plan (validate, join, rules, reconcile)", counters, pid):
        billing = bill(
            read,
            masters,
            config,
            ignore=ignore,
            state=billed,
            posted=posted,
            bundles=balances,
            prior_draws=prior,
            scope=Scope(regular=True, window=(window.start, window.end)),
        )
    run_id = start_run(engine, "bench", {})

    async def post() -> list:
        async with AfasClient.from_settings(load(AfasSettings)) as client:
            loader = BatchLoader(engine, client, run_id, config, settings=settings)
            return await loader.load(LoadPlan(billing.documents, billing.document_lines, payloads))

    settings = LoadSettings()
    with measured(stages, "build payloads", counters, pid):
        payloads = build_payloads(billing.documents, billing.document_lines, config)
    minimum_posts = len(batches(billing.documents, billing.document_lines, settings))

    with measured(stages, "load (claim, post, confirm)", counters, pid):
        outcomes = asyncio.run(post())
    with measured(stages, "report", counters, pid):
        result = conservation(read, settle_buckets(billing.buckets, outcomes))
    activity = read["kind"].eq("operational_activity")
    facts = {
        "activities_read": topdesk.activities.listed if topdesk.activities else 0,
        "activities_swept": sweep["activities"],
        "sweep_requests": sweep["requests"],
        "batch_documents": settings.batch_documents,
        "batch_lines": settings.batch_lines,
        "minimum_posts": minimum_posts,
        "registrations": len(read),
        "tickets": int(read["ticket_id"].nunique()),
        "other_registrations": int((~activity).sum()),
        "other_tickets": int(read.loc[~activity, "ticket_id"].nunique()),
        "documents": len(billing.documents),
        "posted": sum(o.status == "posted" for o in outcomes),
        "holds": result["holds"],
        "read_endpoints": read_endpoints,
    }
    return stages, facts


def prime_activity_sweep(info: dict[str, Any], engine: Any, window: Any, sources: Any, counters: Any) -> dict:
    """Read every operational activity once (the month's sweep) at zero latency, recorded in the state DB."""
    from connectors.topdesk.settings import TopdeskSettings
    from koppel.settings import load
    from tasks.invoice_hours.extract import read_tracked

    httpx.put(f"{info['control']['topdesk']}/knobs", json={"latency_ms": 0}, timeout=10).raise_for_status()
    before = counters()["topdesk"]
    only = sources.model_copy(update={"kinds": ["operational_activity"]})
    swept = read_tracked(load(TopdeskSettings), window, only, engine, frame_only=True)
    set_latency(info)
    listed = swept.activities.listed if swept.activities else 0
    return {"activities": listed, "requests": counters()["topdesk"] - before}


def count_task_runs(info: dict[str, Any], db_url: str) -> tuple[int, float]:
    """Run the real flow once (ephemeral Prefect API) and count its task runs."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.invoice_hours import invoice_hours

    os.environ.update(info["env"])
    os.environ["KOPPEL_STATE_DB_URL"] = db_url
    started = time.perf_counter()
    result = invoice_hours(start_date=WINDOW[0], end_date=WINDOW[1], dry_run=True)
    wall = time.perf_counter() - started
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[result["run_id"]]))
        )
    return len(runs), wall


def report(scale: int, stages: list[Stage], facts: dict[str, Any]) -> None:
    out = sys.stdout.write
    out(
        f"\n## {scale:,} registrations per month: {facts['registrations']:,} read, "
        f"{facts['documents']:,} documents, {facts['posted']:,} posted, conservation "
        f"{'holds' if facts['holds'] else 'BROKEN'}; batches of at most {facts['batch_documents']} documents "
        f"/ {facts['batch_lines']} lines; load-1m {os.getloadavg()[0]:.2f}\n\n"
    )
    out("| stage | wall s | CPU s | sandbox CPU s | peak RSS MB | requests | API floor s | wall ÷ floor |\n")
    out("|---|---:|---:|---:|---:|---|---:|---:|\n")
    for s in [*stages, total(stages)]:
        floor = s.floor()
        ratio = f"{s.wall / floor:.2f}" if floor else "–"
        reqs = ", ".join(f"{k} {v:,}" for k, v in s.requests.items()) or "–"
        out(
            f"| {s.name} | {s.wall:.2f} | {s.cpu:.2f} | {s.sandbox_cpu:.2f} | {s.peak_mb:.0f} | {reqs} "
            f"| {floor:.2f} | {ratio} |\n"
        )
    out(
        f"\nOperational activities: {facts['activities_read']:,} read (those that can have hours in the "
        f"period); the month's sweep reads all {facts['activities_swept']:,} "
        f"({facts['sweep_requests']:,} TOPdesk requests, primed before the measured read).\n"
    )
    by_endpoint = sorted(facts["read_endpoints"].items(), key=lambda item: -item[1])
    out(
        "TOPdesk requests of the measured read by endpoint: "
        + "; ".join(f"{key.removeprefix('GET ')} {n:,}" for key, n in by_endpoint)
        + ".\n"
    )
    load = next(s for s in stages if s.name.startswith("load"))
    minimum = facts["minimum_posts"] * AFAS_LATENCY_MS / 1000 / CONCURRENCY
    out(
        f"\nLoad: {facts['minimum_posts']:,} AFAS posts are the minimum with these batch limits "
        f"(floor {minimum:.2f} s); measured {load.wall:.2f} s = {load.wall / minimum:.2f} × that floor.\n"
    )
    whole = total(stages)
    floor, parts = minimum_request_floor(facts)
    out(
        f"Issue #15's minimum-request floor (every registration in pages of 10,000, every ticket in lists "
        f"of 200: {parts}): {floor:.2f} s; measured {whole.wall:.2f} s = {whole.wall / floor:.2f} × that "
        "floor.\n"
    )
    floor, parts = honest_floor(facts)
    out(
        f"**Honest floor** ({parts}): {floor:.2f} s; measured {whole.wall:.2f} s = "
        f"**{whole.wall / floor:.2f} ×** that floor. Koppel's CPU {whole.cpu:.2f} s, the sandbox's "
        f"{whole.sandbox_cpu:.2f} s, on {os.cpu_count()} cores.\n"
    )


def minimum_request_floor(facts: dict[str, Any]) -> tuple[float, str]:
    """Issue #15's lower bound on the wall time of any client, and how it was counted.

    TOPdesk: every registration read at least once in pages of 10,000, every ticket looked up at least
    once in lists of 200 ids; AFAS: 4 reads (masters at take up to 10,000, metainfo once) and one post
    per batch. Requests × latency ÷ concurrency, all one after the other. It counts operational activities
    as tickets in lists of 200, which TOPdesk has no way to read (``honest_floor``).
    """
    topdesk = -(-facts["registrations"] // 10_000) + -(-facts["tickets"] // 200)
    afas = 4 + facts["minimum_posts"]
    seconds = (topdesk * TOPDESK_LATENCY_MS + afas * AFAS_LATENCY_MS) / 1000 / CONCURRENCY
    return seconds, f"TOPdesk ≥ {topdesk:,} requests, AFAS ≥ {afas:,}"


def honest_floor(facts: dict[str, Any]) -> tuple[float, str]:
    """The least wall time any client needs with what the APIs allow, and the formula with its numbers.

    TOPdesk has no bulk or date-filtered read of operational-activity registrations
    (docs/reference/topdesk-api.md §4.6): one call per activity that has registrations in the period (A,
    counted in the sandbox's world) is the minimum. The other registrations (R) in pages of 10,000 and
    their tickets (K) in lists of 200 ids, as issue #15 counts them. AFAS: 4 reads, on their own request
    limit, so they can run beside TOPdesk's; the posts (P, one per batch) need the plan, so they come after
    both. floor = max(T × 80 ms, 4 × 150 ms) ÷ 4 + P × 150 ms ÷ 4, with T = A + ⌈R/10,000⌉ + ⌈K/200⌉.
    """
    activities = facts["activities_with_hours"]
    pages = -(-facts["other_registrations"] // 10_000)
    lists = -(-facts["other_tickets"] // 200)
    topdesk = activities + pages + lists
    reads = max(topdesk * TOPDESK_LATENCY_MS, 4 * AFAS_LATENCY_MS) / 1000 / CONCURRENCY
    posts = facts["minimum_posts"] * AFAS_LATENCY_MS / 1000 / CONCURRENCY
    formula = (
        f"max(T × {TOPDESK_LATENCY_MS} ms, 4 × {AFAS_LATENCY_MS} ms) ÷ {CONCURRENCY} + P × {AFAS_LATENCY_MS} "
        f"ms ÷ {CONCURRENCY}; T = A {activities:,} activities with hours in the period + ⌈R "
        f"{facts['other_registrations']:,} other registrations ÷ 10,000⌉ {pages} + ⌈K "
        f"{facts['other_tickets']:,} their tickets ÷ 200⌉ {lists} = {topdesk:,}; "
        f"P = {facts['minimum_posts']:,} posts: {reads:.2f} s reads + {posts:.2f} s posts"
    )
    return reads + posts, formula


def world_facts(scale: int, seed: int = SEED) -> dict[str, int]:
    """What the sandbox's world holds for the billed window: operational activities with registrations in it.

    Run in a child process (``world_facts_process``) so the benchmark's own peak RSS stays Koppel's.
    """
    import pandas as pd

    from sandbox.world import generate_core
    from sandbox.world import topdesk as world_topdesk
    from tasks.invoice_hours.extract import Window

    window = Window(*WINDOW)
    frame = world_topdesk.render(generate_core(seed=seed, scale=scale))["td_om_registrations"]
    entry = pd.DatetimeIndex(frame["entryDate"])
    inside = (entry >= pd.Timestamp(window.start)) & (entry < pd.Timestamp(window.end))
    return {"activities_with_hours": int(frame.loc[inside, "activity.id"].nunique())}


def world_facts_process(scale: int) -> subprocess.Popen:
    """Start ``world_facts`` in a child process; its stdout is one JSON line."""
    code = "import json, sys; "
    code += "from bench.invoice_hours import world_facts as f; print(json.dumps(f(int(sys.argv[1]))))"
    return subprocess.Popen([sys.executable, "-c", code, str(scale)], stdout=subprocess.PIPE, text=True)


def total(stages: list[Stage]) -> Stage:
    requests: dict[str, int] = {}
    for s in stages:
        for k, v in s.requests.items():
            requests[k] = requests.get(k, 0) + v
    return Stage(
        "**total**",
        sum(s.wall for s in stages),
        sum(s.cpu for s in stages),
        max(s.peak_mb for s in stages),
        requests,
        sum(s.sandbox_cpu for s in stages),
        sum(s.floor() for s in stages),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark sizes (see the module doc)."""
    from tasks.invoice_hours.extract import Window

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2_000, 50_000, 250_000])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 50], help="documents per AFAS body")
    parser.add_argument("--no-flow", action="store_true", help="skip counting the real flow's task runs")
    parser.add_argument("--no-naive", action="store_true", help="skip the naive sequential client")
    parser.add_argument("--plan-only", type=int, metavar="N", help="only plan N registrations (e.g. 1000000)")
    parser.add_argument("--from-size", type=int, default=20_000, help="--plan-only: month extracted first")
    parser.add_argument("--repeat", type=int, default=1, help="--plan-only: plans, each in a fresh process")
    parser.add_argument(
        "--month-file", type=Path, help="--plan-only: keep the extracted month here and reuse it if present"
    )
    args = parser.parse_args(argv)
    if args.plan_only:
        from bench.plan_only import plan_children, run, save_month

        if args.month_file is None:
            with sandbox_process(args.from_size) as info:
                run(info, Window(*WINDOW), args.plan_only, args.repeat)
            return 0
        if not args.month_file.exists():
            with sandbox_process(args.from_size) as info:
                save_month(info, Window(*WINDOW), args.month_file)
        plan_children(args.month_file, args.plan_only, args.repeat)
        return 0
    sys.stdout.write(
        f"invoice-hours benchmark: AFAS {AFAS_LATENCY_MS} ms/call, TOPdesk "
        f"{TOPDESK_LATENCY_MS} ms/call, concurrency {CONCURRENCY}\n"
    )
    for scale in args.sizes:
        for size in args.batches:
            os.environ["KOPPEL_LOAD_BATCH_DOCUMENTS"] = str(size)
            world = world_facts_process(scale)  # beside the sandbox's start; done before anything is timed
            with tempfile.TemporaryDirectory() as folder, sandbox_process(scale) as info:
                set_latency(info)
                known = json.loads(world.communicate()[0])
                stages, facts = run_stages(info, f"sqlite:///{Path(folder) / 'bench.db'}")
                report(scale, stages, {**facts, **known})
                last_wall = total(stages).wall
        if scale == min(args.sizes) and not args.no_naive:
            from bench.naive import run_naive

            with tempfile.TemporaryDirectory() as folder, sandbox_process(scale) as info:
                set_latency(info)
                naive = run_naive(info, f"sqlite:///{Path(folder) / 'naive.db'}", Window(*WINDOW))
            sys.stdout.write(
                f"\nNaive sequential client, same world, same invocation: {naive['wall']:.2f} s for "
                f"{naive['posted']:,} documents; Koppel (last batch setting above) "
                f"{last_wall:.2f} s: **{naive['wall'] / last_wall:.1f} × faster**.\n"
            )
        if args.no_flow or scale != min(args.sizes):
            continue
        with tempfile.TemporaryDirectory() as folder, sandbox_process(scale) as info:
            set_latency(info)
            runs, wall = count_task_runs(info, f"sqlite:///{Path(folder) / 'flow.db'}")
            sys.stdout.write(
                f"\nThe real flow (dry run, same world): {runs} task runs, {wall:.1f} s wall "
                "including Prefect's ephemeral API start.\n"
            )
    return 0
