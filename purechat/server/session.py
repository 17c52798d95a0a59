"""One member's session, whichever door it came in by: written once for all three.

A door knows its wire and nothing else: how the member asks to join (the original
contract does not ask: it lands in the lobby; purechat.v1 and the web page send a join
frame), how one frame decodes into a request, and the channel the member's bytes
travel on (a gRPC stream, a WebSocket). Everything a member does is here, in the same
order for every door:

1. the join (`door.join`): a `JoinAsk`, or a status that ends the session at once;
2. the member's `Membership` (seat, name, hub entry; given back exactly once);
3. the prelude, sent by the member's delivery: the welcome, then recent history or
   what the member missed (a store that fails here ends the session with UNAVAILABLE
   and a sentence, see `MemberDelivery`);
4. the read loop: each frame decoded by the door, validated by the core
   (`Hub.post`), paced, handed to the journal; an ask (the rooms: `server/asks.py`)
   paced like a message and answered to the member alone; a frame that has no place
   now is told as an error, a frame that cannot be decoded ends the session;
5. the end: once the peer has finished, its own messages come back to it, then the
   member leaves and what is queued for it is sent. Whatever ends the session early
   (eviction, shutdown, revocation) does so through the channel's `end`, which
   cancels the reader and the delivery alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio
import anyio.lowlevel

from purechat import status as statuses
from purechat.core import (
    GUEST,
    ErrorCode,
    EventKind,
    Identity,
    Member,
    Message,
    Notice,
    Outgoing,
    RoomEvent,
)
from purechat.core.living import ChangeAsk
from purechat.core.moderation import Command
from purechat.errors import NotAllowed, PurechatError, Refusal, StoreError
from purechat.server import reading
from purechat.server.asks import room_list
from purechat.server.delivery import Prelude, Sink
from purechat.server.history import catch_up
from purechat.server.journal import InFlight
from purechat.server.membership import Membership
from purechat.server.pacing import Paced
from purechat.server.reading import ConversationsAsk, HistoryAsk, MarkRead, SearchAsk
from purechat.server.services import Services
from purechat.server.wire import Encode
from purechat.status import Status

# A reader handles at most this many messages, or this many bytes of them, before
# letting other tasks run. Messages that arrive together are handled together, so one
# commit and one write per member carry many of them (the cost of a broadcast is mostly
# per write, not per message: at 16 a flat-out sender's fan-out was 2.5x slower); the
# bounds keep one scheduler pass short, so a burst from one sender cannot hold up
# everyone else's writes for long.
READ_BURST = 256
READ_BURST_BYTES = 64 * 1024

STORE_AWAY = "The server's store does not answer: try again."

Raw = TypeVar("Raw", bytes, str)
Raw_co = TypeVar("Raw_co", bytes, str, covariant=True)


@dataclass(frozen=True, slots=True)
class JoinAsk:
    """What a member asks for on joining, whichever door it came by."""

    room: str
    # The name asked for; None for a member named later (the original contract's
    # first message names it) or listening without a seat.
    requested: str | None
    session: str = ""
    observe: bool = False
    # Recent messages wanted, or (after_seq) a resume after that number in `epoch`.
    history: int = 0
    after_seq: int | None = None
    epoch: str = ""
    # Who the member is (its account, if any), as the door authenticated it.
    identity: Identity = GUEST
    # A conversation with this account instead of `room`.
    dm: str = ""


@dataclass(frozen=True, slots=True)
class Post:
    """A message the member sends."""

    text: str
    client_msg_id: str = ""
    action: bool = False
    # The name an unnamed member takes with this message (the original contract).
    name: str | None = None
    # The number of the message it answers (0: none).
    reply_to: int = 0


@dataclass(frozen=True, slots=True)
class Change:
    """An edit, delete or reaction in the member's room (decided by the core, see
    core/living.py), acknowledged like a message."""

    ask: ChangeAsk
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class TypingSignal:
    """The member is typing (never stored; see Hub.typing)."""


@dataclass(frozen=True, slots=True)
class Misplaced:
    """A frame the door understood that has no place now: told, the session goes on."""

    sentence: str


@dataclass(frozen=True, slots=True)
class Moderate:
    """A moderation command in the member's room (decided by the core, see
    core/moderation.py), acknowledged like a message."""

    command: Command
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class RoomsAsk:
    """The member asks for the rooms with members (answered by `asks.room_list`)."""


Request = (
    Post
    | Moderate
    | Change
    | TypingSignal
    | Misplaced
    | RoomsAsk
    | HistoryAsk
    | SearchAsk
    | ConversationsAsk
    | MarkRead
)


class Channel(Sink, Paced, Protocol[Raw_co]):
    """A member's way in and out: what its delivery, the pacer and the reader use."""

    async def receive(self) -> Raw_co | None:
        """The next frame; None once the peer has finished."""
        ...


