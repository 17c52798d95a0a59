"""The feed: with a store shared by several servers, delivery comes from the store's log.

Every server reads each open room's log from where its members are (`Store.tail`) and
broadcasts in the log's order, its own members' messages included, so members on every
server see one order. A sender's ack waits until its message has come round the feed:
an ack then means "stored, and delivered here in order".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio
import anyio.lowlevel

from purechat.core import Draft, Hub
from purechat.store import Store, StoredMessage, StoreError

log = logging.getLogger("purechat.server")

# How long one read waits for new messages; rooms opened meanwhile join the next read.
BLOCK_MS = 100
IDLE_SECONDS = 0.05
RETRY_FIRST, RETRY_MOST = 0.1, 2.0


@runtime_checkable
class SharedStore(Store, Protocol):
    """A store several servers use at once; each reads the rooms' logs with `tail`."""

    async def tail(self, positions: dict[str, int], block_ms: int) -> list[StoredMessage]: ...


class Feed:
    def __init__(self, hub: Hub, store: SharedStore):
        self.hub = hub
        self.store = store
        self._waiting: dict[str, list[tuple[int, Callable[[], None]]]] = {}
        self.healthy = True

    def when_delivered(self, room: str, seq: int, then: Callable[[], None]) -> None:
        """Run `then` once seq has been delivered in room here (at once if it has)."""
        if not self.hub.has_room(room) or self.hub.last_seq(room) >= seq:
            then()
        else:
            self._waiting.setdefault(room, []).append((seq, then))

    async def run(self) -> None:
        retry = RETRY_FIRST
        while True:
            positions = {name: last for name, _, last in self.hub.rooms()}
            self._release_closed_rooms(positions)
            if not positions:
                await anyio.sleep(IDLE_SECONDS)  # no room is open here: nothing to read
                continue
            try:
                messages = await self.store.tail(positions, BLOCK_MS)
            except StoreError as error:
                if self.healthy:
                    log.error("%s; retrying", error)
                self.healthy = False
                await anyio.sleep(retry)
                retry = min(RETRY_MOST, 2 * retry)
                continue
            self.healthy, retry = True, RETRY_FIRST
            for message in messages:
                draft = Draft(
                    message.room,
                    message.user,
                    message.text,
                    message.time_ms,
                    message.action,
                    "",
                    "",
                )
                self.hub.publish(draft, message.seq, duplicate=False, sender=None)
                self._release(message.room)
            await anyio.lowlevel.checkpoint()

    def _release(self, room: str) -> None:
        waiting = self._waiting.get(room)
        if not waiting:
            return
        reached = self.hub.last_seq(room)
        ready = [then for seq, then in waiting if seq <= reached]
        self._waiting[room] = [(seq, then) for seq, then in waiting if seq > reached]
        for then in ready:
            then()

    def _release_closed_rooms(self, open_rooms: dict[str, int]) -> None:
        for room in [room for room in self._waiting if room not in open_rooms]:
            for _, then in self._waiting.pop(room):
                then()
