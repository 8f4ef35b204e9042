"""The state database from inside flows: one migrated engine per URL, and the run records every flow keeps.

Every flow records itself in the store's ``runs`` table (``open_run`` at the start, ``close_run`` with its
statistics at the end, ``mark_run_ended`` as ``on_failure``/``on_crashed`` hook), so the statistics and the
invoice flow's crash recovery see which runs ended and how.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed, State
from sqlalchemy.engine import Engine

from store import runs
from store.db import connect
from store.settings import StoreSettings
from tasks.secrets import load_settings

log = logging.getLogger(__name__)


# Runs whose flow closed them itself (close_run): the failure hook leaves their record and figures alone.
_CLOSED: set[str] = set()


@functools.cache
def _engine_for(url: str) -> Engine:
    return connect(StoreSettings(db_url=url))


def state_engine() -> Engine:
    """The engine of the configured state database, migrated once per process and URL."""
    return _engine_for(load_settings(StoreSettings).url)


@task(name="open-run", cache_policy=NO_CACHE)
def open_run(flow_name: str, parameters: dict[str, Any], run_id: str | None) -> str:
    """Record the run in the store (its id is the Prefect flow-run id when there is one)."""
    return runs.start_run(state_engine(), flow_name, parameters, run_id=run_id)


@task(name="close-run", cache_policy=NO_CACHE)
def close_run(run_id: str, status: str, statistics: dict[str, dict[str, Any]]) -> None:
    """Save the run's outcome and its figures (``{name: {"count": …, "minutes": …, "amount": …}}``)."""
    runs.finish_run(state_engine(), run_id, status, statistics)
    _CLOSED.add(str(run_id))


def mark_run_ended(flow: Any, flow_run: Any, state: Any) -> None:
    """Flow hook (on_failure, on_crashed): record the run as ended.

    For invoice-hours this lets the next run recover the documents it left claimed at once, instead of after
    ``recover_after_minutes``. Never raises: a hook must not hide the original failure.
    """
    if str(flow_run.id) in _CLOSED:  # it ended orderly and chose to fail (run_verdict): keep its figures
        return
    status = "crashed" if getattr(state, "is_crashed", lambda: False)() else "failed"
    try:
        runs.finish_run(state_engine(), str(flow_run.id), status)
    except Exception:  # e.g. the run failed before open_run: nothing to record then
        log.warning("could not record the end of run %s", flow_run.id, exc_info=True)


def recorded_flow(name: str, **options: Any) -> Any:
    """``@flow`` for a flow that keeps a run record (``open_run``/``close_run``).

    Parameters are validated; a failed or crashed run gets its record closed (``mark_run_ended``) and Koppel
    notifies (``koppel.notifications.notify_failure``). ``options`` go to Prefect's ``flow`` as they are.
    """
    from koppel.notifications import notify_failure

    hooks: list[Any] = [
        mark_run_ended,
        notify_failure,
    ]  # Prefect types hooks as FlowStateHook; ours are plain
    return flow(name=name, validate_parameters=True, on_failure=hooks, on_crashed=hooks, **options)


# --- is a run green? ---------------------------------------------------------------------------------------

NOT_GREEN_STATUSES = {
    "failed": "refused by AFAS",
    "uncertain": "uncertain (AFAS did not answer; looked up again by the next run)",
    "possibly-deleted": "possibly deleted in AFAS",
}


class RunNotClean(Exception):
    """The run finished its work but must not look green; ``result`` is what it would have returned."""

    def __init__(self, message: str, result: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.result = dict(result)


@dataclass(frozen=True)
class Verdict:
    """Whether a finished run is green, and if not, one message saying why."""

    ok: bool
    problems: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """The state message of a run that is not green."""
        return "; ".join(self.problems)


def run_verdict(
    read_count: int,
    statuses: Iterable[str],
    failed_sources: Iterable[str] = (),
    what: str = "registrations",
    possibly_deleted: int = 0,
) -> Verdict:
    """Green only when something was read, every source answered and no document is refused or uncertain.

    ``statuses`` are the document statuses of the run (``tasks.invoice_hours.load.Outcome.status``); dry runs'
    "dry-run"
    and every posted/recovered/elsewhere status are fine. ``possibly_deleted`` counts registrations billed
    earlier that this run did not read and could not confirm gone (bucket "possibly deleted"): they are not
    credited, so the run is not green.
    """
    problems = [f"source {name} failed" for name in failed_sources]
    if read_count == 0:
        problems.append(f"zero {what} read: check the source and the dates")
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    for status, meaning in NOT_GREEN_STATUSES.items():
        if counts.get(status):
            problems.append(f"{counts[status]} document{'s' if counts[status] != 1 else ''} {meaning}")
    if possibly_deleted:
        problems.append(
            f"{possibly_deleted} {what if possibly_deleted != 1 else what.removesuffix('s')} possibly deleted"
            " in TOPdesk, not credited: checked again next run"
        )
    return Verdict(ok=not problems, problems=tuple(problems))


WRITE_PROBLEMS = {
    "failed": "failed in {system}",
    "uncertain": "uncertain ({system} did not answer; looked up again by the next run)",
    "rejected": "refused by {system}",
    "skipped": "not sent (too many failures in a row: the run stopped writing to {system})",
}


def writes_verdict(outcomes: Iterable[str], system: str, noun: str = "change") -> Verdict:
    """Green only when every write this run attempted went through (a dry run's "planned" is fine).

    ``outcomes`` are the per-write outcomes (the HR, company and debtor flows' ``outcome``/``status``).
    """
    counts = Counter(str(outcome) for outcome in outcomes)
    problems = [
        f"{counts[status]} {noun}{'s' if counts[status] != 1 else ''} {meaning.format(system=system)}"
        for status, meaning in WRITE_PROBLEMS.items()
        if counts.get(status)
    ]
    return Verdict(ok=not problems, problems=tuple(problems))


def finish(flow_name: str, result: dict[str, Any], verdict: Verdict) -> dict[str, Any] | State:
    """What a flow returns: ``result`` when green, else a Failed state that carries it (``RunNotClean``).

    Call after ``close_run``: the run's figures are kept, the run is Failed in the UI and notifies.
    """
    if verdict.ok:
        return result
    get_run_logger().error("%s not clean: %s", flow_name, verdict.message)
    return Failed(message=verdict.message, data=RunNotClean(verdict.message, result))
