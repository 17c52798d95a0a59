"""A member's delivery: what the core offers one member, on its way to the member's stream.

The member's memory object stream is its queue of record. Every item offered is encoded
(once per broadcast for all members of a contract, see wire.py), its bytes queued in
order and counted against one byte budget. Who takes bytes out depends on one state:

- PRELUDE: the delivery's task sends what the member is owed from before it arrived
  (welcome, history, what it missed); offers queue behind it.
- DIRECT: no task runs. At the end of the scheduler pass the server's flusher takes what
  was offered and hands it to HTTP/2 in one piece, so nothing of the member's wakes per
  message. Bytes the windows cannot take now are held, and the state becomes SENDING.
- SENDING: a task (started for it, in the member's call) sends what is held, then what
  is queued, waiting for the windows as it must; with the queue empty it returns and
  the state is DIRECT again. An idle member costs no task.
- CLOSING: the member has finished; a task sends what is queued, then returns.
- ENDED: the member was removed, or its delivery failed; offers are dropped.

While no task runs (DIRECT), offers collect in a plain list that the flusher
empties at the end of the same scheduler pass: the fast path, with no task waking and
no channel per item. Whenever the task is sending, the memory object stream is the
queue, and the list is empty (the task goes DIRECT only once the stream is drained, and
leaves it only after a flush took the whole list). Bytes therefore leave in the order
they entered, one owner (this object) moves them, and one budget bounds them both.

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
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat import status as statuses
from purechat.core import EndReason, Outgoing
from purechat.errors import StoreError
from purechat.server.wire import Encode
from purechat.status import Status
from purechat.transitions import Transitions
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

# A member's queue: both ends of one memory object stream of framed bytes.
_Queue = tuple[MemoryObjectSendStream[bytes], MemoryObjectReceiveStream[bytes]]


@dataclass(frozen=True, slots=True)
class DeliveryLimits:
    """When a member counts as lagging, and when as too slow."""

    # A backlog over this many bytes removes the member.
    budget: int = DEFAULT_BUDGET
    # No progress on a backlog for this long removes the member.
    stall_timeout: float = DEFAULT_STALL_TIMEOUT

    @property
    def lagging_mark(self) -> int:
        """A backlog over this counts the member as lagging (its room may slow down).

        Low, so that a room is slowed before it is far behind: at an eighth of the
        budget, a flat-out sender into 1,000 grpc-go members ran further ahead of
        delivery (p50 4.6-4.9 s against 3.4-3.9 s at 1/64, two runs each), at no
        gain in deliveries/s.
        """
        return max(64 * 1024, self.budget // 64)


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


# Where a delivery may go from each state (see the module docstring).
DELIVERY = Transitions(
    "member delivery",
    {
        DeliveryState.PRELUDE: [
            DeliveryState.DIRECT,
            DeliveryState.SENDING,
            DeliveryState.CLOSING,
            DeliveryState.ENDED,
        ],
        DeliveryState.DIRECT: [DeliveryState.SENDING, DeliveryState.CLOSING, DeliveryState.ENDED],
        DeliveryState.SENDING: [DeliveryState.DIRECT, DeliveryState.CLOSING, DeliveryState.ENDED],
        DeliveryState.CLOSING: [DeliveryState.ENDED],
        DeliveryState.ENDED: [],
    },
)

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
        # The queue, while there is one (see the docstring): opened when offers must
        # wait for the task, let go when the task has drained it (an idle member holds
        # none: ~0.7 KiB each).
        self._budget = self.limits.budget
        self._queue: _Queue | None = self._open_queue()
        # DIRECT: what this scheduler pass offered, for the flusher (see the docstring).
        self._direct: list[bytes] = []
        self._lagging_mark = self.limits.lagging_mark
        # Bytes queued or held and not yet handed to HTTP/2.
        self.backlog = 0
        # Bytes the windows did not take; they go before anything queued.
        self._held = b""
        self._marked = False
        # The member's call's task group, where the sending task runs when needed.
        self._task_group: anyio.abc.TaskGroup | None = None
        self._task_running = False
        self.lagging = False
        # Set by whoever owns the member (its membership): lagging changes, stalls,
        # and a description for log lines.
        self.on_lagging: Callable[[bool], None] = _ignore_lagging
        self.on_stalled: Callable[[], None] = _nothing
        self.describe: Callable[[], str] = _a_member
        # Told when the store failed while the prelude was read (for the log).
        self.on_store_failed: Callable[[StoreError], None] = _ignore_store_failure
        # Why the member is too slow, for the log line when the core removes it.
        self._too_slow = ""

    # -- the core's Outbox --------------------------------------------------------

    def offer(self, item: Outgoing) -> bool:
        state = self.state
        if state is DeliveryState.ENDED or state is DeliveryState.CLOSING:
            return True  # the member is leaving: nothing more to deliver
        try:
            blob = self._encode(item)
        except Exception:
            log.exception("%s: could not encode an event; ending its call", self.describe())
            self._finish(statuses.internal())
            return True
        if not blob:
            return True
        backlog = self.backlog + len(blob)
        if backlog > self._budget:
            self._too_slow = (
                f"its backlog of {_mib(self.backlog)} would pass the budget of {_mib(self._budget)}"
            )
            self._evictions["backlog"] += 1
            return False
        if state is DeliveryState.DIRECT and self._flusher is not None:
            self._direct.append(blob)
            if not self._marked:
                self._marked = True
                self._flusher.mark(self)
        else:
            if self._queue is None:
                return True  # discarded: the call is over
            try:
                self._queue[0].send_nowait(blob)
            except anyio.WouldBlock:
                used = self._queue[0].statistics().current_buffer_used
                self._too_slow = f"{used} items are queued"
                self._evictions["backlog"] += 1
                return False
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return True
            if state is DeliveryState.DIRECT:  # no flusher here: a task sends instead
                self._ensure_task()
        self.backlog = backlog
        if backlog > self._lagging_mark and not self.lagging:
            self.lagging = True
            self.on_lagging(True)
        return True

    def end(self, reason: EndReason, detail: str = "") -> None:
        """The core removed the member (or the server is stopping): end its call."""
        if self.state is DeliveryState.ENDED:
            return
        if reason is EndReason.TOO_SLOW:
            log.warning(
                "%s removed: too slow (%s)",
                self.describe(),
                self._too_slow or f"a backlog of {_mib(self.backlog)}",
            )
        self._finish(statuses.for_end(reason, detail))

    # -- the member's own moves ---------------------------------------------------

    def start(self, task_group: anyio.abc.TaskGroup, prelude: Prelude) -> None:
        """Send the prelude, then everything offered, in the member's call (task_group).

        Items offered while the prelude is fetched wait behind it, so history and live
        messages arrive in order.
        """
        self._task_group = task_group
        self._task_running = True
        task_group.start_soon(self._send_prelude, prelude)

    def close(self) -> None:
        """The member has finished: what is queued is sent, then nothing more."""
        if self.state not in (DeliveryState.ENDED, DeliveryState.CLOSING):
            self._move(DeliveryState.CLOSING)
            self._ensure_task()

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
                    self._move(DeliveryState.SENDING)
                    self._queue = self._open_queue()
                    self._ensure_task()
                    return
        except Exception:
            log.exception("%s: could not hand messages over; ending its call", self.describe())
            self._finish(statuses.internal())

    async def _send_prelude(self, prelude: Prelude) -> None:
        stall = self.limits.stall_timeout
        try:
            earlier = b"".join(self._encode(item) for item in await prelude())
            if earlier:
                await self._sink.send_frames(earlier, stall_timeout=stall)
        except Stalled as stalled:
            self._stalled(stalled)
            return
        except StoreError as error:
            # History or a resume could not be read: the member hears why and may
            # come back, rather than an INTERNAL from the task group it runs in.
            self.on_store_failed(error)
            self._finish(statuses.for_error(error))
            return
        finally:
            self._task_running = False
        self._ensure_task()

    def _ensure_task(self) -> None:
        """Have a task send what is held and queued, unless one is at it (or the
        member's call is ending, or there is nothing to send)."""
        if self._task_running or self.state is DeliveryState.ENDED:
            return
        if not (self._held or self._direct or self._queued()):
            if self.state is not DeliveryState.CLOSING:
                self._go_direct()
            return
        group = self._task_group
        if group is not None and not group.cancel_scope.cancel_called:
            self._task_running = True
            group.start_soon(self._send_queued)

    async def _send_queued(self) -> None:
        """Send until nothing is queued; then DIRECT (or done, when closing)."""
        stall = self.limits.stall_timeout
        try:
            while self.state is not DeliveryState.ENDED:
                blob = self._take(MAX_BATCH_BYTES)
                if not blob:
                    if self.state is not DeliveryState.CLOSING:
                        self._go_direct()
                    return
                if self.state is not DeliveryState.CLOSING:
                    self._move(DeliveryState.SENDING)
                await self._sink.send_frames(blob, stall_timeout=stall)
                self._shrink(len(blob))
        except Stalled as stalled:
            self._stalled(stalled)
        finally:
            self._task_running = False

    def _stalled(self, stalled: Stalled) -> None:
        self._too_slow = f"a backlog of {_mib(self.backlog)} {stalled}"
        self._evictions["stalled"] += 1
        self.on_stalled()

    def discard(self) -> None:
        """The call is over: drop whatever is still queued, and the owner's callbacks
        (they hold the member, which holds this delivery: a cycle otherwise)."""
        self._move(DeliveryState.ENDED)
        self._close_queue()
        self._held = b""
        self._direct = []
        self.backlog = 0
        self.on_lagging = _ignore_lagging
        self.on_stalled = _nothing
        self.on_store_failed = _ignore_store_failure
        self.describe = _a_member
        self._task_group = None

    # -- internals ------------------------------------------------------------------

    def _take(self, limit: int) -> bytes:
        """Held bytes, then the pass's list, then queued ones, up to about limit bytes,
        in order."""
        parts = [self._held] if self._held else []
        if self._direct:
            parts += self._direct
            self._direct = []
        self._held = b""
        if self._queue is not None:
            size = sum(len(part) for part in parts)
            receive = self._queue[1].receive_nowait
            while size < limit:
                try:
                    blob = receive()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                parts.append(blob)
                size += len(blob)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _open_queue(self) -> _Queue:
        return anyio.create_memory_object_stream[bytes](max(1, self._budget // SMALLEST_ITEM))

    def _queued(self) -> int:
        return 0 if self._queue is None else self._queue[0].statistics().current_buffer_used

    def _close_queue(self) -> None:
        if self._queue is not None:
            self._queue[0].close()
            self._queue[1].close()
            self._queue = None

    def _go_direct(self) -> None:
        """Nothing is queued and no task runs: offers take the fast path, and the empty
        queue is let go (an idle member holds none)."""
        self._move(DeliveryState.DIRECT)
        if self._flusher is not None:
            self._close_queue()

    def _move(self, state: DeliveryState) -> None:
        self.state = DELIVERY.move(self.state, state)

    def _shrink(self, size: int) -> None:
        self.backlog -= size
        if self.lagging and self.backlog <= self._lagging_mark // 2:
            self.lagging = False
            self.on_lagging(False)

    def _finish(self, status: Status) -> None:
        self.discard()
        self._sink.end(status)


def _a_member() -> str:
    return "a member"


def _ignore_lagging(lagging: bool) -> None:
    pass


def _nothing() -> None:
    pass


def _ignore_store_failure(error: StoreError) -> None:
    pass


def _mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / 1024:.0f} KiB"
