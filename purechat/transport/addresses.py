"""Open connections per remote host, counted across every listener of one server.

`--max-conns-per-addr` bounds what one address may hold open, and a browser's
WebSocket is as much a connection as a gRPC one: the gRPC listener and the web listener
count in the same `AddressCounts`, so the limit cannot be doubled by using both.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator


class AddressCounts:
    def __init__(self, limit: int):
        """limit: connections one host may hold open (0: no limit)."""
        self.limit = limit
        self._open: Counter[str] = Counter()

    @contextlib.contextmanager
    def holding(self, host: str) -> Iterator[bool]:
        """Count a connection from host while the block runs; yields whether it is
        within the limit (a connection past it should be refused with a sentence)."""
        self._open[host] += 1
        try:
            yield not self.limit or self._open[host] <= self.limit
        finally:
            self._open[host] -= 1
            if not self._open[host]:
                del self._open[host]
