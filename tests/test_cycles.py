"""A member's whole life, however it ends, leaves no cyclic garbage.

The server runs young collections rarely (cli.py), so anything a departed member
leaves in a reference cycle stays in memory until a full collection: under churn the
server grows. trio's own tests (`test_nursery_cancel_doesnt_create_cyclic_garbage`)
show the check: with the collector off and DEBUG_SAVEALL, a collection afterwards
finds nothing. Each scenario runs once first (so what is created once per server, a
cache entry, is not counted), then again under the check. Client and server share the
process here, so the client's side is held to the same rule.
"""

from __future__ import annotations

import gc
import json
import subprocess
import types
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trio
import trio.lowlevel
import trio.testing

from purechat.transport import streams
from tests.helpers import Harness
from tests.polling import settles
from tests.webclient import WebClient

Scenario = Callable[[Harness], Awaitable[None]]


@contextmanager
def no_cyclic_garbage() -> Iterator[None]:
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield
        gc.collect()
        found = Counter(_kind(o) for o in gc.garbage)
        assert not found, f"cyclic garbage: {found.most_common(12)}"
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


def _kind(garbage: object) -> str:
    """A type, or for a frame the function it ran (where a cycle usually starts)."""
    if isinstance(garbage, types.FrameType):
        code = garbage.f_code
        return f"frame of {code.co_name} ({code.co_filename.rpartition('/')[2]})"
    return f"{type(garbage).__module__}.{type(garbage).__qualname__}"


async def join_and_leave(harness: Harness) -> None:
    member = await harness.v1("alice")
    await member.call.send("hello", f"c-{id(member)}")
    await member.next_of("ack")
    member.call.close_send()
    await member.until_end()
    member.scope.cancel()


async def original_contract(harness: Harness) -> None:
    call, scope = await harness.legacy()
    await call.send("bob", "hello")
    assert await call.receive() is not None
    scope.cancel()


async def killed_connection(harness: Harness) -> None:
    listener = await harness.v1("listener")
    sender = await harness.v1("sender")
    for n in range(50):
        await sender.call.send("x" * 2000, f"k{n}-{id(sender)}")
    await sender.next_of("ack")
    listener.scope.cancel()  # gone mid-stream, with messages owed to it
    sender.scope.cancel()


async def evicted(harness: Harness) -> None:
    stalled = await harness.v1("stalled")  # never reads
    sender = await harness.v1("sender")

    async def drain() -> None:
        while await sender.call.receive() is not None:
            pass

    async with trio.open_nursery() as nursery:
        nursery.start_soon(drain)
        for n in range(300):
            if "stalled" not in harness.server.hub.members_of("lobby"):
                break
            await sender.call.send("x" * 4000, f"e{n}-{id(sender)}")
        await settles(lambda: "stalled" not in harness.server.hub.members_of("lobby"))
        stalled.scope.cancel()
        sender.scope.cancel()


async def web_session(harness: Harness) -> None:
    assert harness.server.web_port is not None
    web = await WebClient.connect(harness.server.web_port)
    await web.join("webby")
    await web.say("hello", "w1")
    await web.sock.aclose()


@pytest.mark.parametrize(
    "scenario",
    [join_and_leave, original_contract, killed_connection, evicted, web_session],
    ids=lambda scenario: scenario.__name__,
)
async def test_a_member_leaves_no_cyclic_garbage(start_server, scenario: Scenario) -> None:
    harness: Harness = await start_server(web_port=0, slow_member_timeout=0.3)
    with trio.fail_after(30):
        await scenario(harness)
        await settles(lambda: harness.server.hub.member_count() == 0)
        await settles(lambda: harness.server.connection_count == 0)
        with no_cyclic_garbage():
            await scenario(harness)
            await settles(lambda: harness.server.hub.member_count() == 0)
            await settles(lambda: harness.server.connection_count == 0)
            await trio.testing.wait_all_tasks_blocked()


async def test_a_churn_of_grpc_go_members_leaves_no_cyclic_garbage(
    start_server, go_load_client: Path
) -> None:
    """The tutorial's own clients, as the churn that grew the server's memory: 200
    grpc-go members join, hear, and leave; 200 more are killed (SIGKILL) mid-stream."""
    harness: Harness = await start_server(max_conns_per_addr=0)
    address = f"127.0.0.1:{harness.port}"
    with trio.fail_after(120):
        await trio.run_process([str(go_load_client), "-addr", address, "-members", "20"])
        await settles(lambda: harness.server.connection_count == 0)
        with no_cyclic_garbage():
            done = await trio.run_process(
                [str(go_load_client), "-addr", address, "-members", "200", "-json"],
                capture_stdout=True,
            )
            assert json.loads(done.stdout)["lost"] == 0
            killed = await trio.lowlevel.open_process(
                [
                    str(go_load_client),
                    "-addr",
                    address,
                    "-members",
                    "200",
                    "-messages",
                    "0",
                    "-rate",
                    "100",
                    "-duration",
                    "60s",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                await settles(lambda: harness.server.hub.stats.messages > 100)
            finally:
                killed.kill()
                await killed.wait()
            await settles(lambda: harness.server.connection_count == 0)
            assert harness.server.hub.member_count() == 0
            await trio.testing.wait_all_tasks_blocked()


async def test_a_cancelled_socket_send_leaves_no_cycle() -> None:
    """anyio's trio backend re-raises a cancelled send from a frame that holds the
    exception (a cycle); purechat's sends go through transport/streams.py, which
    clears it."""
    listeners = await anyio.create_tcp_listener(local_host="127.0.0.1")
    async with listeners:
        listener = listeners.listeners[0]
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        client = await anyio.connect_tcp("127.0.0.1", port)

        async def send_until_full() -> None:
            while True:  # until the peer's window and ours are full
                await streams.send(client, b"x" * 65536)

        async with client, await listener.accept():  # type: ignore[attr-defined]
            with no_cyclic_garbage():
                async with anyio.create_task_group() as sending:
                    sending.start_soon(send_until_full)
                    await anyio.sleep(0.2)
                    sending.cancel_scope.cancel()
