"""Shared fixtures: in-process servers on ephemeral ports, owned by the test's nursery."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
from grpc_tools import protoc

from purechat.core import Limits
from purechat.server import ChatServer, ServerConfig
from tests.helpers import Harness

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"


@pytest.fixture
def start_server(nursery: trio.Nursery) -> Any:
    """Start a ChatServer on port 0 in the test's nursery; returns a Harness for it.

    Keyword arguments are ServerConfig fields, and `store` for the server's store.
    """

    async def start(**config: Any) -> Harness:
        # Tests send in bursts; the rate limit has tests of its own.
        config.setdefault("limits", Limits(rate_limit=0))
        store = config.pop("store", None)
        server = ChatServer(ServerConfig(port=0, **config), store)
        port = await nursery.start(server.serve)
        return Harness(server, port, nursery)

    return start


@pytest.fixture(scope="session")
def tutorial_stubs(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, ModuleType]:
    """chat_pb2 and chat_pb2_grpc generated from proto/chat.proto, as the tutorial does."""
    out = tmp_path_factory.mktemp("grpcio_stubs")
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / "chat.proto"),
        ]
    )
    assert status == 0
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("chat_pb2"), importlib.import_module("chat_pb2_grpc")
    finally:
        sys.path.remove(str(out))
