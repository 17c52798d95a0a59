"""The server as a process: the listening line, signals, a taken port, token files."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import trio

from purechat.client.calls import V1Call, open_connection
from purechat.pb import purechat_v1_pb2 as v1
from purechat.transport import StatusCode
from tests.processes import Lines

# Tests pass their own --store when they need one; argparse keeps the last.
SERVE = [sys.executable, "-m", "purechat", "serve", "--store", "memory://"]


async def _start(nursery: trio.Nursery, *args: str) -> tuple[trio.Process, int]:
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [*SERVE, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    )
    assert process.stdout is not None
    line = b""
    while not line.endswith(b"\n"):
        chunk = await process.stdout.receive_some(1)
        assert chunk, "server exited before listening"
        line += chunk
    text = line.decode().strip()
    listening = re.fullmatch(r"purechat listening on 127\.0\.0\.1:(\d+); history kept in .+", text)
    assert listening, text
    return process, int(listening[1])


async def test_sigterm_ends_members_with_unavailable_and_exits_zero_in_time(nursery) -> None:
    with trio.fail_after(20):
        process, port = await _start(nursery)
        calls = []
        for name in ("alice", "bob"):
            connection = await open_connection(nursery, "127.0.0.1", port)
            call = V1Call(connection, authority="test")
            await call.join(name, "lobby")
            assert (await call.receive()) is not None
            calls.append(call)
        # A peer that connects and then does nothing at all.
        idle = socket.create_connection(("127.0.0.1", port))
        try:
            process.send_signal(signal.SIGTERM)
            for call in calls:
                while await call.receive() is not None:
                    pass
                assert call.status is not None
                assert call.status.status_code is StatusCode.UNAVAILABLE
                assert call.status.status_message == "server shutting down"
            with trio.fail_after(5):
                await process.wait()
        finally:
            idle.close()
    assert process.returncode == 0


async def test_sigint_exits_zero_without_a_traceback(nursery) -> None:
    with trio.fail_after(20):
        process, _ = await _start(nursery)
        process.send_signal(signal.SIGINT)
        with trio.fail_after(5):
            await process.wait()
        assert process.stderr is not None
        errors = (await process.stderr.receive_some(65536) or b"").decode()
    assert process.returncode == 0
    assert "Traceback" not in errors


async def test_a_taken_port_is_a_one_line_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with trio.fail_after(20):
            result = await trio.run_process(
                [*SERVE, "--port", str(port)], capture_stdout=True, capture_stderr=True, check=False
            )
    assert result.returncode != 0
    message = result.stderr.decode().strip()
    assert message == f"purechat: cannot listen on 127.0.0.1:{port}: Address already in use"
    assert result.stdout == b""


# -- token files ---------------------------------------------------------------


async def test_a_token_file_that_is_not_utf8_is_one_line_at_startup(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_bytes(b"good-token alice\nother-token b\xf6b\n")  # Latin-1, not UTF-8
    with trio.fail_after(20):
        result = await trio.run_process(
            [*SERVE, "--port", "0", "--tokens", str(tokens)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [f"purechat: {tokens}, line 2: not UTF-8 text"]
    assert result.stdout == b""


def _not_utf8(path: Path) -> str:
    path.write_bytes(b"first-token alice\nsecond-token b\xf6b\n")
    return f"{path}, line 2: not UTF-8 text"


def _unreadable(path: Path) -> str:
    # A directory in its place: unreadable as a file by anyone, root included (the
    # tests may run as root, whom chmod 000 does not stop).
    path.unlink()
    path.mkdir()
    return f"cannot read the token file {path}: Is a directory"


def _gone(path: Path) -> str:
    path.unlink()
    return f"cannot read the token file {path}: No such file or directory"


async def _member(nursery: trio.Nursery, port: int, token: str) -> tuple[V1Call, v1.Welcome]:
    call = V1Call(await open_connection(nursery, "127.0.0.1", port), authority="t", token=token)
    await call.join("ignored", "lobby")
    frame = await call.receive()
    assert frame is not None and frame.WhichOneof("frame") == "welcome", call.status
    return call, frame.welcome


async def _said(call: V1Call, text: str, client_msg_id: str) -> v1.Event:
    """Send text; the room's event for it, once acknowledged too."""
    await call.send(text, client_msg_id)
    acked, event = False, None
    while not (acked and event) and (frame := await call.receive()) is not None:
        if frame.WhichOneof("frame") == "ack":
            acked = acked or frame.ack.client_msg_id == client_msg_id
        elif frame.WhichOneof("frame") == "event" and frame.event.text == text:
            event = frame.event
    assert event is not None and acked, f"the call ended: {call.status}"
    return event


@pytest.mark.parametrize(
    "spoil", [_not_utf8, _unreadable, _gone], ids=["not utf-8", "unreadable", "gone"]
)
async def test_a_reload_that_cannot_read_the_token_file_keeps_the_server_and_its_tokens(
    nursery, tmp_path: Path, spoil
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("first-token alice\n")
    with trio.fail_after(30):
        process, port = await _start(nursery, "--tokens", str(tokens))
        log = Lines(process.stderr)
        alice, welcome = await _member(nursery, port, "first-token")
        assert welcome.name == "alice"
        sentence = spoil(tokens)
        process.send_signal(signal.SIGHUP)
        while True:
            line = await log.next()
            assert line is not None, "the server ended"
            assert "Traceback" not in line
            if line.endswith("keeping the tokens loaded before"):
                break
        assert line.endswith(f": {sentence}; keeping the tokens loaded before"), line
        # The member stays and talks; its token still opens a session.
        assert (await _said(alice, "still here", "m1")).user == "alice"
        async with trio.open_nursery() as later:
            _, rejoined = await _member(later, port, "first-token")
            assert rejoined.name.startswith("alice")
            later.cancel_scope.cancel()
        process.send_signal(signal.SIGTERM)
        await process.wait()
        rest = await log.rest()
    assert process.returncode == 0  # ended by SIGTERM, not by the reload
    assert not any("Traceback" in later_line for later_line in rest)
    assert not any("tokens loaded before" in later_line for later_line in rest)  # one line
