"""A member's outbox: a bounded memory object stream between the core and its writer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat.core import EndReason, Outgoing
from purechat.server.errors import status_for_end
from purechat.transport import Stream

DEFAULT_OUTBOX_SIZE = 1024
# Most items one batch takes, so one write stays a reasonable size.
MAX_BATCH = 512


class StreamOutbox:
    """Implements the core's Outbox for one gRPC stream."""

    def __init__(self, stream: Stream, size: int = DEFAULT_OUTBOX_SIZE):
        self._stream = stream
        self._send: MemoryObjectSendStream[Outgoing]
        self._receive: MemoryObjectReceiveStream[Outgoing]
        self._send, self._receive = anyio.create_memory_object_stream[Outgoing](size)

    def __enter__(self) -> StreamOutbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._send.close()
        self._receive.close()

    def offer(self, item: Outgoing) -> bool:
        try:
            self._send.send_nowait(item)
        except anyio.WouldBlock:
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the member is leaving; nothing more to deliver
        return True

    def end(self, reason: EndReason) -> None:
        self._send.close()
        self._stream.end(status_for_end(reason))

    def close(self) -> None:
        """No more items: the writer sends what is queued, then finishes."""
        self._send.close()

    async def pump(
        self,
        encode: Callable[[Outgoing], bytes],
        prelude: Callable[[], Awaitable[Sequence[Outgoing]]],
    ) -> None:
        """Write the prelude, then everything offered, taking what is queued as one batch.

        Until the outbox is closed and drained. A lone item goes out at once; under
        load the batch grows, so the cost per delivery falls as load rises. Items
        offered while the prelude is fetched wait behind it, so history and live
        messages arrive in order.
        """
        earlier = b"".join(encode(item) for item in await prelude())
        if earlier:
            await self._stream.send_frames(earlier)
        async for first in self._receive:
            parts = [encode(first)]
            while len(parts) < MAX_BATCH:
                try:
                    parts.append(encode(self._receive.receive_nowait()))
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            blob = b"".join(parts)
            if blob:
                await self._stream.send_frames(blob)
