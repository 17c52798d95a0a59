"""What a member's session needs from the server: the parts every door shares."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from purechat.core import Hub
from purechat.server.delivery import DeliveryLimits, MemberDelivery, Sink
from purechat.server.feed import Feed
from purechat.server.journal import Journal
from purechat.server.pacing import Pacer
from purechat.server.presence import Presence
from purechat.server.wire import Encode, legacy_encoder, v1_encoder
from purechat.store import Head, Store
from purechat.transport import Flusher


@dataclass
class Services:
    """What a member's call needs from the server."""

    hub: Hub
    store: Store
    journal: Journal
    pacer: Pacer
    # Recent lobby messages an original-contract client receives on arrival.
    legacy_history: int
    # Hears how many messages each resume replayed (metrics).
    observe_catch_up: Callable[[int], None]
    delivery_limits: DeliveryLimits = field(default_factory=DeliveryLimits)
    flusher: Flusher | None = None
    # With a store shared by several servers: delivery and presence come through it.
    feed: Feed | None = None
    presence: Presence | None = None
    # Members removed for being too slow, by reason (metrics).
    evictions: Counter[str] = field(default_factory=Counter)
    # One encoder per contract for the whole server: a broadcast is framed once each.
    legacy_encode: Encode = field(default_factory=legacy_encoder)
    v1_encode: Encode = field(default_factory=v1_encoder)

    async def known_head(self, room: str) -> Head:
        """Where the store's log of a room not yet open here stands (nothing when it
        is open: the hub knows better)."""
        return Head("", 0) if self.hub.has_room(room) else await self.store.head(room)

    def delivery(self, sink: Sink, encode: Encode) -> MemberDelivery:
        return MemberDelivery(
            sink,
            encode,
            self.delivery_limits,
            flusher=self.flusher,
            evictions=self.evictions,
        )
