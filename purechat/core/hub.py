"""Rooms and members: who is where, what number the next message gets, who is too slow.

Everything here is synchronous and does no I/O. Delivery goes through each member's
`Outbox`, whose `offer` never blocks: a full outbox is the slow-member policy's cue.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from purechat.core.events import (
    Ack,
    EndReason,
    ErrorCode,
    EventKind,
    Notice,
    Outgoing,
    RoomEvent,
    Welcome,
)
from purechat.core.limits import (
    DEFAULT_ROOM,
    Limits,
    has_control_characters,
    name_problem,
    room_problem,
)

GUEST_NAME = "guest"


class Outbox(Protocol):
    """Where the core puts what one member should receive."""

    def offer(self, item: Outgoing) -> bool:
        """Queue item without waiting; False when the member's buffer is full."""
        ...

    def end(self, reason: EndReason) -> None:
        """Stop delivering to this member and end its stream, for reason."""
        ...


class JoinRefused(Exception):
    """A join with a name or room that breaks the rules; str() is a sentence."""


@dataclass(eq=False)
class Member:
    room: Room
    outbox: Outbox
    # None until the member has a name (original-contract clients get theirs
    # from their first message); unnamed members receive but are not announced.
    name: str | None = None
    requested_name: str = ""
    present: bool = True


@dataclass(frozen=True, slots=True)
class PostOutcome:
    """What became of one send: accepted as `seq`, or refused with a notice."""

    seq: int = 0
    duplicate: bool = False
    refused: Notice | None = None


@dataclass(eq=False)
class Room:
    name: str
    last_seq: int = 0
    members: list[Member] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    # (requested sender name, client message id) -> seq, oldest first.
    recent_ids: OrderedDict[tuple[str, str], int] = field(default_factory=OrderedDict)

    def member_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.members if m.name is not None)


