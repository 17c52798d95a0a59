"""Stand-ins for the transport when the core is driven alone, and stores that fail."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from pathlib import Path

import trio
import trio.lowlevel

from purechat.core import EndReason, EventKind, Message, Messages, Outgoing, RoomEvent
from purechat.errors import OutcomeUnknown, StoreError, StoreUnavailable
from purechat.store import Appended, Head, MemoryStore, SearchCursor, Store
from purechat.store.shared import (
    Heartbeat,
    Joined,
    LogEntry,
    Position,
    PresenceId,
    Seat,
    SharedStore,
)


class FakeOutbox:
    """Records what the core delivers; holds at most `capacity` items."""

    def __init__(self, capacity: int = 1000):
        self.capacity = capacity
        self.items: list[Outgoing] = []
        self.ended: EndReason | None = None

    def offer(self, item: Outgoing) -> bool:
        items = item.messages if isinstance(item, Messages) else (item,)
        if len(self.items) + len(items) > self.capacity:
            return False
        self.items.extend(items)
        return True

    def end(self, reason: EndReason, detail: str = "") -> None:
        self.ended = reason

    def events(self, kind: EventKind | None = None) -> list[RoomEvent]:
        return [i for i in self.items if isinstance(i, RoomEvent) and kind in (None, i.kind)]

    def messages(self) -> list[Message]:
        return [i for i in self.items if isinstance(i, Message)]

    def texts(self) -> list[str]:
        return [m.text for m in self.messages()]


class SharedMemoryStore(MemoryStore):
    """A store shared by several servers, in memory: names only, enough for presence.

    Every call that would go to Redis takes one checkpoint, counted in `awaits`; the
    `awaits`-th one (when `cancel_at` names it) cancels `scope` first, so a test can
    cancel a membership at each of its awaits in turn. `lose_answers` makes a join bind
    its name and then report that the store did not answer (a Redis timeout).
    """

    def __init__(self) -> None:
        super().__init__()
        self.seats: dict[tuple[str, str], str] = {}
        self.awaits = 0
        self.cancel_at: int | None = None
        self.scope: trio.CancelScope | None = None
        self.lose_answers = False
        self.joining: trio.Event | None = None

    async def _step(self) -> None:
        self.awaits += 1
        if self.awaits == self.cancel_at and self.scope is not None:
            self.scope.cancel()
        await trio.lowlevel.checkpoint()

    async def head(self, room: str) -> Head:
        await self._step()
        return await super().head(room)

    async def join(
        self, room: str, candidates: Sequence[str], holder: str, session: str, time_ms: int
    ) -> Joined | None:
        await self._step()
        if self.joining is not None:
            await self.joining.wait()
        for name in candidates:
            if (room, name) not in self.seats:
                self.seats[room, name] = holder
                if self.lose_answers:
                    raise OutcomeUnknown("Redis at test:1: timed out")
                here = tuple(sorted(n for r, n in self.seats if r == room))
                return Joined(name, Position(0, PresenceId(0, 0), self.epoch), here)
        return None

    async def leave(self, seats: Sequence[Seat], time_ms: int) -> None:
        await self._step()
        for room, name, holder in seats:
            named = [n for (r, n), h in self.seats.items() if r == room and h == holder]
            for found in [name] if name else named:
                if self.seats.get((room, found)) == holder:
                    del self.seats[room, found]

    async def tail(self, positions: dict[str, Position], block_ms: int) -> list[LogEntry]:
        await trio.sleep(block_ms / 1000)
        return []

    async def position(self, room: str) -> Position:
        return Position(0, PresenceId(0, 0), self.epoch)

    async def epochs(self, rooms: Sequence[str]) -> dict[str, str]:
        return dict.fromkeys(rooms, self.epoch)

    tail_count = 1000

    async def listen(self) -> None:
        pass

    async def heartbeat(self, server: str, ttl_ms: int, rooms: Collection[str]) -> Heartbeat:
        return Heartbeat.KEPT

    async def restore(self, held: Sequence[tuple[Seat, str]], time_ms: int) -> list[Seat]:
        return []

    async def sweep(self, time_ms: int) -> int:
        return 0

    async def retire(self, server: str, time_ms: int) -> None:
        self.seats.clear()

    async def members(self, room: str) -> tuple[str, ...]:
        return tuple(sorted(n for r, n in self.seats if r == room))

    async def rooms(self) -> list[tuple[str, int, int]]:
        return []

    async def report_behind(
        self, behind: Collection[str], caught_up: Collection[str], ttl_ms: int
    ) -> None:
        pass

    async def behind_elsewhere(self, rooms: Collection[str]) -> set[str]:
        return set()

    def behind_hints(self) -> set[str]:
        return set()


# -- stores whose reads fail --------------------------------------------------------

READS = frozenset({"read", "head", "position", "members", "join"})


class FailingReads:
    """A store whose reads (history, heads; with a shared store also presence: position,
    members, join) raise `error` while their names are in `failing`; everything else,
    appends included, goes to the store it wraps.

    `failed` counts the reads refused, so a test knows the failure was met, not missed.
    """

    def __init__(self, store: Store, error: StoreError | None = None):
        self.store = store
        self.failing: set[str] = set()
        self.error = error or StoreUnavailable("the message store failed: disk I/O error")
        self.failed = 0

    def fail(self, *reads: str) -> None:
        assert set(reads) <= READS, set(reads) - READS
        self.failing = set(reads)

    def _check(self, read: str) -> None:
        if read in self.failing:
            self.failed += 1
            raise self.error

    @property
    def description(self) -> str:
        return self.store.description

    async def append(self, messages: Sequence[Message]) -> list[Appended]:
        return await self.store.append(messages)

    async def head(self, room: str) -> Head:
        self._check("head")
        return await self.store.head(room)

    async def read(self, room: str, *, after: int, upto: int) -> list[Message]:
        self._check("read")
        return await self.store.read(room, after=after, upto=upto)

    async def search(
        self,
        words: Sequence[str],
        rooms: Sequence[str] | None,
        limit: int,
        before: SearchCursor | None = None,
    ) -> list[Message]:
        self._check("read")
        return await self.store.search(words, rooms, limit, before)

    async def aclose(self) -> None:
        await self.store.aclose()


class FailingSharedReads(FailingReads):
    """FailingReads for a store several servers share (Redis): presence reads fail too."""

    def __init__(self, store: SharedStore, error: StoreError | None = None):
        super().__init__(store, error)
        self.shared = store

    async def tail(self, positions: dict[str, Position], block_ms: int) -> list[LogEntry]:
        return await self.shared.tail(positions, block_ms)

    @property
    def tail_count(self) -> int:
        return self.shared.tail_count

    async def listen(self) -> None:
        await self.shared.listen()

    async def epochs(self, rooms: Sequence[str]) -> dict[str, str]:
        return await self.shared.epochs(rooms)

    async def position(self, room: str) -> Position:
        self._check("position")
        return await self.shared.position(room)

    async def join(
        self, room: str, candidates: Sequence[str], holder: str, session: str, time_ms: int
    ) -> Joined | None:
        self._check("join")
        return await self.shared.join(room, candidates, holder, session, time_ms)

    async def leave(self, seats: Sequence[Seat], time_ms: int) -> None:
        await self.shared.leave(seats, time_ms)

    async def heartbeat(self, server: str, ttl_ms: int, rooms: Collection[str]) -> Heartbeat:
        return await self.shared.heartbeat(server, ttl_ms, rooms)

    async def restore(self, held: Sequence[tuple[Seat, str]], time_ms: int) -> list[Seat]:
        return await self.shared.restore(held, time_ms)

    async def sweep(self, time_ms: int) -> int:
        return await self.shared.sweep(time_ms)

    async def retire(self, server: str, time_ms: int) -> None:
        await self.shared.retire(server, time_ms)

    async def members(self, room: str) -> tuple[str, ...]:
        self._check("members")
        return await self.shared.members(room)

    async def rooms(self) -> list[tuple[str, int, int]]:
        return await self.shared.rooms()

    async def report_behind(
        self, behind: Collection[str], caught_up: Collection[str], ttl_ms: int
    ) -> None:
        await self.shared.report_behind(behind, caught_up, ttl_ms)

    async def behind_elsewhere(self, rooms: Collection[str]) -> set[str]:
        return await self.shared.behind_elsewhere(rooms)

    def behind_hints(self) -> set[str]:
        return self.shared.behind_hints()


def failing_reads(store: Store, error: StoreError | None = None) -> FailingReads:
    """The wrapper that fits store: shared stores keep being shared."""
    if isinstance(store, SharedStore):
        return FailingSharedReads(store, error)
    return FailingReads(store, error)


# -- a damaged SQLite file ---------------------------------------------------------


def damage_last_page(path: Path, table: str = "messages") -> str:
    """Overwrite the last page of a table of a SQLite file (its WAL checkpointed; the
    messages' by default, where the newest messages are) with bytes no page starts with,
    as a disk or a copy gone wrong would; which b-tree it belonged to."""
    with sqlite3.connect(path) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        page = db.execute("SELECT max(pageno) FROM dbstat WHERE name = ?", (table,)).fetchone()[0]
        owner = db.execute("SELECT name FROM dbstat WHERE pageno = ?", (page,)).fetchone()
    db.close()
    with path.open("r+b") as file:
        file.seek((page - 1) * size)
        file.write(b"\xde\xad\xbe\xef" * (size // 4))
    return str(owner[0])
