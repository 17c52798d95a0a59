"""Typing across servers sharing Redis (one Redis, and a cluster): a member typing on one
server is shown to the purechat.v1 and web members of the room on another, never to an
original-contract client or a listener there, and nothing of it is kept in Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from purechat.app import ChatServer
from purechat.client.calls import V1Call
from purechat.core import Limits
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store.redis import RedisStore
from tests.helpers import Harness, Member
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisProcess, free_port
from tests.webclient import WebClient

# The names of the keys Redis holds now.
Keys = Callable[[], Awaitable[set[str]]]


async def _server(nursery: trio.Nursery, url: str) -> Harness:
    store = await RedisStore.open(url, history=1000)
    config = ServerConfig(port=0, limits=Limits(rate_limit=0), web_port=0, max_conns_per_addr=0)
    server = ChatServer(config, store)
    return Harness(server, await nursery.start(server.serve), nursery)


async def _stop(*harnesses: Harness) -> None:
    for harness in harnesses:
        harness.server.shutdown()
        await harness.server.stopped()
        await harness.server.store.aclose()


async def _typing_crosses(one: Harness, two: Harness, keys: Keys) -> None:
    """alice types on server one; server two's members see it as their contract allows."""
    alice = await one.v1("alice")
    bob = await two.v1("bob")
    assert two.server.web_port is not None
    port = two.server.web_port
    carol = await WebClient.connect(port, origin=f"http://127.0.0.1:{port}")
    try:
        await carol.join("carol")
        connection, scope = await two.connection()
        listener = Member(
            V1Call(connection, authority=f"127.0.0.1:{two.port}"), v1.Welcome(), scope
        )
        await listener.call.send_frame(v1.ClientFrame(join=v1.Join(room="lobby", observe=True)))
        legacy, _ = await two.legacy()
        await legacy.send("dave", "dave is here")
        # Everyone is in: dave's message has come round the log to both servers.
        assert (await alice.next_message()).text == "dave is here"
        assert (await bob.next_message()).text == "dave is here"
        assert (await carol.next_message())["text"] == "dave is here"
        assert (await legacy.receive()) is not None
        before = await keys()

        await alice.call.send_frame(v1.ClientFrame(typing=v1.TypingSignal()))
        typing = (await bob.next_of("typing")).typing
        assert (typing.room, list(typing.users)) == ("lobby", ["alice"])
        told = (await carol.next_of("typing"))["typing"]
        assert (told["room"], told["users"]) == ("lobby", ["alice"])
        assert await keys() == before  # nothing kept, not even for a moment's TTL
        assert not any("typing" in key for key in before)

        # Nothing the listener was sent since it came is typing, up to alice's message; the
        # old client's next text is that message: typing was told to the room before it.
        await alice.say("done typing", "m1")
        while True:
            frame = await listener.call.receive()
            assert frame is not None, listener.call.status
            assert frame.WhichOneof("frame") != "typing"
            if frame.WhichOneof("frame") == "event" and frame.event.text == "done typing":
                break
        said = await legacy.receive()
        assert said is not None and said.text == "done typing"
    finally:
        await carol.close()


async def test_typing_crosses_two_servers_on_one_redis(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    one = await _server(nursery, redis.url)
    two = await _server(nursery, redis.url)

    async def keys() -> set[str]:
        return set(await redis.keys("*"))

    try:
        with trio.fail_after(30):
            await _typing_crosses(one, two, keys)
    finally:
        with trio.move_on_after(10):
            await _stop(one, two)


async def test_typing_crosses_two_servers_on_a_cluster(
    nursery: trio.Nursery, redis_cluster: RedisCluster
) -> None:
    await trio.to_thread.run_sync(redis_cluster.heal)
    await trio.to_thread.run_sync(redis_cluster.flush)
    one = await _server(nursery, redis_cluster.url())
    two = await _server(nursery, redis_cluster.url())

    def every_primary() -> set[str]:
        found: set[str] = set()
        for node in redis_cluster.nodes():
            if node.primary and not node.failed:
                found.update(redis_cluster.command(node.port, "KEYS", "*").split())
        return found

    async def keys() -> set[str]:
        return await trio.to_thread.run_sync(every_primary)

    try:
        with trio.fail_after(30):
            await _typing_crosses(one, two, keys)
    finally:
        with trio.move_on_after(10):
            await _stop(one, two)
