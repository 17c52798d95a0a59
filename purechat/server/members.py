"""The two ways in: the original chat.ChatService contract and purechat.v1.

Each call is one member: its reader and its writer run as sibling tasks of one task
group, so when either ends badly the call's cancel scope ends both, and the membership
is removed in `finally` whatever ended the call. The writer first sends what the member
is owed from before it arrived (welcome, history or missed messages), then live ones.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
from google.protobuf.message import DecodeError

from purechat.core import (
    BoundName,
    Draft,
    ErrorCode,
    Hub,
    JoinRefused,
    Member,
    Notice,
    Outgoing,
    RoomFull,
)
from purechat.core.limits import DEFAULT_ROOM
from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.server import errors
from purechat.server.feed import Feed
from purechat.server.history import catch_up
from purechat.server.journal import InFlight, Journal
from purechat.server.outbox import StreamOutbox
from purechat.server.presence import Presence
from purechat.server.wire import legacy_frame, v1_frame
from purechat.store import Store, StoreError
from purechat.transport import Status, Stream

log = logging.getLogger("purechat.server")

# A reader handles at most this many messages before letting other tasks run. Messages
# that arrive together are handled together (so members' writers get batches), but a
# burst from one sender cannot fill other members' outboxes before their writers run:
# outboxes hold far more than this (DEFAULT_OUTBOX_SIZE is 64 times this).
READ_BURST = 16


@dataclass(frozen=True)
class Services:
    """What a member's call needs from the server."""

    hub: Hub
    store: Store
    journal: Journal
    outbox_size: int
    # Recent lobby messages an original-contract client receives on arrival.
    legacy_history: int
    # Hears how many messages each resume replayed (metrics).
    observe_catch_up: Callable[[int], None]
    # With a store shared by several servers: delivery and presence come through it.
    feed: Feed | None = None
    presence: Presence | None = None

    async def known_last_seq(self, room: str) -> int:
        """The store's newest number for a room not yet open here (0 when it is open)."""
        return 0 if self.hub.has_room(room) else await self.store.last_seq(room)

    async def join(self, room: str, requested: str, session: str, outbox: StreamOutbox) -> Member:
        """A named member, announced in its room on every server sharing the store.

        JoinRefused (or RoomFull) for a refused join, StoreError when the store is away.
        """
        if self.presence is None or self.feed is None:
            last_seq = await self.known_last_seq(room)
            return self.hub.join(room, requested, outbox, last_seq, session=session)
        self.hub.check_join(room, requested, session)
        holder = self.presence.new_holder()
        joined = await self.presence.join(room, requested, holder, session)
        opened = not self.hub.has_room(room)
        bound = BoundName(joined.name, joined.members, joined.position.presence)
        try:
            member = self.hub.join(
                room, requested, outbox, joined.position.seq, bound=bound, session=session
            )
        except JoinRefused:  # the room filled up while the store answered
            self.presence.release((room, joined.name, holder))
            raise
        member.seat = holder
        if opened:
            self.feed.opened(room, joined.position.presence)
        else:
            self.feed.catch_up(member)
        return member

    async def claim_name(self, member: Member, requested: str) -> str:
        """Name an original-contract member (on its first message) and announce it."""
        if self.presence is None:
            return self.hub.claim_name(member, requested)
        holder = self.presence.new_holder()
        joined = await self.presence.join(member.room.name, requested, holder, "")
        member.seat = holder
        return self.hub.claim_name(member, requested, joined.name)

    def release(self, member: Member) -> None:
        """The member's call is over: free its name on every server (once per member)."""
        if self.presence is not None and member.name is not None:
            self.presence.release((member.room.name, member.name, member.seat))