class Hub:
    """All rooms of one server."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] | None = None):
        self.limits = limits or Limits()
        self._clock = clock or time.time
        self._rooms: dict[str, Room] = {}
        # Sequence numbers of rooms that emptied, so numbering never restarts.
        self._retired_seq: dict[str, int] = {}

    # -- queries ---------------------------------------------------------

    def room_names(self) -> list[str]:
        return sorted(self._rooms)

    def members_of(self, room: str) -> tuple[str, ...]:
        found = self._rooms.get(room)
        return found.member_names() if found else ()

    def member_count(self) -> int:
        return sum(len(r.members) for r in self._rooms.values())

    # -- membership ------------------------------------------------------

    def attach(self, room_name: str, outbox: Outbox) -> Member:
        """Add an unnamed member that receives the room's messages (original contract)."""
        room = self._room(room_name)
        member = Member(room=room, outbox=outbox)
        room.members.append(member)
        return member

    def join(self, room_name: str, requested_name: str, outbox: Outbox) -> Member:
        """Add a named member, welcome it and announce it; JoinRefused on bad names."""
        room_name = room_name or DEFAULT_ROOM
        problem = room_problem(room_name, self.limits) or name_problem(requested_name, self.limits)
        if problem:
            raise JoinRefused(problem)
        member = self.attach(room_name, outbox)
        self.claim_name(member, requested_name, welcome=True)
        return member

    def claim_name(self, member: Member, requested: str, *, welcome: bool = False) -> str:
        """Bind a name unique in the member's room and announce the member.

        A taken name gets a suffix ("bob" -> "bob-2") rather than a refusal, so two
        clients that both call themselves the same can still both chat.
        """
        room = member.room
        base = _clean_name(requested, self.limits) or GUEST_NAME
        name = base
        n = 1
        while name in room.names:
            n += 1
            suffix = f"-{n}"
            name = base[: self.limits.max_name_chars - len(suffix)] + suffix
        member.name = name
        member.requested_name = requested
        room.names.add(name)
        if welcome:
            member.outbox.offer(Welcome(room.name, name, room.member_names(), room.last_seq))
        self._broadcast(room, self._event(room, EventKind.JOIN, name, ""))
        return name

    def leave(self, member: Member) -> None:
        """Remove a member (idempotent) and announce it if it had a name."""
        if not member.present:
            return
        self._remove(member)
        self._announce_leave(member)

    def end_all(self, reason: EndReason) -> None:
        """End every member's stream (server shutting down); no leave events."""
        for room in list(self._rooms.values()):
            for member in list(room.members):
                self._remove(member)
                member.outbox.end(reason)

    # -- messages --------------------------------------------------------

    def post(
        self, member: Member, text: str, client_msg_id: str = "", *, action: bool = False
    ) -> PostOutcome:
        """Validate, number and broadcast one message; ack or refuse to the sender."""
        room = member.room
        refusal = self._refusal(text, client_msg_id)
        if refusal is not None or not member.present or member.name is None:
            refusal = refusal or Notice(ErrorCode.BAD_FRAME, "You are not in a room.")
            member.outbox.offer(refusal)
            return PostOutcome(refused=refusal)
        key = (member.requested_name, client_msg_id)
        if client_msg_id and key in room.recent_ids:
            seq = room.recent_ids[key]
            member.outbox.offer(Ack(client_msg_id, seq, duplicate=True))
            return PostOutcome(seq=seq, duplicate=True)
        room.last_seq += 1
        seq = room.last_seq
        if client_msg_id:
            room.recent_ids[key] = seq
            if len(room.recent_ids) > self.limits.recent_ids_per_room:
                room.recent_ids.popitem(last=False)
        event = RoomEvent(
            EventKind.MESSAGE, room.name, seq, member.name, text, self._now_ms(), action
        )
        self._broadcast(room, event)
        if member.present:
            member.outbox.offer(Ack(client_msg_id, seq, duplicate=False))
        return PostOutcome(seq=seq)

    def _refusal(self, text: str, client_msg_id: str) -> Notice | None:
        size = len(text.encode())
        if size > self.limits.max_text_bytes:
            return Notice(
                ErrorCode.TEXT_TOO_LONG,
                f"Message not sent: it is {size} bytes and the limit is "
                f"{self.limits.max_text_bytes} bytes.",
                client_msg_id,
            )
        if not text.strip():
            return Notice(ErrorCode.EMPTY_TEXT, "Empty messages are not sent.", client_msg_id)
        return None

    # -- internals -------------------------------------------------------

    def _room(self, name: str) -> Room:
        room = self._rooms.get(name)
        if room is None:
            room = Room(name, last_seq=self._retired_seq.pop(name, 0))
            self._rooms[name] = room
        return room

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _event(self, room: Room, kind: EventKind, user: str, text: str) -> RoomEvent:
        return RoomEvent(kind, room.name, 0, user, text, self._now_ms())

    def _remove(self, member: Member) -> None:
        member.present = False
        room = member.room
        room.members.remove(member)
        if member.name is not None:
            room.names.discard(member.name)
        if not room.members:
            del self._rooms[room.name]
            self._retired_seq[room.name] = room.last_seq

    def _announce_leave(self, member: Member) -> None:
        if member.name is not None and member.room.members:
            self._broadcast(member.room, self._event(member.room, EventKind.LEAVE, member.name, ""))

    def _broadcast(self, room: Room, event: RoomEvent) -> None:
        """Offer event to every member; evict those whose outbox is full.

        Evicting announces a leave, which may find more members full: those are
        handled in the same loop rather than by recursion.
        """
        pending = [event]
        while pending:
            current = pending.pop(0)
            evicted = [m for m in list(room.members) if not m.outbox.offer(current)]
            for member in evicted:
                if member.present:
                    self._remove(member)
                    member.outbox.end(EndReason.TOO_SLOW)
                    if member.name is not None and room.members:
                        pending.append(self._event(room, EventKind.LEAVE, member.name, ""))


def _clean_name(requested: str, limits: Limits) -> str:
    """Make a usable name out of what an original-contract client sent as user_id."""
    if has_control_characters(requested):
        requested = "".join(ch for ch in requested if ch.isprintable())
    return requested.strip()[: limits.max_name_chars]
