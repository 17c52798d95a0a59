"""Members that stop reading or vanish never hurt the rest, and leave nothing behind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
import trio
import trio.lowlevel
import trio.testing

from purechat.client.calls import V1Call
from purechat.pb import purechat_v1_pb2 as v1
from purechat.store import Store
from purechat.store.redis import RedisStore
from purechat.transport import Connection, GrpcProtocol, StatusCode, TransportLimits
from tests.helpers import Harness
from tests.polling import eventually
from tests.redis_server import RedisProcess, free_port


@pytest.mark.parametrize(
    ("config", "count"),
    [
        # 700 messages of 4 kB: the backlog passes its budget long before the end
        ({"slow_member_bytes": 512 * 1024}, 700),
        # 300: the backlog stays small, but makes no progress for the stall timeout
        ({"slow_member_timeout": 0.5}, 300),
    ],
    ids=["backlog over budget", "no progress"],
)
async def test_a_member_that_never_reads_is_evicted_and_the_rest_get_everything(
    start_server, config: dict[str, float], count: int
) -> None:
    harness: Harness = await start_server(**config)
    text = "x" * 4000  # the stalled member's 1 MiB window fills after ~260 of these
    with trio.fail_after(20):
        sender = await harness.v1("sender")
        reader = await harness.v1("reader")
        stalled = await harness.v1("stalled")  # never reads from here on

        received: list[int] = []
        stalled_left = trio.Event()

        async def read_all() -> None:
            while len(received) < count or not stalled_left.is_set():
                frame = (await reader.next_of("event")).event
                if frame.kind == v1.Event.MESSAGE:
                    received.append(frame.seq)
                elif frame.kind == v1.Event.LEAVE and frame.user == "stalled":
                    stalled_left.set()

        async def send_all() -> None:
            for n in range(count):
                await sender.call.send(text, f"m{n}")

        async def read_acks() -> None:
            for _ in range(count):
                await sender.next_of("ack")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            nursery.start_soon(send_all)
            nursery.start_soon(read_acks)
        await stalled_left.wait()
        assert received == list(range(1, count + 1))
        assert harness.server.hub.members_of("lobby") == ("sender", "reader")
        await stalled.until_end()
        status = stalled.call.status
        assert status is not None and status.status_code is StatusCode.RESOURCE_EXHAUSTED
        assert "too slow" in status.status_message


def _task_count() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            count(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    return count(trio.lowlevel.current_root_task())


async def _settle(harness: Harness, connections: int) -> None:
    """Wait, on events rather than time, until the server has dropped to `connections`."""
    while harness.server.connection_count > connections:
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)


@pytest.fixture(params=["own store", "shared store"])
async def churn_store(
    request: pytest.FixtureRequest, nursery: trio.Nursery, tmp_path: Path
) -> AsyncIterator[Store | None]:
    """None (the server's own memory store), or a Redis the server shares."""
    if request.param == "own store":
        yield None
        return
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    store = await RedisStore.open(redis.url, history=1000)
    try:
        yield store
    finally:
        await store.aclose()


async def test_a_churn_of_abrupt_disconnects_leaves_nothing_behind(
    start_server, churn_store: Store | None
) -> None:
    harness: Harness = await start_server(store=churn_store)
    with trio.fail_after(90):
        keeper = await harness.v1("keeper")
        await trio.testing.wait_all_tasks_blocked()
        tasks_before = _task_count()
        members_before = harness.server.hub.member_count()
        connections_before = harness.server.connection_count

        async def come_and_vanish(n: int) -> None:
            if n % 2:
                member = await harness.v1(f"churn{n}")
                await member.call.send("hello", f"c{n}")
                member.drop()
            else:
                call, scope = await harness.legacy()
                await call.send(f"legacy{n}", "hi")
                assert await call.receive() is not None
                scope.cancel()

        for batch in range(20 if churn_store is None else 6):
            async with trio.open_nursery() as nursery:
                for n in range(batch * 50, batch * 50 + 50):
                    nursery.start_soon(come_and_vanish, n)
            await _settle(harness, connections_before)

        await _settle(harness, connections_before)
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)
        assert harness.server.hub.member_count() == members_before
        assert harness.server.hub.members_of("lobby") == ("keeper",)
        assert _task_count() == tasks_before
        if isinstance(churn_store, RedisStore):  # every seat was given back, everywhere
            await eventually(lambda: churn_store.members("lobby"), ("keeper",))
        # and the room still works for the one who stayed
        await keeper.call.send("still here", "k1")
        while (await keeper.next_message()).text != "still here":
            pass


async def test_a_member_whose_window_keeps_filling_still_gets_everything_in_order(
    start_server,
) -> None:
    """Small receive window, slow reading: the fast path keeps handing over to the queue."""
    harness: Harness = await start_server()
    count = 300
    with trio.fail_after(30):
        sender = await harness.v1("sender")
        sock = await anyio.connect_tcp("127.0.0.1", harness.port)
        small = GrpcProtocol(client_side=True, limits=TransportLimits(max_message_bytes=1024))
        connection = Connection(sock, small)
        await harness.nursery.start(connection.run)
        narrow = V1Call(connection, authority="test")
        await narrow.join("narrow", "lobby")
        seqs: list[int] = []

        async def read_slowly() -> None:
            while len(seqs) < count:
                frame = await narrow.receive()
                assert frame is not None, narrow.status
                if frame.WhichOneof("frame") == "event" and frame.event.seq:
                    seqs.append(frame.event.seq)
                await trio.lowlevel.checkpoint()  # let the sender get ahead

        async def send_all() -> None:
            for n in range(count):
                await sender.call.send("y" * 900, f"s{n}")
            for _ in range(count):
                await sender.next_of("ack")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_slowly)
            nursery.start_soon(send_all)
    assert seqs == list(range(1, count + 1))
