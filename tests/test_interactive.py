"""The interactive client in a real pseudo-terminal, read back through a terminal emulator."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios
from collections.abc import Callable
from functools import partial

import pyte
import trio

from tests.helpers import Harness
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
            assert any(line.endswith("bob: hello from bob") for line in screen)
            assert any(line.endswith("bob: \\x1b[2J\\x1b[Hgotcha") for line in screen)
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
