"""The Python client API for bots: the same session as `purechat join`, from Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
import trio

from purechat.app import ChatServer
from purechat.client import Event, SendRefused, connect
from purechat.core import Limits
from purechat.server import ServerConfig
from purechat.store import SqliteStore
from tests.helpers import Harness
from tests.polling import settles
from tests.processes import Lines

ROOT = Path(__file__).resolve().parent.parent


async def test_a_bot_sends_hears_and_leaves_with_everything_delivered(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        alice = await harness.v1("alice", "ci")
        async with connect(f"127.0.0.1:{harness.port}", name="bot", room="ci") as chat:
            assert chat.name == "bot" and "alice" in chat.members
            receipt = await chat.send("build 42 passed")
            assert receipt.seq == 1
            await alice.say("deploy?")
            heard = await _messages(chat.events(), 2)
            assert [(e.user, e.text, e.seq) for e in heard] == [
                ("bot", "build 42 passed", 1),
                ("alice", "deploy?", 2),
            ]
            chat.send_nowait("queued as the block ends")
        texts = [(await alice.next_message()).text for _ in range(3)]
    assert texts == ["build 42 passed", "deploy?", "queued as the block ends"]


async def _messages(events: AsyncIterator[Event], count: int) -> list[Event]:
    """The next count messages of events (joins and leaves passed over)."""
    found: list[Event] = []
    async for event in events:
        if event.kind == "message":
            found.append(event)
            if len(found) == count:
                break
    return found


async def test_a_line_refused_for_good_raises_with_the_reason(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        async with connect(f"127.0.0.1:{harness.port}", name="bot") as chat:
            with pytest.raises(SendRefused, match="the limit is 4096 bytes"):
                await chat.send("x" * 5000)
            assert (await chat.send("fine")).seq == 1


async def test_a_bot_outlives_a_server_restart_and_resumes_without_gap_or_double(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    async def serve(port: int) -> Harness:
        config = ServerConfig(port=port, limits=Limits(rate_limit=0))
        server = ChatServer(config, await SqliteStore.open(tmp_path / "chat.db"))
        return Harness(server, await nursery.start(server.serve), nursery)

    with trio.fail_after(60):
        harness = await serve(0)
        async with connect(f"127.0.0.1:{harness.port}", name="bot", give_up_after=None) as chat:
            events = chat.events()
            other = await harness.v1("other")
            await other.say("before")
            harness.server.shutdown()
            await harness.server.stopped()
            await harness.server.store.aclose()
            chat.send_nowait("typed while away")
            harness = await serve(harness.port)
            other = await harness.v1("other")
            await other.say("after")
            seen = [(event.seq, event.text) for event in await _messages(events, 3)]
        await harness.server.store.aclose()
    assert [text for _, text in seen] == ["before", "typed while away", "after"] or [
        text for _, text in seen
    ] == ["before", "after", "typed while away"]
    assert [seq for seq, _ in seen] == [1, 2, 3]  # resumed: no gap, nothing twice


async def test_the_next_server_is_tried_when_the_first_is_down(start_server) -> None:
    harness: Harness = await start_server()
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        down = probe.getsockname()[1]  # bound, never listening: connections are refused
        with trio.fail_after(30):
            servers = [f"127.0.0.1:{down}", f"127.0.0.1:{harness.port}"]
            async with connect(servers, name="bot") as chat:
                assert (await chat.send("through the second")).seq == 1


def _readme_bot(port: int) -> str:
    """The README's bot example, as written there, pointed at port."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("### Writing a bot in Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert '"127.0.0.1:50051"' in code
    return code.replace('"127.0.0.1:50051"', f'"127.0.0.1:{port}"')


async def test_the_readme_bot_interrupted_with_ctrl_c_leaves_quietly(
    start_server, nursery: trio.Nursery, tmp_path: Path
) -> None:
    harness: Harness = await start_server()
    bot = tmp_path / "bot.py"
    bot.write_text(_readme_bot(harness.port))
    with trio.fail_after(30):
        alice = await harness.v1("alice", "ci")
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [sys.executable, str(bot)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        )
        assert await Lines(process.stdout).next() == "stored as 1"
        await alice.say("deploy?")
        while (event := await alice.next_message()).user != "ci-bot" or event.seq == 1:
            pass
        assert event.text == "deploying, alice"  # it is listening: interrupt it there
        process.send_signal(signal.SIGINT)
        await process.wait()
        errors = await Lines(process.stderr).rest()
        await settles(lambda: harness.server.hub.members_of("ci") == ("alice",))
    assert errors == []  # no traceback, no exception group: nothing at all
    assert process.returncode == 130  # as a shell expects of a program Ctrl-C ended
