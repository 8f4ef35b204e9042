"""What every connector test module shares: async tests run on asyncio."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """The connectors are httpx on asyncio; ``pytest.mark.anyio`` tests run there only."""
    return "asyncio"
