"""A server you can put on a network: each attack fails, and a well-behaved member in the
same run is not affected."""

from __future__ import annotations

import os
import signal
import ssl
from pathlib import Path

import anyio
import grpc
import pytest
import trio
import trio.testing
import trustme

from purechat.client.calls import LegacyCall, V1Call, connect, open_connection
from purechat.core import Limits
from purechat.pb import chat_pb2
from purechat.server.auth import TokenBook, TokenFileError
from purechat.transport import Connection, GrpcProtocol, StatusCode
from purechat.transport.flusher import ANSWER_DELAY_SECONDS
from purechat.transport.protocol import CLIENT_LIMITS
from tests.attackers import RawPeer, goaway_code, grpc_status, ping_answers, request_headers
from tests.helpers import Harness, still_served
from tests.polling import eventually, settles
from tests.processes import Lines, send_lines, start

ENHANCE_YOUR_CALM = 0xB


# -- TLS -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
    context.set_alpn_protocols(["h2"])
    return context


async def _tls_member(harness: Harness, ca: trustme.CA, name: str) -> V1Call:
    client = ssl.create_default_context()
    ca.configure_trust(client)
    client.set_alpn_protocols(["h2"])
    sock = await connect("localhost", harness.port, client)
    connection = Connection(sock, GrpcProtocol(client_side=True, limits=CLIENT_LIMITS))
    await harness.nursery.start(connection.run)
    call = V1Call(connection, authority="localhost")
    await call.join(name, "lobby")
    return call


async def test_tls_members_chat(start_server, server_tls, ca) -> None:
    harness: Harness = await start_server(ssl_context=server_tls)
    with trio.fail_after(10):
        call = await _tls_member(harness, ca, "alice")
        welcome = await call.receive()
        assert welcome is not None and welcome.welcome.name == "alice"
        await call.send("over tls", "t1")
        kinds = set()
        while "ack" not in kinds:
            frame = await call.receive()
            assert frame is not None
            kinds.add(frame.WhichOneof("frame"))


async def test_a_grpcio_client_with_tls_credentials_interoperates(
    start_server, server_tls, ca, tutorial_stubs
) -> None:
    harness: Harness = await start_server(ssl_context=server_tls)
    pb, rpc = tutorial_stubs
    root = ca.cert_pem.bytes()

    def chat() -> list[str]:
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        with grpc.secure_channel(f"localhost:{harness.port}", credentials) as channel:
            responses = rpc.ChatServiceStub(channel).JoinChat(
                iter([pb.ChatMessage(user_id="tls", text="secure hello")]), timeout=10
            )
            return [next(responses).text]

    with trio.fail_after(20):
        assert await trio.to_thread.run_sync(chat) == ["secure hello"]


async def test_a_plaintext_client_against_tls_retries_then_says_why(
    start_server, server_tls, nursery
) -> None:
    # A server that accepts and closes may be restarting (or a balancer with no backend
    # yet): the client tries again until --give-up-after, and says what it saw.
    harness: Harness = await start_server(ssl_context=server_tls)
    with trio.fail_after(20):
        process = await start(
            nursery, "join", "--server", f"127.0.0.1:{harness.port}", "--give-up-after", "2"
        )
        await send_lines(process, "hello", close=True)
        await process.wait()
        stderr = await Lines(process.stderr).rest()
    assert process.returncode == 1
    assert "try --tls" in stderr[0]  # said at once, while it tries again
    assert stderr[-1] == (
        f"purechat: 1 message(s) not delivered: the server at 127.0.0.1:{harness.port} "
        "closed the connection without a word (is it a TLS port? try --tls)."
    )


# -- tokens --------------------------------------------------------------------


