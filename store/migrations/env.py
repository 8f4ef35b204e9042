"""Alembic environment: runs on the connection ``store.db.migrate`` passes in, or on a URL.

Configured in code (no alembic.ini): ``store.db.alembic_config()`` sets ``script_location``. For the
``alembic`` command line, set ``sqlalchemy.url`` with ``-x url=...`` or the ``KOPPEL_STATE_DB_URL``
environment variable.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.models import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite can only change tables by copying them; batch mode does that in later migrations.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_from_url() -> None:
    from store.db import create_engine_for
    from store.settings import StoreSettings

    url = context.get_x_argument(as_dictionary=True).get("url")
    settings = StoreSettings(db_url=url) if url else StoreSettings()
    engine = create_engine_for(settings)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    _run_from_url()
