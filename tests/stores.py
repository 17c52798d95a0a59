"""Every store purechat has, as one parametrized fixture: the store contract tests
(test_store.py, test_living_store.py) run each test on memory, SQLite, one Redis and
the session's Redis Cluster (acknowledged on the primary, and with replicas=1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from purechat.store import MemoryStore, SqliteStore, Store
from purechat.store.redis import RedisStore
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisProcess, free_port


@pytest.fixture(name="store", params=["memory", "sqlite", "redis", "cluster", "cluster-replicas"])
async def every_store(
    request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[Store]:
    opened: Store
    if request.param == "memory":
        opened = MemoryStore(history=100)
    elif request.param == "sqlite":
        opened = await SqliteStore.open(tmp_path / "chat.db")
    elif request.param == "redis":
        redis = RedisProcess(tmp_path, free_port())
        await redis.start(nursery)
        opened = await RedisStore.open(redis.url, history=100)
    else:  # the session's cluster, emptied: messages acknowledged on the primary or a replica
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        await trio.to_thread.run_sync(cluster.heal)
        await trio.to_thread.run_sync(cluster.flush)
        replicas = 1 if request.param == "cluster-replicas" else 0
        opened = await RedisStore.open(cluster.url(replicas), history=100)
    try:
        yield opened
    finally:
        await opened.aclose()
