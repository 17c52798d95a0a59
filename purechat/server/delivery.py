"""A member's delivery: what the core offers one member, on its way to the member's stream.

The member's memory object stream is its queue of record. Every item offered is encoded
(once per broadcast for all members of a contract, see wire.py), its bytes queued there
in order and counted. Who takes bytes out of the queue depends on one state:

- PRELUDE: the delivery's task sends what the member is owed from before it arrived
  (welcome, history, what it missed); offers queue behind it.
- DIRECT: the task is idle. At the end of the scheduler pass the server's flusher takes
  what is queued and hands it to HTTP/2 in one piece, so nothing of the member's wakes
  per message. Bytes the windows cannot take now are held, and the state becomes SENDING.
- SENDING: the task sends what is held, then what is queued, waiting for the windows as
  it must; with the queue empty it goes back to DIRECT.
- CLOSING: the member has finished; the task sends what is queued, then returns.
- ENDED: the member was removed, or its delivery failed; offers are dropped.

Bytes leave the queue in the order they entered it, and only one hand takes from it at
a time (the flusher in DIRECT, the task otherwise): the direct path is the same queue,
emptied by a different hand, so it keeps the queue's order and bound.

Too slow is measured in bytes and time, not items. An offer that would take the backlog
past the byte budget is refused (the core then removes the member); a send that makes
no progress for the stall timeout removes it too. A backlog past the lagging mark counts
the member as lagging, and a room where most members lag slows its senders instead.
Whatever goes wrong while encoding or handing over ends this member's call with
INTERNAL; the publishing task and the flusher go on for everyone else.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat import status as statuses
from purechat.core import EndReason, Outgoing
from purechat.server.wire import Encode
from purechat.status import Status
from purechat.transport import Flusher, Stalled

log = logging.getLogger("purechat.server")

MIB = 1024 * 1024
DEFAULT_BUDGET = 8 * MIB
DEFAULT_STALL_TIMEOUT = 5.0
# Most bytes one hand-over takes from the queue, so one write stays a reasonable size.
MAX_BATCH_BYTES = 256 * 1024
# Every queued item is at least this many bytes (a gRPC frame of a short message), so
# the queue's item bound never bites before its byte budget.
SMALLEST_ITEM = 16


@dataclass(frozen=True, slots=True)
class DeliveryLimits:
    """When a member counts as lagging, and when as too slow."""

    # A backlog over this many bytes removes the member.
    budget: int = DEFAULT_BUDGET
    # No progress on a backlog for this long removes the member.
    stall_timeout: float = DEFAULT_STALL_TIMEOUT

    @property
    def lagging_mark(self) -> int:
        """A backlog over this counts the member as lagging (its room may slow down)."""
        return max(64 * 1024, self.budget // 8)


class Sink(Protocol):
    """Where a member's bytes go: its gRPC stream (or any stream with the same moves)."""

    def try_send(self, blob: bytes) -> int:
        """Take as much of blob as can go now, without waiting; how many bytes."""
        ...

    async def send_frames(self, blob: bytes, *, stall_timeout: float = ...) -> None:
        """Send all of blob, waiting as needed; Stalled when nothing moves for too long."""
        ...

    def end(self, status: Status) -> None:
        """End the member's call with status."""
        ...


class DeliveryState(enum.Enum):
    PRELUDE = "prelude"
    DIRECT = "direct"
    SENDING = "sending"
    CLOSING = "closing"
    ENDED = "ended"


Prelude = Callable[[], Awaitable[Sequence[Outgoing]]]


