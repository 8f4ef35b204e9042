"""Alembic migrations of the state database (run them with ``store.db.migrate``)."""
