"""Rooms and members: who is where, what number the next message gets, who is too slow.

Everything here is synchronous and does no I/O. Delivery goes through each member's
`Outbox`, whose `offer` never blocks. A member whose outbox says no (its backlog is
over its budget) is removed; a room where most members are lagging is `behind`, and
the transport slows its senders rather than evicting readers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from purechat.core.conversations import is_conversation, may_enter
from purechat.core.events import (
    Ack,
    ConversationNotice,
    EndReason,
    EntryKind,
    ErrorCode,
    EventKind,
    Message,
    Messages,
    Notice,
    Outgoing,
    RoomEvent,
    Typing,
    Welcome,
)
from purechat.core.limits import DEFAULT_ROOM, Limits, room_problem, session_problem
from purechat.core.living import (
    TYPING_EVERY_SECONDS,
    ChangeAsk,
    ChangeRefused,
    decide_change,
    reply_problem,
)
from purechat.core.moderation import (
    Action,
    Actor,
    Command,
    ModerationRefused,
    RoomState,
    StateKind,
    Target,
    decide,
    muted_sentence,
    refusal_to_join,
    restricted_keys,
)
from purechat.core.names import clean_name, name_key, name_problem
from purechat.core.ratelimit import TokenBucket
from purechat.errors import LimitReached, NotAllowed, Refusal

GUEST_NAME = "guest"
# Names one typing frame lists; the rest are counted (Typing.more).
TYPING_LISTED = 5
# Names of one room kept, between flushes, of what other servers said typed there.
TYPING_HEARD_KEPT = 1000


class Outbox(Protocol):
    """Where the core puts what one member should receive."""

    def offer(self, item: Outgoing) -> bool:
        """Queue item without waiting; False when the member is too far behind to take it."""
        ...

    def end(self, reason: EndReason, detail: str = "") -> None:
        """Stop delivering to this member and end its stream, for reason (detail: a
        sentence that says more, such as who banned it and why)."""
        ...


class JoinRefused(Refusal):
    """A join with a name or room that breaks the rules; str() is a sentence."""


class AccessDenied(JoinRefused, NotAllowed):
    """A join the room's rules refuse (a ban, an invite-only room); str() is a sentence."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a member is, as the server authenticated it."""

    # The account it is logged in as (its shown name), or the name its token stands
    # for; None for a guest.
    account: str | None = None
    # A server admin (named in the server's configuration).
    admin: bool = False
    # The host it connects from: guests are banned by address.
    address: str = ""
    # Messages a second it may send, when not the server's (a bot's token may say).
    rate: float | None = None

    @property
    def key(self) -> str | None:
        """The account's name key (see names.name_key), or None for a guest."""
        return None if self.account is None else name_key(self.account)


GUEST = Identity()


class RoomFull(JoinRefused, LimitReached):
    """The room has as many members as it may have."""


@dataclass(eq=False)
class Member:
    room: Room
    outbox: Outbox
    # None until the member has a name (original-contract clients get theirs
    # from their first message); unnamed members receive but are not announced.
    name: str | None = None
    requested_name: str = ""
    present: bool = True
    # The room's newest message when this member arrived: history and resume cover
    # up to here, live delivery everything after, so nothing is missed or doubled.
    joined_at_seq: int = 0
    welcome: Welcome | None = None
    # Original-contract members cannot be told that a send was refused later (by the
    # store): their stream is ended instead.
    hears_notices: bool = False
    bucket: TokenBucket | None = None
    # Shared presence: the place in the room's presence log its welcome's member list
    # reflects; only joins and leaves after it are news to this member.
    presence_from: tuple[int, int] = (0, 0)
    # The client's id across its reconnects (empty: none); see claim_name.
    session: str = ""
    # Its backlog is large: counted in its room's `lagging` while true.
    lagging: bool = False
    # One sender's order survives a store failure: each failure starts a new
    # generation, and messages posted in an older one are not stored; until the
    # failed message is sent again (awaiting_retry, its id), later ones are refused.
    send_generation: int = 0
    awaiting_retry: str | None = None
    # Shared presence: the store's id for this member's hold on its name (opaque here).
    seat: str = ""
    identity: Identity = GUEST
    # When its last typing signal was taken (the hub's clock): see Hub.typing.
    typing_at: float = float("-inf")

    @property
    def actor(self) -> Actor:
        return Actor(self.name or "", self.identity.key, self.identity.admin)

    @property
    def hears_typing(self) -> bool:
        """Who is typing is told to seated purechat.v1 and web members only: never to
        original-contract clients (the contract has no place for it) nor listeners."""
        return self.hears_notices and self.name is not None and self.present


