"""Shared fixtures: one Prefect test harness per session, a throwaway PostgreSQL cluster, the session's worlds
and running sandboxes (tests/fixtures/worlds.py) and ``sandbox``: the small world's, reset, settings at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Prefect's ephemeral API takes 10-18 s to start on a 2-core machine; its default limit is 20 s.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

from tests.fixtures.worlds import sandbox, sandboxes, tiny_sandbox, worlds  # noqa: F401 - fixtures
from tests.postgres import throwaway_cluster


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """Run every flow of the session against one ephemeral Prefect API, heartbeats off."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with (
        temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        yield


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a throwaway PostgreSQL 15 database, torn down after the session."""
    with throwaway_cluster() as url:
        yield url


# Tests live in a folder per slice and per layer (tests/invoice_hours/, tests/connectors/, ...); each test
# gets the folder's name as a marker, so `pytest -m connectors` runs one layer and tests/system/ is `system`.
FOLDER_MARKERS = (
    "invoice_hours",
    "company_sync",
    "hr_sync",
    "connectors",
    "sandbox",
    "store",
    "system",
    "koppel",
)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with the folder it lives in (before ``-m`` selects); files with system tests go first.

    They are the longest files and mostly wait for servers and workers: started first, they run beside the
    other files on the second process of ``make test`` (pytest-xdist, ``--no-loadscope-reorder``, hands out
    files in this order) instead of being the last ones left at the end.
    """
    for item in items:
        folder = Path(str(item.fspath)).parent.name
        if folder in FOLDER_MARKERS:
            item.add_marker(getattr(pytest.mark, folder))
    first = {str(item.fspath) for item in items if item.get_closest_marker("system")}
    items.sort(key=lambda item: str(item.fspath) not in first)  # stable: the order within and after is kept
