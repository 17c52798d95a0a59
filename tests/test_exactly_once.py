"""Exactly once and in order, whatever the rate limit, the network or the store does.

Each test is a way the promise used to break, tried as a user or an operator would:
a pipe under the default rate limit, a sender removed mid-pipe, a second server on
one SQLite file. (A flushed and a frozen Redis are in test_redis.py.)
"""

from __future__ import annotations

from pathlib import Path

import trio

from purechat.core import EndReason, Limits
from purechat.pb import purechat_v1_pb2 as v1
from purechat.store import SqliteStore
from tests.helpers import Harness, Member
from tests.processes import Lines, send_lines, start


def _pipe(harness: Harness, *more: str) -> list[str]:
    return ["join", "--server", f"127.0.0.1:{harness.port}", "--history", "0", *more]


async def _texts(member: Member, count: int) -> list[str]:
    return [(await member.next_message()).text for _ in range(count)]


async def test_a_pipe_over_the_rate_limit_is_stored_in_the_order_it_was_written(
    start_server, nursery
) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=10))
    lines = [f"{n:05d}" for n in range(60)]  # a burst of 20, then 10 a second
    with trio.fail_after(60):
        process = await start(nursery, *_pipe(harness, "--room", "t1", "--name", "solo"))
        for line in lines:  # written faster than the limit, but not all at once: the
            await send_lines(process, line)  # server's bucket refills between them
            await trio.sleep(0.04)
        await send_lines(process, close=True)
        await process.wait()
        reader = await harness.v1("reader", "t1", history=1000)
        stored = [(await reader.next_of("event")).event for _ in range(61)]
    assert process.returncode == 0
    messages = [e for e in stored if e.kind == v1.Event.MESSAGE]
    assert [m.text for m in messages] == lines
    assert [m.seq for m in messages] == list(range(1, 61))


async def test_a_sender_removed_mid_pipe_comes_back_and_loses_nothing(
    start_server, nursery, tmp_path: Path
) -> None:
    store = await SqliteStore.open(tmp_path / "purechat.db")
    harness: Harness = await start_server(store=store)
    lines = [f"line {n}" for n in range(2000)]
    try:
        with trio.fail_after(120):
            watcher = await harness.v1("watcher")
            process = await start(nursery, *_pipe(harness, "--name", "bot"))
            async with trio.open_nursery() as feeding:
                feeding.start_soon(send_lines, process, *lines)
                seen = await _texts(watcher, 500)
                # the server removes the sender while lines are in flight
                hub = harness.server.hub
                (bot,) = [m for m in hub.named_members() if m.name == "bot"]
                hub.evict(bot, EndReason.TOO_SLOW)
            await send_lines(process, close=True)
            seen += await _texts(watcher, 1500)
            await process.wait()
            problems = await Lines(process.stderr).rest()
    finally:
        await store.aclose()
    assert process.returncode == 0, problems
    assert seen == lines  # every line once, in the order written
    assert any("too slow" in line and "reconnecting" in line for line in problems)
    assert not any("not in a room" in line for line in problems)


async def test_a_second_server_on_a_sqlite_file_in_use_refuses_to_start(
    nursery, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'chat.db'}"
    with trio.fail_after(30):
        first = await start(nursery, "serve", "--port", "0", "--store", store)
        assert "listening on" in (await Lines(first.stdout).next() or "")
        second = await start(nursery, "serve", "--port", "0", "--store", store)
        await second.wait()
        said = await Lines(second.stderr).rest()
        first.terminate()
        await first.wait()
    assert second.returncode == 1
    assert said == [
        f"purechat: {tmp_path / 'chat.db'} is in use by another purechat server; one SQLite "
        "file serves one server (for several servers as one chat, use --store "
        "redis://HOST:PORT)"
    ]