class Door(Protocol[Raw]):
    """One way in (see the module docstring)."""

    @property
    def channel(self) -> Channel[Raw]: ...

    @property
    def encode(self) -> Encode: ...

    @property
    def peer(self) -> str: ...

    async def join(self) -> JoinAsk | Status:
        """What the member asks for, or the status its session ends with at once."""
        ...

    def admitted(self) -> AbstractContextManager[object]:
        """Held while the member is in (a web member's token, which revoking ends)."""
        ...

    def begin(self) -> None:
        """The member is in: open the response (a gRPC call's headers)."""
        ...

    def decode(self, raw: Raw, member: Member) -> Request | Status:
        """One frame as a request, or the status that ends the session."""
        ...

    def refusal_ends(self, notice: Notice) -> Status | None:
        """A refused message ends the session on a door that cannot say so (the
        original contract has no errors): the status, or None to go on."""
        ...


async def serve_member(door: Door[Raw], services: Services) -> Status:
    """A member's whole session; the status it ends with (unless something ended it
    first through its channel)."""
    ask = await door.join()
    if isinstance(ask, Status):
        return ask
    peer = ""
    if ask.dm:
        try:
            room, peer = await reading.conversation(services, ask.identity, ask.dm)
        except (Refusal, StoreError) as refusal:
            return _refused(services, refusal, "a conversation")
        ask = dataclasses.replace(ask, room=room)
    delivery = services.delivery(door.channel, door.encode)
    membership = Membership(
        services,
        delivery,
        peer=door.peer,
        room=ask.room,
        requested=ask.requested,
        session=ask.session,
        observe=ask.observe,
        identity=ask.identity,
    )
    with door.admitted():
        try:
            async with membership as member:
                if peer and member.welcome is not None:
                    member.welcome = dataclasses.replace(member.welcome, peer=peer)
                door.begin()
                async with anyio.create_task_group() as task_group:
                    delivery.start(task_group, _prelude(services, member, ask))
                    await _read(door, services, membership)
                return statuses.OK
        except (Refusal, StoreError) as refusal:
            return _refused(services, refusal, f"a join to {ask.room}")


def _refused(services: Services, refusal: Refusal | StoreError, what: str) -> Status:
    if isinstance(refusal, StoreError):
        services.store_failed(refusal, what)
    return statuses.for_error(refusal)


class _ReadBurst:
    """Counts what a reader handled since it last yielded (see READ_BURST)."""

    def __init__(self) -> None:
        self.count = 0
        self.size = 0

    async def tick(self, size: int) -> None:
        self.count += 1
        self.size += size
        if self.count >= READ_BURST or self.size >= READ_BURST_BYTES:
            self.count = self.size = 0
            await anyio.lowlevel.checkpoint()


