"""One writer per socket, checked rather than kept by convention.

trio's `ConflictDetector` (`trio/_util.py`) makes a second `send_all` on a stream that
is already sending raise instead of interleaving bytes. `SingleWriter` is the same
guard for purechat's sockets, whose bytes leave by more than one path (the flusher's
non-blocking send, a writer task's awaited send, last words before a close): every
path writes inside `with guard:`, so two of them overlapping raises BusyResourceError
at once, in tests and in production, instead of corrupting the stream. It costs one
attribute and two assignments per write.
"""

from __future__ import annotations

from types import TracebackType

import anyio


class SingleWriter:
    __slots__ = ("_busy",)

    def __init__(self) -> None:
        self._busy = False

    @property
    def busy(self) -> bool:
        """A write is in progress (an awaited send, typically)."""
        return self._busy

    def __enter__(self) -> None:
        if self._busy:
            raise anyio.BusyResourceError("writing to")
        self._busy = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._busy = False
