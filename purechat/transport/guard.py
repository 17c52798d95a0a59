"""One writer per socket, checked rather than kept by convention.

trio's `ConflictDetector` (`trio/_util.py`) makes a second `send_all` on a stream that
is already sending raise instead of interleaving bytes. `SingleWriter` is the same
guard for purechat's sockets, whose bytes leave by more than one path (the flusher's
non-blocking send, a writer task's awaited send, last words before a close): an awaited
write runs inside `with guard:`, and a synchronous one (which nothing can interrupt, so
it can only land inside an awaited one) checks `guard.busy` first and calls `refuse()`
when it is set. Two writes overlapping thus raise BusyResourceError at once, in tests
and in production, instead of corrupting the stream. The check costs one attribute
read; an awaited write, two assignments more.
"""

from __future__ import annotations

from types import TracebackType
from typing import NoReturn

import anyio


class SingleWriter:
    __slots__ = ("busy",)

    def __init__(self) -> None:
        # A write is in progress (an awaited send, typically). Read it freely; only
        # `with guard:` sets it.
        self.busy = False

    @staticmethod
    def refuse() -> NoReturn:
        """Raise what a second writer gets."""
        raise anyio.BusyResourceError("writing to")

    def __enter__(self) -> None:
        if self.busy:
            self.refuse()
        self.busy = True

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.busy = False
