"""The interactive client in a real pseudo-terminal, read back through a terminal emulator."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import termios
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import pyte
import trio

from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from tests.accounts import accounts_config, login, member, register
from tests.helpers import Harness
from tests.polling import settles
from tests.processes import PURECHAT

COLUMNS, ROWS = 100, 24


class _Terminal(pyte.Screen):  # type: ignore[misc]
    """A screen that answers the cursor-position queries prompt_toolkit sends."""

    def __init__(self, answer: Callable[[bytes], None]):
        super().__init__(COLUMNS, ROWS)
        self._answer = answer

    def write_process_input(self, data: str) -> None:
        self._answer(data.encode())


class PtyClient:
    def __init__(self, master: int):
        self.master = master
        self.screen = _Terminal(lambda data: os.write(self.master, data))
        self.stream = pyte.ByteStream(self.screen)
        self.changed = trio.Event()

    async def pump(self) -> None:
        """Feed everything the client draws into the emulated screen."""
        while True:
            await trio.lowlevel.wait_readable(self.master)
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the child closed the terminal
                data = b""
            if not data:
                self.changed.set()
                return
            self.stream.feed(data)
            self.changed.set()
            self.changed = trio.Event()

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.screen.display]

    def input_line(self) -> str:
        return [line for line in self.lines() if line][-1]

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self.changed.wait()

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())


async def test_typing_is_not_disturbed_by_incoming_messages(start_server, nursery) -> None:
    harness: Harness = await start_server()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    os.set_blocking(master, False)
    settings_before = termios.tcgetattr(slave)
    env = {**os.environ, "TERM": "xterm-256color"}
    try:
        with trio.fail_after(30):
            process: trio.Process = await nursery.start(
                partial(
                    trio.run_process,
                    [*PURECHAT, "join", "--server", f"127.0.0.1:{harness.port}", "--name", "alice"],
                    stdin=slave,
                    stdout=slave,
                    stderr=slave,
                    env=env,
                    check=False,
                    start_new_session=True,
                )
            )
            client = PtyClient(master)
            nursery.start_soon(client.pump)
            await client.until(lambda: any("joined lobby as alice" in x for x in client.lines()))
            await client.until(lambda: client.input_line().endswith("[lobby] >"))

            client.type("half typed")
            await client.until(lambda: client.input_line() == "[lobby] > half typed")

            bob = await harness.v1("bob")
            await bob.say("hello from bob")
            await bob.say("\x1b[2J\x1b[Hgotcha")
            await client.until(
                lambda: (
                    any("\\x1b[2J" in line for line in client.lines())
                    and client.input_line() == "[lobby] > half typed"
                )
            )
            screen = client.lines()
            # Others' messages carry their numbers too: what /reply and /react take.
            assert any(line.endswith("bob: hello from bob  #1") for line in screen)
            assert any(line.endswith("bob: \\x1b[2J\\x1b[Hgotcha  #2") for line in screen)
            assert [line for line in screen if "half typed" in line] == ["[lobby] > half typed"]

            client.type(" done\r")
            while (event := await bob.next_message()).user != "alice":
                pass
            assert event.text == "half typed done"

            client.type("/who\r")
            await client.until(lambda: any("in lobby: alice, bob" in x for x in client.lines()))

            client.type("\x04")  # Ctrl-D
            await process.wait()
        settings_after = termios.tcgetattr(slave)
    finally:
        os.close(master)
        os.close(slave)
    assert process.returncode == 0
    assert not any("Traceback" in line for line in client.lines())
    # the terminal is back as it was: line editing and echo restored
    assert settings_after[3] & (termios.ICANON | termios.ECHO) == settings_before[3] & (
        termios.ICANON | termios.ECHO
    )


@asynccontextmanager
async def _in_a_terminal(
    nursery: trio.Nursery, harness: Harness, *args: str, env: dict[str, str] | None = None
) -> AsyncIterator[tuple[trio.Process, PtyClient]]:
    """purechat join in a pseudo-terminal, read back through a terminal emulator."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    os.set_blocking(master, False)
    environment = {**os.environ, "TERM": "xterm-256color", **(env or {})}
    try:
        process: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [*PURECHAT, "join", "--server", f"127.0.0.1:{harness.port}", *args],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=environment,
                check=False,
                start_new_session=True,
            )
        )
        client = PtyClient(master)
        nursery.start_soon(client.pump)
        yield process, client
    finally:
        os.close(master)
        os.close(slave)


