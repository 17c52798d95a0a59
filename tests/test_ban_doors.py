"""A ban, a mute and a refusal at every door a person or a program uses.

A ban ends the member's session and refuses its rejoins from `purechat join` (in a
pseudo-terminal and in a pipe), from the web page in Chromium and from the tutorial's
grpc-go client with the account's token: on SQLite, and on two servers sharing a real
Redis, where a ban given on one server ends the sessions on the other within a second.
A mute refuses sends and lets reads through; a non-operator's /ban is refused with
the sentence, and the session goes on.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from purechat.app import ChatServer
from purechat.client.saved import Saved, SavedSessions
from purechat.client.session import Address
from purechat.core import Limits
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store import SqliteStore
from purechat.store.redis import RedisStore
from tests.accounts import CHEAP, PASSWORD, accounts_config, login, member, moderate, register
from tests.browser import JOINED, Browser, Page
from tests.helpers import Harness, Member
from tests.polling import settles
from tests.processes import PURECHAT, Lines, send_lines
from tests.redis_server import RedisProcess, free_port
from tests.test_interactive import PtyClient, _has, _idle_after

M = v1.ModerationCommand
# How soon a ban on one server must end the sessions on another (the promise).
WITHIN = 1.0


async def on_sqlite(start_server: Any, path: Path) -> Harness:
    """A server on SQLite (with a web port) and the accounts alice and spammer."""
    store = await SqliteStore.open(path)
    harness: Harness = await start_server(store=store, web_port=0, **accounts_config())
    await register(harness.server.directory, "alice", BY_PIPE, BY_PAGE, BY_GO)
    await settles(lambda: name_key(BY_GO) in harness.server.auth.account_keys)
    return harness


def logged_in(tmp_path: Path, harness: Harness, token: str, account: str) -> dict[str, str]:
    """The environment of a person `purechat login` logged in to harness's server."""
    state = tmp_path / f"state-{account}"
    server = Address("127.0.0.1", harness.port)
    SavedSessions(state / "purechat" / "sessions").save(
        Saved(str(server), token, account, 2**62), server
    )
    return {**os.environ, "XDG_STATE_HOME": str(state), "PURECHAT_SERVER": str(server)}


async def claimed(harness: Harness, room: str) -> Member:
    """alice, in room, which she owns."""
    alice = await member(harness, "alice", await login(harness, "alice"), room=room)
    assert (await moderate(alice, M.CLAIM)).WhichOneof("frame") == "ack"
    return alice


@asynccontextmanager
async def terminal(
    nursery: trio.Nursery, env: dict[str, str], *args: str
) -> AsyncIterator[tuple[trio.Process, PtyClient]]:
    """`purechat join ARGS` in a pseudo-terminal, read back through a terminal emulator."""
    import fcntl  # noqa: PLC0415
    import pty  # noqa: PLC0415
    import struct  # noqa: PLC0415
    import termios  # noqa: PLC0415

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    os.set_blocking(master, False)
    try:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [*PURECHAT, "join", *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env={**env, "TERM": "xterm-256color"},
                check=False,
                start_new_session=True,
            )
        )
        client = PtyClient(master)
        async with trio.open_nursery() as reading:  # stops reading before the fd closes
            reading.start_soon(client.pump)
            yield process, client
            reading.cancel_scope.cancel()
    finally:
        os.close(master)
        os.close(slave)


async def test_in_the_terminal_a_non_operators_ban_is_refused_and_a_ban_ends_the_session(
    start_server, nursery: trio.Nursery, tmp_path: Path
) -> None:
    harness = await on_sqlite(start_server, tmp_path / "chat.db")
    alice = await claimed(harness, "den")
    env = logged_in(tmp_path, harness, await login(harness, "spammer"), "spammer")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    with trio.fail_after(40):
        async with terminal(nursery, env, "--room", "den") as (process, client):
            await _idle_after(client, "joined den as spammer")
            client.type("/ban alice 1h\r")
            await _idle_after(client, "! Only an operator of this room may ban.")
            client.type("/ban\r")
            await _idle_after(client, "! usage: /ban NAME [DURATION] [REASON]")
            client.type("/mute alice 3y\r")
            await _idle_after(client, "! '3y' is not a duration")
            client.type("still here\r")  # the session went on through all of them
            assert (await alice.next_message()).text == "still here"
            client.type("/topic\r")
            await _idle_after(client, "this room has no topic")
            await moderate(alice, M.TOPIC, text="plans")
            await client.until(lambda: _has(client, "* alice set the topic: plans"))
            banned = await moderate(alice, M.BAN, "spammer", seconds=3600, reason="spam")
            assert banned.WhichOneof("frame") == "ack"
            await process.wait()
            assert _has(client, "purechat: You were banned from den by alice")
            assert process.returncode == 1
            assert not _has(client, "Traceback")
        async with terminal(nursery, env, "--room", "den") as (again, client):
            await again.wait()
            assert _has(client, "purechat: You are banned from this room (by alice")
            assert again.returncode == 1


