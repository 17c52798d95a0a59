"""Interactive mode: a line editor at the bottom, the room scrolling above it.

prompt_toolkit does the line editing (history, cursor keys, redrawing the input line
when something is printed above it). It runs its own asyncio loop, so it lives in a
worker thread; lines reach the trio side through a bounded memory object stream, and
what the trio side prints goes through prompt_toolkit's thread-safe stdout proxy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from prompt_toolkit import PromptSession
from prompt_toolkit.patch_stdout import patch_stdout

from purechat.client.display import Shown, neutralise, plain_line, shown_name
from purechat.client.session import ChatSession, SessionError

HELP = """commands:
  /who           who is in the room
  /join ROOM     leave this room and join ROOM
  /me ACTION     say that you do something
  /quit          leave (Ctrl-D and Ctrl-C too)
  /help          this list"""


class _PromptThread:
    """The prompt loop on its own thread, stoppable from the trio side."""

    def __init__(self, message: Callable[[], str]):
        self._session: PromptSession[str] = PromptSession()
        self._message = message
        self._stopping = threading.Event()

    def loop(self, lines: MemoryObjectSendStream[str | None]) -> None:
        with lines:
            while not self._stopping.is_set():
                try:
                    line = self._session.prompt(self._message(), pre_run=self._exit_if_stopping)
                except (EOFError, KeyboardInterrupt):
                    break
                anyio.from_thread.run(lines.send, line)
            anyio.from_thread.run(lines.send, None)

    def stop(self) -> None:
        self._stopping.set()
        app = self._session.app
        if app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(self._exit_if_stopping)

    def _exit_if_stopping(self) -> None:
        app = self._session.app
        if self._stopping.is_set() and app.is_running and not app.is_done:
            app.exit(exception=EOFError())


async def run_interactive(session: ChatSession, shown: MemoryObjectReceiveStream[Shown]) -> int:
    """Chat until /quit, Ctrl-D or Ctrl-C; the exit status."""
    prompt = _PromptThread(lambda: f"[{session.room}] > ")
    lines_send, lines = anyio.create_memory_object_stream[str | None](16)
    status = 0
    with patch_stdout(raw=True), lines:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(_show_events, shown)
            task_group.start_soon(anyio.to_thread.run_sync, prompt.loop, lines_send)
            try:
                async with anyio.create_task_group() as chatting:
                    chatting.start_soon(_handle_lines, session, lines, chatting.cancel_scope)
                    try:
                        await session.run()
                    except SessionError as error:
                        print(f"purechat: {error}")
                        status = 1
                    chatting.cancel_scope.cancel()
            finally:
                prompt.stop()
                task_group.cancel_scope.cancel()
    return status


async def _handle_lines(
    session: ChatSession,
    lines: MemoryObjectReceiveStream[str | None],
    done: anyio.CancelScope,
) -> None:
    async for line in lines:
        if line is None or line.strip() == "/quit":
            break
        command, _, argument = line.strip().partition(" ")
        if not line.strip():
            continue
        if command == "/help":
            print(HELP)
        elif command == "/who":
            names = ", ".join(shown_name(name) for name in sorted(session.members))
            print(f"in {neutralise(session.room)}: {names or 'nobody'}")
        elif command == "/join" and argument.strip():
            session.switch_room(argument.strip())
        elif command == "/me" and argument.strip():
            session.send(argument.strip(), action=True)
        elif command.startswith("/") and not command.startswith("//"):
            print(f"! unknown command {neutralise(command)}; /help lists them")
        else:
            session.send(line.removeprefix("/") if line.startswith("//") else line)
    done.cancel()


async def _show_events(shown: MemoryObjectReceiveStream[Shown]) -> None:
    async with shown:
        async for item in shown:
            print(plain_line(item, colour=True), flush=True)