async def _read(door: Door[Raw], services: Services, membership: Membership) -> None:
    """Read until the peer finishes; then its own messages come back, and it leaves."""
    hub, channel, delivery = services.hub, door.channel, membership.delivery
    member = membership.member
    assert member is not None
    in_flight = InFlight()
    burst = _ReadBurst()
    while (raw := await channel.receive()) is not None:
        await burst.tick(len(raw))
        request = door.decode(raw, member)
        if isinstance(request, Status):
            channel.end(request)
            return
        if isinstance(request, Misplaced):
            delivery.offer(Notice(ErrorCode.BAD_FRAME, request.sentence))
            continue
        if isinstance(request, Moderate):
            command = request.command
            target = await services.resolve_target(member.room.name, command.target)
            entry = hub.moderate_member(member, command, target, request.client_msg_id)
            if entry is None:
                return  # the member has left
            if isinstance(entry, Message):
                if not await services.pacer.pace(member, channel):
                    return
                await services.journal.submit(entry, member, in_flight)
            continue
        if isinstance(request, TypingSignal):
            hub.typing(member)  # never stored, nothing to answer
            continue
        if isinstance(request, Change):
            try:
                message = await services.message_at(member.room.name, request.ask.seq)
                cid, key = request.client_msg_id, member.requested_name
                if (first := await services.already_sent(member.room.name, key, cid)) is not None:
                    hub.acknowledge(member, cid, first, duplicate=True)
                    continue
            except StoreError as error:
                services.store_failed(error, "a change to a message")
                notice = Notice(ErrorCode.STORE_UNAVAILABLE, STORE_AWAY, request.client_msg_id)
                delivery.offer(notice)
                continue
            except NotAllowed as refused:
                delivery.offer(Notice(ErrorCode.NOT_ALLOWED, str(refused), request.client_msg_id))
                continue
            entry = hub.change_member(member, request.ask, message, request.client_msg_id)
            if entry is None:
                return  # the member has left
            if isinstance(entry, Message):
                if not await services.pacer.pace(member, channel):
                    return
                await services.journal.submit(entry, member, in_flight)
            continue
        if isinstance(request, RoomsAsk | HistoryAsk | SearchAsk | ConversationsAsk | MarkRead):
            # Asked, not said: answered to the member alone, paced like a message so
            # asking cannot flood the store.
            if not await services.pacer.pace(member, channel):
                return
            answer = await _answer(services, member, request)
            if answer is not None:
                delivery.offer(answer)
            continue
        if member.name is None and request.name is not None:
            try:
                if await membership.name(request.name) is None:
                    return  # removed while its name was bound
            except PurechatError as refusal:
                if isinstance(refusal, StoreError):
                    services.store_failed(refusal, f"a name in {member.room.name}")
                channel.end(statuses.for_error(refusal))
                return
        posted = hub.post(
            member,
            request.text,
            request.client_msg_id,
            action=request.action,
            reply_to=request.reply_to,
        )
        if posted is None:
            return  # the member has left
        if isinstance(posted, Notice):
            if (ending := door.refusal_ends(posted)) is not None:
                channel.end(ending)
                return
            continue
        if not await services.pacer.pace(member, channel):
            return
        await services.journal.submit(posted, member, in_flight)
    await in_flight.wait_idle()  # the client is owed its own messages back
    membership.leave()
    delivery.close()


async def _answer(
    services: Services,
    member: Member,
    ask: RoomsAsk | HistoryAsk | SearchAsk | ConversationsAsk | MarkRead,
) -> Outgoing | None:
    """What a member asked for, or a notice why not (None: nothing to answer)."""
    if isinstance(ask, RoomsAsk):
        return await room_list(services)
    identity = member.identity
    try:
        if isinstance(ask, MarkRead):
            await reading.mark_read(services, identity, ask.room or member.room.name, ask.seq)
            return None  # the marker comes back to every session of the account
        if isinstance(ask, HistoryAsk):
            if not (ask.room or ask.dm):
                ask = dataclasses.replace(ask, room=member.room.name)
            return await reading.history(services, identity, ask)
        if isinstance(ask, SearchAsk):
            return await reading.search(services, identity, ask)
        return await reading.conversations(services, identity)
    except StoreError as error:
        services.store_failed(error, "a member's history or search")
        return Notice(ErrorCode.STORE_UNAVAILABLE, STORE_AWAY)
    except Refusal as refused:
        return Notice(ErrorCode.NOT_ALLOWED, str(refused))


def _prelude(services: Services, member: Member, ask: JoinAsk) -> Prelude:
    """The welcome (for a member that has one), then recent history or what the member
    missed since ask.after_seq (a RESET first when the log it resumes in is gone)."""

    async def prelude() -> Sequence[Outgoing]:
        welcome = member.welcome
        told: list[Outgoing] = [] if welcome is None else [welcome]
        start = ask.after_seq
        room = member.room
        epoch = room.epoch if welcome is None else welcome.epoch
        if start is not None and ask.epoch and ask.epoch != epoch:
            # The log the client resumes in is gone: it hears so, then gets this one.
            told.append(RoomEvent(EventKind.RESET, room.name, epoch=epoch))
            start = 0
        earlier = await catch_up(
            services.store,
            room.name,
            upto=member.joined_at_seq,
            after_seq=start,
            history=ask.history,
        )
        if start is not None:
            services.observe_catch_up(len(earlier))
        return [*told, *earlier]

    return prelude
