"""Several servers as one chat on a Redis Cluster (tests/redis_cluster.py, made once per
session): rooms spread over the shards, failovers, slots moving, partitions."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trustme

from purechat.app import ChatServer
from purechat.client import Chat, connect
from purechat.core import Limits, Message
from purechat.errors import StoreError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store import open_store
from purechat.store import redis as redis_store
from purechat.store.redis import RedisStore
from purechat.store.redis_keys import Layout, key_slot, room_tag
from tests.helpers import Harness, Member
from tests.partition import Link
from tests.processes import Lines, send_lines
from tests.redis_cluster import RedisCluster, Tls
from tests.webclient import WebClient


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
        self.servers.clear()


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


async def until_accepted(member: Member, text: str, msg_id: str = "") -> v1.Ack:
    """Send (with text as its id unless given) until acked, as a client does after a
    store error."""
    while True:
        await member.call.send(text, msg_id or text)
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
            for key in cluster.command(node.port, "KEYS", "purechat:*").splitlines():
                slot = int(cluster.command(node.port, "CLUSTER", "KEYSLOT", key))
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
        listed = await on_cluster.servers[0][1].rooms()  # `purechat rooms`, on every shard
    assert listed == [(room, 2, 2 * per_sender) for room in rooms]
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


# -- three servers, members of both contracts and the page, while the cluster changes --


class Room:
    """Receivers of the room `lobby` on three servers: a purechat.v1 member, the web
    page and the tutorial's grpc-go client (original contract), each read by a task of
    its own into what it heard: messages as (number, text) (the grpc-go client's without
    numbers), and the joins and leaves the v1 member heard."""

    def __init__(self, v1_member: Member, page: WebClient, go: trio.Process):
        self.v1_member = v1_member
        self.page = page
        self.go = go
        self.heard: dict[str, list[tuple[int, str]]] = {"v1": [], "page": [], "go": []}
        self.presence: list[tuple[str, str]] = []
        self._changed = trio.Event()
        self._reading = trio.CancelScope()

    @classmethod
    async def on(
        cls, nursery: trio.Nursery, go_client: Path, v1_at: Harness, page_at: Harness,
        go_at: Harness,
    ) -> Room:  # fmt: skip
        v1_member = await v1_at.v1("watcher")
        assert page_at.server.web_port is not None
        port = page_at.server.web_port
        page = await WebClient.connect(port, origin=f"http://127.0.0.1:{port}")
        await page.join("page")
        go: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [str(go_client), f"127.0.0.1:{go_at.port}", "GoClient"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                check=False,
            )
        )
        room = cls(v1_member, page, go)
        nursery.start_soon(room._read)
        return room

    async def _read(self) -> None:
        with self._reading:
            async with trio.open_nursery() as readers:
                readers.start_soon(self._v1)
                readers.start_soon(self._page)
                readers.start_soon(self._go)

    async def until(self, done: Callable[[], bool]) -> None:
        while not done():
            self._changed = trio.Event()
            await self._changed.wait()

    async def hear(self, count: int) -> None:
        """Until each has heard count messages."""
        await self.until(lambda: all(len(heard) >= count for heard in self.heard.values()))

    def _note(self, who: str, seq: int, text: str) -> None:
        self.heard[who].append((seq, text))
        self._changed.set()

    async def _v1(self) -> None:
        while True:
            frame = await self.v1_member.call.receive()
            if frame is None:
                return
            if frame.WhichOneof("frame") != "event":
                continue
            event = frame.event
            assert event.kind != v1.Event.RESET, event  # nothing was lost
            if event.kind == v1.Event.MESSAGE:
                self._note("v1", event.seq, event.text)
            elif event.kind in (v1.Event.JOIN, v1.Event.LEAVE):
                self.presence.append(
                    ("join" if event.kind == v1.Event.JOIN else "leave", event.user)
                )
                self._changed.set()

    async def _page(self) -> None:
        while True:
            event = await self.page.next_message()
            self._note("page", event["seq"], event["text"])

    async def _go(self) -> None:
        lines = Lines(self.go.stdout)
        while (line := await lines.next()) is not None:
            self._note("go", 0, line.split("\t")[1])

    def one_order(self) -> list[str]:
        """The texts everyone heard, checked to be one order without gaps or repeats."""
        v1_heard = self.heard["v1"]
        assert self.heard["page"] == v1_heard
        assert [text for _, text in self.heard["go"]] == [text for _, text in v1_heard]
        assert [seq for seq, _ in v1_heard] == list(range(1, len(v1_heard) + 1))
        return [text for _, text in v1_heard]

    async def close(self) -> None:
        self._reading.cancel()
        await trio.lowlevel.checkpoint()
        await self.page.sock.aclose()
        self.go.kill()


async def bot(
    server: Harness,
    name: str,
    count: int,
    receipts: list[int],
    *,
    started: trio.Event | None = None,
    after: trio.Event | None = None,
) -> None:
    """purechat's own client (`purechat.client.connect`, as `purechat join` sends):
    count lines, each resent with its id until stored; their numbers in receipts.
    `started` is set a third of the way; with `after`, the second half waits for it."""
    async with connect(f"127.0.0.1:{server.port}", name=name, give_up_after=None) as chat:
        for n in range(count):
            if n == count // 3 and started is not None:
                started.set()
            if n == count // 2 and after is not None:
                await after.wait()  # the second half once the cluster has changed
            receipts.append((await chat.send(f"{name} {n}")).seq)


def each_once_in_order(texts: list[str], name: str, count: int, receipts: list[int]) -> None:
    mine = [(seq, text) for seq, text in enumerate(texts, 1) if text.startswith(f"{name} ")]
    assert [text for _, text in mine] == [f"{name} {n}" for n in range(count)]
    assert [seq for seq, _ in mine] == receipts  # acknowledged with the number it has


async def test_a_primary_killed_mid_traffic_loses_nothing_acknowledged_with_replicas(
    on_cluster: OnCluster,
    cluster: RedisCluster,
    nursery: trio.Nursery,
    go_client: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """kill -9 of the primary of the room's shard while two servers send into it: its
    replica takes over, the servers follow, members stay connected, sends in flight
    are answered OUTCOME_UNKNOWN and sent again; with replicas=1 nothing acknowledged
    is lost or numbered twice, and everyone hears one order."""
    count = 60
    with trio.fail_after(90):
        a, b, c = [await on_cluster.server(replicas=1, web_port=0) for _ in range(3)]
        room = await Room.on(nursery, go_client, a, b, c)
        receipts: dict[str, list[int]] = {"abot": [], "bbot": []}
        started, changed = trio.Event(), trio.Event()
        async with trio.open_nursery() as traffic:
            traffic.start_soon(partial(bot, a, "abot", count, receipts["abot"], started=started))
            traffic.start_soon(partial(bot, b, "bbot", count, receipts["bbot"], after=changed))
            await started.wait()
            victim = cluster.owner("lobby")
            cluster.kill(victim.port)  # while abot's sends are in flight
            changed.set()
            # The promoted replica has no replica of its own: sends wait (the operator
            # asked for one) until the dead node is back as its replica.
            await trio.to_thread.run_sync(cluster.heal)
        await room.hear(2 * count)
        texts = room.one_order()
        await room.close()
    assert cluster.owner("lobby").id != victim.id
    for name, got in receipts.items():
        each_once_in_order(texts, name, count, got)
    # The kill was felt: sends in flight were answered with a store error, sent again.
    said = [r.getMessage() for r in caplog.records]
    assert any("may not have been stored" in s or "were refused" in s for s in said), said


async def test_a_slot_moved_mid_traffic_loses_and_reorders_nothing(
    on_cluster: OnCluster, cluster: RedisCluster, nursery: trio.Nursery, go_client: Path
) -> None:
    """`redis-cli --cluster reshard` moves the room's slot to another primary while two
    servers send into it: nothing is lost, doubled or reordered, and the log goes on
    (a moved room is not a failed-over one: no RESET)."""
    count = 60
    with trio.fail_after(90):
        source = await trio.to_thread.run_sync(cluster.to_the_front, "lobby")
        target = next(n for n in cluster.nodes() if n.primary and n.id != source.id)
        a, b, c = [await on_cluster.server(web_port=0) for _ in range(3)]
        room = await Room.on(nursery, go_client, a, b, c)
        receipts: dict[str, list[int]] = {"abot": [], "bbot": []}
        started, changed = trio.Event(), trio.Event()
        async with trio.open_nursery() as traffic:
            traffic.start_soon(partial(bot, a, "abot", count, receipts["abot"], started=started))
            traffic.start_soon(partial(bot, b, "bbot", count, receipts["bbot"], after=changed))
            await started.wait()
            await trio.to_thread.run_sync(cluster.reshard, source, target)
            changed.set()
        await room.hear(2 * count)
        texts = room.one_order()
        await room.close()
    assert cluster.owner("lobby").id == target.id
    for name, got in receipts.items():
        each_once_in_order(texts, name, count, got)


async def test_a_server_cut_off_past_the_ttl_comes_back_naming_nobody_twice(
    on_cluster: OnCluster, cluster: RedisCluster, nursery: trio.Nursery, go_client: Path
) -> None:
    """A black hole between one server and every node of the cluster, for longer than
    --presence-ttl: its members stay connected and are told their sends fail; the other
    servers remove its seats; when the link is back it lists its members again (under
    the names they had: nobody is named twice), and every acknowledged message reaches
    everyone once, in order, its own members' included."""
    ttl = 1.0
    far_side = {"carol", "GoClient", "cbot"}
    with Link(cluster.ports).running() as link, trio.fail_after(90):
        a = await on_cluster.server(presence_ttl=ttl, web_port=0)
        b = await on_cluster.server(presence_ttl=ttl)
        cut = await on_cluster.server(presence_ttl=ttl, resolver=link.resolve)
        room = await Room.on(nursery, go_client, b, a, cut)  # the grpc-go client is cut off
        carol = await cut.v1("carol")
        await send_lines(room.go, "hello from Go")  # named by its first message
        expected = ["hello from Go"]
        receipts: dict[str, list[int]] = {"abot": [], "cbot": []}
        async with connect(f"127.0.0.1:{cut.port}", name="cbot", give_up_after=None) as cbot:
            receipts["cbot"].append((await cbot.send("cbot 0")).seq)
            expected.append("cbot 0")
            await room.hear(2)
            await room.until(lambda: far_side <= {name for kind, name in room.presence})
            joined = len(room.presence)
            link.black_hole()
            async with trio.open_nursery() as during:
                # Sends from the far side wait (cbot's client resends), ...
                during.start_soon(partial(_send, cbot, "cbot 1", receipts["cbot"]))
                # ... this side goes on, ...
                during.start_soon(bot, a, "abot", 5, receipts["abot"])
                # ... the cut server's members are told, and stay.
                await carol.call.send("carol during", "carol-1")
                told = (await carol.next_of("error")).error
                # The others remove its members once its heartbeat has expired.
                await room.until(lambda: far_side <= _names(room.presence[joined:], "leave"))
                swept = set(await on_cluster.servers[0][1].members("lobby"))
                left = len(room.presence)
                link.mend()
                await room.until(lambda: far_side <= _names(room.presence[left:], "join"))
            await until_accepted(carol, "carol during", "carol-1")
            listed = await on_cluster.servers[0][1].members("lobby")
        expected += [f"abot {n}" for n in range(5)] + ["cbot 1", "carol during"]
        await room.hear(len(expected))
        carol_heard = [(await carol.next_message()).text for _ in range(len(expected))]
        texts = room.one_order()
        await room.close()
        await on_cluster.close()  # while the link is there: the cut server retires
    assert told.code in (v1.Error.STORE_UNAVAILABLE, v1.Error.OUTCOME_UNKNOWN)
    assert swept == {"watcher", "page"}
    assert sorted(texts) == sorted(expected)
    assert carol_heard == texts
    each_once_in_order(texts, "abot", 5, receipts["abot"])
    each_once_in_order(texts, "cbot", 2, receipts["cbot"])
    assert listed == ("GoClient", "carol", "cbot", "page", "watcher")
    # Each left once and came back once, under its own name.
    changes = [change for change in room.presence[joined:] if change[1] in far_side]
    assert sorted(changes) == sorted(
        [("leave", n) for n in far_side] + [("join", n) for n in far_side]
    )


