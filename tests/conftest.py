"""Shared fixtures: in-process servers on ephemeral ports, owned by the test's nursery."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from purechat.server import ChatServer, ServerConfig
from tests.helpers import Harness


@pytest.fixture
def start_server(nursery: trio.Nursery) -> Any:
    """Start a ChatServer on port 0 in the test's nursery; returns a Harness for it."""

    async def start(**config: Any) -> Harness:
        server = ChatServer(ServerConfig(port=0, **config))
        port = await nursery.start(server.serve)
        return Harness(server, port, nursery)

    return start