class MemberDelivery:
    """Implements the core's Outbox for one member: queue, hand-over, and the task."""

    def __init__(
        self,
        sink: Sink,
        encode: Encode,
        limits: DeliveryLimits | None = None,
        *,
        flusher: Flusher | None = None,
        evictions: Counter[str] | None = None,
    ):
        self._sink = sink
        self._encode = encode
        self.limits = limits or DeliveryLimits()
        self._flusher = flusher
        self._evictions = evictions if evictions is not None else Counter()
        self.state = DeliveryState.PRELUDE
        self._send: MemoryObjectSendStream[bytes]
        self._receive: MemoryObjectReceiveStream[bytes]
        self._send, self._receive = anyio.create_memory_object_stream[bytes](
            max(1, self.limits.budget // SMALLEST_ITEM)
        )
        # Bytes queued or held and not yet handed to HTTP/2.
        self.backlog = 0
        # Bytes the windows did not take; they go before anything queued.
        self._held = b""
        self._marked = False
        self._wake = anyio.Event()
        self.lagging = False
        # Set by whoever owns the member (its membership): lagging changes, stalls,
        # and a description for log lines.
        self.on_lagging: Callable[[bool], None] = lambda lagging: None
        self.on_stalled: Callable[[], None] = lambda: None
        self.describe: Callable[[], str] = lambda: "a member"
        # Why the member is too slow, for the log line when the core removes it.
        self._too_slow = ""

    # -- the core's Outbox --------------------------------------------------------

    def offer(self, item: Outgoing) -> bool:
        if self.state in (DeliveryState.ENDED, DeliveryState.CLOSING):
            return True  # the member is leaving: nothing more to deliver
        try:
            blob = self._encode(item)
        except Exception:
            log.exception("%s: could not encode an event; ending its call", self.describe())
            self._finish(statuses.internal())
            return True
        if not blob:
            return True
        size = len(blob)
        if self.backlog + size > self.limits.budget:
            self._too_slow = (
                f"its backlog of {_mib(self.backlog)} would pass the budget of "
                f"{_mib(self.limits.budget)}"
            )
            self._evictions["backlog"] += 1
            return False
        try:
            self._send.send_nowait(blob)
        except anyio.WouldBlock:
            self._too_slow = f"{self._send.statistics().current_buffer_used} items are queued"
            self._evictions["backlog"] += 1
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return True
        self._grow(size)
        if self.state is DeliveryState.DIRECT and not self._marked and self._flusher is not None:
            self._marked = True
            self._flusher.mark(self)
        return True

    def end(self, reason: EndReason) -> None:
        """The core removed the member (or the server is stopping): end its call."""
        if self.state is DeliveryState.ENDED:
            return
        if reason is EndReason.TOO_SLOW:
            log.warning(
                "%s removed: too slow (%s)",
                self.describe(),
                self._too_slow or f"a backlog of {_mib(self.backlog)}",
            )
        self._finish(statuses.for_end(reason))

    # -- the member's own moves ---------------------------------------------------

    def close(self) -> None:
        """The member has finished: send what is queued, then the task returns."""
        if self.state not in (DeliveryState.ENDED, DeliveryState.CLOSING):
            self.state = DeliveryState.CLOSING
            self._wake.set()

    def flush_now(self) -> None:
        """The flusher's turn: hand what is queued to HTTP/2 now, hold what does not fit."""
        self._marked = False
        if self.state is not DeliveryState.DIRECT:
            return
        try:
            while blob := self._take(MAX_BATCH_BYTES):
                taken = self._sink.try_send(blob)
                self._shrink(taken)
                if taken < len(blob):
                    self._held = blob[taken:]
                    self.state = DeliveryState.SENDING
                    self._wake.set()
                    return
        except Exception:
            log.exception("%s: could not hand messages over; ending its call", self.describe())
            self._finish(statuses.internal())

    async def run(self, prelude: Prelude) -> None:
        """Send the prelude, then everything offered, until closed (or ended).

        Items offered while the prelude is fetched wait behind it, so history and live
        messages arrive in order.
        """
        stall = self.limits.stall_timeout
        try:
            earlier = b"".join(self._encode(item) for item in await prelude())
            if earlier:
                await self._sink.send_frames(earlier, stall_timeout=stall)
            while self.state is not DeliveryState.ENDED:
                if blob := self._take(MAX_BATCH_BYTES):
                    if self.state is not DeliveryState.CLOSING:
                        self.state = DeliveryState.SENDING
                    await self._sink.send_frames(blob, stall_timeout=stall)
                    self._shrink(len(blob))
                elif self.state is DeliveryState.CLOSING:
                    return
                else:
                    self.state = DeliveryState.DIRECT
                    await self._wake.wait()
                    self._wake = anyio.Event()
        except Stalled as stalled:
            self._too_slow = f"a backlog of {_mib(self.backlog)} {stalled}"
            self._evictions["stalled"] += 1
            self.on_stalled()

    def discard(self) -> None:
        """The call is over: drop whatever is still queued."""
        self.state = DeliveryState.ENDED
        self._send.close()
        self._receive.close()
        self._held = b""
        self.backlog = 0

    # -- internals ------------------------------------------------------------------

    def _take(self, limit: int) -> bytes:
        """Held bytes, then queued ones, up to about limit bytes, in order."""
        parts = [self._held] if self._held else []
        size = len(self._held)
        self._held = b""
        while size < limit:
            try:
                blob = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                break
            parts.append(blob)
            size += len(blob)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _grow(self, size: int) -> None:
        self.backlog += size
        if not self.lagging and self.backlog > self.limits.lagging_mark:
            self.lagging = True
            self.on_lagging(True)

    def _shrink(self, size: int) -> None:
        self.backlog -= size
        if self.lagging and self.backlog <= self.limits.lagging_mark // 2:
            self.lagging = False
            self.on_lagging(False)

    def _finish(self, status: Status) -> None:
        self.discard()
        self._wake.set()
        self._sink.end(status)


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / 1024:.0f} KiB"
