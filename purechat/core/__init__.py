"""The chat core: rooms, members, sequence numbers and policies, with no I/O.

The transport feeds it (join, post, leave) and it answers with decisions; whatever it
delivers goes into each member's `Outbox`, which the transport drains.
"""

from purechat.core.events import (
    Ack,
    EndReason,
    EntryKind,
    ErrorCode,
    EventKind,
    Message,
    Messages,
    Notice,
    Outgoing,
    RoomCount,
    RoomEvent,
    RoomList,
    Welcome,
)
from purechat.core.hub import (
    GUEST,
    AccessDenied,
    BoundName,
    Hub,
    HubStats,
    Identity,
    JoinRefused,
    Member,
    Outbox,
    Published,
    RoomFull,
)
from purechat.core.limits import Limits

__all__ = [
    "GUEST",
    "AccessDenied",
    "Ack",
    "BoundName",
    "EndReason",
    "EntryKind",
    "ErrorCode",
    "EventKind",
    "Hub",
    "HubStats",
    "Identity",
    "JoinRefused",
    "Limits",
    "Member",
    "Message",
    "Messages",
    "Notice",
    "Outbox",
    "Outgoing",
    "Published",
    "RoomCount",
    "RoomEvent",
    "RoomFull",
    "RoomList",
    "Welcome",
]
