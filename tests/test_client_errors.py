"""A failed connection is told in a sentence that says what failed, from real failures:
certificates trustme issues, a name that does not exist, closed and silent ports; a
refused token in the client's own words (its options), never the wire's."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import anyio.abc
import pytest
import trio
import trustme
from anyio.streams.tls import TLSStream

from purechat import cli
from purechat.client import calls
from purechat.client.calls import connect
from purechat.client.errors import (
    Failure,
    diagnose,
    failure_reason,
    failure_sentence,
    looks_like_tls,
    tls_hint,
    token_sentence,
)
from purechat.server.auth import TokenBook
from purechat.status import token_revoked
from tests.helpers import Harness
from tests.processes import Lines, send_lines, start

Serve = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_for_localhost(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)  # not for 127.0.0.1
    context.set_alpn_protocols(["h2"])
    return context


async def _listening(nursery: trio.Nursery, serve: Serve) -> int:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)

    async def run() -> None:
        async with listener:
            await listener.serve(serve)

    nursery.start_soon(run)
    return int(listener.extra(anyio.abc.SocketAttribute.local_port))


def _tls_server(context: ssl.SSLContext) -> Serve:
    async def serve(sock: anyio.abc.SocketStream) -> None:
        async with sock:
            try:
                tls = await TLSStream.wrap(sock, server_side=True, ssl_context=context)
                await tls.receive()
            except (anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError, OSError):
                pass

    return serve


async def _failure(host: str, port: int, context: ssl.SSLContext | None) -> BaseException:
    try:
        sock = await connect(host, port, context)
    except BaseException as error:  # noqa: BLE001 -- the failure is what is tested
        return error
    await sock.aclose()
    raise AssertionError(f"connected to {host}:{port}")


@pytest.fixture
async def closed_port() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        yield probe.getsockname()[1]  # bound, not listening: refused


async def test_a_certificate_nobody_trusts_says_to_pass_the_ca(nursery, tls_for_localhost) -> None:
    port = await _listening(nursery, _tls_server(tls_for_localhost))
    with trio.fail_after(10):
        error = await _failure("localhost", port, ssl.create_default_context())
    sentence = failure_sentence(error, "localhost", port)
    assert diagnose(error).failure is Failure.UNTRUSTED
    assert sentence.startswith(f"The certificate of the server at localhost:{port} is not trusted")
    assert "--tls-ca FILE" in sentence and "operation not permitted" not in sentence


async def test_a_certificate_for_another_name_says_so(nursery, ca, tls_for_localhost) -> None:
    port = await _listening(nursery, _tls_server(tls_for_localhost))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    with trio.fail_after(10):
        error = await _failure("127.0.0.1", port, client)
    assert failure_reason(error) == "certificate for another name"
    assert failure_sentence(error, "127.0.0.1", port).startswith(
        f"The certificate of the server at 127.0.0.1:{port} is not for 127.0.0.1"
    )


async def test_an_unknown_host_is_not_an_unknown_error() -> None:
    with trio.fail_after(30):
        error = await _failure("nonexistent.invalid", 50051, None)
    sentence = failure_sentence(error, "nonexistent.invalid", 50051)
    # Without a name server (a sandbox), the lookup fails rather than finding nothing.
    assert diagnose(error).failure in (Failure.NOT_FOUND, Failure.LOOKUP_FAILED)
    assert "nonexistent.invalid" in sentence and "unknown error" not in sentence


async def test_a_closed_port_is_connection_refused(closed_port: int) -> None:
    with trio.fail_after(10):
        error = await _failure("127.0.0.1", closed_port, None)
    assert failure_reason(error) == "connection refused"
    assert failure_sentence(error, "127.0.0.1", closed_port) == (
        f"Nothing is listening at 127.0.0.1:{closed_port} (connection refused): is the "
        "server running, on that port?"
    )


async def test_a_server_that_never_answers_times_out(monkeypatch) -> None:
    monkeypatch.setattr(calls, "CONNECT_TIMEOUT", 0.2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts; nobody ever answers the TLS hello
        port = silent.getsockname()[1]
        with trio.fail_after(10):
            error = await _failure("127.0.0.1", port, ssl.create_default_context())
    assert failure_sentence(error, "127.0.0.1", port) == (
        f"The server at 127.0.0.1:{port} did not answer in time."
    )


async def test_a_reset_during_the_handshake_is_connection_reset(nursery) -> None:
    async def reset(sock: anyio.abc.SocketStream) -> None:
        raw = sock.extra(anyio.abc.SocketAttribute.raw_socket)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await sock.receive()  # the client hello
        await anyio.aclose_forcefully(sock)

    port = await _listening(nursery, reset)
    with trio.fail_after(10):
        error = await _failure("127.0.0.1", port, ssl.create_default_context())
    assert failure_reason(error) == "connection reset"
    assert failure_sentence(error, "127.0.0.1", port).startswith(
        f"The server at 127.0.0.1:{port} reset the connection"
    )


async def test_tls_against_a_plaintext_port_says_try_without_tls(nursery) -> None:
    async def http1(sock: anyio.abc.SocketStream) -> None:
        async with sock:
            await sock.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    port = await _listening(nursery, http1)
    with trio.fail_after(10):
        error = await _failure("127.0.0.1", port, ssl.create_default_context())
    assert "try without --tls" in failure_sentence(error, "127.0.0.1", port)


def test_only_bytes_that_look_like_tls_get_the_try_tls_hint(tls_for_localhost) -> None:
    # What an OpenSSL server answers to a handshake record it cannot use: an alert.
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = tls_for_localhost.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(b"\x16\x03\x01\x00\x05hello")
    with pytest.raises(ssl.SSLError):
        server.do_handshake()
    alert = outgoing.read()
    assert looks_like_tls(alert) and tls_hint(alert)
    assert tls_hint(b"")  # closed without a word, as TLS servers do on an HTTP/2 preface
    for other in (b"HTTP/1.1 400 Bad Request\r\n", b"SSH-2.0-OpenSSH_9.6\r\n", b"\x00\x00"):
        assert not looks_like_tls(other) and not tls_hint(other)


async def test_purechat_join_says_to_pass_the_ca(
    start_server, nursery, ca, tls_for_localhost
) -> None:
    harness: Harness = await start_server(ssl_context=tls_for_localhost)
    with trio.fail_after(30):
        process = await start(nursery, "join", "--server", f"localhost:{harness.port}", "--tls")
        await send_lines(process, "hello", close=True)
        await process.wait()
        stderr = await Lines(process.stderr).rest()
    assert process.returncode == 1
    assert stderr[-1].startswith(
        f"purechat: The certificate of the server at localhost:{harness.port} is not trusted"
    )
    assert stderr[-1].endswith("pass its certificate with --tls-ca FILE.")


@pytest.mark.parametrize("command", ["serve", "join", "post", "rooms", "who"])
def test_help_shows_defaults_that_exist_and_never_none(command: str, capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in shown and "(default: False)" not in shown
    if command == "serve":
        assert "(default: 50051)" in shown  # the defaults that are there are shown


def test_join_help_shows_where_the_token_comes_from_once(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PURECHAT_TOKEN", "do-not-show-me")
    with pytest.raises(SystemExit):
        cli.main(["join", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert shown.count("(default: $PURECHAT_TOKEN, or the session") == 1
    assert "do-not-show-me" not in shown and shown.count("default:") == shown.count("(default:")


async def test_a_missing_or_refused_token_names_the_clients_own_options(
    start_server, nursery, tmp_path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret alice\n")
    harness: Harness = await start_server(tokens=TokenBook(tokens))
    where = ("--server", f"127.0.0.1:{harness.port}")
    said = {}
    with trio.fail_after(30):
        for command in ("join", "post"):
            for token in ((), ("--token", "wrong")):
                process = await start(nursery, command, *where, *token)
                await send_lines(process, "hello", close=True)
                await process.wait()
                assert process.returncode == 1
                said[command, bool(token)] = (await Lines(process.stderr).rest())[-1]
    missing = "purechat: The server requires a token: pass one with --token or PURECHAT_TOKEN."
    refused = (
        "purechat: The server does not accept this token: pass a valid one with --token or "
        "PURECHAT_TOKEN."
    )
    assert said == {
        ("join", False): missing,
        ("join", True): refused,
        ("post", False): missing,
        ("post", True): refused,
    }


def test_a_revoked_token_is_told_apart_and_the_api_names_its_argument() -> None:
    revoked = token_revoked().status_message or ""
    assert token_sentence(revoked, given=True) == (
        "the server revoked this token: pass a valid one with --token or PURECHAT_TOKEN"
    )
    assert token_sentence("", given=False, where="connect(token=...)") == (
        "the server requires a token: pass one with connect(token=...)"
    )
    own = "your session was ended: log in again to come back"  # already a person's words
    assert token_sentence(own, given=True) == own