def _tokens(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens"
    path.write_text(text)
    return path


async def _call_with(harness: Harness, token: str | None, name: str = "whoever") -> V1Call:
    connection, _ = await harness.connection()
    call = V1Call(connection, authority="test", token=token)
    await call.join(name, "lobby")
    return call


async def test_without_a_valid_token_the_call_is_unauthenticated(start_server, tmp_path) -> None:
    book = TokenBook(_tokens(tmp_path, "# team\ns3cret alice\n"))
    harness: Harness = await start_server(tokens=book)
    with trio.fail_after(10):
        for token in (None, "wrong", "s3cre", "s3cret2"):
            call = await _call_with(harness, token)
            assert await call.receive() is None
            assert call.status is not None
            assert call.status.status_code is StatusCode.UNAUTHENTICATED


async def test_the_name_comes_from_the_token_not_the_client(start_server, tmp_path) -> None:
    book = TokenBook(_tokens(tmp_path, "s3cret alice\nother bob\n"))
    harness: Harness = await start_server(tokens=book)
    with trio.fail_after(10):
        call = await _call_with(harness, "s3cret", name="bob")
        welcome = await call.receive()
        assert welcome is not None and welcome.welcome.name == "alice"
        legacy_connection, _ = await harness.connection()
        legacy = LegacyCall(legacy_connection, authority="test", token="other")
        await legacy.send("alice", "who am i")
        echoed = await legacy.receive()
        assert echoed is not None and echoed.user_id == "bob"


def test_bad_token_files_are_sentences(tmp_path) -> None:
    with pytest.raises(TokenFileError, match="line 2: expected TOKEN NAME"):
        TokenBook(_tokens(tmp_path, "ok alice\njust-a-token\n"))
    with pytest.raises(TokenFileError, match="cannot read the token file"):
        TokenBook(tmp_path / "missing")


async def test_the_token_file_is_read_again_on_sighup_and_tokens_are_not_logged(
    nursery, tmp_path
) -> None:
    tokens = _tokens(tmp_path, "first-token alice\n")
    with trio.fail_after(30):
        server = await start(
            nursery,
            "serve",
            "--port",
            "0",
            "--store",
            "memory://",
            "--tokens",
            str(tokens),
            "--log-level",
            "debug",
        )
        line = await Lines(server.stdout).next()
        assert line is not None
        port = int(line.split(":")[1].split(";")[0])

        async def name_with(token: str) -> str | None:
            async with trio.open_nursery() as inner:
                sock = await anyio.connect_tcp("127.0.0.1", port)
                connection = Connection(sock, GrpcProtocol(client_side=True))
                await inner.start(connection.run)
                call = V1Call(connection, authority="test", token=token)
                await call.join("x", "lobby")
                frame = await call.receive()
                inner.cancel_scope.cancel()
            return frame.welcome.name if frame is not None else None

        assert await name_with("first-token") == "alice"
        assert await name_with("second-token") is None
        held = V1Call(
            await open_connection(nursery, "127.0.0.1", port), authority="test", token="first-token"
        )
        await held.join("x", "lobby")
        assert await held.receive() is not None
        tokens.write_text("second-token bob\n")
        server.send_signal(signal.SIGHUP)
        await eventually(lambda: name_with("second-token"), "bob")
        assert await name_with("first-token") is None
        while await held.receive() is not None:  # the call open with the old token ends
            pass
        assert held.status is not None and held.status.status_message == "token revoked"
        server.send_signal(signal.SIGTERM)
        await server.wait()
        log = "\n".join(await Lines(server.stderr).rest())
    assert "token file reloaded" in log
    assert "first-token" not in log and "second-token" not in log


async def test_revoked_or_renamed_tokens_end_their_open_calls(
    start_server, tmp_path, caplog
) -> None:
    path = _tokens(tmp_path, "t-alice alice\nt-go gopher\nt-bob bob\n")
    book = TokenBook(path)
    harness: Harness = await start_server(tokens=book)
    with trio.fail_after(10):
        alice = await _call_with(harness, "t-alice")
        bob_call = await _call_with(harness, "t-bob")
        go_connection, _ = await harness.connection()
        gopher = LegacyCall(go_connection, authority="test", token="t-go")
        await gopher.send("ignored", "hello")
        for call in (alice, bob_call):
            assert (await call.receive()) is not None  # welcome
        while (echo := await gopher.receive()) is not None and echo.text != "hello":
            pass
        path.write_text("t-go gopher-renamed\nt-bob bob\n")
        assert book.reload() == {b"t-alice", b"t-go"}
        for ended in (alice, gopher):
            while await ended.receive() is not None:
                pass
        await bob_call.send("still here", "b1")
        while (frame := await bob_call.receive()) is not None and frame.WhichOneof(
            "frame"
        ) != "ack":
            pass
    assert frame is not None  # bob's call goes on
    for ended in (alice, gopher):
        assert ended.status is not None
        assert ended.status.status_code is StatusCode.UNAUTHENTICATED
        assert ended.status.status_message == "token revoked"
    log = caplog.text
    assert log.count("token revoked; call ended") == 2
    assert "alice (" in log and "gopher (" in log
    assert "t-alice" not in log and "t-go" not in log


# -- limits --------------------------------------------------------------------


async def test_a_member_over_the_rate_limit_is_paced_in_order_and_others_are_unaffected(
    start_server,
) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=20))
    with trio.fail_after(20):
        calm = await harness.v1("calm")
        fast = await harness.v1("fast")
        assert fast.welcome.rate_limit == 20  # a client can say why it is slowed
        for n in range(60):  # a burst of 40, then 20 more at 20 a second
            await fast.call.send(f"fast {n}", f"f{n}")
        acks = [(await fast.next_of("ack")).ack for _ in range(60)]
        await still_served(calm, "still fine")
    assert [ack.client_msg_id for ack in acks] == [f"f{n}" for n in range(60)]
    seqs = [ack.seq for ack in acks]
    assert seqs == sorted(seqs) and len(set(seqs)) == 60  # stored once each, in order
    assert not [f for f in fast.unread if f.WhichOneof("frame") == "error"]


