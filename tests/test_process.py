"""The server as a process: the listening line, signals, a taken port."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from functools import partial

import trio

from purechat.client.calls import V1Call, open_connection
from purechat.transport import StatusCode

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