@dataclass
class HubStats:
    """Counts for metrics; plain integers, read when scraped."""

    messages: int = 0
    deliveries: int = 0
    evictions: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False)
class Room:
    name: str
    last_seq: int = 0
    # The room's log in the store: numbers are of this epoch.
    epoch: str = ""
    members: list[Member] = field(default_factory=list)
    # Who holds each name, by name_key, so a name and its look-alikes are unique here.
    named: dict[str, Member] = field(default_factory=dict)
    # Members whose backlog is large.
    lagging: int = 0
    # Roles, settings and restrictions, as the store had them when the room opened
    # here, then changed by the moderation entries delivered since.
    state: RoomState = field(default_factory=RoomState)
    # Who typed since the last typing flush: here (to tell the other servers too), and
    # on other servers sharing the store.
    typing_here: dict[str, None] = field(default_factory=dict)
    typing_heard: dict[str, None] = field(default_factory=dict)

    def member_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.named.values() if m.name is not None)

    @property
    def behind(self) -> bool:
        """Most members are lagging: the room as a whole cannot keep up with its senders."""
        return self.lagging * 2 > len(self.members)


class Published(NamedTuple):
    """A message the store has numbered, for `Hub.publish_all`."""

    message: Message
    # The store had it already (a retry): acknowledged, not broadcast again.
    duplicate: bool
    # Who is owed the ack (None when it was sent through another server).
    sender: Member | None


@dataclass(frozen=True, slots=True)
class BoundName:
    """A name the shared store bound for a joiner, and who is in the room, everywhere."""

    name: str
    members: tuple[str, ...]
    # Where in the room's presence log the join was: see Member.presence_from.
    presence_from: tuple[int, int]


