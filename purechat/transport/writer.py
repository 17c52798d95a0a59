"""Everything one connection writes to its socket goes through its ConnectionWriter.

Bytes are queued in h2 by the streams; the writer moves them to the kernel. Normally
the server's flusher does that once per scheduler pass with a non-blocking send, so no
task of the connection wakes per batch (`flush_now`, IDLE). What the kernel will not
take at once is written by the writer's own task, which may wait, within the write
timeout (WRITING). Closing (CLOSING) lets the open calls finish, then sends GOAWAY and
gives the peer a moment to close first; `last_words` (LAST_WORDS) sends what is queued
in a hurry for a peer being cut off, and nothing after it. One state field says which
of these is going on, and it moves only as `MOVES` allows.

Exactly one of these paths writes at a time: the flusher writes only in IDLE, the task
only in WRITING and CLOSING (it moves out of IDLE before its first write), last words
only once the task has stopped; and `SingleWriter` checks it on every write, so a
second writer raises BusyResourceError instead of interleaving bytes. The flusher's
non-blocking send is used only under trio, whose socket streams write straight to the
socket: under asyncio a stream keeps its own transport buffer, which a send on the
socket itself would overtake, so there every write goes through the writer task.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import socket
from collections.abc import Callable

import anyio
import anyio.abc
import h2.exceptions
import sniffio

from purechat.transitions import Transitions
from purechat.transport import streams
from purechat.transport.flusher import Flusher
from purechat.transport.guard import SingleWriter
from purechat.transport.protocol import GrpcProtocol

log = logging.getLogger("purechat.transport")

# How long a closing connection waits for the peer to close after our GOAWAY.
LINGER_SECONDS = 1.0


class WriterState(enum.Enum):
    # Nothing is held back: new bytes go out through the flusher (or a short task).
    IDLE = "idle"
    # The socket did not take everything at once: the writer task is writing.
    WRITING = "writing"
    # The connection is ending: the last calls finish, then GOAWAY, then close.
    CLOSING = "closing"
    # The peer is being cut off: what is queued goes out, then nothing more.
    LAST_WORDS = "last words"
    CLOSED = "closed"


MOVES = Transitions[WriterState](
    "connection writer",
    {
        WriterState.IDLE: [WriterState.WRITING, WriterState.CLOSING, WriterState.LAST_WORDS],
        # ... and back to IDLE once the socket has taken everything; CLOSED when it fails.
        WriterState.WRITING: [
            WriterState.IDLE,
            WriterState.CLOSING,
            WriterState.LAST_WORDS,
            WriterState.CLOSED,
        ],
        WriterState.CLOSING: [WriterState.LAST_WORDS, WriterState.CLOSED],
        WriterState.LAST_WORDS: [WriterState.CLOSED],
        WriterState.CLOSED: [],
    },
)


class ConnectionWriter:
    def __init__(
        self,
        sock: anyio.abc.ByteStream,
        protocol: GrpcProtocol,
        *,
        raw: socket.socket | None,
        peer: str,
        flusher: Flusher | None,
        has_calls: Callable[[], bool],
        on_progress: Callable[[], None],
        stop: Callable[[], None],
    ):
        self._sock = sock
        self._protocol = protocol
        self._peer = peer
        # Plain TCP sockets can be written without waiting, by the flusher, under trio
        # (see the module docstring); TLS cannot, so a TLS connection leaves all writing
        # to the writer task.
        self._raw: socket.socket | None = None
        self._flusher: Flusher | None = None
        if flusher is not None and raw is not None and sniffio.current_async_library() == "trio":
            self._raw = raw
            self._flusher = flusher
            # The flusher sends PING answers a little later (see flusher.py).
            protocol.hold_answers = True
        self._has_calls = has_calls
        self._on_progress = on_progress
        self._stop = stop
        self.state = WriterState.IDLE
        self._guard = SingleWriter()
        self._unsent = b""
        self._task_running = False
        self._task_group: anyio.abc.TaskGroup | None = None
        # CLOSING: set when the last calls may have finished.
        self._calls_changed: anyio.Event | None = None
        self._task_done: anyio.Event | None = None

    def detach(self) -> None:
        """The connection is over: drop its callbacks (its own methods), so the two
        do not hold each other in a reference cycle after it."""
        self._has_calls = _no_calls
        self._on_progress = self._stop = _nothing

    def attach(self, task_group: anyio.abc.TaskGroup | None) -> None:
        """The connection's task group, in which the writer task runs (None once over)."""
        self._task_group = task_group

    # -- what the streams and the connection call -------------------------------------

    def pending(self) -> int:
        """Bytes queued for the socket and not yet written."""
        return self._protocol.buffered() + len(self._unsent)

    def wake(self) -> None:
        """There are bytes for the socket: have the flusher or the writer task send them."""
        if self.state is WriterState.IDLE and self._flusher is not None:
            self._flusher.mark(self)
        elif self.state is WriterState.CLOSING and self._calls_changed is not None:
            self._calls_changed.set()
        else:
            self._ensure_task()

    def wake_soon(self) -> None:
        """There are PING answers held: the flusher sends them after its answer delay."""
        if self._flusher is not None:
            self._flusher.mark_soon(self)

    def flush_held(self) -> None:
        """The flusher's answer delay is up: send the PING answers held till now."""
        self._protocol.send_held_answers()
        self.flush_now()

    def flush_now(self) -> None:
        """The flusher's turn: write what is pending without waiting; the rest to the task."""
        if self.state is not WriterState.IDLE or self._raw is None:
            self._ensure_task()
            return
        if self._guard.busy:  # an awaited write is under way: a bug, never interleave
            self._guard.refuse()
        data = self._take()
        if not data:
            return
        try:
            sent = self._raw.send(data)
        except OSError:  # BlockingIOError, or an error the writer task will meet too
            sent = 0
        if sent:
            self._on_progress()
        if sent < len(data):
            self._unsent = data[sent:]
            self.state = MOVES.move(self.state, WriterState.WRITING)
            self._ensure_task()

    def close(self) -> None:
        """Refuse nothing more from h2; once the open calls have ended, GOAWAY and close.

        GOAWAY waits for the last call because h2 sends nothing after it, trailers
        included, and every member is owed its final status.
        """
        if self.state is WriterState.IDLE or self.state is WriterState.WRITING:
            self.state = MOVES.move(self.state, WriterState.CLOSING)
        self._ensure_task()

    async def last_words(self, seconds: float) -> None:
        """Give what is queued (a GOAWAY saying why) up to `seconds` to reach the peer.

        Nothing else writes from the moment it is called: the flusher and the writer
        task leave the socket to it (the task finishes the write it is in, if any).
        """
        if self.state is WriterState.CLOSED:
            return
        self.state = MOVES.move(self.state, WriterState.LAST_WORDS)
        if self._calls_changed is not None:
            self._calls_changed.set()  # a closing writer task waiting for calls: stop
        with anyio.move_on_after(seconds):
            while self._task_running:
                self._task_done = anyio.Event()
                await self._task_done.wait()
            data = self._take()
            if data:
                with self._guard, contextlib.suppress(anyio.BrokenResourceError, OSError):
                    await streams.send(self._sock, data)
        self.state = MOVES.move(self.state, WriterState.CLOSED)

    # -- the writer task --------------------------------------------------------------

    def _take(self) -> bytes:
        """What the socket has not taken yet, then what h2 queued since, in that order."""
        data: bytes = self._unsent + self._protocol.data_to_send()
        self._unsent = b""
        return data

    def _ensure_task(self) -> None:
        """Have the writer task write what is pending (IDLE becomes WRITING)."""
        state = self.state
        if state is WriterState.LAST_WORDS or state is WriterState.CLOSED:
            return
        if self._task_running:
            if self._calls_changed is not None:
                self._calls_changed.set()
            return
        group = self._task_group
        # A group whose scope is cancelled is ending: writing is over.
        if group is not None and not group.cancel_scope.cancel_called:
            if state is WriterState.IDLE:
                self.state = MOVES.move(state, WriterState.WRITING)
            self._task_running = True
            group.start_soon(self._run)

    async def _run(self) -> None:
        timeout = self._protocol.limits.write_timeout
        # One scope for the task's life, its deadline armed only around a socket write.
        with anyio.CancelScope() as stalled:
            try:
                await self._write_until_done(stalled, timeout)
            finally:
                self._task_running = False
                if self._task_done is not None:
                    self._task_done.set()
        if stalled.cancelled_caught:
            log.info("%s: peer stopped reading for %ss; closing", self._peer, timeout)
            self._stop()

    async def _write_until_done(self, stalled: anyio.CancelScope, write_seconds: float) -> None:
        while True:
            state = self.state
            if state is WriterState.LAST_WORDS or state is WriterState.CLOSED:
                return  # last words write from here on, or nothing does
            closing = state is WriterState.CLOSING
            self._calls_changed = anyio.Event() if closing else None
            data = self._take()
            if data:
                stalled.deadline = anyio.current_time() + write_seconds
                try:
                    with self._guard:
                        await streams.send(self._sock, data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    self.state = MOVES.move(self.state, WriterState.CLOSED)
                    self._stop()
                    return
                stalled.deadline = math.inf
                self._on_progress()
                continue
            if not closing:
                self.state = MOVES.move(state, WriterState.IDLE)
                return
            if self._has_calls():
                assert self._calls_changed is not None
                await self._calls_changed.wait()  # the last calls are finishing
                continue
            if not self._protocol.closed():
                with contextlib.suppress(h2.exceptions.H2Error):
                    self._protocol.h2_connection.close_connection()
                continue
            await self._linger()
            return

    async def _linger(self) -> None:
        """Half-close, give the peer a moment to close first, then close.

        Closing a socket with unread bytes in it sends a reset, and a reset makes the
        peer's kernel drop what it had received and not yet read: the final statuses
        and GOAWAY we just sent. So we stop writing first and let the peer go first;
        when it does, the reader sees the end and the connection is over.
        """
        self.state = MOVES.move(self.state, WriterState.CLOSED)
        with (
            self._guard,
            contextlib.suppress(
                anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, NotImplementedError
            ),
        ):
            await streams.send_eof(self._sock)
        await anyio.sleep(LINGER_SECONDS)
        self._stop()


def _no_calls() -> bool:
    return False


def _nothing() -> None:
    pass
