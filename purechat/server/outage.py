"""Waiting out a store that does not answer: backoff, and one log line per outage."""

from __future__ import annotations

import logging

import anyio

log = logging.getLogger("purechat.server")

RETRY_FIRST, RETRY_MOST = 0.1, 2.0


class Outage:
    """The retry state of one task that reads or writes the store (the feed, presence)."""

    def __init__(self, task: str):
        self.task = task
        self.healthy = True
        self._delay = RETRY_FIRST

    def failed(self, error: Exception) -> None:
        """Say so the first time the store fails, not on every retry."""
        if self.healthy:
            log.error("%s; %s retrying", error, self.task)
        self.healthy = False

    async def pause(self) -> None:
        """Wait before the next try, twice as long each time up to RETRY_MOST."""
        await anyio.sleep(self._delay)
        self._delay = min(RETRY_MOST, 2 * self._delay)

    def recovered(self) -> None:
        self.healthy = True
        self._delay = RETRY_FIRST
