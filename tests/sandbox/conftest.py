"""Fixtures the AFAS simulator's tests share: an app over the module's ``world``, a client with its token.

Each test module keeps its own ``world`` fixture (its seed and scale are what its assertions were written
against); ``app`` and ``client`` are the same for all of them.
"""

import pytest

from sandbox.afas import create_app
from sandbox.afas.fixtures import InProcessClient


@pytest.fixture
def app(world):
    """The AFAS simulator over the module's world."""
    return create_app(world)


@pytest.fixture
def client(app):
    """An in-process HTTP client that sends the simulator's own token."""
    with InProcessClient(app, app.state.sim.token) as c:
        yield c
