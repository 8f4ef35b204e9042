"""The foundation: Prefect flows run in the session harness, secrets come from blocks, PostgreSQL starts."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prefect import flow, task

from tasks.secrets import block_name, secret_from_block


@task
def _double(value: int) -> int:
    return value * 2


@flow
def _tiny_flow(value: int) -> int:
    return _double(value)


@pytest.mark.prefect
def test_a_flow_runs_in_the_harness(prefect_harness: None) -> None:
    assert _tiny_flow(21) == 42


@pytest.mark.prefect
def test_secret_blocks_feed_missing_secrets(prefect_harness: None) -> None:
    from prefect.blocks.system import Secret

    Secret(value="block-token-value").save(block_name("KOPPEL_TEST_TOKEN"), overwrite=True)
    assert block_name("KOPPEL_AFAS_TOKEN") == "koppel-afas-token"
    assert secret_from_block("KOPPEL_TEST_TOKEN") == "block-token-value"
    assert secret_from_block("KOPPEL_NOT_THERE") is None


@pytest.mark.postgres
def test_throwaway_postgres_is_version_15(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        version = conn.execute(sa.text("show server_version")).scalar_one()
    engine.dispose()
    assert version.startswith("15.")
