"""Engines for the state database, write transactions that serialise correctly, and migrations.

SQLite (the default, one machine): WAL so readers never block the writer, a busy timeout so a second
writer waits instead of failing, foreign keys on, and ``BEGIN IMMEDIATE`` for write transactions so the
write lock is taken up front (a deferred transaction that upgrades to a writer cannot wait: SQLite fails
it at once). PostgreSQL (several workers): a connection pool with pre-ping; the claim protocol in
``store/ledger.py`` relies only on row locks and unique keys, under the default READ COMMITTED.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, text

from store.settings import StoreSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any fixed number: serialises concurrent ``migrate`` calls of several workers on one PostgreSQL database.
MIGRATION_LOCK_ID = 0x4B6F7070656C


def utcnow() -> datetime:
    """Return the current time, UTC-aware."""
    return datetime.now(UTC)


def _json_default(value: Any) -> Any:
    """Encode the non-JSON values Koppel stores: Decimals as exact numbers, dates as ISO text."""
    if isinstance(value, Decimal):
        as_float = float(value)
        # A JSON number is parsed back as Decimal (see json_loads); refuse what a float cannot carry exactly.
        if not value.is_finite() or Decimal(repr(as_float)) != value:
            raise TypeError(f"Decimal {value} cannot be stored exactly as a JSON number")
        return as_float
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy and pandas scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def json_dumps(value: Any) -> str:
    """Serialise for a JSON column (sorted keys, so equal content gives equal text)."""
    return json.dumps(value, default=_json_default, sort_keys=True, ensure_ascii=False, allow_nan=False)


def json_loads(text_value: str | bytes) -> Any:
    """Parse a JSON column; numbers with a fraction come back as Decimal, never float."""
    return json.loads(text_value, parse_float=Decimal)


def create_engine_for(
    settings: StoreSettings, *, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS, **kwargs: Any
) -> Engine:
    """Create (but do not migrate) the engine for ``settings.db_url``; ``kwargs`` go to create_engine."""
    options: dict[str, Any] = {"json_serializer": json_dumps, "json_deserializer": json_loads, **kwargs}
    if settings.url.startswith("sqlite"):
        settings.ensure_directory()
        connect_args = {"check_same_thread": False, **options.pop("connect_args", {})}
        engine = create_engine(settings.url, connect_args=connect_args, **options)
        _configure_sqlite(engine, sqlite_busy_timeout_ms)
        return engine
    options.setdefault("pool_size", 5)
    options.setdefault("max_overflow", 10)
    return create_engine(settings.url, pool_pre_ping=True, **options)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    in_memory = ":memory:" in str(engine.url) or engine.url.database in (None, "")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is turned off so that _on_begin decides the transaction mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get("koppel_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def connect(settings: StoreSettings | None = None, *, migrate_schema: bool = True) -> Engine:
    """Return an engine for the configured database, migrated to the newest schema by default."""
    engine = create_engine_for(settings or StoreSettings())
    if migrate_schema:
        migrate(engine)
    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: committed on success, rolled back on any exception.

    On SQLite it starts with ``BEGIN IMMEDIATE`` (waits up to the busy timeout for the single writer
    lock); on PostgreSQL it is an ordinary READ COMMITTED transaction.
    """
    with engine.connect().execution_options(koppel_write=True) as connection, connection.begin():
        yield connection


def alembic_config() -> Config:
    """An Alembic configuration pointing at the package's own migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` (default: the newest); safe to call from several workers."""
    _run_alembic(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Downgrade the schema to ``revision`` (``base`` drops every table; the ledger goes with it)."""
    _run_alembic(engine, command.downgrade, revision)


def _run_alembic(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    config = alembic_config()
    with write_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        config.attributes["connection"] = connection
        step(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the one row an ``INSERT`` just added."""
    key = result.inserted_primary_key
    if key is None:  # SQLAlchemy: only for a statement that was not a single-row insert
        raise ValueError("the statement inserted no single row")
    return int(key[0])


def to_frame(rows: Sequence[Mapping[Any, Any]], dtypes: Mapping[str, str]) -> pd.DataFrame:
    """Build a frame with exactly the columns and dtypes of ``dtypes``, also when there are no rows.

    ``datetime`` columns become ``datetime64[us, UTC]``; ``object`` keeps Decimals and dates as they are.
    """
    frame = pd.DataFrame([dict(row) for row in rows], columns=list(dtypes))
    for column, dtype in dtypes.items():
        if dtype == "datetime":
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[us, UTC]")
        elif dtype != "object":
            frame[column] = frame[column].astype(dtype)
    return frame


def chunked(values: Sequence[Any], size: int = 5_000) -> Iterator[Sequence[Any]]:
    """Split ``values`` so that an ``IN (...)`` list stays below SQLite's and psycopg's parameter limits."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
