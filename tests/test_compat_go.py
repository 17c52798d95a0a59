"""A real grpc-go client, generated from proto/chat.proto as the tutorial's Go users would.

Built offline from Debian's Go packages (GOPATH mode, no module proxy) by the go_client
fixture (tests/conftest.py, tests/gobuild.py): .ci/run installs them, and these tests
fail rather than skip there.
"""

from __future__ import annotations

import subprocess
import time
from functools import partial
from pathlib import Path

import trio

from tests.helpers import Harness
from tests.processes import Lines, send_lines


async def _go(nursery: trio.Nursery, client: Path, harness: Harness, name: str) -> trio.Process:
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [str(client), f"127.0.0.1:{harness.port}", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    )
    return process


async def test_go_client_sees_its_own_message_with_the_server_time(
    start_server, nursery, go_client: Path
) -> None:
    harness: Harness = await start_server()
    before = int(time.time())
    with trio.fail_after(20):
        go = await _go(nursery, go_client, harness, "GoClient")
        await send_lines(go, "hello from go", "exit")
        received = await Lines(go.stdout).rest()
        await go.wait()
    user, text, timestamp = received[0].split("\t")
    assert (user, text) == ("GoClient", "hello from go")
    assert before <= int(timestamp) <= int(time.time())
    assert go.returncode == 0  # the server ended the stream with OK after the echo


async def test_go_client_and_a_purechat_member_talk(start_server, nursery, go_client: Path) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        go = await _go(nursery, go_client, harness, "GoClient")
        go_lines = Lines(go.stdout)
        await send_lines(go, "hi alice")
        heard_by_alice = await alice.next_message()
        await alice.say("hi go")
        heard_by_go = [await go_lines.next() for _ in range(2)]
        await send_lines(go, "exit")
        await go.wait()
    assert (heard_by_alice.user, heard_by_alice.text) == ("GoClient", "hi alice")
    assert [line.split("\t")[:2] for line in heard_by_go if line] == [
        ["GoClient", "hi alice"],
        ["alice", "hi go"],
    ]
    assert go.returncode == 0


async def test_go_client_gets_invalid_argument_naming_the_limit(
    start_server, nursery, go_client: Path
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        go = await _go(nursery, go_client, harness, "GoClient")
        await send_lines(go, "x" * 5000, close=True)
        said = await Lines(go.stderr).rest()
        await go.wait()
    assert said == ["InvalidArgument\tmessage text is longer than the limit of 4096 bytes"]
    assert go.returncode == 1
