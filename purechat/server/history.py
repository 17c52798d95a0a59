"""What a member receives before live messages: recent history, or what it missed."""

from __future__ import annotations

from purechat.core import EventKind, RoomEvent
from purechat.store import Store, StoredMessage

# A resume replays at most this many messages; older ones are reported as a gap.
MAX_CATCH_UP = 10_000


async def catch_up(
    store: Store, room: str, *, upto: int, after_seq: int | None, history: int
) -> list[RoomEvent]:
    """Messages up to `upto` (the room's newest when the member arrived).

    With after_seq (a resume): every message after it, preceded by a gap event when
    some are no longer kept. Otherwise: the last `history` messages, marked as history.
    """
    if after_seq is None:
        if history <= 0 or upto <= 0:
            return []
        found = await store.read(room, after=max(0, upto - history), upto=upto)
        return [_event(message, history=True) for message in found]
    after = min(after_seq, upto)
    if after == upto:
        return []
    found = await store.read(room, after=max(after, upto - MAX_CATCH_UP), upto=upto)
    first_found = found[0].seq if found else upto + 1
    events = [_event(message, history=False) for message in found]
    if first_found > after + 1:
        gap = RoomEvent(EventKind.GAP, room, after, "", "", 0, gap_until=first_found - 1)
        events.insert(0, gap)
    return events


def _event(message: StoredMessage, *, history: bool) -> RoomEvent:
    return RoomEvent(
        EventKind.MESSAGE,
        message.room,
        message.seq,
        message.user,
        message.text,
        message.time_ms,
        message.action,
        history=history,
    )
