"""A store several servers use at once: the rooms' logs and who is in them, everywhere.

With such a store every server delivers from the log (`tail`) rather than from its own
members' sends, so members on every server see one order; and names, member lists and
join/leave events are kept in the store, so they cover every server. A server keeps
its members listed by heartbeats; when one stops without saying so, any other removes
its members (`sweep`) once its heartbeat has expired, and their leaves are published.

Servers also keep pace with each other through it: a server whose members in a room
are behind says so (`report_behind`), and the others slow that room's senders until it
has caught up (`behind_elsewhere`), as one server does for its own busy room.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple, Protocol, runtime_checkable

from purechat.core import EventKind, Message
from purechat.store.base import Store

# tail hands back at most this many messages of a room at once (see tail_count).
TAIL_COUNT = 1024

# (room, name, holder) of one member's hold on its name. The holder id is the server's
# id, "/", and a number unique on that server, so a member whose name was taken over
# by a newer stream of the same client cannot free it when it ends.
Seat = tuple[str, str, str]


def holder_id(server: str, number: int) -> str:
    return f"{server}/{number}"


class PresenceId(NamedTuple):
    """A join or leave's place in its room's presence log.

    `seq` is the room's newest message number when it happened, so presence and
    messages merge into the order they happened in: message `seq` first, then the
    presence entries numbered `(seq, 0)`, `(seq, 1)`, ... A plain (seq, order) tuple,
    so the core compares places without knowing the store.
    """

    seq: int
    order: int

    @classmethod
    def parse(cls, entry_id: str) -> PresenceId:
        seq, _, order = entry_id.partition("-")
        return cls(int(seq), int(order or 0))

    def __str__(self) -> str:
        return f"{self.seq}-{self.order}"


@dataclass(frozen=True, slots=True)
class PresenceChange:
    room: str
    id: PresenceId
    kind: EventKind  # JOIN or LEAVE
    user: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class Position:
    """Where a server has delivered a room's logs up to, in which epoch of its log."""

    seq: int
    presence: PresenceId
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class EpochChange:
    """The room's log is not the one a position was in: the store lost it."""

    room: str
    epoch: str


@dataclass(frozen=True, slots=True)
class Joined:
    """A name bound in a room on every server, and what the joiner needs to start."""

    name: str
    # Delivered up to here before the join: the join is the next presence entry.
    position: Position
    # Everyone in the room once joined, on every server.
    members: tuple[str, ...]


LogEntry = Message | PresenceChange | EpochChange


class Heartbeat(Enum):
    """What a heartbeat found."""

    KEPT = "kept"  # the server's members stayed listed
    LAPSED = "lapsed"  # they had lapsed (and may have been swept): list them again
    SWEEPING = "sweeping"  # another server is removing them now: beat again shortly


@runtime_checkable
class SharedStore(Store, Protocol):
    @property
    def tail_count(self) -> int:
        """The most messages of a room one tail gives (at most TAIL_COUNT): a read that
        gives as many means more are waiting. Well under what the store keeps of a
        room, so that a server reading slower than the log grows finds out (and holds
        the senders back) before anything it has not read is dropped."""
        ...

    async def tail(self, positions: dict[str, Position], block_ms: int) -> list[LogEntry]:
        """What was logged in these rooms after each one's position, in the order it
        happened, waiting up to block_ms for something. An entry of another epoch than
        its room's position is preceded by an EpochChange for the room. At most
        tail_count messages per room: a room that gave as many has more waiting."""
        ...

    async def listen(self) -> None:
        """Run beside tail for as long as it is used (a cluster's news of rooms, which
        tail waits for); returns at once where tail needs no help."""
        ...

    async def epochs(self, rooms: Sequence[str]) -> dict[str, str]:
        """Each room's epoch now (a room whose log was lost gets a new one)."""
        ...

    async def position(self, room: str) -> Position:
        """The room's newest message and presence entry, and its epoch."""
        ...

    async def join(
        self, room: str, candidates: Sequence[str], holder: str, session: str, time_ms: int
    ) -> Joined | None:
        """Bind the first candidate name nobody in room has (or a member of the same
        non-empty session has: taken over, nothing logged) for holder, and log the join;
        None when every candidate is taken."""
        ...

    async def leave(self, seats: Sequence[Seat], time_ms: int) -> None:
        """Unbind these names (where their holders still hold them) and log the leaves."""
        ...

    async def heartbeat(self, server: str, ttl_ms: int, rooms: Collection[str]) -> Heartbeat:
        """Keep server's members listed for ttl_ms more. rooms: where it holds seats
        now (so that a sweep after a crash finds them; others are let go)."""
        ...

    async def restore(self, held: Sequence[tuple[Seat, str]], time_ms: int) -> list[Seat]:
        """Bind these names (seat and session) again after their server's heartbeat
        lapsed; the seats somebody else took meanwhile are returned."""
        ...

    async def sweep(self, time_ms: int) -> int:
        """Unbind the members of servers whose heartbeat expired; how many."""
        ...

    async def retire(self, server: str, time_ms: int) -> None:
        """Unbind every member of server, which is stopping."""
        ...

    async def members(self, room: str) -> tuple[str, ...]:
        """Names in room on every server, sorted."""
        ...

    async def rooms(self) -> list[tuple[str, int, int]]:
        """(name, named members, newest number) of every room with members, by name."""
        ...

    async def report_behind(
        self, behind: Collection[str], caught_up: Collection[str], ttl_ms: int
    ) -> None:
        """This server's members in `behind` cannot keep up (for ttl_ms unless said
        again); in `caught_up` they have."""
        ...

    async def behind_elsewhere(self, rooms: Collection[str]) -> set[str]:
        """Those of rooms where another server's members are behind."""
        ...

    def behind_hints(self) -> set[str]:
        """Rooms that this server's appends found behind elsewhere since last asked."""
        ...


# Names of one room a server tells the others at once (one flush: a second), and names
# of one room kept of what the others told, until the next flush takes them.
TYPING_TOLD = 500
TYPING_HEARD = 1000


@runtime_checkable
class TypingCarrier(Protocol):
    """A shared store that carries who is typing between its servers, never keeping it
    (pub/sub). A store without it (memory, SQLite: one server) carries nothing."""

    async def publish_typing(self, typed: dict[str, Sequence[str]]) -> None:
        """Tell the servers following these rooms who typed here (at most TYPING_TOLD
        names a room); nothing is stored, and a server not listening now never hears it."""
        ...

    def heard_typing(self) -> dict[str, tuple[str, ...]]:
        """Who typed on other servers, by room (rooms this server's feed reads; at most
        TYPING_HEARD names a room), since last asked."""
        ...