async def test_in_a_pipe_a_mute_refuses_sends_and_lets_reads_through(
    start_server, nursery: trio.Nursery, tmp_path: Path
) -> None:
    harness = await on_sqlite(start_server, tmp_path / "chat.db")
    alice = await claimed(harness, "lobby")
    env = logged_in(tmp_path, harness, await login(harness, "spammer"), "spammer")
    with trio.fail_after(30):
        pipe = await _pipe(nursery, env)
        lines = Lines(pipe.stdout)
        while (await lines.next() or "* spammer joined") != "* spammer joined":
            pass
        muted = await moderate(alice, M.MUTE, "spammer", seconds=600, reason="noise")
        assert muted.WhichOneof("frame") == "ack"
        while "was muted by alice" not in (await lines.next() or "was muted by alice"):
            pass
        await alice.say("can you read this?", "a1")
        while (line := await lines.next()) is not None and "can you read this?" not in line:
            pass
        assert line is not None and line.endswith("alice: can you read this?")
        await send_lines(pipe, "BUY NOW", close=True)
        assert await pipe.wait() == 1
        said = (await Lines(pipe.stderr).rest())[-1]
        assert said.startswith("purechat: Message not sent: you are muted in this room (by alice")


async def _pipe(nursery: trio.Nursery, env: dict[str, str], *args: str) -> trio.Process:
    """`purechat join` in a pipe (stdin kept open), showing what the room says."""
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [*PURECHAT, "join", "--room", "lobby", "--history", "0", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    )
    return process


async def _go(nursery: trio.Nursery, go_client: Path, port: int, token: str) -> trio.Process:
    """The tutorial's grpc-go client, with the account's session token."""
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [str(go_client), f"127.0.0.1:{port}", "whoever"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
            env={**os.environ, "PURECHAT_TOKEN": token},
        )
    )
    return process


async def _page(pages: Browser, web_port: int, name: str) -> Page:
    """name logged in on the web page, in the lobby."""
    page = await pages.new_page()
    await page.open(f"http://127.0.0.1:{web_port}/")
    await _log_in(page, name)
    await page.wait_for(JOINED)
    return page


async def _log_in(page: Page, name: str) -> None:
    from tests.test_web_moderation import fill  # noqa: PLC0415

    await fill(page, name=name, room="lobby", password=PASSWORD)
    await page.click("#join")


# Who comes in by which door (an account has one seat in a room: one each).
BY_PIPE, BY_PAGE, BY_GO = "spammer", "scammer", "troll"


