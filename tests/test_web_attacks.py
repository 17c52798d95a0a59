"""The web port holds what the gRPC port holds: each attack on it fails, against the
real listener, and what it cost the server is given back when the connection ends.

The attacker (tests/attackers.py `WebPeer`) makes a well-formed handshake, with no
Origin and no token, then sends exactly the frames it is told to.
"""

from __future__ import annotations

import contextlib
import gc
import json
import queue
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType, ModuleType

import grpc
import pytest
import trio
import trio.testing
import trustme

from purechat.tls import server_context
from purechat.transitions import IllegalTransition
from purechat.transport import TransportLimits
from purechat.web.listener import WebServer
from purechat.web.socket import MAX_MESSAGE_FRAMES, SOCKET_STATES, SocketState
from tests.attackers import OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT, WebPeer
from tests.helpers import Harness
from tests.polling import settles
from tests.processes import Lines, start
from tests.webclient import WebClient

MIB = 1024 * 1024
# The gRPC port's limit on PINGs that follow no data of ours, per 10 seconds.
CONTROL_FRAME_LIMIT = TransportLimits().max_control_frames


@pytest.fixture
def web_server(start_server) -> Callable[..., object]:
    """Start a server with its web listener; returns the harness and the web port."""

    async def start_web(**config: object) -> tuple[Harness, int]:
        harness: Harness = await start_server(web_port=0, **config)
        assert harness.server.web_port is not None
        return harness, harness.server.web_port

    return start_web


@pytest.fixture
async def connect_web() -> AsyncIterator[Callable[[int], Awaitable[WebClient]]]:
    """Open a session as a page would, from its own origin; closed when the test ends."""
    opened: list[WebClient] = []

    async def open_session(port: int) -> WebClient:
        client = await WebClient.connect(port, origin=f"http://127.0.0.1:{port}")
        opened.append(client)
        return client

    try:
        yield open_session
    finally:
        for client in opened:
            await client.sock.aclose()


# -- memory: a frame that never ends ---------------------------------------------------

ROUNDS, CONNECTIONS = 3, 4
ANNOUNCED = 300 * MIB
# What the server may grow by while it is attacked (its peak), and keep afterwards.
# Unbounded, it buffered 50 to 100 MiB for each connection, and kept them.
PEAK_GROWTH = 48 * MIB
KEPT = 16 * MIB


def _memory(pid: int) -> tuple[int, int]:
    """A process's resident memory now and at its peak so far (VmRSS, VmHWM), in bytes."""
    found = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


async def _web_port(lines: Lines) -> int:
    while (line := await lines.next()) is not None:
        if line.startswith("purechat web page at "):
            return int(line.rstrip("/").rpartition(":")[2])
    raise AssertionError("the server said no web port")


