"""One task that writes what is pending for every member, once per scheduler pass.

Waking each connection's own writer task for every batch costs a task switch per
member per message, which is what a broadcast at moderate rates pays most for. So
members' deliveries and connections that have bytes mark themselves here, and this task
hands them over and writes them all without waiting (non-blocking sends). Only what the
kernel will not take at once goes to the connection's writer task, which may wait.
"""

from __future__ import annotations

from typing import Protocol

import anyio


class Flushable(Protocol):
    def flush_now(self) -> None:
        """Write what is pending without waiting.

        Must not raise: whatever goes wrong belongs to the member or connection that
        met it, which ends itself; the flusher serves everyone else.
        """


class Flusher:
    """Runs `flush_now` once per pass for everything marked since the last pass.

    Member deliveries (which hand messages to HTTP/2) and connections (which hand bytes
    to the kernel) both mark themselves; a delivery's flush marks its connection, and
    the pass goes on until nothing is left, so both happen in the same pass.
    """

    def __init__(self) -> None:
        self._dirty: dict[Flushable, None] = {}
        self._wake = anyio.Event()

    def mark(self, item: Flushable) -> None:
        self._dirty[item] = None
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            while self._dirty:
                dirty, self._dirty = self._dirty, {}
                for item in dirty:
                    item.flush_now()