async def _every_door_is_shut(
    nursery: trio.Nursery,
    pages: Browser,
    go_client: Path,
    tmp_path: Path,
    *,
    banning: Harness,
    banned: Harness,
) -> None:
    """Three accounts in the lobby of `banned`, by three doors (a pipe, the page,
    grpc-go); alice bans them on `banning`: each session ends within WITHIN seconds of
    its ban, saying why, and none can come back."""
    assert banned.server.web_port is not None
    alice = await claimed(banning, "lobby")
    env = logged_in(tmp_path, banned, await login(banned, BY_PIPE), BY_PIPE)
    pipe = await _pipe(nursery, env)
    pipe_out = Lines(pipe.stdout)
    while (await pipe_out.next() or f"* {BY_PIPE} joined") != f"* {BY_PIPE} joined":
        pass
    go_token = await login(banned, BY_GO)
    go = await _go(nursery, go_client, banned.port, go_token)
    await send_lines(go, "hello from go")
    go_out = Lines(go.stdout)
    while (line := await go_out.next()) is not None and "hello from go" not in line:
        pass
    page = await _page(pages, banned.server.web_port, BY_PAGE)

    ended: dict[str, float] = {}
    said: dict[str, str] = {}

    async def ban(name: str) -> float:
        answer = await moderate(alice, M.BAN, name, seconds=3600, reason="spam")
        assert answer.WhichOneof("frame") == "ack", answer
        return trio.current_time()

    async def pipe_ends() -> None:
        banned_at = await ban(BY_PIPE)
        said["pipe"] = (await Lines(pipe.stderr).rest())[-1]
        ended["pipe"] = trio.current_time() - banned_at

    async def go_ends() -> None:
        banned_at = await ban(BY_GO)
        said["go"] = (await Lines(go.stderr).next()) or ""
        ended["go"] = trio.current_time() - banned_at

    async def page_ends() -> None:
        banned_at = await ban(BY_PAGE)
        await page.wait_for("document.querySelector('#join-view').hidden === false")
        ended["page"] = trio.current_time() - banned_at
        said["page"] = await page.text_of("#join-error")

    for watcher in (pipe_ends, go_ends, page_ends):  # one ban at a time: acks in order
        async with trio.open_nursery() as watching:
            watching.start_soon(watcher)
    assert await pipe.wait() == 1
    await send_lines(go, "exit", close=True)
    assert await go.wait() == 1
    assert said["pipe"].startswith("purechat: You were banned from lobby by alice")
    assert said["go"].startswith("PermissionDenied\tYou were banned from lobby by alice")
    assert said["page"].startswith("You were banned from lobby by alice")
    assert max(ended.values()) < WITHIN, ended

    # Every rejoin is refused, by every door, with the sentence.
    refused = "You are banned from this room (by alice"
    again = await _pipe(nursery, env)
    await send_lines(again, "let me back in", close=True)
    assert await again.wait() == 1
    assert (await Lines(again.stderr).rest())[-1].startswith(f"purechat: {refused}")
    go_again = await _go(nursery, go_client, banned.port, go_token)
    assert ((await Lines(go_again.stderr).next()) or "").startswith(f"PermissionDenied\t{refused}")
    await send_lines(go_again, "exit", close=True)
    assert await go_again.wait() == 1
    await _log_in(page, BY_PAGE)
    await page.wait_for(
        f"document.querySelector('#join-error').textContent.startsWith({refused!r})"
    )


async def test_a_ban_shuts_every_door_on_sqlite(
    start_server, nursery: trio.Nursery, pages: Browser, go_client: Path, tmp_path: Path
) -> None:
    harness = await on_sqlite(start_server, tmp_path / "chat.db")
    with trio.fail_after(90):
        await _every_door_is_shut(
            nursery, pages, go_client, tmp_path, banning=harness, banned=harness
        )


class _Shared:
    """Two servers with accounts on one real redis-server."""

    def __init__(self, nursery: trio.Nursery, directory: Path):
        self.nursery = nursery
        self.redis = RedisProcess(directory, free_port())
        self.servers: list[tuple[ChatServer, RedisStore]] = []

    async def server(self, web_port: int | None = None) -> Harness:
        store = await RedisStore.open(self.redis.url, history=1000)
        config = ServerConfig(
            port=0,
            limits=Limits(rate_limit=0),
            web_port=web_port,
            password_cost=CHEAP,
            **{k: v for k, v in accounts_config().items() if k == "accounts"},
        )
        server = ChatServer(config, store)
        self.servers.append((server, store))
        return Harness(server, await self.nursery.start(server.serve), self.nursery)

    async def close(self) -> None:
        for server, store in self.servers:
            server.shutdown()
            await server.stopped()
            await store.aclose()


@pytest.fixture
async def shared(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[_Shared]:
    setup = _Shared(nursery, tmp_path)
    await setup.redis.start(nursery)
    try:
        yield setup
    finally:
        with trio.move_on_after(10):
            await setup.close()


async def test_a_ban_on_one_server_shuts_every_door_on_the_other_within_a_second(
    shared: _Shared, nursery: trio.Nursery, pages: Browser, go_client: Path, tmp_path: Path
) -> None:
    with trio.fail_after(90):
        a, b = await shared.server(), await shared.server(web_port=0)
        await register(a.server.directory, "alice", BY_PIPE, BY_PAGE, BY_GO)
        await settles(lambda: name_key(BY_GO) in b.server.auth.account_keys)
        await _every_door_is_shut(nursery, pages, go_client, tmp_path, banning=a, banned=b)
