"""Accounts and moderation on two servers sharing one Redis: one community, not two.

A ban decided on one server ends the member's stream on the other (the entry comes
round the shared log, and every server applies it), and its rejoins there are refused;
an account's sessions ended on one server end its streams on the other (the control
records); roles set on one server hold on the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from purechat.app import ChatServer
from purechat.core import Limits
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.status import StatusCode
from purechat.store.redis import RedisStore
from tests.accounts import accounts_config, login, member, moderate, refused_join, register
from tests.helpers import Harness
from tests.polling import settles
from tests.redis_server import RedisProcess, free_port

M = v1.ModerationCommand


class Pair:
    def __init__(self, nursery: trio.Nursery, folder: Path):
        self.nursery = nursery
        self.redis = RedisProcess(folder, free_port())
        self.servers: list[tuple[ChatServer, RedisStore]] = []

    async def server(self) -> Harness:
        store = await RedisStore.open(self.redis.url, history=1000)
        config = ServerConfig(port=0, limits=Limits(rate_limit=0), **accounts_config())
        server = ChatServer(config, store)
        self.servers.append((server, store))
        return Harness(server, await self.nursery.start(server.serve), self.nursery)

    async def close(self) -> None:
        for server, store in self.servers:
            server.shutdown()
            await server.stopped()
            await store.aclose()


@pytest.fixture
async def pair(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    setup = Pair(nursery, tmp_path)
    await setup.redis.start(nursery)
    one, two = await setup.server(), await setup.server()
    await register(one.server.directory, "alice", "bob", "spammer")
    for harness in (one, two):
        await settles(lambda h=harness: name_key("spammer") in h.server.auth.account_keys)
    try:
        yield one, two
    finally:
        with trio.move_on_after(10):
            await setup.close()


async def test_a_ban_on_one_server_ends_the_member_on_the_other_and_keeps_it_out(
    pair: tuple[Harness, Harness],
) -> None:
    one, two = pair
    with trio.fail_after(20):
        alice = await member(one, "alice", await login(one, "alice"))
        spammer_token = await login(two, "spammer")
        spammer = await member(two, "spammer", spammer_token)
        await moderate(alice, M.CLAIM)
        await moderate(alice, M.BAN, "spammer", reason="spam")
        with trio.fail_after(1):  # within a second, on the other server
            await spammer.until_end()
        assert spammer.call.status is not None
        assert spammer.call.status.status_code is StatusCode.PERMISSION_DENIED
        for harness in (two, one):
            status = await refused_join(harness, "spammer", spammer_token)
            assert status.status_code is StatusCode.PERMISSION_DENIED, harness


async def test_roles_and_ended_sessions_hold_across_servers(
    pair: tuple[Harness, Harness],
) -> None:
    one, two = pair
    with trio.fail_after(20):
        alice = await member(one, "alice", await login(one, "alice"))
        await moderate(alice, M.CLAIM)
        await moderate(alice, M.OP, "bob")
        bob = await member(two, "bob", await login(two, "bob"))
        assert bob.welcome.role == "operator"
        # Bob's sessions ended from the first server end his stream on the second.
        await one.server.directory.end_sessions("bob", "logged out everywhere")
        with trio.fail_after(2):
            await bob.until_end()
        assert bob.call.status is not None
        assert bob.call.status.status_code is StatusCode.UNAUTHENTICATED
