"""Shared fixtures: one fixture server for the whole session."""

import pytest

from cilium_dev.fixtures.server import FixtureServer


@pytest.fixture(scope="session")
def fixture_server():
    with FixtureServer() as server:
        yield server