class Hub:
    """All rooms of one server.

    Messages go through two steps: `post` validates a send and returns a `Message`
    (seq 0); once the store has it and numbered it, `publish` broadcasts it and acks the
    sender. Nothing is broadcast that the store does not have.

    With `shared_presence` (several servers on one store), names are bound by the store
    and joins and leaves are announced from its log (`announce`), not by this hub.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        *,
        shared_presence: bool = False,
    ):
        self.limits = limits or Limits()
        self._clock = clock or time.time
        self._rooms: dict[str, Room] = {}
        # Each account's members, in every room (its sessions hear its read markers).
        self._by_account: dict[str, list[Member]] = {}
        self.shared_presence = shared_presence
        # Hears when a room that was behind is no longer (the transport's pacer).
        self.on_caught_up: Callable[[str], None] = lambda room: None
        self.stats = HubStats()

    # -- queries ---------------------------------------------------------

    def room_names(self) -> list[str]:
        return sorted(self._rooms)

    def members_of(self, room: str) -> tuple[str, ...]:
        found = self._rooms.get(room)
        return found.member_names() if found else ()

    def member_count(self) -> int:
        return sum(len(r.members) for r in self._rooms.values())

    def has_room(self, room: str) -> bool:
        return room in self._rooms

    def last_seq(self, room: str) -> int:
        """The newest number delivered in an open room (0 when it is not open here)."""
        found = self._rooms.get(room)
        return found.last_seq if found else 0

    def epoch(self, room: str) -> str:
        """The epoch of an open room's log ("" when it is not open here)."""
        found = self._rooms.get(room)
        return found.epoch if found else ""

    def room_behind(self, room: str) -> bool:
        found = self._rooms.get(room)
        return found is not None and found.behind

    def named_members(self) -> list[Member]:
        """Every member with a name, in every room."""
        return [m for r in self._rooms.values() for m in r.named.values()]

    def rooms(self) -> list[tuple[str, int, int]]:
        """(name, members, newest number) of every open room, by name."""
        return [
            (r.name, len(r.members), r.last_seq)
            for r in sorted(self._rooms.values(), key=lambda r: r.name)
        ]

    # -- membership ------------------------------------------------------

    def attach(
        self,
        room_name: str,
        outbox: Outbox,
        last_seq: int = 0,
        epoch: str = "",
        *,
        identity: Identity = GUEST,
        state: RoomState | None = None,
    ) -> Member:
        """Add an unnamed member that receives the room's messages (original contract).

        last_seq, epoch and state describe a room not yet open here (the store's).
        AccessDenied when the room's rules keep identity out.
        """
        room = self._rooms.get(room_name)
        self.check_access(room.state if room else state or RoomState(), identity, "", room_name)
        room = self._room(room_name, last_seq, epoch, state)
        if len(room.members) >= self.limits.max_members_per_room:
            raise RoomFull(f"Room {room_name} is full: it has the most members it may have.")
        member = Member(room=room, outbox=outbox, joined_at_seq=room.last_seq, identity=identity)
        rate = self.limits.rate_limit if identity.rate is None else identity.rate
        if rate > 0:
            member.bucket = TokenBucket.full(rate)
        room.members.append(member)
        if identity.key is not None:
            self._by_account.setdefault(identity.key, []).append(member)
        return member

    def check_join(self, room_name: str, requested_name: str, session: str = "") -> None:
        """JoinRefused (or RoomFull) when a join would be refused."""
        problem = (
            room_problem(room_name, self.limits)
            or name_problem(requested_name, self.limits)
            or session_problem(session)
        )
        if problem:
            raise JoinRefused(problem)
        room = self._rooms.get(room_name)
        if room is not None and len(room.members) >= self.limits.max_members_per_room:
            raise RoomFull(f"Room {room_name} is full: it has the most members it may have.")

    def check_access(self, state: RoomState, identity: Identity, name: str, room: str = "") -> None:
        """AccessDenied, with the sentence, when the room's rules keep identity out (a
        ban, an invite-only room; a conversation not its own, admins included)."""
        refusal = may_enter(room, identity.key) or refusal_to_join(
            state, identity.key, identity.address, name, self._now_ms(), admin=identity.admin
        )
        if refusal is not None:
            raise AccessDenied(refusal)

    def room_state(self, room_name: str) -> RoomState | None:
        """The state of an open room (None when it is not open here)."""
        found = self._rooms.get(room_name)
        return found.state if found else None

    def join(
        self,
        room_name: str,
        requested_name: str,
        outbox: Outbox,
        last_seq: int = 0,
        epoch: str = "",
        *,
        bound: BoundName | None = None,
        session: str = "",
        identity: Identity = GUEST,
        state: RoomState | None = None,
        reserved: frozenset[str] = frozenset(),
    ) -> Member:
        """Add a named member and announce it; `member.welcome` is what to tell it first.

        JoinRefused when the name or room breaks the rules (AccessDenied: the room's
        rules keep the member out). A member with an account is named by it; a guest
        takes the first free name that is not a registered account's (`reserved`: name
        keys).
        """
        room_name = room_name or DEFAULT_ROOM
        requested_name = identity.account or requested_name
        self.check_join(room_name, requested_name, session)
        room = self._rooms.get(room_name)
        current = room.state if room else state or RoomState()
        self.check_access(current, identity, requested_name, room_name)
        member = self.attach(room_name, outbox, last_seq, epoch, identity=identity, state=state)
        member.hears_notices = True
        member.session = session
        if bound:
            member.presence_from = bound.presence_from
        name = self.claim_name(member, requested_name, bound.name if bound else None, reserved)
        assert name is not None  # just attached: present
        room = member.room
        members = bound.members if bound else room.member_names()
        rate = member.bucket.rate if member.bucket else 0.0
        member.welcome = Welcome(
            room.name,
            name,
            members,
            member.joined_at_seq,
            room.epoch,
            room.state.topic,
            identity.account or "",
            "admin" if identity.admin else room.state.role(identity.key),
            rate_limit=rate,
        )
        return member

    def poster(
        self,
        room_name: str,
        name: str,
        outbox: Outbox,
        *,
        identity: Identity = GUEST,
        state: RoomState | None = None,
    ) -> Member:
        """A sender without a seat (one post from a bot): it can post and hear the answer,
        and is in no member list, so nobody sees it join or leave. AccessDenied when the
        room's rules keep it out (`state`: the room's, when it is not open here)."""
        room = self._rooms.get(room_name) or Room(room_name, state=state or RoomState())
        self.check_access(room.state, identity, name, room_name)
        return Member(
            room=room,
            outbox=outbox,
            name=name,
            requested_name=name,
            hears_notices=True,
            identity=identity,
        )

    def candidate_names(
        self, requested: str, reserved: frozenset[str] = frozenset()
    ) -> Iterator[str]:
        """The name a member asked for, then with suffixes ("bob", "bob-2", ...), leaving
        out names whose key is reserved (registered accounts', for a guest).

        A taken name gets a suffix rather than a refusal, so two clients that both call
        themselves the same can still both chat.
        """
        base = clean_name(requested, self.limits) or GUEST_NAME
        if name_key(base) not in reserved:
            yield base
        n = 1
        while True:
            n += 1
            suffix = f"-{n}"
            candidate = base[: self.limits.max_name_chars - len(suffix)] + suffix
            if name_key(candidate) not in reserved:
                yield candidate

    def claim_name(
        self,
        member: Member,
        requested: str,
        bound: str | None = None,
        reserved: frozenset[str] = frozenset(),
    ) -> str | None:
        """Give the member the first candidate name free in its room (or the name the
        shared store bound for it) and announce it; None when the member has left.

        A name held by a member of the same session (the same client, back after losing
        its connection before the server noticed) is taken over: the older stream ends,
        and as the member never left, nothing is announced.
        """
        if not member.present:
            return None
        room = member.room
        if bound is None and member.identity.account is not None:
            name = member.identity.account  # an account's name is its own, everywhere
        elif bound is None:
            name = next(
                n
                for n in self.candidate_names(requested, reserved)
                if (key := name_key(n)) not in room.named or _same_session(room.named[key], member)
            )
        else:
            name = bound
        earlier = room.named.get(name_key(name))
        if earlier is not None and earlier is not member:
            self._remove(earlier)
            earlier.outbox.end(EndReason.REPLACED)
        member.name = name
        member.requested_name = requested
        room.named[name_key(name)] = member
        if not self.shared_presence and earlier is None:
            self._broadcast(room, self._event(room, EventKind.JOIN, name))
        return name

    def announce(
        self,
        room_name: str,
        kind: EventKind,
        user: str,
        time_ms: int,
        *,
        at: tuple[int, int],
        only: Member | None = None,
    ) -> None:
        """A join or leave from the shared store's log (at its place there): tell this
        server's members that arrived before it (or just `only`, which missed it)."""
        room = self._rooms.get(room_name)
        if room is not None:
            members = room.members if only is None else [only]
            recipients = [m for m in members if m.presence_from < at and m.present]
            self._broadcast(room, RoomEvent(kind, room.name, user, time_ms), recipients)

    def remove_named(self, room_name: str, name: str, reason: EndReason) -> None:
        """End the stream of the member called name in room, if it is here."""
        room = self._rooms.get(room_name)
        member = room.named.get(name_key(name)) if room else None
        if member is not None:
            self._remove(member)
            member.outbox.end(reason)

    def leave(self, member: Member) -> None:
        """Remove a member (idempotent) and announce it if it had a name."""
        if member.present:
            self._remove(member)
            self._announce_leave(member)

    def evict(self, member: Member, reason: EndReason) -> None:
        """Remove a member for reason (too slow, ...), end its stream, tell the room."""
        if member.present:
            if reason is EndReason.TOO_SLOW:
                self.stats.evictions += 1
            self._remove(member)
            member.outbox.end(reason)
            self._announce_leave(member)

    def end_all(self, reason: EndReason) -> None:
        """End every member's stream (server shutting down); no leave events."""
        for room in list(self._rooms.values()):
            for member in list(room.members):
                self._remove(member)
                member.outbox.end(reason)

    def set_lagging(self, member: Member, lagging: bool) -> None:
        """The member's backlog crossed the lagging mark (up or down)."""
        if not member.present or member.lagging == lagging:
            return
        room = member.room
        was_behind = room.behind
        member.lagging = lagging
        room.lagging += 1 if lagging else -1
        if was_behind and not room.behind:
            self.on_caught_up(room.name)

    # -- messages --------------------------------------------------------

    def rate_delay(self, member: Member, now: float) -> float:
        """Seconds the member's next message must wait to keep to the rate limit.

        `now` comes from the caller's monotonic clock (the transport's), as the waiting
        is done there.
        """
        if member.bucket is None:
            return 0.0
        return member.bucket.reserve(now)

    def post(
        self,
        member: Member,
        text: str,
        client_msg_id: str = "",
        *,
        action: bool = False,
        reply_to: int = 0,
        newest: int | None = None,
    ) -> Message | Notice | None:
        """Validate a send: a Message for the store, or a Notice already told to the
        sender; None when the member has left (nothing more of its is handled).

        reply_to: the number of the message it answers, one the room has given (up to
        `newest`, by default the newest delivered here)."""
        if not member.present or member.name is None:
            return None
        refusal = self._refusal(text, client_msg_id)
        if refusal is None and (muted := self._muted(member)) is not None:
            refusal = Notice(ErrorCode.NOT_ALLOWED, muted, client_msg_id)
        if refusal is None:
            latest = member.room.last_seq if newest is None else newest
            if problem := reply_problem(reply_to, latest):
                refusal = Notice(ErrorCode.NOT_ALLOWED, problem, client_msg_id)
        if refusal is None:
            refusal = self._retry_first(member, client_msg_id)
        if refusal is not None:
            self._refused(member, refusal)
            return refusal
        return Message(
            room=member.room.name,
            seq=0,
            user=member.name,
            text=text,
            time_ms=self._now_ms(),
            action=action,
            sender_key=member.requested_name,
            client_msg_id=client_msg_id,
            reply_to=reply_to,
            account=member.identity.key or "",
        )

    def _retry_first(self, member: Member, client_msg_id: str) -> Notice | None:
        """A refusal while the member's failed message has not been sent again (see
        Member.awaiting_retry); that message itself lifts the wait."""
        if member.awaiting_retry is None:
            return None
        if client_msg_id == member.awaiting_retry:
            member.awaiting_retry = None
            return None
        return Notice(
            ErrorCode.STORE_UNAVAILABLE,
            "Message not sent: an earlier message must be sent again first.",
            client_msg_id,
        )

    def _refused(self, member: Member, refusal: Notice) -> None:
        reason = refusal.code.value
        self.stats.rejected[reason] = self.stats.rejected.get(reason, 0) + 1
        member.outbox.offer(refusal)

    # -- living messages -------------------------------------------------------

    def change(
        self,
        actor: Actor,
        room_name: str,
        ask: ChangeAsk,
        target: Message | None,
        *,
        client_msg_id: str = "",
        sender_key: str = "",
        state: RoomState | None = None,
    ) -> Message:
        """An edit, delete or reaction as the room's log entry to store (ChangeRefused
        with the sentence when actor may not). target: message ask.seq as the store has
        it; state: the room's, when it is not open here."""
        room = self._rooms.get(room_name)
        current = room.state if room is not None else state or RoomState()
        role = current.role(actor.account)
        now = self._now_ms()
        decided = decide_change(
            actor, role, ask, target, now_ms=now, window=self.limits.edit_window
        )
        return Message(
            room=room_name,
            seq=0,
            user=actor.name,
            text=decided.text,
            time_ms=now,
            sender_key=sender_key or actor.name,
            client_msg_id=client_msg_id,
            kind=decided.kind,
            data=decided.data,
            target=decided.target,
            account=actor.account or "",
        )

    def change_member(
        self, member: Member, ask: ChangeAsk, target: Message | None, client_msg_id: str
    ) -> Message | Notice | None:
        """A seated member's edit, delete or reaction: the entry to store, or the
        refusal already told to it (None when the member has left). An edit's text is
        held to a message's limits; a muted member may delete, not edit or react."""
        if not member.present or member.name is None:
            return None
        refusal = self._refusal(ask.text, client_msg_id) if ask.kind is EntryKind.EDIT else None
        muted = None if ask.kind is EntryKind.DELETE else self._muted(member)
        if refusal is None and muted is not None:
            refusal = Notice(ErrorCode.NOT_ALLOWED, muted, client_msg_id)
        if refusal is None:
            refusal = self._retry_first(member, client_msg_id)
        if refusal is None:
            try:
                return self.change(
                    member.actor,
                    member.room.name,
                    ask,
                    target,
                    client_msg_id=client_msg_id,
                    sender_key=member.requested_name,
                )
            except ChangeRefused as refused:
                refusal = Notice(ErrorCode.NOT_ALLOWED, str(refused), client_msg_id)
        self._refused(member, refusal)
        return refusal

    # -- typing ----------------------------------------------------------------

    def typing(self, member: Member) -> bool:
        """A member is typing: taken (True: it is told at the next flush, and to the
        other servers) at most once every TYPING_EVERY_SECONDS per member; faster
        signals, and those of listeners, original-contract and muted members, are
        dropped."""
        if not member.hears_typing or member.name is None:
            return False
        now = self._clock()
        if now - member.typing_at < TYPING_EVERY_SECONDS or self._muted(member):
            return False
        member.typing_at = now
        member.room.typing_here[member.name] = None
        return True

    def typing_elsewhere(self, room_name: str, users: Sequence[str]) -> None:
        """Members of room on another server are typing: told at the next flush (at most
        TYPING_HEARD_KEPT names a room; a room not open here hears nothing)."""
        room = self._rooms.get(room_name)
        if room is None:
            return
        for user in users:
            if len(room.typing_heard) >= TYPING_HEARD_KEPT:
                break
            room.typing_heard[user] = None

    def flush_typing(self) -> dict[str, tuple[str, ...]]:
        """Tell each room who typed since the last flush (one frame per member, not
        one per signal: a room where everyone types costs each member a frame per
        flush). Returns who typed here, by room, for the other servers."""
        typed_here: dict[str, tuple[str, ...]] = {}
        for room in self._rooms.values():
            if not room.typing_here and not room.typing_heard:
                continue
            here = tuple(room.typing_here)
            names = list(dict.fromkeys([*here, *room.typing_heard]))
            room.typing_here.clear()
            room.typing_heard.clear()
            if here:
                typed_here[room.name] = here
            self._tell_typing(room, names)
        return typed_here

    def _tell_typing(self, room: Room, names: list[str]) -> None:
        """Offer who is typing to each member that hears it, itself left out. A lagging
        member is skipped: what is typing now is worth nothing by the time it reads."""
        others: list[Member] = []
        typists: list[Member] = []
        typing = set(names)
        for member in room.members:
            if member.hears_typing and not member.lagging:
                (typists if member.name in typing else others).append(member)
        if others:
            self._broadcast(room, _typing(room.name, names), others)
        for member in typists:
            rest = [name for name in names if name != member.name]
            if rest and member.present:
                self._broadcast(room, _typing(room.name, rest), [member])

    def _muted(self, member: Member) -> str | None:
        identity, now_ms = member.identity, self._now_ms()
        muted = member.room.state.muted(identity.key, identity.address, member.name or "", now_ms)
        return None if muted is None else muted_sentence(muted, now_ms)

    # -- moderation ------------------------------------------------------

    def target(self, room_name: str, name: str) -> Target | None:
        """A member present in the room under name, as a moderation command's target."""
        room = self._rooms.get(room_name)
        member = room.named.get(name_key(name)) if room else None
        if member is None or member.name is None:
            return None
        identity = member.identity
        return Target(member.name, identity.key, True, identity.admin, identity.address)

    def moderate(
        self,
        actor: Actor,
        room_name: str,
        command: Command,
        target: Target | None,
        *,
        client_msg_id: str = "",
        state: RoomState | None = None,
    ) -> Message:
        """A moderation command as the room's log entry to store (ModerationRefused with
        the sentence when actor may not). `state`: the room's, when it is not open here."""
        if is_conversation(room_name):
            raise ModerationRefused("A conversation has nothing to moderate.")
        room = self._rooms.get(room_name)
        current = room.state if room is not None else state or RoomState()
        decision = decide(actor, command, current, target, self._now_ms())
        return Message(
            room=room_name,
            seq=0,
            user=actor.name,
            text=decision.sentence,
            time_ms=self._now_ms(),
            sender_key=actor.name,
            client_msg_id=client_msg_id,
            kind=EntryKind.MODERATION,
            data=json.dumps(decision.details),
            effects=decision.effects,
        )

    def moderate_member(
        self, member: Member, command: Command, target: Target | None, client_msg_id: str
    ) -> Message | Notice | None:
        """A seated member's moderation command: the entry to store, or the refusal
        already told to it (None when the member has left)."""
        if not member.present or member.name is None:
            return None
        try:
            return self.moderate(
                member.actor, member.room.name, command, target, client_msg_id=client_msg_id
            )
        except ModerationRefused as refused:
            notice = Notice(ErrorCode.NOT_ALLOWED, str(refused), client_msg_id)
            member.outbox.offer(notice)
            return notice

    def tell_account(self, account_key: str, item: Outgoing) -> None:
        """Offer item to every member of the account here, in every room."""
        for member in list(self._by_account.get(account_key, ())):
            if member.present:
                member.outbox.offer(item)

    def tell_conversation(self, account_key: str, notice: ConversationNotice) -> None:
        """Offer notice to the account's seated purechat.v1 and web members that are not
        in its conversation (those have the message): never to original-contract
        members nor listeners, whose contracts have no place for it."""
        for member in list(self._by_account.get(account_key, ())):
            seated = member.hears_notices and member.name is not None and member.present
            if seated and member.room.name != notice.room:
                member.outbox.offer(notice)

    def _enforce(self, room: Room, entry: Message) -> None:
        """A moderation entry delivered here: the room's state changes, and the members
        it puts out (a kick, a ban) are ended with its sentence."""
        room.state.apply(entry.effects)
        details = json.loads(entry.data or "{}")
        action = details.get("action")
        if action not in (Action.KICK.value, Action.BAN.value):
            return
        banned = {effect.key for effect in entry.effects if effect.kind is StateKind.BAN}
        account = details.get("account")
        reason = EndReason.KICKED if action == Action.KICK.value else EndReason.BANNED
        for member in list(room.members):
            identity = member.identity
            keys = set(restricted_keys(identity.key, member.name or "", identity.address))
            named = account is None and member.name == details.get("target")
            hit = (account is not None and identity.key == account) or named or keys & banned
            if hit and member.present:
                self._remove(member)
                member.outbox.end(reason, _removed_sentence(entry))
                self._announce_leave(member)

    def lost_log(self, room_name: str, epoch: str) -> bool:
        """epoch is not the log an open room knows: `reset` would start numbering again."""
        room = self._rooms.get(room_name)
        return room is not None and room.epoch not in ("", epoch)

    def reset(self, room_name: str, epoch: str) -> bool:
        """The store lost the room's log and began another (epoch): numbering starts
        again, and members hear it. False when epoch is the one the room has."""
        room = self._rooms.get(room_name)
        if room is None:
            return False
        if not self.lost_log(room_name, epoch):
            room.epoch = room.epoch or epoch  # opened without knowing its log: this is it
            return False
        room.epoch = epoch
        room.last_seq = 0
        reset = RoomEvent(EventKind.RESET, room.name, time_ms=self._now_ms(), epoch=epoch)
        self._broadcast(room, reset)
        return True

    def publish(self, message: Message, *, duplicate: bool, sender: Member | None) -> None:
        """The store has message (numbered): broadcast it (unless a retry), ack the sender."""
        self.publish_all([Published(message, duplicate, sender)])

    def publish_all(self, published: list[Published]) -> None:
        """The store has these messages (numbered, in order): broadcast the new ones,
        then acknowledge each to its sender.

        Each room's new messages reach each member as one offer (`Messages`): a batch
        of k costs a room of n members n offers, not k * n. Every member still sees
        them in number order, and every ack after its message.
        """
        fresh: dict[Room, list[Message]] = {}
        for message, duplicate, _ in published:
            room = self._rooms.get(message.room)
            if not duplicate and room is not None and message.seq > room.last_seq:
                room.last_seq = message.seq
                fresh.setdefault(room, []).append(message)
        for room, messages in fresh.items():
            self.stats.messages += len(messages)
            self._broadcast(room, messages[0] if len(messages) == 1 else Messages(tuple(messages)))
            for message in messages:
                if message.kind is EntryKind.MODERATION:
                    self._enforce(room, message)
        for message, duplicate, sender in published:
            if sender is not None:
                self.acknowledge(sender, message.client_msg_id, message.seq, duplicate=duplicate)

    def acknowledge(self, sender: Member, client_msg_id: str, seq: int, *, duplicate: bool) -> None:
        """Tell a sender its message is stored as seq (and delivered here)."""
        if sender.present:
            sender.outbox.offer(Ack(client_msg_id, seq, duplicate))

    def refuse(self, sender: Member, notice: Notice, generation: int) -> None:
        """The store did not take (or did not answer for) a message the sender posted
        in `generation`: tell the sender, or end its stream if it cannot be told.

        The first failure of a generation starts the next one, so the sender's
        messages queued behind it are not stored out of order, and waits for the
        failed message to be sent again before taking later ones.
        """
        if not sender.present:
            return
        if not sender.hears_notices:
            unknown = notice.code is ErrorCode.OUTCOME_UNKNOWN
            self._remove(sender)
            sender.outbox.end(EndReason.OUTCOME_UNKNOWN if unknown else EndReason.STORE_UNAVAILABLE)
            self._announce_leave(sender)
            return
        if generation == sender.send_generation:
            sender.send_generation += 1
            if notice.client_msg_id:
                sender.awaiting_retry = notice.client_msg_id
        sender.outbox.offer(notice)

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

    def _room(self, name: str, last_seq: int, epoch: str, state: RoomState | None = None) -> Room:
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(
                name, last_seq=last_seq, epoch=epoch, state=state or RoomState()
            )
        return room

    def now_ms(self) -> int:
        """The hub's clock, in milliseconds since the epoch."""
        return self._now_ms()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _event(self, room: Room, kind: EventKind, user: str) -> RoomEvent:
        return RoomEvent(kind, room.name, user, self._now_ms())

    def _remove(self, member: Member) -> None:
        """Take a present member out of its room (a member that left stays out)."""
        if not member.present:
            return
        if (key := member.identity.key) is not None and key in self._by_account:
            streams = self._by_account[key]
            streams.remove(member)
            if not streams:
                del self._by_account[key]
        member.present = False
        room = member.room
        was_behind = room.behind
        room.members.remove(member)
        if member.lagging:
            member.lagging = False
            room.lagging -= 1
        if member.name is not None and room.named.get(name_key(member.name)) is member:
            del room.named[name_key(member.name)]
        if not room.members:
            # The store keeps the numbering; the room is loaded again when next joined.
            del self._rooms[room.name]
        if was_behind and not room.behind:
            self.on_caught_up(room.name)

    def _announce_leave(self, member: Member) -> None:
        if member.name is not None and member.room.members and not self.shared_presence:
            self._broadcast(member.room, self._event(member.room, EventKind.LEAVE, member.name))

    def _broadcast(
        self, room: Room, event: Outgoing, recipients: list[Member] | None = None
    ) -> None:
        """Offer event to every member (or to recipients); evict those that cannot take it.

        Evicting announces a leave, which may find more members full: those are
        handled in the same loop rather than by recursion.
        """
        pending = [event]
        while pending:
            current = pending.pop(0)
            members = list(room.members) if recipients is None else recipients
            recipients = None
            self.stats.deliveries += len(members) * (
                len(current.messages) if isinstance(current, Messages) else 1
            )
            evicted = [m for m in members if not m.outbox.offer(current)]
            for member in evicted:
                if member.present:
                    self.stats.evictions += 1
                    self._remove(member)
                    member.outbox.end(EndReason.TOO_SLOW)
                    if member.name is not None and room.members and not self.shared_presence:
                        pending.append(self._event(room, EventKind.LEAVE, member.name))


def _removed_sentence(entry: Message) -> str:
    """What a kicked or banned member's stream ends with: the entry's sentence, as told
    to it ("You were banned by alice for 1h: spam")."""
    details = json.loads(entry.data or "{}")
    verb = "kicked out" if details.get("action") == Action.KICK.value else "banned"
    sentence = f"You were {verb} of {entry.room} by {details.get('by', 'an operator')}"
    if verb == "banned":
        sentence = f"You were banned from {entry.room} by {details.get('by', 'an operator')}"
    if until := details.get("until_ms"):
        remaining = max(1, (int(until) - int(time.time() * 1000)) // 1000)
        sentence += f" for {remaining // 60 or 1} minute(s)" if remaining < 3600 else ""
    if reason := details.get("reason"):
        sentence += f": {reason}"
    return sentence


def _typing(room: str, names: list[str]) -> Typing:
    return Typing(room, tuple(names[:TYPING_LISTED]), max(0, len(names) - TYPING_LISTED))


def _same_session(holder: Member, member: Member) -> bool:
    return bool(member.session) and holder.session == member.session