async def _endless_invalid_text(port: int, *, join_first: bool) -> None:
    """Announce a 300 MiB text frame and stream bytes that are not UTF-8 until the server
    stops taking them (or all 300 MiB went)."""
    peer = await WebPeer.connect(port)
    try:
        if join_first:
            await peer.join("alice", token="t-alice")
        chunk = b"\xff" * MIB
        if not await peer.send(WebPeer.frame(OP_TEXT, length=ANNOUNCED)):
            return
        for _ in range(ANNOUNCED // MIB):
            if not await peer.send(chunk):
                return
    finally:
        await peer.aclose()


async def test_endless_frames_of_invalid_text_cost_a_bounded_amount_and_leave_nothing(
    tmp_path: Path,
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t-alice alice\n")
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            server = await start(
                nursery,
                "serve",
                "--store",
                "memory://",
                "--port",
                "0",
                "--web-port",
                "0",
                "--tokens",
                str(tokens),
            )
            port = await _web_port(Lines(server.stdout))
            await _endless_invalid_text(port, join_first=True)  # what any session loads
            at_start, _ = _memory(server.pid)
            for _ in range(ROUNDS):
                async with trio.open_nursery() as attackers:
                    for n in range(CONNECTIONS):
                        # without a token, a join or an Origin; and after a join, too
                        attack = partial(_endless_invalid_text, port, join_first=n == 0)
                        attackers.start_soon(attack)
            _, peak = _memory(server.pid)
            assert peak - at_start < PEAK_GROWTH, f"grew by {(peak - at_start) // MIB} MiB"
            with trio.fail_after(20):
                await settles(lambda: _memory(server.pid)[0] - at_start < KEPT)
            server.send_signal(signal.SIGTERM)
            assert await server.wait() == 0


# -- floods of control frames ------------------------------------------------------------


async def _flood(peer: WebPeer, burst: bytes, *, opening: bytes = b"") -> None:
    """Send opening, then burst after burst, reading what comes back, until the server
    closes."""
    async with trio.open_nursery() as nursery:

        async def pour() -> None:
            if await peer.send(opening):
                while await peer.send(burst):
                    pass

        nursery.start_soon(pour)
        await peer.read_until_closed()
        nursery.cancel_scope.cancel()
    await peer.aclose()


def _grpcio_member(
    port: int,
    stubs: tuple[ModuleType, ModuleType],
    count: int,
    first_acked: threading.Event,
    flooding: threading.Event,
) -> int:
    """A tutorial grpcio client that sends count messages, each after the previous one
    came back (its acknowledgement); the rest once the flood has begun. The acks."""
    pb, rpc = stubs
    outbox: queue.Queue[object] = queue.Queue()
    acks = 0
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        responses = rpc.ChatServiceStub(channel).JoinChat(iter(outbox.get, None), timeout=60)
        for n in range(count):
            outbox.put(pb.ChatMessage(user_id="member", text=f"m{n}"))
            while (response := next(responses)).text != f"m{n}":
                pass
            assert response.user_id == "member"
            acks += 1
            if n == 0:
                first_acked.set()
                flooding.wait(30)
        outbox.put(None)
        responses.cancel()
    return acks


async def test_a_ping_flood_is_cut_off_as_on_grpc_and_a_grpcio_member_keeps_its_acks(
    web_server, tutorial_stubs: tuple[ModuleType, ModuleType]
) -> None:
    harness, port = await web_server()
    first_acked, flooding = threading.Event(), threading.Event()
    count = 50
    acks: list[int] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:

            async def member() -> None:
                acks.append(
                    await trio.to_thread.run_sync(
                        _grpcio_member, harness.port, tutorial_stubs, count, first_acked, flooding
                    )
                )

            nursery.start_soon(member)
            await trio.to_thread.run_sync(first_acked.wait)
            flooder = await WebPeer.connect(port)
            flooding.set()
            await _flood(flooder, WebPeer.frame(OP_PING, b"are you there") * 1000)
    assert acks == [count]
    # Every ping was answered until the limit; the next one ended the session.
    assert flooder.pongs == CONTROL_FRAME_LIMIT
    assert flooder.close_code == 4008  # RESOURCE_EXHAUSTED
    assert flooder.close_reason == (
        f"too many pings: more than {CONTROL_FRAME_LIMIT} in 10 seconds while nothing was "
        "sent to you"
    )
    assert harness.server.cut_offs == {"web_flood_pings": 1}


@pytest.mark.parametrize(
    ("burst", "join_first"),
    [(WebPeer.frame(OP_PONG, b"unasked"), False), (WebPeer.frame(OP_PING, b"x" * 125), True)],
    ids=["pongs", "pings after a join"],
)
async def test_every_kind_of_control_frame_flood_is_cut_off_before_or_after_a_join(
    web_server, connect_web, burst: bytes, join_first: bool
) -> None:
    harness, port = await web_server()
    with trio.fail_after(30):
        calm = await connect_web(port)
        await calm.join("calm")
        flooder = await WebPeer.connect(port)
        if join_first:
            await flooder.join("flooder")
        await _flood(flooder, burst * 1000)
        assert flooder.close_code == 4008
        assert harness.server.cut_offs == {"web_flood_pings": 1}
        await settles(lambda: harness.server.hub.members_of("lobby") == ("calm",))
        assert (await calm.say("still here", "c1"))["ack"]["client_msg_id"] == "c1"


@pytest.mark.parametrize("piece", [b"", b"x"], ids=["empty", "a byte each"])
async def test_a_message_in_endless_pieces_ends_the_session(
    web_server, connect_web, piece: bytes
) -> None:
    """Each frame costs a parse whatever it carries: a message begun and continued a
    frame at a time, each within the size limit, ends as a message too large does."""
    harness, port = await web_server()
    with trio.fail_after(30):
        calm = await connect_web(port)
        await calm.join("calm")
        flooder = await WebPeer.connect(port)
        await flooder.join("flooder")
        await _flood(
            flooder,
            WebPeer.frame(OP_CONTINUATION, piece, fin=False) * 1000,
            opening=WebPeer.frame(OP_TEXT, b"{", fin=False),
        )
        assert flooder.close_code == 4008
        assert flooder.close_reason == (
            f"a message came in more than {MAX_MESSAGE_FRAMES} frames: send it whole"
        )
        await settles(lambda: harness.server.hub.members_of("lobby") == ("calm",))
        assert (await calm.say("still here", "c1"))["ack"]["client_msg_id"] == "c1"


async def test_a_message_in_a_few_frames_is_taken_whole(web_server, connect_web) -> None:
    _, port = await web_server()
    with trio.fail_after(10):
        page = await connect_web(port)
        await page.join("page")
        text = json.dumps({"send": {"text": "in pieces", "client_msg_id": "p1"}}).encode()
        pieces = [text[n : n + 4] for n in range(0, len(text), 4)]
        assert len(pieces) < MAX_MESSAGE_FRAMES
        frames = [WebPeer.frame(OP_CONTINUATION, piece, fin=False) for piece in pieces[1:-1]]
        await page.sock.send_all(
            WebPeer.frame(OP_TEXT, pieces[0], fin=False)
            + b"".join(frames)
            + WebPeer.frame(OP_CONTINUATION, pieces[-1])
        )
        assert (await page.next_message())["text"] == "in pieces"


async def test_a_page_that_pings_after_each_answer_is_never_cut_off(
    web_server, connect_web
) -> None:
    """Pings that follow data of ours are a page reacting to it, as grpc-go's pings
    while it receives: they count for nothing, however many."""
    harness, port = await web_server()
    with trio.fail_after(60):
        page = await connect_web(port)
        await page.join("page")
        ping = WebPeer.frame(OP_PING, b"after an ack")
        for n in range(3 * CONTROL_FRAME_LIMIT):
            await page.say("hello", f"c{n}")
            await page.sock.send_all(ping)
        assert (await page.say("still here", "last"))["ack"]["client_msg_id"] == "last"
    assert harness.server.cut_offs == {}


async def test_a_page_that_pings_and_never_reads_the_answers_is_cut_off(
    web_server, connect_web
) -> None:
    harness, port = await web_server()
    with trio.fail_after(30):
        calm = await connect_web(port)
        await calm.join("calm")
        flooder = await connect_web(port)
        await flooder.join("flooder")
        # 131 bytes of answer each, never read: cut off long before they pile up.
        burst = WebPeer.frame(OP_PING, b"x" * 125) * 1000
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            for _ in range(130):  # until the server resets the connection
                await flooder.sock.send_all(burst)
        await settles(lambda: harness.server.cut_offs == {"web_flood_pings": 1})
        await settles(lambda: harness.server.hub.members_of("lobby") == ("calm",))
        assert (await calm.say("still here", "c1"))["ack"]["client_msg_id"] == "c1"


# -- HTTP --------------------------------------------------------------------------------


async def test_a_request_that_announces_a_body_is_refused_before_it_is_read(
    web_server,
) -> None:
    _, port = await web_server()
    with trio.fail_after(30):
        async with await trio.open_tcp_stream("127.0.0.1", port) as sock:
            # a body without end, as far as the server can tell
            head = b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            await sock.send_all(head + b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
            answer = b""
            # until the server closes; it resets, as the body is left unread
            with contextlib.suppress(trio.BrokenResourceError):
                while data := await sock.receive_some(65536):
                    answer += data
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"\r\n\r\nA GET request carries no body here.\n")


# -- nothing outlives a session ----------------------------------------------------------

_OURS = ("purechat", "wsproto", "anyio", "h11")


def _ours(thing: object) -> bool:
    """Something of the server's, wsproto's, anyio's or h11's, or one of their frames."""
    if isinstance(thing, FrameType):
        return any(f"/{package}/" in thing.f_code.co_filename for package in _OURS)
    return (type(thing).__module__ or "").startswith(_OURS)


def _describe(thing: object) -> str:
    if isinstance(thing, FrameType):
        return f"frame of {thing.f_code.co_qualname} ({thing.f_code.co_filename})"
    return f"{type(thing).__module__}.{type(thing).__qualname__}"


async def _settle(web: WebServer, connections: int) -> None:
    """Wait, on the scheduler rather than a clock, until the web connections are down to
    connections."""
    while web.connection_count > connections:
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    await trio.testing.wait_all_tasks_blocked(cushion=0.01)


# Each ends alice's session one way; the bystander's stays.


async def _end_by_protocol_error(client: WebClient, web: WebServer, port: int) -> None:
    # Text that is not UTF-8, then silence: the server ends it without waiting.
    await client.sock.send_all(WebPeer.frame(OP_TEXT, b"\xff\xfe"))
    await _settle(web, connections=1)


async def _end_by_a_message_too_large(client: WebClient, web: WebServer, port: int) -> None:
    # Then silence: the server waits a moment for the close it asked for, in vain, and
    # cancels its read.
    await client.send({"send": {"text": "x" * 2000, "client_msg_id": "big"}})
    await _settle(web, connections=1)


async def _end_by_closing(client: WebClient, web: WebServer, port: int) -> None:
    await client.close()
    await _settle(web, connections=1)


async def _end_by_the_server(client: WebClient, web: WebServer, port: int) -> None:
    # The same page joins again: the first session ends while its reader waits.
    again = await WebClient.connect(port)
    try:
        await again.join("alice", session="s1")
        await client.until_closed()
        assert client.end is not None and client.end["code"] == "ABORTED"
        await client.sock.aclose()
        await _settle(web, connections=2)
        await again.close()
    finally:
        await again.sock.aclose()
    await _settle(web, connections=1)


Ending = Callable[[WebClient, WebServer, int], Awaitable[None]]
ENDINGS = pytest.mark.parametrize(
    "end",
    [_end_by_protocol_error, _end_by_a_message_too_large, _end_by_closing, _end_by_the_server],
    ids=["protocol error", "message too large", "closed by the page", "ended by the server"],
)


@dataclass
class Cycles:
    """What the collector found of ours (described), once the block is over."""

    everything: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _cycles_found() -> Iterator[Cycles]:
    """Run the block with the collector off, then collect what it made that only the
    collector could free (trio's own tests' way: DEBUG_SAVEALL keeps it to look at)."""
    found = Cycles()
    gc.collect()
    old_flags = gc.get_debug()
    gc.disable()
    try:
        gc.set_debug(0)
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        yield found
        gc.collect()
        found.everything = sorted({_describe(thing) for thing in gc.garbage if _ours(thing)})
    finally:
        gc.set_debug(old_flags)
        gc.garbage.clear()
        gc.enable()


async def _garbage_of_a_session(
    start_web: Callable[..., Awaitable[tuple[Harness, int]]],
    connect_web: Callable[[int], Awaitable[WebClient]],
    end: Ending,
) -> Cycles:
    """One web session, with the collector off until it is over."""
    harness, port = await start_web(transport=TransportLimits(max_message_bytes=1024))
    web = harness.server._web
    assert web is not None
    with trio.fail_after(30):
        # Its first session creates what the server keeps; it stays, and speaks last, so
        # that nothing of the server's (a flush, a store write) still holds the session.
        bystander = await connect_web(port)
        await bystander.join("bystander")
        with _cycles_found() as found:
            client = await WebClient.connect(port)
            try:
                await client.join("alice", session="s1")
                await client.say("hello", "c1")
                await end(client, web, port)
            finally:
                await client.sock.aclose()
            await bystander.say("still here", "b1")
            await _settle(web, connections=1)
    assert harness.server.hub.members_of("lobby") == ("bystander",)
    return found


@ENDINGS
async def test_a_web_session_leaves_no_cyclic_garbage(web_server, connect_web, end: Ending) -> None:
    """No traceback, closure or frame keeps the socket, wsproto's buffers, the member or
    the session alive once its connection is over."""
    found = await _garbage_of_a_session(web_server, connect_web, end)
    assert found.everything == [], "\n".join(found.everything)


@pytest.mark.parametrize(
    "start",
    [b"", b"GET / HTTP/1.1\r\nHost: x\r\n", b"\x16\x03\x01"],
    ids=["idle", "half a request", "half a TLS handshake"],
)
async def test_a_connection_that_times_out_before_its_upgrade_leaves_no_cycle(
    web_server, tmp_path: Path, start: bytes
) -> None:
    """Its read, cancelled by the handshake timeout, holds nothing once it is over."""
    pem = tmp_path / "server.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    tls = (
        {"web_ssl_context": server_context(pem, pem, alpn="http/1.1")}
        if start[:1] == b"\x16"
        else {}
    )
    harness, port = await web_server(transport=TransportLimits(handshake_timeout=0.2), **tls)
    web = harness.server._web
    assert web is not None
    with trio.fail_after(10), _cycles_found() as found:
        async with await trio.open_tcp_stream("127.0.0.1", port) as sock:
            await sock.send_all(start)
            assert await sock.receive_some(65536) == b""  # closed, saying nothing
        await _settle(web, connections=0)
    assert found.everything == [], "\n".join(found.everything)


# -- the state machine -------------------------------------------------------------------


def test_a_socket_that_closed_never_opens_again() -> None:
    assert SOCKET_STATES.move(SocketState.OPEN, SocketState.CLOSING) is SocketState.CLOSING
    assert SOCKET_STATES.move(SocketState.CLOSING, SocketState.CLOSED) is SocketState.CLOSED
    assert SOCKET_STATES.move(SocketState.OPEN, SocketState.CLOSED) is SocketState.CLOSED
    for current, new in [
        (SocketState.CLOSED, SocketState.OPEN),
        (SocketState.CLOSED, SocketState.CLOSING),
        (SocketState.CLOSING, SocketState.OPEN),
    ]:
        with pytest.raises(IllegalTransition, match=f"WebSocket: {current.name} -> {new.name}"):
            SOCKET_STATES.move(current, new)
