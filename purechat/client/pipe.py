"""Pipe mode: stdin lines become messages, events become stdout lines.

At the end of input the client waits until the server has accepted every line, then
exits 0; if it cannot deliver them it exits 1 with one line on stderr saying why.
"""

from __future__ import annotations

import signal
import sys
from typing import TextIO

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream

from purechat.client.display import Shown, json_line, plain_line
from purechat.client.session import ChatSession, SessionError

EXIT_OK = 0
EXIT_FAILED = 1


class Output:
    """Line-by-line output, flushed each line so `| grep` works live."""

    def __init__(self, stdout: TextIO, stderr: TextIO, *, as_json: bool):
        self.stdout = stdout
        self.stderr = stderr
        self.as_json = as_json
        self.closed = False

    def event(self, item: Shown) -> None:
        if item.kind in ("status", "error"):
            self.problem(plain_line(item))
        # A script has no use for typing, nor for news of conversations it is not in.
        elif item.kind not in ("info", "typing", "conversation"):
            self._write(self.stdout, json_line(item) if self.as_json else plain_line(item))

    def problem(self, line: str) -> None:
        self._write(self.stderr, line)

    def _write(self, stream: TextIO, line: str) -> None:
        if self.closed:
            return
        try:
            stream.write(line + "\n")
            stream.flush()
        except BrokenPipeError:  # the reader went away (`| head -1`): stop writing
            self.closed = True


async def run_pipe(
    session: ChatSession,
    shown: MemoryObjectReceiveStream[Shown],
    output: Output,
    *,
    listen: bool,
    stdin: TextIO | None = None,
) -> int:
    """Run until input is delivered (or, with listen, until interrupted); the exit status."""
    failure: str | None = None

    async def run_session() -> None:
        nonlocal failure
        try:
            await session.run()
        except SessionError as error:
            failure = str(error)

    interrupted = anyio.Event()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(_print_events, shown, output)
        task_group.start_soon(_stop_on_signal, task_group.cancel_scope, interrupted)
        async with anyio.create_task_group() as feeding:
            if not listen:
                feeding.start_soon(_feed, session, stdin or sys.stdin)
            await run_session()
            feeding.cancel_scope.cancel()
        task_group.cancel_scope.cancel()
    if interrupted.is_set() and failure is None:
        if listen or not session.undelivered:
            return EXIT_OK
        failure = f"interrupted; {session.undelivered} message(s) not delivered"
    failure = failure or (session.failures[0] if session.failures else None)
    if failure is None:
        return EXIT_OK
    output.problem(f"purechat: {failure}")
    return EXIT_FAILED


async def _feed(session: ChatSession, stdin: TextIO) -> None:
    """Queue each non-empty input line, then ask the session to finish."""
    while line := await anyio.to_thread.run_sync(stdin.readline, abandon_on_cancel=True):
        text = line.rstrip("\r\n")
        if text.strip():
            session.send(text)
    session.finish()


async def _print_events(shown: MemoryObjectReceiveStream[Shown], output: Output) -> None:
    async with shown:
        async for item in shown:
            output.event(item)


async def _stop_on_signal(scope: anyio.CancelScope, interrupted: anyio.Event) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            interrupted.set()
            scope.cancel()
            return
