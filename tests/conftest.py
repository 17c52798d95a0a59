"""Shared fixtures: in-process servers on ephemeral ports, owned by the test's nursery."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
from grpc_tools import protoc

from purechat.app import ChatServer
from purechat.core import Limits
from purechat.server import ServerConfig
from tests.browser import Browser, require_browser
from tests.gobuild import DEBIAN_PACKAGES, GoBuilder, GoBuildFailed, GoMissing
from tests.helpers import Harness
from tests.redis_cluster import RedisCluster

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


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """A Redis Cluster (tests/redis_cluster.py), made once, stopped at the end."""
    RedisCluster.require()
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def go_builder(tmp_path_factory: pytest.TempPathFactory) -> GoBuilder:
    """Builds tests/go and bench/go programs offline; skips without Go, unless CI says not to."""
    try:
        return GoBuilder(tmp_path_factory.mktemp("go"))
    except GoMissing:
        if os.environ.get("PURECHAT_REQUIRE_GO"):
            pytest.fail(f"the Go client tests need {DEBIAN_PACKAGES} (CI installs them)")
        pytest.skip(f"no Go toolchain: apt-get install {DEBIAN_PACKAGES}")


def _go_program(builder: GoBuilder, program: str) -> Path:
    try:
        return builder.build(program)
    except GoBuildFailed as error:
        pytest.fail(str(error))


@pytest.fixture(scope="session")
def go_client(go_builder: GoBuilder) -> Path:
    """The tutorial's Go client, with code generated from proto/chat.proto now."""
    return _go_program(go_builder, "tests/go/client")


@pytest.fixture(scope="session")
def go_load_client(go_builder: GoBuilder) -> Path:
    """tests/go/load: many grpc-go members of the original contract in one process."""
    return _go_program(go_builder, "tests/go/load")


@pytest.fixture(scope="session")
def go_tutorial_server(go_builder: GoBuilder) -> Path:
    """bench/go/server: the tutorial's grpc-go server; argument: the listen address."""
    return _go_program(go_builder, "bench/go/server")


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One headless Chromium for every page test of this process (each worker's own)."""
    require_browser()
    started = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield started
    finally:
        started.quit()


@pytest.fixture
async def pages(browser: Browser) -> AsyncIterator[Browser]:
    """The browser, its windows closed again when the test ends."""
    try:
        yield browser
    finally:
        with trio.CancelScope(shield=True):
            await browser.close_pages()
