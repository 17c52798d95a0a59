"""Stand-ins for the transport when the core is driven alone."""

from __future__ import annotations

from purechat.core import EndReason, EventKind, Message, Outgoing, RoomEvent


class FakeOutbox:
    """Records what the core delivers; holds at most `capacity` items."""

    def __init__(self, capacity: int = 1000):
        self.capacity = capacity
        self.items: list[Outgoing] = []
        self.ended: EndReason | None = None

    def offer(self, item: Outgoing) -> bool:
        if len(self.items) >= self.capacity:
            return False
        self.items.append(item)
        return True

    def end(self, reason: EndReason) -> None:
        self.ended = reason

    def events(self, kind: EventKind | None = None) -> list[RoomEvent]:
        return [i for i in self.items if isinstance(i, RoomEvent) and kind in (None, i.kind)]

    def messages(self) -> list[Message]:
        return [i for i in self.items if isinstance(i, Message)]

    def texts(self) -> list[str]:
        return [m.text for m in self.messages()]