def _has(client: PtyClient, text: str) -> bool:
    return any(text in line for line in client.lines())


async def _idle_after(client: PtyClient, text: str) -> None:
    """Until text is shown and the prompt is drawn again below it.

    prompt_toolkit prints above the prompt with the terminal in cooked mode, so keys
    typed meanwhile are echoed by the terminal itself: a person sees them twice, a test
    that types too early reads them as a stray line.
    """

    def settled() -> bool:
        lines = [line for line in client.lines() if line]
        marks = [n for n, line in enumerate(lines) if text in line]
        return (
            bool(marks)
            and lines[-1].startswith("[")
            and lines[-1].endswith("] >")
            and (marks[-1] < len(lines) - 1)
        )

    await client.until(settled)


async def test_a_sent_line_shows_once_pending_then_with_its_number(
    start_server, nursery, tmp_path
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        async with _in_a_terminal(
            nursery, harness, "--name", "alice", env={"XDG_DATA_HOME": str(tmp_path)}
        ) as (process, client):
            await _idle_after(client, "* alice joined")
            client.type("hello, bob\r")
            await client.until(lambda: _has(client, "alice: hello, bob  #1"))
            # once, when the screen has settled: not echoed as typed, no longer pending
            await client.until(
                lambda: len([line for line in client.lines() if "hello, bob" in line]) == 1
            )
            assert not _has(client, "pending")
            client.type("\x04")
            await process.wait()
    assert process.returncode == 0
    assert (tmp_path / "purechat" / "history").read_text().count("hello, bob") == 1


async def test_commands_never_end_the_session_and_say_how_to_use_them(
    start_server, nursery, tmp_path
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        async with _in_a_terminal(
            nursery, harness, "--name", "alice", env={"XDG_DATA_HOME": str(tmp_path)}
        ) as (process, client):
            await _idle_after(client, "* alice joined")
            client.type("/join bad room name\r")
            await client.until(lambda: _has(client, "! Room names cannot contain spaces"))
            client.type("/join\r")
            await client.until(lambda: _has(client, "! usage: /join ROOM"))
            client.type("/me\r")
            await client.until(lambda: _has(client, "! usage: /me ACTION"))
            client.type("/rooms\r")
            await client.until(lambda: _has(client, "rooms: lobby (1)"))
            client.type("/nick alicia\r")
            await client.until(lambda: _has(client, "joined lobby as alicia"))
            client.type("still here\r")
            await client.until(lambda: _has(client, "alicia: still here"))
            client.type("/quit\r")
            await process.wait()
    assert process.returncode == 0


async def test_a_pasted_block_is_one_message_shown_indented_and_mentions_ring(
    start_server, nursery, tmp_path
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        async with _in_a_terminal(
            nursery, harness, "--name", "alice", env={"XDG_DATA_HOME": str(tmp_path)}
        ) as (process, client):
            bells: list[bytes] = []
            await _idle_after(client, "* alice joined")
            bob = await harness.v1("bob")
            await _idle_after(client, "* bob joined")
            client.type("\x1b[200~line one\nline two\x1b[201~\r")  # a bracketed paste
            event = await bob.next_message()
            assert event.text == "line one\nline two"
            await client.until(lambda: _has(client, "alice: line one"))
            screen = client.lines()
            first = next(n for n, line in enumerate(screen) if "alice: line one" in line)
            assert screen[first + 1].strip() in ("line two", "line two  #1")
            assert screen[first + 1].startswith(" " * screen[first].index("line one"))

            client.stream.feed = _watching(client.stream.feed, bells)  # type: ignore[method-assign]
            await bob.say("alice, lunch?")
            await client.until(lambda: _has(client, "bob: alice, lunch?"))
            assert any(b"\a" in chunk for chunk in bells)  # the bell rang for a mention
            client.type("\x04")
            await process.wait()
    assert process.returncode == 0


def _watching(feed: Callable[[bytes], None], seen: list[bytes]) -> Callable[[bytes], None]:
    def watched(data: bytes) -> None:
        seen.append(data)
        feed(data)

    return watched


async def test_tab_completes_commands_and_names(start_server, nursery, tmp_path) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        await harness.v1("bartholomew")
        async with _in_a_terminal(
            nursery, harness, "--name", "alice", env={"XDG_DATA_HOME": str(tmp_path)}
        ) as (process, client):
            await _idle_after(client, "* alice joined")
            client.type("/wh\t")
            await client.until(lambda: client.input_line() == "[lobby] > /who")
            # A command completes with the space after it: the argument follows at once.
            client.type("\x15/jo\t")  # Ctrl-U clears the line
            await client.until(lambda: client.input_line() == "[lobby] > /join")
            client.type("lob")
            await client.until(lambda: client.input_line() == "[lobby] > /join lob")
            client.type("\t")  # rooms after /join
            await client.until(lambda: client.input_line() == "[lobby] > /join lobby")
            client.type("\x15hi barth\t")
            await client.until(lambda: client.input_line() == "[lobby] > hi bartholomew")
            client.type("\x15\x04")
            await process.wait()


async def test_quitting_with_lines_not_delivered_says_so(start_server, nursery, tmp_path) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(60):
        async with _in_a_terminal(
            nursery,
            harness,
            *("--name", "alice", "--give-up-after", "1"),
            env={"XDG_DATA_HOME": str(tmp_path)},
        ) as (process, client):
            await _idle_after(client, "* alice joined")
            harness.server.shutdown()
            await harness.server.stopped()
            client.type("typed while the server is away\r")
            await client.until(lambda: _has(client, "pending: typed while the server is away"))
            client.type("\x04")
            await client.until(lambda: _has(client, "1 message(s) not delivered yet: waiting"))
            await process.wait()
            said = "purechat: 1 message(s) not delivered: cannot reach the server at"
            await client.until(lambda: _has(client, said))
    assert process.returncode == 1
    # One sentence says what was not delivered and why, not two that overlap.
    told = [line for line in client.lines() if "not delivered" in line and "yet" not in line]
    assert len(told) == 1, told


async def test_a_session_as_a_person_sees_it(start_server, nursery, tmp_path) -> None:
    """A short conversation between two accounts, with a reply, an edit and a reaction;
    with PURECHAT_CAPTURE=FILE the screen is written there (the README's capture comes
    from this test)."""
    harness: Harness = await start_server(**accounts_config())
    await register(harness.server.directory, "alice", "bob")
    await settles(lambda: name_key("bob") in harness.server.auth.account_keys)
    with trio.fail_after(30):
        bob = await member(harness, "bob", await login(harness, "bob"))
        await bob.say("morning all")
        token = await login(harness, "alice")
        async with _in_a_terminal(
            nursery, harness, "--token", token, env={"XDG_DATA_HOME": str(tmp_path)}
        ) as (process, client):
            await _idle_after(client, "* alice joined")
            await bob.say("alice, is the deploy done?")
            await _idle_after(client, "bob: alice, is the deploy done?")
            client.type("/re yes: v2.3 is out\r")
            await _idle_after(client, "alice: yes: v2.3 is out  #3")
            client.type("/edit yes: v2.4 is out\r")
            await _idle_after(client, "* alice edited #3: yes: v2.4 is out (edited)")
            await bob.call.send_frame(
                v1.ClientFrame(react=v1.ReactMessage(seq=3, emoji="🎉", client_msg_id="r1"))
            )
            await _idle_after(client, "* bob reacted 🎉 on #3")
            client.type("/me goes for coffee\r")
            await _idle_after(client, "* alice goes for coffee")
            client.type("/who\r")
            await _idle_after(client, "in lobby: alice, bob")
            screen = [line for line in client.lines() if line]
            client.type("\x04")
            await process.wait()
    assert any("(history) bob: morning all" in line for line in screen)
    if capture := os.environ.get("PURECHAT_CAPTURE"):
        text = "\n".join(_without_clock(line) for line in screen) + "\n"
        await trio.Path(capture).write_text(text, encoding="utf-8")


def _without_clock(line: str) -> str:
    """Times as HH:MM:SS, so the capture does not change with the day it was made."""
    return re.sub(r"\[\d\d:\d\d:\d\d\]", "[12:00:00]", line)
