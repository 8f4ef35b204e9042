"""The ignore list kept in the database: what is never billed.

Registrations, tickets, operators, operator groups, branches or customers; the billing rules receive
the list as a frame (``as_frame``) next to the exclusions in the billing configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from store.db import inserted_id, to_frame, utcnow, write_transaction
from store.models import EXCLUSION_KINDS, EXCLUSION_VALUE_LENGTH, exclusions


class ExclusionError(ValueError):
    """An exclusion cannot be added or removed; the message says why."""


class UnknownExclusion(ExclusionError, LookupError):
    """No exclusion has this id."""


@dataclass(frozen=True)
class Exclusion:
    """One entry of the ignore list."""

    id: int
    kind: str
    value: str
    reason: str
    created_by: str
    created_at: datetime


FRAME_DTYPES = {
    "id": "int64",
    "kind": "str",
    "value": "str",
    "reason": "str",
    "created_by": "str",
    "created_at": "datetime",
}


def _clean(kind: str, value: str, reason: str, created_by: str) -> tuple[str, str, str, str]:
    if kind not in EXCLUSION_KINDS:
        raise ExclusionError(f"unknown exclusion kind {kind!r}; use one of: {', '.join(EXCLUSION_KINDS)}")
    cleaned = [str(part).strip() for part in (value, reason, created_by)]
    for name, part in zip(("value", "reason", "created_by"), cleaned, strict=True):
        if not part:
            raise ExclusionError(f"exclusion {name} must not be empty")
    if len(cleaned[0]) > EXCLUSION_VALUE_LENGTH:
        raise ExclusionError(f"exclusion value is longer than {EXCLUSION_VALUE_LENGTH} characters")
    return kind, cleaned[0], cleaned[1], cleaned[2]


def add(engine: Engine, kind: str, value: str, reason: str, created_by: str) -> int:
    """Add an exclusion and return its id; the same kind and value twice is refused."""
    kind, value, reason, created_by = _clean(kind, value, reason, created_by)
    row = {"kind": kind, "value": value, "reason": reason, "created_by": created_by, "created_at": utcnow()}
    try:
        with write_transaction(engine) as connection:
            return inserted_id(connection.execute(exclusions.insert().values(**row)))
    except IntegrityError:
        raise ExclusionError(f"{kind} {value!r} is already excluded") from None


def remove(engine: Engine, exclusion_id: int) -> Exclusion:
    """Remove an exclusion by id and return what was removed (``UnknownExclusion`` if there is none)."""
    with write_transaction(engine) as connection:
        row = connection.execute(select(exclusions).where(exclusions.c.id == exclusion_id)).first()
        if row is None:
            raise UnknownExclusion(f"no exclusion with id {exclusion_id}")
        connection.execute(delete(exclusions).where(exclusions.c.id == exclusion_id))
    return Exclusion(**row._mapping)


def list_exclusions(engine: Engine, kind: str | None = None) -> list[Exclusion]:
    """All exclusions (of one kind if given), by kind and value."""
    statement = select(exclusions).order_by(exclusions.c.kind, exclusions.c.value)
    if kind is not None:
        _clean(kind, "-", "-", "-")
        statement = statement.where(exclusions.c.kind == kind)
    with engine.connect() as connection:
        return [Exclusion(**row._mapping) for row in connection.execute(statement)]


def as_frame(engine: Engine) -> pd.DataFrame:
    """The ignore list as a frame: ``kind``, ``value``, ``reason`` (plus id, created_by, created_at)."""
    statement = select(*(exclusions.c[name] for name in FRAME_DTYPES)).order_by(
        exclusions.c.kind, exclusions.c.value
    )
    with engine.connect() as connection:
        return to_frame(connection.execute(statement).mappings().all(), FRAME_DTYPES)
