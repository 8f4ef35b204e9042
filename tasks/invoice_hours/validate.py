"""Step 2: split the read registrations into valid rows and rejects with a human reason.

pandera runs ``ValidRegistrations`` lazily, so every failure of every row is collected in one pass; the
failure cases are mapped back to their rows and phrased per field (``minutes: must be > 0``). A row with
several failures is rejected once with the reasons joined; what the connector could not read (its
``read_error`` column) comes first. An exact duplicate (same id, same content, e.g. a
row served twice across pages) counts once and is not a reject; the same id with different content is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from schemas.registrations import MAX_MINUTES, RawRegistrations, row_rules_schema

REASON_SEPARATOR = "; "
READ_ERROR = "read_error"  # optional column: what the connector could not read in the served row
TEXT_COLUMNS = [
    name
    for name, column in RawRegistrations.to_schema().columns.items()
    if isinstance(column.dtype.type, pd.StringDtype)
]


class RegistrationContractError(ValueError):
    """The frame does not have the shape of docs/contracts.md §1 (a connector bug, not bad data)."""


def split_valid(frame: pd.DataFrame, max_minutes: int = MAX_MINUTES) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return ``(valid, rejects)``; rejects keep every original column plus ``reason`` and ``step``."""
    frame = collapse_exact_duplicates(conform(frame))
    failures = _failure_cases(frame, row_rules_schema(max_minutes))
    reasons = with_read_errors(frame, _row_reasons(frame, failures, max_minutes))
    reasons, absorbed = _merge_conflicting_duplicates(frame, reasons)
    valid = frame.drop(index=reasons.index.union(absorbed)).astype({"minutes": "int64"})
    rejects = frame.loc[reasons.index.sort_values()].assign(reason=reasons, step="validate")
    return valid.reset_index(drop=True), rejects.reset_index(drop=True)


