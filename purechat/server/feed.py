"""The feed: with a store shared by several servers, delivery comes from the store's log.

Every server reads each open room's logs from where its members are (`tail`) and
broadcasts in the log's order, its own members' messages included, so members on every
server see one order; joins and leaves (logged by every server's `Presence`) come the
same way. A sender's ack waits until its message has come round the feed: an ack then
means "stored, and delivered here in order".

A room whose log the store lost (Redis flushed, or restarted without its data) gets a
new epoch. The feed notices it from the log's entries, from an append's answer, or by
asking every so often while a room is quiet; it then tells the room's members (RESET),
and reads the new log from its start, so delivery goes on at once and no number is
taken for the message it meant in the old log.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import anyio
import anyio.lowlevel

from purechat.core import Hub, Member, Message, Published
from purechat.server.outage import Outage
from purechat.store import StoreError
from purechat.store.shared import (
    EpochChange,
    Position,
    PresenceChange,
    PresenceId,
    SharedStore,
)

log = logging.getLogger("purechat.server")

# How long one read waits for new messages; rooms opened meanwhile join the next read.
BLOCK_MS = 100
IDLE_SECONDS = 0.05
# Joins and leaves remembered per room for members whose join raced the feed.
RECENT_PRESENCE = 64
# How often open rooms' epochs are checked: a quiet room's lost log shows no entries.
EPOCH_CHECK_SECONDS = 1.0
START = PresenceId(0, 0)


class Feed:
    def __init__(self, hub: Hub, store: SharedStore):
        self.hub = hub
        self.store = store
        self._waiting: dict[str, list[tuple[int, Callable[[], None]]]] = {}
        # Per open room, the newest join or leave delivered here, and the latest few.
        self._presence: dict[str, PresenceId] = {}
        self._recent: dict[str, deque[PresenceChange]] = {}
        self._outage = Outage("delivery")
        self._epochs_checked = 0.0

    def when_delivered(self, room: str, seq: int, then: Callable[[], None]) -> None:
        """Run `then` once seq has been delivered in room here (at once if it has)."""
        if not self.hub.has_room(room) or self.hub.last_seq(room) >= seq:
            then()
        else:
            self._waiting.setdefault(room, []).append((seq, then))

    def saw_epoch(self, room: str, epoch: str) -> None:
        """The store answered for room from the log of epoch (an append, say)."""
        if self.hub.has_room(room) and epoch != self.hub.epoch(room):
            self._reset(room, epoch)

    def opened(self, room: str, presence: PresenceId) -> None:
        """A room just opened here: announce the joins and leaves logged after presence."""
        self._presence[room] = presence
        self._recent.pop(room, None)

    def catch_up(self, member: Member) -> None:
        """Tell a member that just joined the joins and leaves it missed.

        The feed runs while a join waits for the store, so it may already have announced
        entries logged after the joiner's welcome list was taken.
        """
        room = member.room.name
        for change in self._recent.get(room, ()):
            if change.id > member.presence_from:
                self.hub.announce(
                    room, change.kind, change.user, change.time_ms, at=change.id, only=member
                )

    async def run(self) -> None:
        while True:
            open_rooms = {name: last for name, _, last in self.hub.rooms()}
            self._release_closed_rooms(open_rooms)
            # A room that is behind here waits until its members have caught up: the
            # log keeps what they have not received yet.
            open_rooms = {
                name: last for name, last in open_rooms.items() if not self.hub.room_behind(name)
            }
            if not open_rooms:
                await anyio.sleep(IDLE_SECONDS)  # no room to read here now
                continue
            try:
                await self._check_epochs(list(open_rooms))
                positions = await self._positions(open_rooms)
                entries = await self.store.tail(positions, BLOCK_MS)
            except StoreError as error:
                self._outage.failed(error)
                await self._outage.pause()
                continue
            self._outage.recovered()
            run: list[Message] = []  # consecutive messages, published as one batch
            for entry in entries:
                if isinstance(entry, Message):
                    run.append(entry)
                    continue
                self._publish(run)
                run = []
                self._deliver(entry)
            self._publish(run)
            await anyio.lowlevel.checkpoint()

    async def _check_epochs(self, rooms: list[str]) -> None:
        now = anyio.current_time()
        if now - self._epochs_checked < EPOCH_CHECK_SECONDS:
            return
        self._epochs_checked = now
        for room, epoch in (await self.store.epochs(rooms)).items():
            self.saw_epoch(room, epoch)

    async def _positions(self, open_rooms: dict[str, int]) -> dict[str, Position]:
        for room in open_rooms:
            if room not in self._presence:  # opened without a join: from now on
                self._presence[room] = (await self.store.position(room)).presence
        return {
            room: Position(seq, self._presence[room], self.hub.epoch(room))
            for room, seq in open_rooms.items()
        }

    def _publish(self, messages: list[Message]) -> None:
        """Deliver messages read from the log, then release the acks waiting for them."""
        if messages:
            self.hub.publish_all([Published(message, False, None) for message in messages])
            for room in dict.fromkeys(message.room for message in messages):
                self._release(room)

    def _deliver(self, entry: PresenceChange | EpochChange) -> None:
        """Deliver a log entry other than a message (an epoch change or presence)."""
        if isinstance(entry, EpochChange):
            self.saw_epoch(entry.room, entry.epoch)
            return
        delivered = self._presence.get(entry.room)
        # A room closed meanwhile, or opened again since the read began, is skipped.
        if delivered is not None and entry.id > delivered:
            self._presence[entry.room] = entry.id
            recent = self._recent.setdefault(entry.room, deque(maxlen=RECENT_PRESENCE))
            recent.append(entry)
            self.hub.announce(entry.room, entry.kind, entry.user, entry.time_ms, at=entry.id)

    def _reset(self, room: str, epoch: str) -> None:
        """The room's log was lost: its members hear it, and the new log is read from
        its start (messages and presence alike)."""
        log.error(
            "the store lost the log of room %s (emptied or replaced): numbering starts "
            "again in a new log, and members are told",
            room,
        )
        self.hub.reset(room, epoch)
        self._presence[room] = START
        self._recent.pop(room, None)
        for _, then in self._waiting.pop(room, []):
            then()  # stored in the lost log: nothing more will come for them

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
        for room in [room for room in self._presence if room not in open_rooms]:
            del self._presence[room]
            self._recent.pop(room, None)
        for room in [room for room in self._waiting if room not in open_rooms]:
            for _, then in self._waiting.pop(room):
                then()
