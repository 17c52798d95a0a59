"""The feed: with a store shared by several servers, delivery comes from the store's log.

Every server reads each open room's logs from where its members are (`tail`) and
broadcasts in the log's order, its own members' messages included, so members on every
server see one order; joins and leaves (logged by every server's `Presence`) come the
same way. A sender's ack waits until its message has come round the feed: an ack then
means "stored, and delivered here in order".

Servers keep pace with each other through the store (`keep_pace`): a room whose
members here are behind (most of them lag, the hub's rule for a busy room) or whose log
this server reads slower than it grows (a read gives the store's tail_count: more wait)
is reported behind, and a room another server reports behind has its senders here held
by the pacer until it is not (a room this server reads slower than its log grows has
its senders here held too). So one server's members falling behind slow the senders on
every server, as one server's busy room slows its own. A room behind here is still
read: what was sent before the senders were held goes to the members' queues (their
byte budget is what absorbs it, as on one server), not left in a log that keeps only
the newest --history messages.

A room whose log the store lost (Redis flushed, or restarted without its data) gets a
new epoch. The feed notices it from the log's entries, from an append's answer, or by
asking every so often while a room is quiet; it then tells the room's members (RESET),
and reads the new log from its start, so delivery goes on at once and no number is
taken for the message it meant in the old log.

Who is typing crosses servers beside the log, never in it: each typing flush here hands
what the store heard from the other servers to the hub (`hear_typing`), and what this
server's members typed to the store (`tell_typing`), which tells the servers reading
the room (store/shared.py's TypingCarrier; a store that is not one carries nothing).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence

import anyio
import anyio.lowlevel

from purechat.core import Hub, Member, Message, Published
from purechat.server.outage import Outage
from purechat.server.pacing import Pacer
from purechat.store import StoreError
from purechat.store.shared import (
    EpochChange,
    Position,
    PresenceChange,
    PresenceId,
    SharedStore,
    TypingCarrier,
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
# How often rooms behind here are told to the store, and rooms held for another
# server's sake asked about again; a report lasts BEHIND_TTL_MS unless renewed (a
# server that dies behind holds nobody up for longer).
PACE_SECONDS = 0.05
BEHIND_TTL_MS = 2000


class Feed:
    def __init__(self, hub: Hub, store: SharedStore, pacer: Pacer | None = None):
        self.hub = hub
        self.store = store
        self.pacer = pacer
        # Rooms whose last read gave TAIL_COUNT messages (more are waiting), and the
        # rooms last reported behind, and when.
        self._trailing: set[str] = set()
        self._reported: set[str] = set()
        self._reported_at = 0.0
        self._pace_now = anyio.Event()
        self._waiting: dict[str, list[tuple[int, Callable[[], None]]]] = {}
        # Per open room, the newest join or leave delivered here, and the latest few.
        self._presence: dict[str, PresenceId] = {}
        self._recent: dict[str, deque[PresenceChange]] = {}
        self._outage = Outage("delivery")
        self._epochs_checked = 0.0
        # Who typed here at the latest flush, not yet told to the other servers (a
        # newer flush replaces it: a publish that lags is not queued behind).
        self._typed: dict[str, tuple[str, ...]] = {}
        self._typed_now = anyio.Event()

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

    def hear_typing(self) -> None:
        """Hand the hub who typed on other servers since last asked (for its flush)."""
        if isinstance(self.store, TypingCarrier):
            for room, users in self.store.heard_typing().items():
                self.hub.typing_elsewhere(room, users)

    def tell_typing(self, typed: dict[str, tuple[str, ...]]) -> None:
        """Who typed here since the last flush (Hub.flush_typing's answer), for the
        other servers: told by `_carry_typing`, so a slow store delays no flush."""
        if typed and isinstance(self.store, TypingCarrier):
            self._typed = typed
            self._typed_now.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.store.listen)
            if self.pacer is not None:
                tasks.start_soon(self.keep_pace, self.pacer)
            if isinstance(self.store, TypingCarrier):
                tasks.start_soon(self._carry_typing, self.store)
            await self._follow()

    async def _carry_typing(self, store: TypingCarrier) -> None:
        """Tell the other servers who typed here, once a flush. What the store could not
        take is dropped, not retried: typing is worth nothing a moment later (sends fail
        meanwhile, and the delivery's outage says so)."""
        while True:
            await self._typed_now.wait()
            self._typed_now = anyio.Event()
            typed, self._typed = self._typed, {}
            try:
                await store.publish_typing(dict(typed))
            except StoreError as error:
                log.debug("%s; who typed here is not told to the other servers", error)

    async def _follow(self) -> None:
        while True:
            open_rooms = {name: last for name, _, last in self.hub.rooms()}
            self._release_closed_rooms(open_rooms)
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
            self._note_trailing(positions, entries)
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

    def _note_trailing(self, positions: dict[str, Position], entries: Sequence[object]) -> None:
        """A read that gave tail_count messages of a room: the log grows faster than this
        server reads it. Its senders here wait at once, and the store hears it at once
        (its log then keeps more, and the other servers' senders wait too)."""
        read: dict[str, int] = dict.fromkeys(positions, 0)
        for entry in entries:
            if isinstance(entry, Message):
                read[entry.room] += 1
        for room, count in read.items():
            if count < self.store.tail_count:
                self._trailing.discard(room)
            elif room not in self._trailing:
                self._trailing.add(room)
                self._pace_now.set()
                if self.pacer is not None:
                    self.pacer.hold(room)

    async def keep_pace(self, pacer: Pacer) -> None:
        """Tell the store which rooms are behind here, and hold the senders of rooms
        that are behind on another server until they are not (see the module's doc)."""
        outage = Outage("pacing")
        elsewhere: set[str] = set()  # rooms another server is behind in
        while True:
            with anyio.move_on_after(PACE_SECONDS):
                await self._pace_now.wait()
            self._pace_now = anyio.Event()
            try:
                await self._report_behind()
                elsewhere |= {room for room in self.store.behind_hints() if self.hub.has_room(room)}
                if elsewhere:
                    elsewhere = await self.store.behind_elsewhere(elsewhere)
            except StoreError as error:
                # Sends fail anyway while the store is away: nobody is held for it.
                elsewhere.clear()
                outage.failed(error)
                await outage.pause()
            else:
                outage.recovered()
            held = (elsewhere | self._trailing) & {name for name, _, _ in self.hub.rooms()}
            for room in held - pacer.held:
                pacer.hold(room)
            for room in pacer.held - held:
                pacer.release(room)

    async def _report_behind(self) -> None:
        open_rooms = {name for name, _, _ in self.hub.rooms()}
        self._trailing &= open_rooms
        behind = {room for room in open_rooms if self.hub.room_behind(room)} | self._trailing
        now = anyio.current_time()
        renew = now - self._reported_at >= BEHIND_TTL_MS / 3000
        news = behind if renew else behind - self._reported
        caught_up = self._reported - behind
        if news or caught_up:
            await self.store.report_behind(news, caught_up, BEHIND_TTL_MS)
        if renew:
            self._reported_at = now
        self._reported = behind

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
