"""Flow runs as Koppel records them: parameters (never secrets), outcome and per-bucket statistics.

``statistics`` of a run maps a bucket name (``invoiced``, ``internal``, ``excluded``, ``rejected``,
``billed_before``, ``failed``, ...) to ``{"count": int, "minutes": int, "amount": Decimal}``; any key may
be missing. Amounts are stored as exact JSON numbers and read back as Decimal.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from pydantic import SecretBytes, SecretStr
from sqlalchemy import Engine, select, update

from koppel.clock import AMSTERDAM
from store.db import to_frame, utcnow, write_transaction
from store.models import RUN_STATUSES, runs

REDACTED = "[redacted]"
# Parameter names that look like they carry a secret are never stored, whatever their value.
_SECRET_NAME = re.compile(r"pass(word)?|secret|token|api_?key|credential|authori[sz]ation", re.IGNORECASE)
_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class UnknownRun(LookupError):
    """No run has this id."""


def scrub(value: Any, name: str = "") -> Any:
    """Return ``value`` with secrets replaced by ``[redacted]`` (secret types, secret-looking names)."""
    if isinstance(value, SecretStr | SecretBytes) or (name and _SECRET_NAME.search(name)):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(key): scrub(item, str(key)) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(item) for item in value]
    if isinstance(value, str | int | float | bool | Decimal) or value is None:
        return value
    return str(value)


def start_run(
    engine: Engine, flow_name: str, parameters: Mapping[str, Any], run_id: str | None = None
) -> str:
    """Record that a run started (``run_id``: e.g. the Prefect flow run id; a new uuid if None)."""
    run_id = run_id or str(uuid.uuid4())
    row = {
        "id": run_id,
        "flow_name": flow_name,
        "started_at": utcnow(),
        "parameters": scrub(dict(parameters)),
        "status": "running",
    }
    with write_transaction(engine) as connection:
        connection.execute(runs.insert().values(**row))
    return run_id


def finish_run(
    engine: Engine, run_id: str, status: str, statistics: Mapping[str, Mapping[str, Any]] | None = None
) -> None:
    """Record the outcome of a run (``completed``, ``failed``, ``crashed``, ``cancelled``)."""
    if status not in RUN_STATUSES or status == "running":
        raise ValueError(f"status {status!r} is not one of {[s for s in RUN_STATUSES if s != 'running']}")
    values = {"status": status, "finished_at": utcnow(), "statistics": _statistics(statistics or {})}
    with write_transaction(engine) as connection:
        if connection.execute(update(runs).where(runs.c.id == run_id).values(**values)).rowcount != 1:
            raise UnknownRun(f"no run with id {run_id!r}")


def _statistics(statistics: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for bucket, figures in statistics.items():
        for key in ("count", "minutes"):
            if key in figures and not isinstance(figures[key], int):
                raise TypeError(f"statistics {bucket}.{key} must be an int, got {figures[key]!r}")
        if "amount" in figures and not isinstance(figures["amount"], Decimal):
            raise TypeError(f"statistics {bucket}.amount must be a Decimal, got {figures['amount']!r}")
        result[str(bucket)] = dict(figures)
    return result


HISTORY_DTYPES = {
    "id": "str",
    "flow_name": "str",
    "status": "str",
    "started_at": "datetime",
    "finished_at": "datetime",
    "parameters": "object",
    "statistics": "object",
}


def run_history(engine: Engine, flow_name: str | None = None, limit: int = 20) -> pd.DataFrame:
    """The newest ``limit`` runs (of one flow if given), newest first."""
    statement = (
        select(*(runs.c[name] for name in HISTORY_DTYPES)).order_by(runs.c.started_at.desc()).limit(limit)
    )
    if flow_name is not None:
        statement = statement.where(runs.c.flow_name == flow_name)
    with engine.connect() as connection:
        return to_frame(connection.execute(statement).mappings().all(), HISTORY_DTYPES)


def _month_bounds(period: str) -> tuple[datetime, datetime]:
    """The Amsterdam month ``YYYY-MM`` as an aware half-open interval."""
    match = _PERIOD.match(period)
    if not match:
        raise ValueError(f"period {period!r} is not YYYY-MM")
    year, month = int(match.group(1)), int(match.group(2))
    end_year, end_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(year, month, 1, tzinfo=AMSTERDAM), datetime(end_year, end_month, 1, tzinfo=AMSTERDAM)


STATISTICS_DTYPES = {
    "bucket": "str",
    "runs": "int64",
    "count": "int64",
    "minutes": "int64",
    "amount": "object",
}


def statistics(engine: Engine, period: str, flow_name: str | None = None) -> pd.DataFrame:
    """Per-bucket totals over the completed runs started in the Amsterdam month ``period`` (``YYYY-MM``)."""
    start, end = _month_bounds(period)
    statement = select(runs.c.statistics).where(
        runs.c.status == "completed", runs.c.started_at >= start, runs.c.started_at < end
    )
    if flow_name is not None:
        statement = statement.where(runs.c.flow_name == flow_name)
    totals: dict[str, dict[str, Any]] = {}
    with engine.connect() as connection:
        for (figures,) in connection.execute(statement):
            _add_up(totals, figures or {})
    rows = [{"bucket": bucket, **totals[bucket]} for bucket in sorted(totals)]
    return to_frame(rows, STATISTICS_DTYPES)


def _add_up(totals: dict[str, dict[str, Any]], figures: Mapping[str, Mapping[str, Any]]) -> None:
    for bucket, values in figures.items():
        total = totals.setdefault(bucket, {"runs": 0, "count": 0, "minutes": 0, "amount": Decimal("0.00")})
        total["runs"] += 1
        total["count"] += int(values.get("count", 0))
        total["minutes"] += int(values.get("minutes", 0))
        total["amount"] += Decimal(values.get("amount", 0))


def record_approval(engine: Engine, run_id: str, approval: Mapping[str, Any]) -> None:
    """Keep who decided on the run's plan, when, and its fingerprint, with the run's parameters.

    Stored under ``parameters["approval"]`` (the parameters themselves stay under their own keys), so no
    schema change is needed; ``approval_of`` reads it back.
    """
    with write_transaction(engine) as connection:
        current = connection.execute(
            select(runs.c.parameters).where(runs.c.id == run_id)
        ).scalar_one_or_none()
        if current is None:
            raise UnknownRun(f"no run with id {run_id!r}")
        merged = {**dict(current), "approval": scrub(dict(approval))}
        connection.execute(update(runs).where(runs.c.id == run_id).values(parameters=merged))


def approval_of(engine: Engine, run_id: str) -> dict[str, Any] | None:
    """The approval recorded with a run (``record_approval``), or None."""
    with engine.connect() as connection:
        parameters = connection.execute(
            select(runs.c.parameters).where(runs.c.id == run_id)
        ).scalar_one_or_none()
    if parameters is None:
        raise UnknownRun(f"no run with id {run_id!r}")
    return parameters.get("approval")