async def test_an_original_client_over_the_rate_limit_is_paced_not_ended(start_server) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=20))
    with trio.fail_after(20):
        watcher = await harness.v1("watcher")
        call, _ = await harness.legacy()
        for n in range(60):
            await call.send("old", f"line {n}")
        echoes = [(await call.receive()) for _ in range(60)]
        seen = [(await watcher.next_message()).text for _ in range(60)]
    assert [echo.text for echo in echoes if echo is not None] == [f"line {n}" for n in range(60)]
    assert seen == [f"line {n}" for n in range(60)]
    assert call.status is None  # still in the room


async def test_a_client_flooding_past_the_pace_is_ended_with_resource_exhausted(
    start_server,
) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=1))
    with trio.fail_after(20):
        calm = await harness.v1("calm")
        call, _ = await harness.legacy()
        for n in range(400):  # far more than 30 seconds' worth, without waiting
            await call.send("flood", f"spam {n}")
        while await call.receive() is not None:
            pass
        assert call.status is not None
        assert call.status.status_code is StatusCode.RESOURCE_EXHAUSTED
        assert "at most 1 a second" in call.status.status_message
        await still_served(calm, "unaffected")


async def test_piped_lines_over_the_rate_limit_are_paced_not_lost(start_server, nursery) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=50))
    with trio.fail_after(30):
        watcher = await harness.v1("watcher")
        process = await start(
            nursery, "join", "--server", f"127.0.0.1:{harness.port}", "--history", "0"
        )
        lines = [f"line {n}" for n in range(150)]
        await send_lines(process, *lines, close=True)
        await process.wait()
        seen = [(await watcher.next_message()).text for _ in lines]
    assert process.returncode == 0
    assert sorted(seen) == sorted(lines) and len(set(seen)) == len(lines)


async def test_a_message_of_many_megabytes_is_refused_before_it_is_buffered(
    start_server,
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        calm = await harness.v1("calm")
        peer = await RawPeer.connect(harness.port)
        await peer.send(peer.headers(1, request_headers()))
        # A gRPC header announcing 50 MB, then the first bytes of it.
        await peer.send(peer.data(1, b"\x00" + (50_000_000).to_bytes(4, "big") + b"x" * 1000))
        received = b""
        while grpc_status(received) is None:
            received += await peer.sock.receive(65536)
        await peer.aclose()
        assert grpc_status(received) == str(StatusCode.RESOURCE_EXHAUSTED.value)
        await still_served(calm, "after the big one")


async def test_a_full_room_refuses_with_resource_exhausted(start_server) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=0, max_members_per_room=2))
    with trio.fail_after(10):
        await harness.v1("one")
        await harness.v1("two")
        call = await _call_with(harness, None, "three")
        assert await call.receive() is None
        assert call.status is not None
        assert call.status.status_code is StatusCode.RESOURCE_EXHAUSTED
        assert "full" in call.status.status_message


async def test_connections_per_address_are_limited(start_server) -> None:
    harness: Harness = await start_server(max_conns_per_addr=2)
    with trio.fail_after(10):
        first = await harness.v1("one")
        await harness.v1("two")
        call = await _call_with(harness, None, "three")
        assert await call.receive() is None
        assert call.status is not None
        assert call.status.status_code is StatusCode.RESOURCE_EXHAUSTED
        assert "at most 2" in call.status.status_message
        await still_served(first, "the first two are fine")


