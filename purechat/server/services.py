"""What a member's session needs from the server: the parts every door shares."""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from purechat.core import Hub, Identity, Message
from purechat.core.conversations import is_conversation
from purechat.core.moderation import RoomState, Target
from purechat.core.names import name_key
from purechat.errors import NotAllowed
from purechat.server.auth import Admitted
from purechat.server.delivery import DeliveryLimits, MemberDelivery, Sink
from purechat.server.feed import Feed
from purechat.server.identity import Authenticator
from purechat.server.journal import Journal
from purechat.server.pacing import Pacer
from purechat.server.presence import Presence
from purechat.server.roster import HubRoster, Roster
from purechat.server.wire import Encode, legacy_encoder, v1_encoder
from purechat.store import Head, Store, StoreError
from purechat.store.directory import Directory
from purechat.transport import Flusher

log = logging.getLogger("purechat.server")

# A guest's name is checked against registered accounts among this many candidates
# ("bob", "bob-2", ...); past them a guest could be given one (it never gets that far).
RESERVED_CHECKED = 20
# A store failure's sentence is logged at most once in this many seconds.
STORE_FAILURE_LOG_SECONDS = 60.0


@dataclass
class _Loading:
    """One read of a room's state, which joins that open the room at once share."""

    done: anyio.Event = field(default_factory=anyio.Event)
    state: RoomState | None = None


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
    # Accounts, sessions and room state (store/directory.py); who each call is; the
    # calls open, so that revoking an account, a token or an address ends them.
    directory: Directory | None = None
    auth: Authenticator | None = None
    admitted: Admitted | None = None
    # Who is where, for a member's ask (the page's room list): the store shared by
    # several servers, so the answer covers all of them; None: this server's hub.
    roster: Roster | None = None
    # Members removed for being too slow, by reason (metrics).
    evictions: Counter[str] = field(default_factory=Counter)
    # One encoder per contract for the whole server: a broadcast is framed once each.
    legacy_encode: Encode = field(default_factory=legacy_encoder)
    v1_encode: Encode = field(default_factory=v1_encoder)

    # Reads of a room's state under way, shared by the joins that wait for them.
    _states_loading: dict[str, _Loading] = field(default_factory=dict)
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

    async def known_state(self, room: str) -> RoomState | None:
        """A room's roles and restrictions from the store, for a room not yet open here
        (None when it is open: the hub's copy is current)."""
        if self.hub.has_room(room):
            return None
        if self.directory is None:
            return RoomState()
        # Many joins may open a room at once: one read of its state serves them all.
        loading = self._states_loading.get(room)
        if loading is None:
            loading = self._states_loading[room] = _Loading()
            try:
                loading.state = await self.directory.room_state(room)
            finally:
                del self._states_loading[room]
                loading.done.set()
        else:
            await loading.done.wait()
        if loading.state is None:  # the read failed: this join tries its own
            return await self.directory.room_state(room)
        return loading.state

    async def reserved_for(self, identity: Identity, requested: str) -> frozenset[str]:
        """For a guest: which of the names it might be given are registered accounts'
        (it gets another); nothing for an account, whose name is its own."""
        if identity.account is not None or self.auth is None:
            return frozenset()
        registered = self.auth.account_keys
        candidates = itertools.islice(self.hub.candidate_names(requested), RESERVED_CHECKED)
        return frozenset(key for name in candidates if (key := name_key(name)) in registered)

    async def resolve_target(self, room: str, name: str) -> Target | None:
        """Whom a moderation command names: a member present here, else a registered
        account (present elsewhere or not), else a guest present on another server
        sharing the store; unknown (known=False) otherwise. None for no name."""
        if not name:
            return None
        here = self.hub.target(room, name)
        if here is not None:
            return here
        admin = self.auth is not None and self.auth.is_admin(name)
        account = await self.directory.account(name) if self.directory else None
        if account is not None:
            return Target(account.name, account.key, True, admin)
        if self.presence is not None:
            present = {name_key(held): held for held in await self.presence.store.members(room)}
            if (held := present.get(name_key(name))) is not None:
                return Target(held, None, True)
        return Target(name, None, False)

    async def message_at(self, room: str, seq: int) -> Message | None:
        """Message seq of room as the store has it now (None: not kept), the target
        of an edit, delete or reaction. NotAllowed on a store that cannot keep changes
        (one whose delete would only hide the text: every store purechat has keeps
        them; the check stays for a store added later)."""
        if not getattr(self.store, "keeps_changes", False):
            raise NotAllowed("This server's store cannot edit, delete or react to messages yet.")
        if seq <= 0:
            return None
        found = await self.store.read(room, after=seq - 1, upto=seq)
        return found[0] if found else None

    async def already_sent(self, room: str, sender_key: str, client_msg_id: str) -> int | None:
        """A retried change's first number (None: not stored before, or no id): a retry
        is answered with it before any decision, since the message it changed is not as
        it was when it was first asked (an edit "says that already")."""
        if not client_msg_id:
            return None
        seq: int | None = await self.store.sent(room, sender_key, client_msg_id)  # type: ignore[attr-defined]
        return seq

    async def known_head(self, room: str) -> Head:
        """Where the store's log of a room not yet open here stands (nothing when it
        is open: the hub knows better)."""
        return Head("", 0) if self.hub.has_room(room) else await self.store.head(room)

    async def rooms(self) -> list[tuple[str, int, int]]:
        """(name, members, last_seq) of every room with members, as `purechat rooms`
        lists them; StoreError when a shared store does not answer."""
        rooms = await (self.roster or HubRoster(self.hub)).rooms()
        # A conversation is no room to list: only its two accounts may know of it.
        return [room for room in rooms if not is_conversation(room[0])]

    def delivery(self, sink: Sink, encode: Encode) -> MemberDelivery:
        return MemberDelivery(
            sink,
            encode,
            self.delivery_limits,
            flusher=self.flusher,
            evictions=self.evictions,
        )
