"""What the core hands to members: room events, acks, notices, welcomes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class EventKind(enum.Enum):
    MESSAGE = "message"
    JOIN = "join"
    LEAVE = "leave"
    # Messages after `seq` up to `gap_until` are no longer kept.
    GAP = "gap"


class ErrorCode(enum.Enum):
    """Why a send was refused; the stream goes on."""

    TEXT_TOO_LONG = "text_too_long"
    EMPTY_TEXT = "empty_text"
    RATE_LIMITED = "rate_limited"
    BAD_FRAME = "bad_frame"
    STORE_UNAVAILABLE = "store_unavailable"


class EndReason(enum.Enum):
    """Why the core ended a member's stream."""

    TOO_SLOW = "too_slow"
    SHUTTING_DOWN = "shutting_down"
    STORE_UNAVAILABLE = "store_unavailable"
    # Servers sharing a store: this one lost touch with it, and the member's name was
    # given to somebody else meanwhile.
    NAME_LOST = "name_lost"
    # The same client joined again on a newer stream, which took the name over.
    REPLACED = "replaced"


@dataclass(slots=True, eq=False)
class RoomEvent:
    """One thing that happened in a room, shared by every member that receives it.

    `wire` caches the encoded form per wire format, so a broadcast is serialised once
    however many members receive it; the transport fills it on first use.
    """

    kind: EventKind
    room: str
    seq: int
    user: str
    text: str
    time_ms: int
    action: bool = False
    # Replayed from the room's log on joining, rather than live.
    history: bool = False
    gap_until: int = 0
    wire: dict[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class Draft:
    """A validated message on its way to the store, which numbers it.

    `sender_key` (the name the sender asked for) and `client_msg_id` identify a send
    across retries and reconnects: the store answers a repeat with the original number.
    """

    room: str
    user: str
    text: str
    time_ms: int
    action: bool
    sender_key: str
    client_msg_id: str


@dataclass(frozen=True, slots=True)
class Welcome:
    room: str
    name: str
    members: tuple[str, ...]
    last_seq: int


@dataclass(frozen=True, slots=True)
class Ack:
    client_msg_id: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Notice:
    """A refused send, told to its sender only."""

    code: ErrorCode
    message: str
    client_msg_id: str = ""


Outgoing = RoomEvent | Welcome | Ack | Notice