def _names(changes: list[tuple[str, str]], kind: str) -> set[str]:
    return {name for happened, name in changes if happened == kind}


async def _send(chat: Chat, text: str, receipts: list[int]) -> None:
    receipts.append((await chat.send(text)).seq)


async def test_rediss_cluster_with_a_password_and_a_private_ca(tmp_path: Path) -> None:
    """rediss+cluster://: every node on TLS only (the cluster bus too), a password, a
    CA of our own; rooms on every shard; a wrong password is a sentence at startup."""
    RedisCluster.require()
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    tls = Tls(tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem")
    ca.cert_pem.write_to_path(str(tls.ca))
    issued.cert_chain_pems[0].write_to_path(str(tls.cert))
    issued.private_key_pem.write_to_path(str(tls.key))
    secure = RedisCluster(tmp_path, nodes=3, replicas=0, tls=tls, password="s3cret")
    with trio.fail_after(60):
        await trio.to_thread.run_sync(secure.start)
        try:
            store = await open_store(secure.url(), history=10)
            rooms = [f"room{n}" for n in range(6)]
            try:
                for room in rooms:
                    await store.append([draft("over TLS", room, "1")])
                read = [await store.read(room, after=0, upto=1) for room in rooms]
            finally:
                await store.aclose()
            wrong = secure.url().replace(":s3cret@", ":wrong@")
            with pytest.raises(StoreError) as refused:
                await open_store(wrong, history=10)
            shards = {secure.owner(room).id for room in rooms}
        finally:
            secure.stop()
    assert [[m.text for m in messages] for messages in read] == [["over TLS"]] * 6
    assert len(shards) == 3
    said = str(refused.value)
    assert said.startswith("cannot reach Redis Cluster at 127.0.0.1:") and "WRONGPASS" in said
    assert "wrong" not in said.replace("WRONGPASS", "")


async def test_a_message_staged_by_a_server_that_stopped_short_is_delivered_anyway(
    on_cluster: OnCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With replicas=1 a message is staged, confirmed on a replica (WAIT), then moved into
    the log. A server that dies between the two (or whose move a failover loses) leaves
    it staged: the servers that read the room move it within a couple of seconds, so a
    quiet room does not hide an acknowledged message."""
    with trio.fail_after(30):
        a, b = await on_cluster.server(replicas=1), await on_cluster.server(replicas=1)
        stops_short = on_cluster.servers[0][1]

        async def no_move(*args: object, **kwargs: object) -> None:
            pass  # as if the server died right after the WAIT

        monkeypatch.setattr(stops_short, "_commit", no_move)
        alice, bob = await a.v1("alice"), await b.v1("bob")
        await alice.call.send("staged, then left there", "s1")
        heard = await bob.next_message()
        ack = (await alice.next_of("ack")).ack
    assert (heard.seq, heard.text, ack.seq) == (1, "staged, then left there", 1)