# -- hostile peers ---------------------------------------------------------------


async def test_bytes_that_are_not_http2_close_that_connection_only(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        calm = await harness.v1("calm")
        peer = await RawPeer.connect(harness.port, preface=False)
        await peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
        await peer.read_until_closed()
        await still_served(calm, "garbage did not hurt")


async def test_a_connection_that_sends_nothing_is_closed_after_the_handshake_timeout(
    start_server, autojump_clock: trio.testing.MockClock
) -> None:
    harness: Harness = await start_server()  # 10 s to make a first call, on a virtual clock
    with trio.fail_after(30):
        calm = await harness.v1("calm")  # made its call in time: stays
        silent = [await RawPeer.connect(harness.port, preface=False) for _ in range(5)]
        preface_only = await RawPeer.connect(harness.port)
        for peer in [*silent, preface_only]:
            await peer.read_until_closed()
        assert harness.server.connection_count == 1
        await still_served(calm, "the silent ones are gone")


@pytest.mark.parametrize("flood", ["resets", "pings", "settings"])
async def test_floods_end_in_goaway_enhance_your_calm(start_server, flood: str) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        calm = await harness.v1("calm")
        peer = await RawPeer.connect(harness.port)
        burst = b""
        for n in range(1, 600):
            if flood == "resets":  # CVE-2023-44487: open a stream and reset it at once
                stream_id = 2 * n - 1
                burst += peer.headers(stream_id, request_headers()) + peer.reset(stream_id)
            elif flood == "pings":
                burst += peer.ping(n)
            else:
                burst += peer.settings()
        await peer.send(burst)
        received = await peer.read_until_closed()
        assert goaway_code(received) == ENHANCE_YOUR_CALM
        await still_served(calm, f"after a {flood} flood")


async def test_pings_are_answered_in_order_within_the_answer_delay(
    start_server, autojump_clock: trio.testing.MockClock
) -> None:
    # Answers are held a little to spare a busy server a write per PING (flusher.py).
    harness: Harness = await start_server()
    with trio.fail_after(30):
        peer = await RawPeer.connect(harness.port)
        await peer.send(peer.headers(1, request_headers()))
        received = b""
        for n in range(1, 6):
            sent_at = trio.current_time()
            await peer.send(peer.ping(n) + peer.ping(100 + n))
            while len(ping_answers(received)) < 2 * n:
                received += await peer.sock.receive(65536)
            assert trio.current_time() - sent_at <= 2 * ANSWER_DELAY_SECONDS
        assert ping_answers(received) == [m for n in range(1, 6) for m in (n, 100 + n)]
        await peer.aclose()


async def test_a_peer_that_vanished_is_removed_by_keepalive(
    start_server, autojump_clock: trio.testing.MockClock
) -> None:
    harness: Harness = await start_server()  # pinged after 30 s, dropped 20 s later
    with trio.fail_after(120):
        calm = await harness.v1("calm")
        ghost = await RawPeer.connect(harness.port)
        await ghost.send(ghost.headers(1, request_headers()))
        # It never reads again, never answers a ping: as if its machine went away.
        await settles(lambda: harness.server.hub.member_count() == 2)
        await settles(lambda: harness.server.hub.member_count() == 1)
        await ghost.aclose()
        await still_served(calm, "the ghost is gone")


async def test_a_peer_sending_beyond_its_window_is_cut_off(start_server) -> None:
    # A rate limit of one a second stops the server reading after the burst of two, so
    # the stream's window is not given back; the peer sends on regardless.
    harness: Harness = await start_server(limits=Limits(rate_limit=1))
    with trio.fail_after(10):
        calm = await harness.v1("calm")
        peer = await RawPeer.connect(harness.port)
        await peer.send(peer.headers(1, request_headers()))
        text = chat_pb2.ChatMessage(user_id="x", text="y" * 4000).SerializeToString()
        message = b"\x00" + len(text).to_bytes(4, "big") + text
        await peer.send(b"".join(peer.data(1, message) for _ in range(400)))  # 1.6 MB > window
        await peer.read_until_closed()
        await still_served(calm, "the overflow was cut off")
