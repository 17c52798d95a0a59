"""One member's time in one room, from the door to its leave, for both contracts.

`async with Membership(...) as member:` checks the join, binds the member's name (on
every server sharing the store), adds it to the hub and tells it what the feed already
announced; leaving the block, however the call ends (returned, evicted, cancelled, an
exception group), takes the member out of the room and frees its name, exactly once.
If entering fails half-way, what was taken is given back before the error propagates.

An original-contract member enters unnamed and is named by its first message
(`name`), inside the same lifetime, so a member removed while its name was being bound
never leaves that name behind.
"""

from __future__ import annotations

import logging
from types import TracebackType

from purechat.core import GUEST, BoundName, EndReason, Identity, Member, Welcome
from purechat.errors import OutcomeUnknown
from purechat.server.delivery import MemberDelivery
from purechat.server.services import Services
from purechat.store.shared import Joined, Seat

log = logging.getLogger("purechat.server")


class Membership:
    """See the module docstring. `requested` None: an original-contract member."""

    def __init__(
        self,
        services: Services,
        delivery: MemberDelivery,
        *,
        peer: str,
        room: str,
        requested: str | None = None,
        session: str = "",
        observe: bool = False,
        identity: Identity = GUEST,
    ):
        self._services = services
        self._identity = identity
        if identity.account is not None:
            # An account's name is its own, and a second stream of it in the room takes
            # the seat over, as a client back after a lost connection does (its session).
            session = f"account:{identity.key}"
        # Listening without a seat (purechat.v1 Join.observe): unnamed, as an original
        # contract member is before its first message, but welcomed like a member.
        self._observe = observe
        self.delivery = delivery
        self._peer = peer
        self._room = room
        self._requested = requested
        self._session = session
        self.member: Member | None = None
        self._seat: Seat | None = None
        # The shared store's id for this member's hold on its name ("" without one).
        self._holder = ""
        self._left = False

    async def __aenter__(self) -> Member:
        try:
            if self._requested is None:
                services = self._services
                head = await services.known_head(self._room)
                state = await services.known_state(self._room)
                member = services.hub.attach(
                    self._room,
                    self.delivery,
                    head.seq,
                    head.epoch,
                    identity=self._identity,
                    state=state,
                )
                self._adopt(member)
                if self._observe:
                    await self._welcome_observer(member)
            else:
                await self._join(self._requested)
        except BaseException:
            self.leave()
            self.delivery.discard()
            raise
        assert self.member is not None
        return self.member

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.leave()
        self.delivery.discard()

    async def name(self, requested: str) -> str | None:
        """Name an original-contract member (on its first message) and announce it;
        None when the member was removed meanwhile (its call is ending).

        JoinRefused or StoreError when no name can be bound.
        """
        member = self.member
        assert member is not None and member.name is None
        services = self._services
        reserved = await services.reserved_for(self._identity, requested)
        if services.presence is None:
            name = services.hub.claim_name(member, requested, reserved=reserved)
        else:
            session = f"account:{self._identity.key}" if self._identity.account else ""
            joined = await self._bind(requested, session, reserved)
            if not member.present:  # removed while the store answered
                self._release()
                return None
            name = services.hub.claim_name(member, requested, joined.name)
            member.seat = self._holder
        if name is not None:
            log.info("%s joined %s from %s", name, self._room, self._peer)
        return name

    def leave(self) -> None:
        """Out of the room, name freed: once, whatever happens after."""
        if self._left:
            return
        self._left = True
        member = self.member
        if member is not None and member.present:
            self._services.hub.leave(member)
            if member.name is not None:
                log.info("%s left %s from %s", member.name, self._room, self._peer)
        self._release()

    # -- internals ------------------------------------------------------------------

    async def _join(self, requested: str) -> None:
        services, hub, room, identity = (
            self._services,
            self._services.hub,
            self._room,
            self._identity,
        )
        requested = identity.account or requested
        hub.check_join(room, requested, self._session)
        reserved = await services.reserved_for(identity, requested)
        if services.presence is None or services.feed is None:
            head = await services.known_head(room)
            state = await services.known_state(room)
            member = hub.join(
                room,
                requested,
                self.delivery,
                head.seq,
                head.epoch,
                session=self._session,
                identity=identity,
                state=state,
                reserved=reserved,
            )
        else:
            # Read before the join binds the name: a ban logged meanwhile is in it, or
            # comes through the feed after it (applying it twice changes nothing).
            state = await services.known_state(room)
            if state is not None:
                hub.check_access(state, identity, requested, room)
            joined = await self._bind(requested, self._session, reserved)
            opened = not hub.has_room(room)
            bound = BoundName(joined.name, joined.members, joined.position.presence)
            try:
                member = hub.join(
                    room,
                    requested,
                    self.delivery,
                    joined.position.seq,
                    joined.position.epoch,
                    bound=bound,
                    session=self._session,
                    identity=identity,
                    state=state,
                )
            except BaseException:
                self._release()
                raise
            if opened:
                services.feed.opened(room, joined.position.presence)
            else:
                services.feed.catch_up(member)
        member.seat = self._holder
        self._adopt(member)
        log.info("%s joined %s from %s", member.name, room, self._peer)

    async def _welcome_observer(self, member: Member) -> None:
        """Who is here (on every server sharing the store), for a listener without a seat."""
        presence = self._services.presence
        if presence is None:
            members = self._services.hub.members_of(self._room)
        else:
            position = await presence.store.position(self._room)
            member.presence_from = position.presence
            members = await presence.store.members(self._room)
        room = member.room
        member.welcome = Welcome(
            room.name, "", tuple(sorted(members)), member.joined_at_seq, room.epoch
        )
        log.info("a listener joined %s from %s", self._room, self._peer)

    async def _bind(
        self, requested: str, session: str, reserved: frozenset[str] = frozenset()
    ) -> Joined:
        """Bind a name in the shared store; a bind of unknown outcome is given back."""
        presence = self._services.presence
        assert presence is not None
        holder = presence.new_holder()
        try:
            joined = await presence.join(self._room, requested, holder, session, reserved)
        except OutcomeUnknown:
            presence.release((self._room, "", holder))  # the store may have bound one
            raise
        self._seat = (self._room, joined.name, holder)
        self._holder = holder
        return joined

    def _adopt(self, member: Member) -> None:
        self.member = member
        hub, delivery = self._services.hub, self.delivery
        delivery.on_lagging = lambda lagging: hub.set_lagging(member, lagging)
        delivery.on_stalled = lambda: hub.evict(member, EndReason.TOO_SLOW)
        delivery.on_store_failed = lambda error: self._services.store_failed(
            error, f"history for a member of {self._room}"
        )
        delivery.describe = lambda: (
            f"{member.name or 'an unnamed member'} in {self._room} from {self._peer}"
        )

    def _release(self) -> None:
        if self._seat is not None and self._services.presence is not None:
            self._services.presence.release(self._seat)
        self._seat = None
