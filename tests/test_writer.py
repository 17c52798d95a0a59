"""One writer per socket: last words, the flusher and the writer task never write into
each other, a second writer raises, and under asyncio every write goes through the
writer task (see purechat/transport/writer.py)."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import pytest
import trio
import trio.testing

from purechat.app import ChatServer
from purechat.client.calls import V1Call, open_connection
from purechat.core import Limits
from purechat.server import ServerConfig
from purechat.transport import (
    Connection,
    Flusher,
    GrpcProtocol,
    Status,
    Stream,
    frame_message,
)
from purechat.transport import status as statuses
from purechat.transport.protocol import CLIENT_LIMITS
from purechat.transport.writer import WriterState

# Small kernel buffers, so that a peer that does not read blocks our writes after a
# few kilobytes instead of a few megabytes.
SMALL_BUFFER = 4096
# Pings queued before the peer reads: far more than the kernel buffers hold.
PINGS = 20_000


def _socket_pair() -> tuple[socket.socket, socket.socket]:
    """(our end, the peer's end) of a loopback TCP connection with small buffers."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        peer.connect(listener.getsockname())
        ours, _ = listener.accept()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    return ours, peer


async def _pair() -> tuple[anyio.abc.SocketStream, anyio.abc.SocketStream]:
    ours, peer = _socket_pair()
    return (
        await anyio.abc.SocketStream.from_socket(ours),
        await anyio.abc.SocketStream.from_socket(peer),
    )


def _queue_pings(protocol: GrpcProtocol, numbers: range) -> None:
    for n in numbers:
        protocol.h2_connection.ping(n.to_bytes(8, "big"))


async def _read_to_the_end(peer: anyio.abc.SocketStream, into: bytearray) -> None:
    while True:
        try:
            into += await peer.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return


def _pings_seen(data: bytes) -> list[int]:
    """The PINGs a client reads in data (raises if data is not HTTP/2 frames in order)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    events = client.receive_data(data)
    assert not any(isinstance(event, h2.events.ConnectionTerminated) for event in events)
    return [
        int.from_bytes(event.ping_data, "big")
        for event in events
        if isinstance(event, h2.events.PingReceived)
    ]


async def test_last_words_and_a_flush_in_the_same_moment_do_not_interleave(
    nursery: trio.Nursery,
) -> None:
    ours, peer = await _pair()
    flusher = Flusher()
    nursery.start_soon(flusher.run)
    connection = Connection(ours, GrpcProtocol(client_side=False), flusher)
    writer = connection.writer
    writer.attach(nursery)
    connection.protocol.initiate_connection()
    _queue_pings(connection.protocol, range(PINGS))
    spoken = trio.Event()

    async def cut_off() -> None:
        await writer.last_words(30)
        spoken.set()

    with trio.fail_after(30):
        nursery.start_soon(cut_off)
        await trio.testing.wait_all_tasks_blocked()  # last words wait for the peer
        _queue_pings(connection.protocol, range(PINGS, PINGS + 100))
        writer.wake()  # ... and the flusher has bytes in the same moment
        await trio.testing.wait_all_tasks_blocked()
        received = bytearray()
        nursery.start_soon(_read_to_the_end, peer, received)
        await spoken.wait()
        await ours.aclose()
        await trio.testing.wait_all_tasks_blocked()
    assert writer.state is WriterState.CLOSED
    # Everything queued before the last words, in order, and nothing after them.
    assert _pings_seen(bytes(received)) == list(range(PINGS))
    await peer.aclose()


async def test_a_second_writer_raises_instead_of_writing_into_the_first(
    nursery: trio.Nursery,
) -> None:
    ours, peer = await _pair()
    flusher = Flusher()
    connection = Connection(ours, GrpcProtocol(client_side=False), flusher)
    writer = connection.writer
    writer.attach(nursery)
    connection.protocol.initiate_connection()
    _queue_pings(connection.protocol, range(PINGS))
    with trio.fail_after(30):
        writer.flush_now()  # the socket takes a few KiB; the writer task waits with the rest
        await trio.testing.wait_all_tasks_blocked()
        assert writer.state is WriterState.WRITING
        # A state machine that lost track (as last_words once left IDLE while it
        # waited on a send): the flusher must not write into the awaited send.
        writer.state = WriterState.IDLE
        _queue_pings(connection.protocol, range(PINGS, PINGS + 1))
        with pytest.raises(anyio.BusyResourceError):
            writer.flush_now()
        writer.state = WriterState.WRITING
        received = bytearray()
        async with trio.open_nursery() as reading:
            reading.start_soon(_read_to_the_end, peer, received)
            await trio.testing.wait_all_tasks_blocked()
            await ours.aclose()
    # The refused flush took nothing: its ping went out later, behind the others.
    assert _pings_seen(bytes(received)) == list(range(PINGS + 1))
    await peer.aclose()


# -- under asyncio --------------------------------------------------------------------


def _on_asyncio(scenario: Callable[[], Awaitable[None]]) -> None:
    anyio.run(scenario, backend="asyncio")


MESSAGES = 2000


async def _stream_to_a_slow_reader() -> None:
    """A server Connection with a flusher streams to a client over small buffers: the
    writer keeps meeting a full socket, and asyncio's transport buffers what it holds."""
    payload = b"z" * 2000

    async def handler(stream: Stream) -> Status:
        stream.start_response()
        for n in range(MESSAGES):
            await stream.send_frames(frame_message(n.to_bytes(4, "big") + payload))
        return statuses.OK

    ours, theirs = await _pair()
    flusher = Flusher()
    server = Connection(ours, GrpcProtocol(client_side=False), flusher)
    client = Connection(theirs, GrpcProtocol(client_side=True, limits=CLIENT_LIMITS))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(flusher.run)
            await tasks.start(server.run, handler)
            await tasks.start(client.run)
            stream = client.start_call("test.Service", "Stream", authority="test")
            stream.close_send()
            numbers = []
            while (message := await stream.receive()) is not None:
                numbers.append(int.from_bytes(message[:4], "big"))
                assert message[4:] == payload
            assert stream.status is not None
            assert stream.status.status_code is statuses.OK.status_code, stream.status
            assert numbers == list(range(MESSAGES))
            tasks.cancel_scope.cancel()


def test_under_asyncio_bytes_reach_the_peer_in_order() -> None:
    """A send on the socket itself would overtake what asyncio's transport still holds."""
    _on_asyncio(_stream_to_a_slow_reader)


async def _chat() -> None:
    server = ChatServer(ServerConfig(port=0, limits=Limits(rate_limit=0)))
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            port = await tasks.start(server.serve)
            async with anyio.create_task_group() as members:
                alice = V1Call(await open_connection(members, "127.0.0.1", port), authority="x")
                bob = V1Call(await open_connection(members, "127.0.0.1", port), authority="x")
                for call, name in ((alice, "alice"), (bob, "bob")):
                    await call.join(name, "lobby")
                    welcome = await call.receive()
                    assert welcome is not None and welcome.welcome.name == name
                texts = [f"line {n}" for n in range(300)]
                for n, text in enumerate(texts):
                    await alice.send(text, f"id-{n}")
                seen: list[str] = []
                while len(seen) < len(texts):
                    frame = await bob.receive()
                    assert frame is not None, bob.status
                    if frame.WhichOneof("frame") == "event" and frame.event.user == "alice":
                        seen.append(frame.event.text)
                assert seen == texts
                members.cancel_scope.cancel()
            server.shutdown()


def test_a_chat_server_works_end_to_end_under_asyncio() -> None:
    _on_asyncio(_chat)
