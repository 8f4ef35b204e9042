"""Split wanted TOPdesk records into valid ones and rejects, each reject with a reason per field.

The record schemas (``schemas/companies.py``) run lazily, so every problem of every row is found in one
pass; the failure cases are phrased per record and field (``debtor 10005 "Foo B.V.": email (from Email):
'info@@foo' is not a valid e-mail address``). A rejected row is skipped; the others go on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from tasks.company_sync.fields import text

REJECT_COLUMNS = ["entity", "key", "name", "field", "reason"]


@dataclass(frozen=True)
class Entity:
    """How records of one kind are named in reasons."""

    label: str  # "debtor", "contact person"
    key: str  # the TOPdesk key column of the records
    afas_key: str  # the AFAS column it comes from
    sources: Mapping[str, Sequence[str]]  # TOPdesk field → AFAS columns (from the field map)
    limits: Mapping[str, int | None]  # TOPdesk field → maximum length (schemas/companies.py)


def empty_rejects() -> pd.DataFrame:
    """A rejects frame without rows."""
    return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})


def split_valid(
    records: pd.DataFrame, schema: pa.DataFrameSchema, entity: Entity
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(valid, rejects)``: rejects hold ``entity, key, name, field, reason``, one row per problem."""
    records = records.reset_index(drop=True)
    try:
        schema.validate(records, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return records, empty_rejects()
    if cases["index"].isna().any():  # a whole column is missing or mistyped: a bug, not a bad row
        raise ValueError(f"{entity.label} records break their schema:\n{cases}")
    rows = [_reject(records.loc[int(c.index)], c.column, str(c.check), entity) for c in cases.itertuples()]
    rejects = pd.DataFrame(rows, columns=REJECT_COLUMNS, dtype=object).drop_duplicates()
    bad = sorted({int(i) for i in cases["index"]})
    return records.drop(index=bad).reset_index(drop=True), rejects.reset_index(drop=True)


def _reject(row: pd.Series, field: str, check: str, entity: Entity) -> dict[str, object]:
    return {
        "entity": entity.label,
        "key": text(row[entity.key]) or None,
        "name": text(row.get("afas_name")) or None,
        "field": field,
        "reason": f"{record_label(row, entity)}: {phrase(row, field, check, entity)}",
    }


def record_label(row: pd.Series, entity: Entity) -> str:
    """``debtor 10005 "Foo B.V."``, or ``debtor without DebtorId "Foo B.V."``."""
    key = text(row[entity.key])
    name = text(row.get("afas_name"))
    ident = key or f"without {entity.afas_key}"
    return f'{entity.label} {ident} "{name}"' if name else f"{entity.label} {ident}"


def phrase(row: pd.Series, field: str, check: str, entity: Entity) -> str:
    """What is wrong with one field, with the AFAS column it came from and the offending value."""
    value = text(row[field])
    source = entity.afas_key if field == entity.key else "/".join(entity.sources.get(field, ()))
    where = f"{field} (from {source})" if source else field
    if check == "not_nullable":
        return f"{where}: missing, TOPdesk needs it"
    if check.startswith("str_length"):
        return f"{where}: {len(value)} characters, TOPdesk allows {entity.limits.get(field)}: {value!r}"
    if check.startswith("str_matches"):
        return f"{where}: {value!r} is not a valid e-mail address"
    return f"{where}: fails {check}: {value!r}"


def split_unknown_countries(
    records: pd.DataFrame, field: str, countries: Collection[str], entity: Entity
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reject records whose country TOPdesk does not know (it would refuse the whole write)."""
    if field not in records.columns or records.empty:
        return records, empty_rejects()
    known = {text(c) for c in countries}
    bad = records[[bool(text(v)) and text(v) not in known for v in records[field]]]
    rows = [
        {
            "entity": entity.label,
            "key": text(row[entity.key]) or None,
            "name": text(row.get("afas_name")) or None,
            "field": field,
            "reason": f"{record_label(row, entity)}: {field}: {text(row[field])!r} is not a TOPdesk country",
        }
        for _, row in bad.iterrows()
    ]
    rejects = pd.DataFrame(rows, columns=REJECT_COLUMNS, dtype=object)
    return records.drop(index=bad.index).reset_index(drop=True), rejects
