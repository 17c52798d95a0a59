"""What a member receives before live messages: recent history, or what it missed."""

from __future__ import annotations

from dataclasses import replace

from purechat.core import EventKind, Message, RoomEvent
from purechat.store import Store

# A resume replays at most this many messages; older ones are reported as a gap.
MAX_CATCH_UP = 10_000


async def catch_up(
    store: Store, room: str, *, upto: int, after_seq: int | None, history: int
) -> list[Message | RoomEvent]:
    """Messages up to `upto` (the room's newest when the member arrived).

    With after_seq (a resume): every message after it, preceded by a gap event when
    some are no longer kept. Otherwise: the last `history` messages, marked as history.
    """
    if after_seq is None:
        if history <= 0 or upto <= 0:
            return []
        found = await store.read(room, after=max(0, upto - history), upto=upto)
        return [replace(message, history=True) for message in found]
    after = min(after_seq, upto)
    if after == upto:
        return []
    found = await store.read(room, after=max(after, upto - MAX_CATCH_UP), upto=upto)
    first_found = found[0].seq if found else upto + 1
    events: list[Message | RoomEvent] = list(found)
    if first_found > after + 1:
        gap = RoomEvent(EventKind.GAP, room, seq=after, gap_until=first_found - 1)
        events.insert(0, gap)
    return events
