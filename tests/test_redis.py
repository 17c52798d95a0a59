"""Several servers as one chat on a real redis-server."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio
import trustme

from purechat.app import ChatServer
from purechat.client.calls import V1Call
from purechat.core import Limits, Message
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store import StoreError, open_store
from purechat.store.redis import RedisStore
from purechat.transport import StatusCode
from tests.helpers import Harness, Member
from tests.polling import eventually, settles
from tests.processes import Lines, send_lines, start
from tests.redis_server import RedisProcess, free_port
from tests.webclient import WebClient


class ScaleOut:
    """A redis-server and the purechat servers on it; stopped and closed at the end."""

    def __init__(self, nursery: trio.Nursery, directory: Path):
        self.nursery = nursery
        self.redis = RedisProcess(directory, free_port())
        self.servers: list[tuple[ChatServer, RedisStore]] = []

    async def server(
        self,
        presence_ttl: float = 15.0,
        web_port: int | None = None,
        slow_member_timeout: float = 5.0,
        slow_member_bytes: int = 8 * 1024 * 1024,
        history: int = 1000,
    ) -> Harness:
        store = await RedisStore.open(self.redis.url, history=history)
        config = ServerConfig(
            port=0,
            limits=Limits(rate_limit=0),
            presence_ttl=presence_ttl,
            web_port=web_port,
            slow_member_timeout=slow_member_timeout,
            slow_member_bytes=slow_member_bytes,
        )
        server = ChatServer(config, store)
        self.servers.append((server, store))
        return Harness(server, await self.nursery.start(server.serve), self.nursery)

    async def process(self, *options: str) -> tuple[trio.Process, int]:
        """A `purechat serve` process on this Redis (for killing), and its port."""
        server = await start(
            self.nursery, "serve", "--port", "0", "--store", self.redis.url, *options
        )
        port = int((await Lines(server.stdout).next() or "").split(":")[1].split(";")[0])
        return server, port

    async def close(self) -> None:
        for server, store in self.servers:
            server.shutdown()
            await server.stopped()
            await store.aclose()


@pytest.fixture
async def scale_out(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[ScaleOut]:
    setup = ScaleOut(nursery, tmp_path)
    await setup.redis.start(nursery)
    try:
        yield setup
    finally:
        with trio.move_on_after(10):
            await setup.close()


async def test_two_servers_one_order_for_every_member(scale_out: ScaleOut) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(), await scale_out.server()
        members = [await a.v1("a1"), await a.v1("a2"), await b.v1("b1"), await b.v1("b2")]
        per_sender = 40

        async def talk(member: Member) -> None:
            for n in range(per_sender):
                await member.call.send(f"{member.name} {n}", f"{member.name}-{n}")

        seen: dict[str, list[tuple[int, str]]] = {m.name: [] for m in members}

        async def listen(member: Member) -> None:
            while len(seen[member.name]) < per_sender * len(members):
                event = await member.next_message()
                seen[member.name].append((event.seq, event.text))

        async with trio.open_nursery() as traffic:
            for member in members:
                traffic.start_soon(talk, member)
                traffic.start_soon(listen, member)
    orders = list(seen.values())
    assert all(order == orders[0] for order in orders)
    assert [seq for seq, _ in orders[0]] == list(range(1, per_sender * len(members) + 1))


async def test_a_web_member_on_one_server_and_grpc_members_on_another_see_one_order(
    scale_out: ScaleOut,
) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(web_port=0), await scale_out.server()
        assert a.server.web_port is not None
        web = await WebClient.connect(
            a.server.web_port, origin=f"http://127.0.0.1:{a.server.web_port}"
        )
        try:
            welcome = await web.join("page")
            assert welcome["members"] == ["page"]
            grpc = [await b.v1("b1"), await b.v1("b2")]
            assert set(grpc[1].welcome.members) == {"page", "b1", "b2"}  # one room
            per_sender = 30
            web_seen: list[tuple[int, str]] = []
            grpc_seen: dict[str, list[tuple[int, str]]] = {m.name: [] for m in grpc}
            total = per_sender * 3

            async def web_talks() -> None:
                for n in range(per_sender):
                    await web.send({"send": {"text": f"page {n}", "client_msg_id": f"p{n}"}})

            async def web_listens() -> None:
                while len(web_seen) < total:
                    event = await web.next_message()
                    web_seen.append((event["seq"], event["text"]))

            async def talk(member: Member) -> None:
                for n in range(per_sender):
                    await member.call.send(f"{member.name} {n}", f"{member.name}-{n}")

            async def listen(member: Member) -> None:
                while len(grpc_seen[member.name]) < total:
                    event = await member.next_message()
                    grpc_seen[member.name].append((event.seq, event.text))

            async with trio.open_nursery() as traffic:
                traffic.start_soon(web_talks)
                traffic.start_soon(web_listens)
                for member in grpc:
                    traffic.start_soon(talk, member)
                    traffic.start_soon(listen, member)
        finally:
            await web.sock.aclose()
    assert all(seen == web_seen for seen in grpc_seen.values())
    assert [seq for seq, _ in web_seen] == list(range(1, total + 1))
    mine = [text for _, text in web_seen if text.startswith("page ")]
    assert mine == [f"page {n}" for n in range(per_sender)]


async def test_a_retry_landing_on_another_server_is_not_repeated(scale_out: ScaleOut) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(), await scale_out.server()
        watcher = await b.v1("watcher")
        first = await (await a.v1("bot")).say("deploy done", "once")
        retry = await (await b.v1("bot")).say("deploy done", "once")
        await (await b.v1("other")).say("next", "n")
        texts = [(await watcher.next_message()).text for _ in range(2)]
    assert (retry.seq, retry.duplicate) == (first.seq, True)
    assert texts == ["deploy done", "next"]


async def test_resume_on_another_server_after_sigkill(scale_out: ScaleOut, nursery) -> None:
    with trio.fail_after(60):
        doomed, port = await scale_out.process("--rate-limit", "0")
        survivor = await scale_out.server()
        sender = await survivor.v1("sender")
        await sender.say("before 1")
        await sender.say("before 2")
        on_doomed = Harness(survivor.server, port, nursery)  # a client of the doomed process
        member = await on_doomed.v1("member", history=10)
        seen = [(await member.next_message()).seq for _ in range(2)]
        doomed.kill()
        await doomed.wait()
        for n in range(5):
            await sender.say(f"while away {n}")
        back = await survivor.v1("member", after_seq=seen[-1])
        missed = [(await back.next_message()).text for _ in range(5)]
    assert seen == [1, 2]
    assert missed == [f"while away {n}" for n in range(5)]


async def test_a_burst_bigger_than_history_reaches_every_member(scale_out: ScaleOut) -> None:
    """One commit of the journal takes up to 1,024 messages: the log keeps more than
    --history, so the feed finds every one of them (trimmed to --history, what it had
    not read yet was gone, and acknowledged anyway)."""
    count = 3000
    with trio.fail_after(60):
        server = await scale_out.server(history=10)
        reader = await server.v1("reader")
        sender = await server.v1("sender")
        for n in range(count):
            await sender.call.send(f"burst {n}", f"id-{n}")
        seen = [(await reader.next_message()).seq for _ in range(count)]
    assert seen == list(range(1, count + 1))


async def test_senders_wait_while_another_servers_members_are_behind(
    scale_out: ScaleOut,
) -> None:
    """A member on one server stops reading while a sender on another goes flat out:
    its server says in the store that the room is behind there, and the sender's server
    slows the sender, as it would for a busy room of its own. Without that the sender
    would push ten times the member's byte budget at it (on one server too it would be
    slowed), and the member would be removed as too slow; with it, the member reads on
    later and gets everything, in order."""
    count, text = 20_000, "x" * 500
    with trio.fail_after(120):
        a = await scale_out.server()
        b = await scale_out.server(slow_member_timeout=60.0, slow_member_bytes=1024 * 1024)
        reader = await b.v1("reader")
        sender = await a.v1("sender")
        acked = trio.Event()

        async def send() -> None:
            for n in range(count):
                await sender.call.send(f"{n} {text}", f"id-{n}")

        async def take_acks() -> None:  # and its own messages: it keeps up on its server
            acks = 0
            while acks < count:
                frame = await sender.call.receive()
                assert frame is not None
                acks += frame.WhichOneof("frame") == "ack"
            acked.set()

        async with trio.open_nursery() as traffic:
            traffic.start_soon(send)
            traffic.start_soon(take_acks)
            await settles(lambda: "lobby" in a.server._services.pacer.held)
            seen = [(await reader.next_message()).seq for _ in range(count)]
            await acked.wait()
        # Caught up: the other server says so, and nobody is held any more.
        await settles(lambda: "lobby" not in a.server._services.pacer.held)
    assert seen == list(range(1, count + 1))


async def test_redis_restart_refuses_rather_than_loses_and_catches_up(
    scale_out: ScaleOut, nursery
) -> None:
    redis = scale_out.redis
    with trio.fail_after(60):
        a, b = await scale_out.server(), await scale_out.server()
        alice, bob = await a.v1("alice"), await b.v1("bob")
        await alice.say("before")
        assert (await bob.next_message()).text == "before"
        await redis.stop()
        await alice.call.send("during", "during")
        error = (await alice.next_of("error")).error
        # Not stored, or perhaps stored: either way, sent again with its id
        assert error.code in (v1.Error.STORE_UNAVAILABLE, v1.Error.OUTCOME_UNKNOWN)
        await redis.start(nursery)
        await until_accepted(alice, "during")
        await until_accepted(alice, "after")
        heard = [await bob.next_message() for _ in range(2)]
    # numbering went on, once each, in the order sent: nothing was lost or doubled
    assert [(m.text, m.seq) for m in heard] == [("during", 2), ("after", 3)]


async def _until_reset(member: Member) -> v1.Event:
    """Read past joins and leaves (a server that lost its store lists its members again)
    until the RESET; fails on a message before it."""
    while True:
        event = (await member.next_of("event")).event
        assert event.kind != v1.Event.MESSAGE, event
        if event.kind == v1.Event.RESET:
            return event


async def test_a_flushed_redis_is_noticed_told_and_numbering_starts_again(
    scale_out: ScaleOut, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(60):
        a, b = await scale_out.server(), await scale_out.server()
        alice, bob = await a.v1("alice"), await b.v1("bob")
        old_epoch = bob.welcome.epoch
        for n in range(5):
            await alice.say(f"before {n}")
        assert [(await bob.next_message()).seq for _ in range(5)] == [1, 2, 3, 4, 5]
        alice.unread.clear()  # her own messages, read past while waiting for acks
        await scale_out.redis.command("FLUSHALL")  # as a restart without persistence would
        for n in range(3):
            await until_accepted(alice, f"after {n}")
        for member in (alice, bob):  # on the server that wrote, and on the other one
            reset = await _until_reset(member)
            assert reset.epoch and reset.epoch != old_epoch
            after = [await member.next_message() for _ in range(3)]
            assert [(m.text, m.seq) for m in after] == [(f"after {n}", n + 1) for n in range(3)]
        # a client resuming in the lost log is told, then given the new one
        back = await b.v1("carol", after_seq=5, epoch=old_epoch)
        assert (await _until_reset(back)).epoch == reset.epoch
        assert [(await back.next_message()).text for _ in range(3)] == [
            f"after {n}" for n in range(3)
        ]
    lost = [r for r in caplog.records if "lost the log of room lobby" in r.getMessage()]
    assert len(lost) >= 2 and all(r.levelname == "ERROR" for r in lost)  # both servers


async def test_a_frozen_redis_neither_loses_nor_doubles_what_a_pipe_sent(
    scale_out: ScaleOut, nursery
) -> None:
    redis = scale_out.redis
    assert redis.process is not None
    with trio.fail_after(90):
        server = await scale_out.server()
        watcher = await server.v1("watcher")
        address = f"127.0.0.1:{server.port}"
        pipe = await start(nursery, "join", "--server", address, "--name", "bot", "--history", "0")
        await send_lines(pipe, "before")
        assert (await watcher.next_message()).text == "before"
        redis.process.send_signal(signal.SIGSTOP)  # frozen: requests time out, unanswered
        try:
            lines = [f"while frozen {n}" for n in range(5)]
            await send_lines(pipe, *lines, close=True)
            await trio.sleep(5)  # longer than the store's 2 s request timeout
        finally:
            redis.process.send_signal(signal.SIGCONT)  # it runs what was queued, stores it
        await pipe.wait()
        seen = [(await watcher.next_message()).text for _ in lines]
        await watcher.say("after")
        assert (await watcher.next_message()).text == "after"  # nothing doubled between
    assert pipe.returncode == 0
    assert seen == lines


async def test_purechat_join_fails_over_to_the_next_server_and_goes_on(
    scale_out: ScaleOut, nursery
) -> None:
    with trio.fail_after(60):
        doomed, port = await scale_out.process("--rate-limit", "0")
        survivor = await scale_out.server()
        watcher = await survivor.v1("watcher")
        servers = f"127.0.0.1:{port},127.0.0.1:{survivor.port}"
        pipe = await start(nursery, "join", "--server", servers, "--name", "bot")
        await send_lines(pipe, "one")
        assert (await watcher.next_message()).text == "one"
        doomed.kill()
        await doomed.wait()
        await send_lines(pipe, "two", "three", close=True)
        await pipe.wait()
        after = [(await watcher.next_message()).text for _ in range(2)]
        await watcher.say("end")
        assert (await watcher.next_message()).text == "end"  # nothing twice
    assert pipe.returncode == 0
    assert after == ["two", "three"]


async def next_presence(member: Member) -> tuple[str, str]:
    """The next join or leave the member hears, as ("join"|"leave", name)."""
    while True:
        event = (await member.next_of("event")).event
        if event.kind in (v1.Event.JOIN, v1.Event.LEAVE):
            return ("join" if event.kind == v1.Event.JOIN else "leave", event.user)


async def test_names_member_lists_and_presence_cover_every_server(scale_out: ScaleOut) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(), await scale_out.server()
        alice = await a.v1("alice")
        assert await next_presence(alice) == ("join", "alice")
        bob = await b.v1("bob")
        twin = await b.v1("alice")  # the name is taken on the other server
        heard_by_alice = [await next_presence(alice) for _ in range(2)]
        mid_room = set(await scale_out.servers[0][1].members("lobby"))
        bob.drop()
        heard_after = await next_presence(alice)
        heard_by_twin = [await next_presence(twin) for _ in range(2)]
    assert twin.name == "alice-2"
    assert set(bob.welcome.members) == {"alice", "bob"}
    assert set(twin.welcome.members) == {"alice", "bob", "alice-2"}
    assert heard_by_alice == [("join", "bob"), ("join", "alice-2")]
    assert mid_room == {"alice", "bob", "alice-2"}
    assert heard_after == ("leave", "bob")
    # Its own join, then news: not the joins its welcome already listed.
    assert heard_by_twin == [("join", "alice-2"), ("leave", "bob")]


async def test_an_original_client_is_announced_everywhere_once_it_has_a_name(
    scale_out: ScaleOut,
) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(), await scale_out.server()
        alice = await a.v1("alice")
        assert await next_presence(alice) == ("join", "alice")
        go, _ = await b.legacy()
        await go.send("GoClient", "hello from Go")
        heard = await next_presence(alice)
        message = await alice.next_message()
        twin = await a.v1("GoClient")
    assert heard == ("join", "GoClient")
    assert (message.user, message.text) == ("GoClient", "hello from Go")
    assert twin.name == "GoClient-2"


async def test_look_alike_names_are_one_name_across_servers(scale_out: ScaleOut) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(), await scale_out.server()
        alice = await a.v1("alice")
        assert await next_presence(alice) == ("join", "alice")
        cyrillic = await b.v1("\u0430lice")  # Cyrillic a
        shouting = await a.v1("ALICE")
        fullwidth, _ = await b.legacy()
        await fullwidth.send("\uff41lice", "hello")
        heard = [await next_presence(alice) for _ in range(3)]
        alice.drop()
        while await next_presence(cyrillic) != ("leave", "alice"):
            pass
        again = await b.v1("Alice")  # the name, and its key, are free again
        shouting.drop()
        cyrillic.drop()
        while await next_presence(again) != ("leave", "ALICE-3"):
            pass
        await eventually(
            lambda: scale_out.redis.command("HLEN", "purechat:room:lobby:keys"), b":2\r\n"
        )
    assert cyrillic.name == "\u0430lice-2"
    assert shouting.name == "ALICE-3"
    assert heard == [("join", "\u0430lice-2"), ("join", "ALICE-3"), ("join", "alice-4")]
    assert again.name == "Alice"


async def test_who_and_rooms_answer_for_every_server(scale_out: ScaleOut, nursery) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(web_port=0), await scale_out.server()
        await a.v1("alice", "ops")
        await b.v1("bob", "ops")
        await (await b.v1("carol", "dev")).say("hello")
        where = ("--server", f"127.0.0.1:{a.port}")
        who = await start(nursery, "who", "ops", *where)
        rooms = await start(nursery, "rooms", *where)
        for process in (who, rooms):
            await process.wait()
        who_said = await Lines(who.stdout).rest()
        rooms_said = await Lines(rooms.stdout).rest()
        # A page on server a asks for its room list: every server's rooms, the page's own.
        assert a.server.web_port is not None
        page = await WebClient.connect(
            a.server.web_port, origin=f"http://127.0.0.1:{a.server.web_port}"
        )
        try:
            await page.join("page", "ops")
            await page.send({"rooms": {}})
            listed = (await page.next_of("rooms"))["rooms"]["rooms"]
        finally:
            await page.close()
    assert who_said == ["alice", "bob"]
    assert rooms_said == ["dev\t1 members\tlast message #1", "ops\t2 members\tlast message #0"]
    assert listed == [
        {"name": "dev", "members": 1, "last_seq": 1},
        {"name": "ops", "members": 3, "last_seq": 0},
    ]


async def test_a_stopping_server_says_its_members_left(scale_out: ScaleOut) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(), await scale_out.server()
        watcher = await a.v1("watcher")
        await b.v1("leaver")
        assert await next_presence(watcher) == ("join", "watcher")
        assert await next_presence(watcher) == ("join", "leaver")
        b.server.shutdown()
        await b.server.stopped()
        heard = await next_presence(watcher)
    assert heard == ("leave", "leaver")


async def test_a_killed_servers_members_leave_everywhere_within_the_ttl(
    scale_out: ScaleOut, nursery
) -> None:
    ttl = 1.0
    with trio.fail_after(60):
        survivor = await scale_out.server(presence_ttl=ttl)
        watcher = await survivor.v1("watcher")
        assert await next_presence(watcher) == ("join", "watcher")
        doomed, port = await scale_out.process("--presence-ttl", str(ttl))
        ghost = await Harness(survivor.server, port, nursery).v1("ghost")
        assert await next_presence(watcher) == ("join", "ghost")
        doomed.kill()
        await doomed.wait()
        killed_at = trio.current_time()
        heard = await next_presence(watcher)
        waited = trio.current_time() - killed_at
        # Counted once the sweep, which freed the seat before it ended, has ended.
        await settles(lambda: b"swept_total 1.0" in survivor.server.metrics.scrape())
        swept = survivor.server.metrics.scrape()
        # Its name is free again for whoever comes next.
        again = await survivor.v1("ghost")
    assert heard == ("leave", "ghost")
    assert waited < ttl + 2 * ttl / 3 + 1  # expiry, then the survivor's next sweep
    assert b"purechat_presence_swept_total 1.0" in swept
    assert again.name == "ghost"
    assert ghost.name == "ghost"


async def test_back_on_another_server_after_a_crash_a_member_keeps_its_name(
    scale_out: ScaleOut, nursery
) -> None:
    ttl = 1.0
    with trio.fail_after(60):
        survivor = await scale_out.server(presence_ttl=ttl)
        watcher = await survivor.v1("watcher")
        doomed, port = await scale_out.process("--presence-ttl", str(ttl))
        on_doomed = Harness(survivor.server, port, nursery)
        await on_doomed.v1("alice", session="alice's client")
        await on_doomed.v1("ghost", session="ghost's client")
        doomed.kill()
        await doomed.wait()
        back = await survivor.v1("alice", session="alice's client")
        heard = []
        while heard[-1:] != [("leave", "ghost")]:  # the crashed server's seats are swept
            heard.append(await next_presence(watcher))
        await back.say("marker")  # logged after the sweep's leaves
        while (event := (await watcher.next_of("event")).event).kind != v1.Event.MESSAGE:
            heard.append(("join" if event.kind == v1.Event.JOIN else "leave", event.user))
        listed = await scale_out.servers[0][1].members("lobby")
    assert back.name == "alice"
    assert ("leave", "alice") not in heard
    assert listed == ("alice", "watcher")


async def test_retry_ids_are_kept_for_a_window_not_forever(scale_out: ScaleOut) -> None:
    store = await RedisStore.open(scale_out.redis.url, history=10, ids_kept=100)
    try:
        drafts = [
            Message("ids", 0, "bot", f"m{n}", 0, False, "bot", f"id-{n}") for n in range(1000)
        ]
        for start_at in range(0, len(drafts), 50):
            await store.append(drafts[start_at : start_at + 50])
        retried = await store.append([drafts[-100], drafts[-1]])
        kept = await scale_out.redis.command("HLEN", "purechat:room:ids:ids")
        queued = await scale_out.redis.command("LLEN", "purechat:room:ids:idq")
    finally:
        await store.aclose()
    assert [(a.seq, a.duplicate) for a in retried] == [(901, True), (1000, True)]
    assert (kept, queued) == (b":100\r\n", b":100\r\n")  # the newest 100, not all 1000


async def lapse(scale_out: ScaleOut, server: str, *then: str) -> None:
    """As if Redis had been away longer than server's TTL: its heartbeat expires and a
    sweep removes its members (one Redis script runs `then` at the sweep's end, before
    the server's heartbeat can come back: it waits while the sweep is claimed)."""
    claim = (
        "redis.call('ZADD', KEYS[1], 0, ARGV[1])\n"
        "redis.call('HSET', KEYS[2], ARGV[1], '99999999999999')\n"
    )
    keys = ("purechat:{servers}:alive", "purechat:{servers}:sweep")
    await scale_out.redis.command("EVAL", claim, "2", *keys, server)
    sweeper = scale_out.servers[-1][1]
    rooms = await scale_out.redis.command("SMEMBERS", f"purechat:{{servers}}:rooms:{server}")
    assert b"lobby" in rooms
    await sweeper._retire_rooms(server, ["lobby"], 0)
    for script in then:
        await scale_out.redis.command("EVAL", script, "0")
    await sweeper._forget(server, retiring=False)


async def test_a_server_whose_heartbeat_lapsed_lists_its_members_again(
    scale_out: ScaleOut,
) -> None:
    with trio.fail_after(30):
        a, b = await scale_out.server(presence_ttl=1.0), await scale_out.server()
        alice, bob = await a.v1("alice"), await b.v1("bob")
        store = scale_out.servers[0][1]
        assert await next_presence(bob) == ("join", "bob")  # alice is in its welcome
        assert a.server.presence_id is not None
        await lapse(scale_out, a.server.presence_id)
        heard = [await next_presence(bob) for _ in range(2)]
        await eventually(lambda: store.members("lobby"), ("alice", "bob"))
        await alice.say("still here")  # alice was never disconnected
        message = await bob.next_message()
    assert heard == [("leave", "alice"), ("join", "alice")]
    assert (message.user, message.text) == ("alice", "still here")


@pytest.mark.parametrize(
    "taken",
    [
        "redis.call('HSET', 'purechat:room:lobby:members', 'alice', 'elsewhere/1')\n",
        # a look-alike of the name, bound elsewhere
        "redis.call('HSET', 'purechat:room:lobby:members', 'Alice', 'elsewhere/1')\n"
        "redis.call('HSET', 'purechat:room:lobby:keys', 'alice', 'Alice')\n",
    ],
    ids=["the name", "a look-alike"],
)
async def test_a_name_taken_while_its_server_had_lapsed_ends_that_members_stream(
    scale_out: ScaleOut, taken: str
) -> None:
    with trio.fail_after(30):
        a = await scale_out.server(presence_ttl=1.0)
        alice = await a.v1("alice")
        assert a.server.presence_id is not None
        # a lapses, is swept, and someone elsewhere is given the name meanwhile.
        await lapse(scale_out, a.server.presence_id, taken)
        await alice.until_end()
    assert alice.call.status is not None
    assert alice.call.status.status_code is StatusCode.UNAVAILABLE
    assert alice.call.status.status_message == (
        "the server lost touch with the others and your name went to somebody else; join again"
    )


async def test_while_redis_is_away_joins_are_refused_with_a_sentence(
    scale_out: ScaleOut, nursery
) -> None:
    with trio.fail_after(30):
        a = await scale_out.server()
        present = await a.v1("present")
        await scale_out.redis.stop()
        connection, _ = await a.connection()
        newcomer = V1Call(connection, authority="test")
        await newcomer.join("newcomer", "lobby")
        while await newcomer.receive() is not None:
            pass
        legacy, _ = await a.legacy()
        await legacy.send("GoClient", "hello?")
        while await legacy.receive() is not None:
            pass
        await scale_out.redis.start(nursery)
        await until_accepted(present, "still here")
    for refused in (newcomer, legacy):
        assert refused.status is not None
        assert refused.status.status_code is StatusCode.UNAVAILABLE
    assert newcomer.status.status_message == "the server cannot reach its store right now"
    # Refused on arrival or at its first message, depending on when Redis is missed.
    assert legacy.status.status_message in (
        "the server cannot reach its store right now",
        "the server cannot store messages right now",
    )


async def until_accepted(member: Member, text: str) -> None:
    """Send (with text as its id) until acked, as a client does after a store error:
    the server may need a moment to reconnect to a new Redis."""
    while True:
        await member.call.send(text, text)
        frame = await member.next_of_any("ack", "error")
        if frame.WhichOneof("frame") == "ack":
            return
        await trio.sleep(0.1)


async def test_rediss_with_a_password_and_a_private_ca(nursery, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = (tmp_path / name for name in ("ca.pem", "cert.pem", "key.pem"))
    ca.cert_pem.write_to_path(str(ca_file))
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    issued.private_key_pem.write_to_path(str(key_file))
    tls_port = free_port()
    redis = RedisProcess(
        tmp_path, free_port(), "--tls-port", str(tls_port), "--tls-cert-file", str(cert_file),
        "--tls-key-file", str(key_file), "--tls-auth-clients", "no", "--requirepass", "s3cret",
    )  # fmt: skip
    await redis.start(nursery)
    where = f"127.0.0.1:{tls_port}/0"
    store = await open_store(f"rediss://:s3cret@{where}?ssl_ca_certs={ca_file}", history=10)
    try:
        stored = await store.append([Message("tls", 0, "bot", "over TLS", 0, False, "bot", "1")])
        read = await store.read("tls", after=0, upto=1)
    finally:
        await store.aclose()
    refusals = []
    for url in (
        f"rediss://:wrong@{where}?ssl_ca_certs={ca_file}",  # wrong password
        f"rediss://:s3cret@{where}",  # a certificate the system does not trust
        f"rediss://:s3cret@{where}?ssl_ca_certs={tmp_path / 'missing.pem'}",
        f"redis://:s3cret@{where}?ssl_ca_certs={ca_file}",  # a CA without TLS
    ):
        with pytest.raises(StoreError) as refused:
            await open_store(url, history=10)
        refusals.append(str(refused.value))
    assert [(a.seq, a.duplicate) for a in stored] == [(1, False)]
    assert [message.text for message in read] == ["over TLS"]
    assert refusals[0].startswith(f"cannot reach Redis at 127.0.0.1:{tls_port}")
    assert refusals[1].startswith(f"cannot reach Redis at 127.0.0.1:{tls_port}")
    assert refusals[2] == f"cannot read {tmp_path / 'missing.pem'}: No such file or directory"
    assert refusals[3].endswith("ssl_ca_certs needs rediss://")
    assert "s3cret" not in refusals[3] and ":***@" in refusals[3]


async def test_an_unreachable_redis_is_a_sentence_at_startup() -> None:
    port = free_port()
    try:
        await open_store(f"redis://127.0.0.1:{port}/0", history=10)
    except StoreError as error:
        assert f"cannot reach Redis at 127.0.0.1:{port}" in str(error)
    else:
        raise AssertionError("a store on a closed port opened")
