"""One task that writes what is pending for every member, once per scheduler pass.

Waking each connection's own writer task for every batch costs a task switch per
member per message, which is what a broadcast at moderate rates pays most for. So
members' deliveries and connections that have bytes mark themselves here, and this task
hands them over and writes them all without waiting (non-blocking sends). Only what the
kernel will not take at once goes to the connection's writer task, which may wait.

PING answers are held for ANSWER_DELAY_SECONDS (`mark_soon`). A grpc-go client
estimating bandwidth sends a PING whenever data arrives and its last PING has been
answered, so in a room at a moderate rate every delivery brings a PING back: a read, a
wake-up and an answer per member per message, which cost more than the delivery. Held
answers make that at most one PING per connection per delay, whatever the rate; the
client only reads a longer round trip into its estimate, and grows its window for it.
RFC 9113 says PING answers SHOULD be given priority over other frames; these go out
behind what is already queued, within the delay, in the order the PINGs came. That is
the trade: no client waits on an answer for milliseconds (grpc-go's keepalive allows
20 s by default), and a busy room no longer pays a read and a write per delivery.
"""

from __future__ import annotations

from typing import Protocol

import anyio

# How long PING answers are held (see above).
ANSWER_DELAY_SECONDS = 0.01


class Flushable(Protocol):
    def flush_now(self) -> None:
        """Write what is pending without waiting.

        Must not raise: whatever goes wrong belongs to the member or connection that
        met it, which ends itself; the flusher serves everyone else. (A connection's
        BusyResourceError is the exception: two writers on one socket are a bug, and
        transport/guard.py makes it loud rather than let bytes interleave.)
        """


class HoldsAnswers(Flushable, Protocol):
    def flush_held(self) -> None:
        """Send the PING answers held till now, with whatever else is pending; must not
        raise, as flush_now."""


class Flusher:
    """Runs `flush_now` once per pass for everything marked since the last pass.

    Member deliveries (which hand messages to HTTP/2) and connections (which hand bytes
    to the kernel) both mark themselves; a delivery's flush marks its connection, and
    the pass goes on until nothing is left, so both happen in the same pass.
    """

    def __init__(self) -> None:
        self._dirty: dict[Flushable, None] = {}
        self._wake = anyio.Event()
        self._holding: dict[HoldsAnswers, None] = {}
        self._held = anyio.Event()

    def mark(self, item: Flushable) -> None:
        self._dirty[item] = None
        self._wake.set()

    def mark_soon(self, item: HoldsAnswers) -> None:
        """item holds PING answers: flush them after ANSWER_DELAY_SECONDS."""
        self._holding[item] = None
        self._held.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._release_answers)
            await self._flush_marked()

    async def _release_answers(self) -> None:
        while True:
            await self._held.wait()
            await anyio.sleep(ANSWER_DELAY_SECONDS)
            self._held = anyio.Event()
            self._release_held()

    async def _flush_marked(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            self._flush_dirty()

    # Each pass in a method of its own, so that no local of the waiting loop keeps the
    # last member it flushed alive: a departed member goes at once.

    def _release_held(self) -> None:
        holding, self._holding = self._holding, {}
        for item in holding:
            item.flush_held()

    def _flush_dirty(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for item in dirty:
                item.flush_now()
