"""Several servers as one chat on a Redis Cluster (tests/redis_cluster.py, made once per
session): rooms spread over the shards, failovers, slots moving, partitions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import trio

from purechat.app import ChatServer
from purechat.core import Limits, Message
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store import redis as redis_store
from purechat.store.redis import RedisStore
from purechat.store.redis_keys import Layout, key_slot, room_tag
from tests.helpers import Harness, Member
from tests.redis_cluster import RedisCluster, command


class OnCluster:
    """Purechat servers on the session's cluster; stopped and closed at the end."""

    def __init__(self, nursery: trio.Nursery, cluster: RedisCluster):
        self.nursery = nursery
        self.cluster = cluster
        self.servers: list[tuple[ChatServer, RedisStore]] = []

    async def store(
        self,
        replicas: int = 0,
        resolver: Callable[[str, int], tuple[str, int]] | None = None,
        history: int = 1000,
    ) -> RedisStore:
        url = self.cluster.url(replicas)
        return await RedisStore.open(url, history=history, address_resolver=resolver)

    async def server(
        self,
        *,
        replicas: int = 0,
        presence_ttl: float = 15.0,
        web_port: int | None = None,
        resolver: Callable[[str, int], tuple[str, int]] | None = None,
    ) -> Harness:
        store = await self.store(replicas, resolver)
        config = ServerConfig(
            port=0,
            limits=Limits(rate_limit=0),
            presence_ttl=presence_ttl,
            web_port=web_port,
            max_conns_per_addr=0,
        )
        server = ChatServer(config, store)
        self.servers.append((server, store))
        return Harness(server, await self.nursery.start(server.serve), self.nursery)

    async def close(self) -> None:
        for server, store in self.servers:
            server.shutdown()
            await server.stopped()
            await store.aclose()


@pytest.fixture
async def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The session's cluster, healed of what earlier tests did to it, and emptied."""
    await trio.to_thread.run_sync(redis_cluster.heal)
    await trio.to_thread.run_sync(redis_cluster.flush)
    return redis_cluster


@pytest.fixture
async def on_cluster(cluster: RedisCluster, nursery: trio.Nursery) -> AsyncIterator[OnCluster]:
    setup = OnCluster(nursery, cluster)
    try:
        yield setup
    finally:
        with trio.move_on_after(10):
            await setup.close()


def draft(text: str, room: str, msg_id: str = "") -> Message:
    return Message(room, 0, "bot", text, 1_700_000_000_000, False, "bot", msg_id)


async def until_accepted(member: Member, text: str) -> v1.Ack:
    """Send (with text as its id) until acked, as a client does after a store error."""
    while True:
        await member.call.send(text, text)
        frame = await member.next_of_any("ack", "error")
        if frame.WhichOneof("frame") == "ack":
            return frame.ack
        await trio.sleep(0.1)


async def next_event(member: Member) -> v1.Event:
    """The next message or reset (joins and leaves read past)."""
    while True:
        event = (await member.next_of("event")).event
        if event.kind in (v1.Event.MESSAGE, v1.Event.RESET):
            return event


async def test_a_rooms_keys_share_its_slot_and_rooms_spread_over_the_shards(
    on_cluster: OnCluster, cluster: RedisCluster
) -> None:
    rooms = [f"room{n}" for n in range(12)] + ["a{b}c", "}x", "{}", "100%"]
    store = await on_cluster.store()
    try:
        for room in rooms:
            await store.append([draft("hello", room, "1")])
            await store.join(room, ["alice"], "server1/1", "session", 0)
            await store.leave([(room, "alice", "server1/1")], 0)
            await store.join(room, ["alice"], "server1/2", "session", 0)
        await store.heartbeat("server1", 10_000, rooms)
    finally:
        await store.aclose()
    where: dict[str, set[int]] = {}
    for node in cluster.nodes():
        if node.primary:
            for key in command(node.port, "KEYS", "purechat:*").splitlines():
                slot = int(command(node.port, "CLUSTER", "KEYSLOT", key))
                where.setdefault(key, set()).add(slot)
    layout = Layout(cluster=True)
    holders = set()
    for room in rooms:
        keys = [key for key in where if key.startswith(layout.room(room).base)]
        assert len(keys) >= 10, keys  # log, seq, epoch, ids, members, held, ...
        slots = set().union(*(where[key] for key in keys))
        assert slots == {key_slot(room_tag(room, cluster=True))}, (room, keys)
        holders.add(cluster.owner(room).id)
    assert len(holders) == 3  # the rooms are spread over every shard
    servers = [key for key in where if key.startswith("purechat:{servers}")]
    assert len(servers) == 2 and len(set().union(*(where[key] for key in servers))) == 1


