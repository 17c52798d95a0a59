"""What a member's session needs from the server: the parts every door shares."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from purechat.core import Hub
from purechat.server.admin import HubRoster, Roster
from purechat.server.delivery import DeliveryLimits, MemberDelivery, Sink
from purechat.server.feed import Feed
from purechat.server.journal import Journal
from purechat.server.pacing import Pacer
from purechat.server.presence import Presence
from purechat.server.wire import Encode, legacy_encoder, v1_encoder
from purechat.store import Head, Store, StoreError
from purechat.transport import Flusher

log = logging.getLogger("purechat.server")

# A store failure's sentence is logged at most once in this many seconds.
STORE_FAILURE_LOG_SECONDS = 60.0


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
    # Who is where, for a member's ask (the page's room list): the store shared by
    # several servers, so the answer covers all of them; None: this server's hub.
    roster: Roster | None = None
    # Members removed for being too slow, by reason (metrics).
    evictions: Counter[str] = field(default_factory=Counter)
    # One encoder per contract for the whole server: a broadcast is framed once each.
    legacy_encode: Encode = field(default_factory=legacy_encoder)
    v1_encode: Encode = field(default_factory=v1_encoder)

    # When each store failure's sentence was last logged (see store_failed).
    _store_failures_logged: dict[str, float] = field(default_factory=dict)

    def store_failed(self, error: StoreError, what: str) -> None:
        """Log a store failure that refused a member something (a join, history): each
        sentence once a minute, not once per member, so an outage that turns away a
        thousand members is a line, not a thousand."""
        sentence = str(error)
        now = time.monotonic()
        logged = self._store_failures_logged
        if now - logged.get(sentence, -math.inf) < STORE_FAILURE_LOG_SECONDS:
            return
        if len(logged) >= 64:
            logged.clear()
        logged[sentence] = now
        log.error("%s; %s was refused (said once a minute)", sentence, what)

    async def known_head(self, room: str) -> Head:
        """Where the store's log of a room not yet open here stands (nothing when it
        is open: the hub knows better)."""
        return Head("", 0) if self.hub.has_room(room) else await self.store.head(room)

    async def rooms(self) -> list[tuple[str, int, int]]:
        """(name, members, last_seq) of every room with members, as `purechat rooms`
        lists them; StoreError when a shared store does not answer."""
        return await (self.roster or HubRoster(self.hub)).rooms()

    def delivery(self, sink: Sink, encode: Encode) -> MemberDelivery:
        return MemberDelivery(
            sink,
            encode,
            self.delivery_limits,
            flusher=self.flusher,
            evictions=self.evictions,
        )
