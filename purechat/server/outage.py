"""Waiting out a store that does not answer: backoff with jitter, and one log line per outage."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import anyio

log = logging.getLogger("purechat.server")

RETRY_FIRST, RETRY_MOST = 0.1, 2.0


class Outage:
    """The retry state of one task that reads or writes the store (the feed, presence).

    `rng` (uniform in [0, 1)) draws each pause's jitter; tests pass a fixed one.
    """

    def __init__(self, task: str, rng: Callable[[], float] = random.random):
        self.task = task
        self.healthy = True
        self._delay = RETRY_FIRST
        self._rng = rng

    def failed(self, error: Exception) -> None:
        """Say so the first time the store fails, not on every retry."""
        if self.healthy:
            log.error("%s; %s retrying", error, self.task)
        self.healthy = False

    async def pause(self) -> None:
        """Wait before the next try (see next_delay)."""
        await anyio.sleep(self.next_delay())

    def next_delay(self) -> float:
        """Twice as long as the last one, up to RETRY_MOST, of which a random half to
        all: servers that lost a shared store at the same moment do not come back to
        it in step, every one of them at once, on every retry."""
        delay = self._delay * (0.5 + self._rng() / 2)
        self._delay = min(RETRY_MOST, 2 * self._delay)
        return delay

    def recovered(self) -> None:
        self.healthy = True
        self._delay = RETRY_FIRST
