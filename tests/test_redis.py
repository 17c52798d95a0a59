"""Several servers as one chat on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from purechat.core import Limits
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ChatServer, ServerConfig
from purechat.store import Store, StoreError, open_store
from tests.helpers import Harness, Member
from tests.processes import Lines, start
from tests.redis_server import RedisProcess, free_port


class ScaleOut:
    """A redis-server and the purechat servers on it; stopped and closed at the end."""

    def __init__(self, nursery: trio.Nursery, directory: Path):
        self.nursery = nursery
        self.redis = RedisProcess(directory, free_port())
        self.servers: list[tuple[ChatServer, Store]] = []

    async def server(self) -> Harness:
        store = await open_store(self.redis.url, history=1000)
        server = ChatServer(ServerConfig(port=0, limits=Limits(rate_limit=0)), store)
        self.servers.append((server, store))
        return Harness(server, await self.nursery.start(server.serve), self.nursery)

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
        doomed = await start(
            nursery, "serve", "--port", "0", "--store", scale_out.redis.url, "--rate-limit", "0"
        )
        port = int((await Lines(doomed.stdout).next() or "").split(":")[1].split(";")[0])
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
        assert error.code == v1.Error.STORE_UNAVAILABLE
        await redis.start(nursery)
        while True:  # the client may need a moment to reconnect to the new process
            await alice.call.send("after", f"after-{trio.current_time()}")
            frame = await alice.next_of_any("ack", "error")
            if frame.WhichOneof("frame") == "ack":
                break
            await trio.sleep(0.1)
        after = await bob.next_message()
    assert (after.text, after.seq) == ("after", 2)  # numbering went on; nothing was lost


async def test_an_unreachable_redis_is_a_sentence_at_startup() -> None:
    port = free_port()
    try:
        await open_store(f"redis://127.0.0.1:{port}/0", history=10)
    except StoreError as error:
        assert f"cannot reach Redis at 127.0.0.1:{port}" in str(error)
    else:
        raise AssertionError("a store on a closed port opened")
