"""A member's outbox: what the core offers one member, on its way to the stream.

Two paths, one order. When the member's writer (the pump) is idle, offers are encoded
at once into a pending list and the server's flusher hands them to HTTP/2 in one piece
at the end of the scheduler pass: no task switch per member, and everything one pass
published for a member goes out as one write. When the stream cannot take them (its
window is full), or while the pump is busy, offers queue in a bounded memory object
stream and the pump writes them as batches, waiting for the window as it must.
A full queue (or pending list) is the core's cue that the member is too slow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat.core import EndReason, Outgoing
from purechat.server.errors import status_for_end
from purechat.transport import Flusher, Stream

DEFAULT_OUTBOX_SIZE = 1024
# Most items one batch takes, so one write stays a reasonable size.
MAX_BATCH = 512


class _Wake:
    """Queued to wake the pump when the direct path had to stop."""


_WAKE = _Wake()
Encode = Callable[[Outgoing], bytes]


class StreamOutbox:
    """Implements the core's Outbox for one gRPC stream."""

    def __init__(self, stream: Stream, size: int = DEFAULT_OUTBOX_SIZE):
        self._stream = stream
        self._size = size
        self._send: MemoryObjectSendStream[Outgoing | _Wake]
        self._receive: MemoryObjectReceiveStream[Outgoing | _Wake]
        self._send, self._receive = anyio.create_memory_object_stream[Outgoing | _Wake](size)
        self._flusher: Flusher | None = stream.connection.flusher
        self._encode: Encode | None = None
        # Direct path: on while the pump waits on an empty queue.
        self._direct = False
        self._pending: list[bytes] = []
        # Bytes the direct path could not hand over; the pump sends them first.
        self._stalled = b""

    def __enter__(self) -> StreamOutbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._send.close()
        self._receive.close()

    def offer(self, item: Outgoing) -> bool:
        if self._direct and self._encode is not None and self._flusher is not None:
            if len(self._pending) >= self._size:
                return False
            blob = self._encode(item)
            if blob:
                if not self._pending:
                    self._flusher.mark(self)
                self._pending.append(blob)
            return True
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the member is leaving; nothing more to deliver
        return True

    def flush_now(self) -> None:
        """The flusher's turn: hand this pass's pending messages to HTTP/2 in one piece."""
        if not self._direct or not self._pending:
            return
        blob = b"".join(self._pending)
        self._pending.clear()
        if self._stream.send_now(blob):
            return
        # The window is full: the pump takes over, sending this first.
        self._direct = False
        self._stalled = blob
        # Wake the pump; if the queue is full or closed it is awake or gone already.
        with contextlib.suppress(
            anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
        ):
            self._send.send_nowait(_WAKE)

    def end(self, reason: EndReason) -> None:
        self._send.close()
        self._stream.end(status_for_end(reason))

    def close(self) -> None:
        """No more items: the writer sends what is queued, then finishes."""
        self._send.close()

    async def pump(
        self, encode: Encode, prelude: Callable[[], Awaitable[Sequence[Outgoing]]]
    ) -> None:
        """Write the prelude, then everything offered, until the outbox is closed and drained.

        Items offered while the prelude is fetched wait behind it, so history and live
        messages arrive in order.
        """
        earlier = b"".join(encode(item) for item in await prelude())
        if earlier:
            await self._stream.send_frames(earlier)
        self._encode = encode
        while True:
            first: Outgoing | _Wake | None
            try:
                first = self._receive.receive_nowait()
            except anyio.WouldBlock:
                first = await self._idle()
            except anyio.EndOfStream:
                first = None
            await self._send_held()
            if first is None:
                return
            parts = [_encoded(encode, first)]
            while len(parts) < MAX_BATCH:
                try:
                    parts.append(_encoded(encode, self._receive.receive_nowait()))
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            blob = b"".join(parts)
            if blob:
                await self._stream.send_frames(blob)

    async def _idle(self) -> Outgoing | _Wake | None:
        """Wait for the queue with the direct path on; None once the outbox is closed."""
        self._direct = self._flusher is not None
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            return None
        finally:
            self._direct = False

    async def _send_held(self) -> None:
        """Send what the direct path holds (stalled, then pending): it came first."""
        held = self._stalled + b"".join(self._pending)
        self._stalled = b""
        self._pending.clear()
        if held:
            await self._stream.send_frames(held)


def _encoded(encode: Encode, item: Outgoing | _Wake) -> bytes:
    return b"" if isinstance(item, _Wake) else encode(item)