def conform(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame in its contract dtypes with a fresh positional index; missing columns raise.

    Only the dtypes are normalised here; ``ValidRegistrations`` then checks every column and row.
    """
    missing = sorted(set(RawRegistrations.to_schema().columns) - set(frame.columns))
    if missing:
        raise RegistrationContractError(f"registration frame lacks columns: {', '.join(missing)}")
    frame = frame.reset_index(drop=True)
    for column in ("entry_date", "creation_date", "modification_date"):
        # A connector parsing with pandas 3 gets microseconds; the contract's unit is nanoseconds.
        frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    try:
        frame["minutes"] = frame["minutes"].astype("Int64")
        frame["time_spent_raw"] = frame["time_spent_raw"].astype("float64")
    except (TypeError, ValueError) as error:
        raise RegistrationContractError(f"registration frame breaks the contract: {error}") from None
    for column in [*TEXT_COLUMNS, *([READ_ERROR] if READ_ERROR in frame else [])]:
        if frame[column].dtype != "str":  # an all-None column arrives as object
            frame[column] = frame[column].astype("str")
    return frame


def with_read_errors(frame: pd.DataFrame, reasons: pd.Series) -> pd.Series:
    """Reasons with the connector's ``read_error`` first; a row with one is always rejected.

    ``read_error`` names what could not be read: not an object, no usable id or parent, no number.
    """
    if READ_ERROR not in frame:
        return reasons
    errors = frame[READ_ERROR].dropna()
    errors = errors[errors.str.strip() != ""]
    if errors.empty:
        return reasons
    own = reasons.reindex(errors.index)
    whole_row = errors.str.startswith("row:")  # nothing else about it can be said
    merged = errors.where(own.isna() | whole_row, errors + REASON_SEPARATOR + own.fillna(""))
    combined = pd.concat([reasons.drop(index=errors.index, errors="ignore"), merged]).sort_index()
    return combined.astype("str").rename("reason")


def collapse_exact_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop rows identical in every column to an earlier row with the same id (the first one stays).

    Only rows sharing an id can be exact duplicates, so just those are compared, value by value.
    """
    ids = frame["registration_id"]
    candidates = frame[(ids.notna() & ids.duplicated(keep=False)).to_numpy()]
    if candidates.empty:
        return frame
    return frame.drop(index=candidates.index[candidates.duplicated(keep="first").to_numpy()])


def _failure_cases(frame: pd.DataFrame, schema: pa.DataFrameSchema) -> pd.DataFrame:
    try:
        schema.validate(frame, lazy=True)
    except SchemaErrors as errors:
        cases = errors.failure_cases
    else:
        return pd.DataFrame({"index": [], "column": [], "check": []})
    if cases["index"].isna().any():
        raise RegistrationContractError(f"registration frame breaks the contract:\n{cases}")
    return cases[["index", "column", "check"]].astype({"index": "int64", "check": "str"})


def _row_reasons(frame: pd.DataFrame, failures: pd.DataFrame, max_minutes: int) -> pd.Series:
    """One joined reason per failing row, indexed like ``frame``."""
    if failures.empty:
        return pd.Series([], index=pd.Index([], dtype="int64"), dtype="str")
    rows = frame.loc[failures["index"].to_numpy()]
    texts = _phrase(rows, failures["column"].to_numpy(), failures["check"].to_numpy(), max_minutes)
    phrased = pd.DataFrame({"index": failures["index"].to_numpy(), "text": texts}).drop_duplicates()
    return _joined_per_row(phrased["index"].to_numpy(dtype=np.int64), phrased["text"].to_numpy(dtype=object))


def _joined_per_row(index: np.ndarray, text: np.ndarray) -> pd.Series:
    """``groupby("index", sort=True)["text"].agg("; ".join)`` in one pass: each row's texts in their order."""
    order = np.argsort(index, kind="stable")
    rows, texts = index[order], text[order].tolist()
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else np.zeros(0, dtype=np.int64)
    bounds = zip(starts.tolist(), [*starts[1:].tolist(), len(texts)][: len(starts)], strict=True)
    joined = [REASON_SEPARATOR.join(texts[start:end]) for start, end in bounds]
    return pd.Series(joined, index=pd.Index(rows[starts], name="index"), name="reason", dtype="str")


def _phrase(rows: pd.DataFrame, column: np.ndarray, check: np.ndarray, max_minutes: int) -> np.ndarray:
    """Human text per failure case: the field, what is wrong, and the offending value."""
    null = check == "not_nullable"
    conditions = [
        (column == "registration_id") & (null | np.char.startswith(check.astype(str), "str_length")),
        (column == "registration_id") & (check == "field_uniqueness"),
        (column == "entry_date") & null,
        (column == "minutes") & null,
        (column == "minutes") & np.char.startswith(check.astype(str), "greater_than"),
        (column == "minutes") & np.char.startswith(check.astype(str), "less_than"),
        (column == "kind"),
    ]
    choices = [
        "registration_id: missing",
        "registration_id: duplicate",
        _entry_date_text(rows),
        _missing_minutes_text(rows),
        "minutes: must be > 0",
        "minutes: "
        + rows["minutes"].astype("str")
        + f" exceeds the maximum of {max_minutes} per registration",
        "kind: unknown " + _quoted(rows["kind"]),
    ]
    fallback = pd.Series(column, index=rows.index) + ": failed " + pd.Series(check, index=rows.index)
    picked = [np.asarray(choice, dtype=object) if not np.isscalar(choice) else choice for choice in choices]
    return np.select(conditions, picked, default=np.asarray(fallback, dtype=object))


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.astype("str").where(values.notna(), "") + "'"


def _entry_date_text(rows: pd.DataFrame) -> pd.Series:
    raw = rows["entry_date_raw"]
    blank = raw.isna() | (raw.astype("str").str.strip() == "")
    return pd.Series(
        np.where(blank, "entry_date: missing", "entry_date: unparseable " + _quoted(raw)), index=rows.index
    )


def _missing_minutes_text(rows: pd.DataFrame) -> pd.Series:
    raw = rows["time_spent_raw"]
    shown = raw.map(lambda value: f"{value:g}" if pd.notna(value) else "")
    unit_word = (
        rows["time_unit"].map({"seconds": "s", "minutes": "min"}).fillna(rows["time_unit"].astype(str))
    )
    mismatch = (rows["time_unit"] == "seconds") & raw.notna() & (raw % 60 != 0)
    text = np.select(
        [raw.isna(), mismatch],
        ["minutes: missing", "minutes: unit mismatch (bulk value " + shown + " s is not whole minutes)"],
        default="minutes: not a whole number of minutes (" + shown + " " + unit_word + ")",
    )
    return pd.Series(text, index=rows.index)


def _merge_conflicting_duplicates(frame: pd.DataFrame, reasons: pd.Series) -> tuple[pd.Series, pd.Index]:
    """Same id, different content: reject the registration once (its first row), naming the duplicates.

    Returns the reasons and the index of the later rows, which the first row's reject stands for.
    """
    ids = frame["registration_id"]
    dup_mask = ids.notna() & ids.duplicated(keep=False)
    if not dup_mask.any():
        return reasons, pd.Index([], dtype="int64")
    dup_rows = frame.index[dup_mask]
    first = ~ids[dup_mask].duplicated(keep="first")
    counts = ids[dup_mask].map(ids[dup_mask].value_counts())
    text = "registration_id: duplicate (" + counts.astype(str) + " rows with different content)"
    own = reasons.reindex(dup_rows).fillna("").str.split(REASON_SEPARATOR)
    own = own.map(lambda parts: [p for p in parts if p and p != "registration_id: duplicate"])
    merged = [REASON_SEPARATOR.join([t, *o]) for t, o in zip(text, own, strict=True)]
    merged = pd.Series(merged, index=dup_rows)[first.to_numpy()]
    absorbed = dup_rows[~first.to_numpy()]
    return pd.concat([reasons.drop(index=dup_rows, errors="ignore"), merged]).sort_index(), absorbed