async def test_servers_on_a_cluster_are_one_chat_in_rooms_on_every_shard(
    on_cluster: OnCluster,
) -> None:
    with trio.fail_after(30):
        a, b = await on_cluster.server(), await on_cluster.server()
        rooms = ["room0", "room1", "room2", "room3"]
        members = [
            await server.v1(f"m{n}", room) for n, room in enumerate(rooms) for server in (a, b)
        ]
        per_sender = 20

        async def talk(member: Member) -> None:
            for n in range(per_sender):
                await member.call.send(f"{member.name} {n}", f"{member.name}-{n}")

        seen: dict[str, list[tuple[int, str]]] = {m.name: [] for m in members}

        async def listen(member: Member) -> None:
            while len(seen[member.name]) < 2 * per_sender:
                event = await member.next_message()
                seen[member.name].append((event.seq, event.text))

        async with trio.open_nursery() as traffic:
            for member in members:
                traffic.start_soon(talk, member)
                traffic.start_soon(listen, member)
    for first, second in zip(members[::2], members[1::2], strict=True):
        assert seen[first.name] == seen[second.name]
        assert [seq for seq, _ in seen[first.name]] == list(range(1, 2 * per_sender + 1))


async def test_news_reaches_the_other_server_without_waiting_for_its_poll(
    on_cluster: OnCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other server reads a room when its sharded channel says something was
    logged: with the every-second poll pushed an hour away, delivery still happens."""
    with trio.fail_after(30):
        a, b = await on_cluster.server(), await on_cluster.server()
        alice, bob = await a.v1("alice"), await b.v1("bob")
        await alice.say("one", "1")  # both feeds have read the room once: news from now on
        assert (await bob.next_message()).text == "one"
        monkeypatch.setattr(redis_store, "POLL_SECONDS", 3600.0)
        for server, _ in on_cluster.servers:
            server.store._next_poll = trio.current_time() + 3600  # type: ignore[attr-defined]
        for n in range(5):
            await alice.say(f"news {n}", f"n{n}")
        heard = [(await bob.next_message()).text for _ in range(5)]
    assert heard == [f"news {n}" for n in range(5)]


@pytest.mark.parametrize("replicas", [0, 1], ids=["acknowledged on the primary", "replicas=1"])
async def test_after_a_failover_the_epoch_rule_says_whether_the_log_went_on(
    on_cluster: OnCluster, cluster: RedisCluster, replicas: int
) -> None:
    """Without replicas, a promoted replica may lack what its primary acknowledged last:
    the room's log starts again, and members are told (RESET). With replicas=1 every
    acknowledged message was on the replica: the log goes on, numbering too."""
    with trio.fail_after(60):
        a, b = await on_cluster.server(replicas=replicas), await on_cluster.server()
        alice, bob = await a.v1("alice"), await b.v1("bob")
        old_epoch = bob.welcome.epoch
        for n in range(3):
            await alice.say(f"before {n}", f"b{n}")
        assert [(await bob.next_message()).seq for _ in range(3)] == [1, 2, 3]
        alice.unread.clear()
        await trio.to_thread.run_sync(cluster.fail_over, "lobby")
        ack = await until_accepted(alice, "after")
        event = await next_event(bob)
        if replicas:
            assert (event.kind, event.text, event.seq, ack.seq) == (v1.Event.MESSAGE, "after", 4, 4)
        else:
            assert event.kind == v1.Event.RESET and event.epoch != old_epoch
            event = await next_event(bob)
            assert (event.text, event.seq, ack.seq) == ("after", 1, 1)