class _Burst:
    """Counts messages handled since the reader last yielded."""

    def __init__(self, outbox_size: int):
        self.limit = min(READ_BURST, max(1, outbox_size // 4))
        self.count = 0

    async def tick(self) -> None:
        self.count += 1
        if self.count >= self.limit:
            self.count = 0
            await anyio.lowlevel.checkpoint()


Prelude = Callable[[], Coroutine[Any, Any, Sequence[Outgoing]]]


async def _run_member(
    stream: Stream,
    outbox: StreamOutbox,
    encode: Callable[[Outgoing], bytes],
    read: Callable[[], Coroutine[Any, Any, None]],
    prelude: Prelude,
) -> Status:
    """Run reader and writer as siblings; OK once the reader finished and the writer drained.

    The reader closes the outbox when the client has finished sending; the writer then
    delivers what is queued and returns. Errors end the call through `stream.end`.
    """
    stream.start_response()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(outbox.pump, encode, prelude)
        task_group.start_soon(read)
    return errors.OK


async def _submit(
    services: Services, member: Member, draft: Draft | Notice, in_flight: InFlight
) -> None:
    if isinstance(draft, Draft):
        await services.journal.submit(draft, member, in_flight)


async def serve_legacy(stream: Stream, services: Services, identity: str | None) -> Status:
    """/chat.ChatService/JoinChat: room lobby, name from the token or the first user_id."""
    hub = services.hub
    try:
        last_seq = await services.known_last_seq(DEFAULT_ROOM)
    except StoreError as error:
        log.error("%s; a join was refused", error)
        return errors.store_unreachable()
    with StreamOutbox(stream, services.outbox_size) as outbox:
        try:
            member = hub.attach(DEFAULT_ROOM, outbox, last_seq)
        except RoomFull as full:
            return errors.room_full(str(full))
        try:
            return await _legacy_member(stream, services, identity, outbox, member)
        finally:
            _leave(hub, member, stream)
            services.release(member)


async def _legacy_member(
    stream: Stream,
    services: Services,
    identity: str | None,
    outbox: StreamOutbox,
    member: Member,
) -> Status:
    hub = services.hub
    in_flight = InFlight()

    async def recent_lobby() -> Sequence[Outgoing]:
        return await catch_up(
            services.store,
            DEFAULT_ROOM,
            upto=member.joined_at_seq,
            after_seq=None,
            history=services.legacy_history,
        )

    burst = _Burst(services.outbox_size)

    async def read() -> None:
        while (raw := await stream.receive()) is not None:
            await burst.tick()
            try:
                message = chat_pb2.ChatMessage.FromString(raw)
            except DecodeError:
                stream.end(errors.undecodable("chat.ChatMessage"))
                return
            if member.name is None:
                try:
                    name = await services.claim_name(member, identity or message.user_id)
                except (JoinRefused, StoreError) as refusal:
                    stream.end(_unnamed(refusal))
                    return
                log.info("%s joined %s from %s", name, member.room.name, stream.connection.peer)
            draft = hub.post(member, message.text)
            if isinstance(draft, Notice) and (ending := _legacy_ending(draft, hub)):
                stream.end(ending)
                return
            await _submit(services, member, draft, in_flight)
        await in_flight.wait_idle()  # the client is owed its own messages back
        _leave(hub, member, stream)
        outbox.close()

    return await _run_member(stream, outbox, legacy_frame, read, recent_lobby)


def _unnamed(refusal: JoinRefused | StoreError) -> Status:
    if isinstance(refusal, StoreError):
        return errors.store_unreachable()
    return errors.join_refused(str(refusal))


def _legacy_ending(refusal: Notice, hub: Hub) -> Status | None:
    """The original contract cannot carry an error and go on: these end its stream."""
    if refusal.code is ErrorCode.TEXT_TOO_LONG:
        return errors.text_too_long(hub.limits.max_text_bytes)
    if refusal.code is ErrorCode.RATE_LIMITED:
        return errors.rate_limited(hub.limits.rate_limit)
    return None


async def serve_v1(stream: Stream, services: Services, identity: str | None) -> Status:
    """/purechat.v1.Chat/Connect: Join first, then Sends; errors are frames, not endings."""
    hub = services.hub
    in_flight = InFlight()
    raw = await stream.receive()
    if raw is None:
        return errors.OK  # gone before joining
    first = _decode_client_frame(stream, raw)
    if first is None:
        return errors.undecodable("purechat.v1.ClientFrame")
    if first.WhichOneof("frame") != "join":
        return errors.first_frame_not_join()
    join = first.join
    room = join.room or DEFAULT_ROOM
    outbox = StreamOutbox(stream, services.outbox_size)
    with outbox:
        try:
            member = await services.join(room, identity or join.name, join.session, outbox)
        except RoomFull as full:
            return errors.room_full(str(full))
        except JoinRefused as refusal:
            return errors.join_refused(str(refusal))
        except StoreError as error:
            log.error("%s; a join was refused", error)
            return errors.store_unreachable()
        log.info("%s joined %s from %s", member.name, member.room.name, stream.connection.peer)
        burst = _Burst(services.outbox_size)

        async def read() -> None:
            while (raw := await stream.receive()) is not None:
                await burst.tick()
                frame = _decode_client_frame(stream, raw)
                if frame is None:
                    return
                kind = frame.WhichOneof("frame")
                if kind == "send":
                    send = frame.send
                    draft = hub.post(member, send.text, send.client_msg_id, action=send.action)
                    await _submit(services, member, draft, in_flight)
                else:
                    outbox.offer(Notice(ErrorCode.BAD_FRAME, _misplaced(kind, member)))
            await in_flight.wait_idle()  # acks for what it sent come before the end
            _leave(hub, member, stream)
            outbox.close()

        try:
            return await _run_member(
                stream, outbox, v1_frame, read, _v1_prelude(services, member, join)
            )
        finally:
            _leave(hub, member, stream)
            services.release(member)


def _misplaced(kind: str | None, member: Member) -> str:
    if kind == "join":
        return f"You are already in {member.room.name}; open a new stream to change rooms."
    return "Empty frame ignored."


def _v1_prelude(services: Services, member: Member, join: purechat_v1_pb2.Join) -> Prelude:
    async def prelude() -> Sequence[Outgoing]:
        assert member.welcome is not None
        resuming = join.HasField("after_seq")
        earlier = await catch_up(
            services.store,
            member.room.name,
            upto=member.joined_at_seq,
            after_seq=join.after_seq if resuming else None,
            history=join.history,
        )
        if resuming:
            services.observe_catch_up(len(earlier))
        return [member.welcome, *earlier]

    return prelude


def _decode_client_frame(stream: Stream, raw: bytes) -> purechat_v1_pb2.ClientFrame | None:
    try:
        frame: purechat_v1_pb2.ClientFrame = purechat_v1_pb2.ClientFrame.FromString(raw)
    except DecodeError:
        stream.end(errors.undecodable("purechat.v1.ClientFrame"))
        return None
    return frame


def _leave(hub: Hub, member: Member, stream: Stream) -> None:
    if member.present:
        hub.leave(member)
        if member.name is not None:
            log.info("%s left %s from %s", member.name, member.room.name, stream.connection.peer)
