"""The two ways in: the original chat.ChatService contract and purechat.v1.

Each call is one member, inside one `Membership` (its seat, name and hub entry, given
back exactly once however the call ends). The call's task reads; the member's delivery
sends what it is owed from before it arrived (welcome, history or missed messages),
then live ones, with a task of its own in the call's task group only while it has to
wait for the windows: whatever ends the call stops both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import anyio
import anyio.lowlevel
from google.protobuf.message import DecodeError

from purechat import status as statuses
from purechat.core import ErrorCode, EventKind, Member, Message, Notice, Outgoing, RoomEvent
from purechat.core.limits import DEFAULT_ROOM
from purechat.errors import PurechatError, Refusal, StoreError
from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.server.delivery import MemberDelivery, Prelude
from purechat.server.history import catch_up
from purechat.server.journal import InFlight
from purechat.server.membership import Membership
from purechat.server.pacing import Paced
from purechat.server.services import Services
from purechat.status import Status
from purechat.transport import Stream

log = logging.getLogger("purechat.server")

# A reader handles at most this many messages, or this many bytes of them, before
# letting other tasks run. Messages that arrive together are handled together, so one
# commit and one write per member carry many of them (the cost of a broadcast is mostly
# per write, not per message: at 16 a flat-out sender's fan-out was 2.5x slower); the
# bounds keep one scheduler pass short, so a burst from one sender cannot hold up
# everyone else's writes for long.
READ_BURST = 256
READ_BURST_BYTES = 64 * 1024


class ReadBurst:
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


async def _run_member(
    stream: Stream,
    delivery: MemberDelivery,
    read: Callable[[], Coroutine[Any, Any, None]],
    prelude: Prelude,
) -> Status:
    """A gRPC member: response headers, then `run_member`."""
    stream.start_response()
    return await run_member(delivery, read, prelude)


async def run_member(
    delivery: MemberDelivery, read: Callable[[], Coroutine[Any, Any, None]], prelude: Prelude
) -> Status:
    """Read in the session's own task, the delivery sending beside it when it has to;
    OK once the reader finished and the delivery drained. Whatever ends the session
    early does so through its `end`, which cancels both."""
    async with anyio.create_task_group() as task_group:
        delivery.start(task_group, prelude)
        await read()
    return statuses.OK


async def send_paced(
    services: Services, member: Member, session: Paced, in_flight: InFlight, message: Message
) -> bool:
    """Pace, then hand a valid message to the journal; False once the member is done."""
    if not await services.pacer.pace(member, session):
        return False
    await services.journal.submit(message, member, in_flight)
    return True


def join_refused(refusal: Refusal | StoreError) -> Status:
    """The status for a join the hub or the store refused (a store error logged)."""
    if isinstance(refusal, StoreError):
        log.error("%s; a join was refused", refusal)
    return statuses.for_error(refusal)


async def serve_legacy(stream: Stream, services: Services, identity: str | None) -> Status:
    """/chat.ChatService/JoinChat: room lobby, name from the token or the first user_id."""
    delivery = services.delivery(stream, services.legacy_encode)
    membership = Membership(services, delivery, peer=stream.connection.peer, room=DEFAULT_ROOM)
    try:
        async with membership:
            return await _legacy_member(stream, services, identity, membership)
    except (Refusal, StoreError) as refusal:
        return join_refused(refusal)


async def _legacy_member(
    stream: Stream, services: Services, identity: str | None, membership: Membership
) -> Status:
    hub, member, delivery = services.hub, membership.member, membership.delivery
    assert member is not None
    in_flight = InFlight()

    async def recent_lobby() -> Sequence[Outgoing]:
        return await catch_up(
            services.store,
            DEFAULT_ROOM,
            upto=member.joined_at_seq,
            after_seq=None,
            history=services.legacy_history,
        )

    burst = ReadBurst()

    async def read() -> None:
        while (raw := await stream.receive()) is not None:
            await burst.tick(len(raw))
            try:
                message = chat_pb2.ChatMessage.FromString(raw)
            except DecodeError:
                stream.end(statuses.undecodable("chat.ChatMessage"))
                return
            if member.name is None:
                try:
                    if await membership.name(identity or message.user_id) is None:
                        return
                except PurechatError as refusal:
                    stream.end(statuses.for_error(refusal))
                    return
            posted = hub.post(member, message.text)
            if posted is None:
                return
            if isinstance(posted, Notice):
                if posted.code is ErrorCode.TEXT_TOO_LONG:
                    stream.end(statuses.text_too_long(hub.limits.max_text_bytes))
                    return
                continue  # empty text: nothing to broadcast
            if not await send_paced(services, member, stream, in_flight, posted):
                return
        await in_flight.wait_idle()  # the client is owed its own messages back
        membership.leave()
        delivery.close()

    return await _run_member(stream, delivery, read, recent_lobby)


async def serve_v1(stream: Stream, services: Services, identity: str | None) -> Status:
    """/purechat.v1.Chat/Connect: Join first, then Sends; errors are frames, not endings."""
    raw = await stream.receive()
    if raw is None:
        return statuses.OK  # gone before joining
    first = _decode_client_frame(stream, raw)
    if first is None:
        return statuses.undecodable("purechat.v1.ClientFrame")
    if first.WhichOneof("frame") != "join":
        return statuses.first_frame_not_join()
    join = first.join
    delivery = services.delivery(stream, services.v1_encode)
    membership = Membership(
        services,
        delivery,
        peer=stream.connection.peer,
        room=join.room or DEFAULT_ROOM,
        requested=None if join.observe else identity or join.name,
        session=join.session,
        observe=join.observe,
    )
    try:
        async with membership as member:
            read = _v1_reader(stream, services, membership)
            prelude = _v1_prelude(services, member, join)
            return await _run_member(stream, delivery, read, prelude)
    except (Refusal, StoreError) as refusal:
        return join_refused(refusal)


def _v1_reader(
    stream: Stream, services: Services, membership: Membership
) -> Callable[[], Coroutine[Any, Any, None]]:
    hub, member, delivery = services.hub, membership.member, membership.delivery
    assert member is not None
    in_flight = InFlight()
    burst = ReadBurst()

    async def read() -> None:
        while (raw := await stream.receive()) is not None:
            await burst.tick(len(raw))
            frame = _decode_client_frame(stream, raw)
            if frame is None:
                return
            kind = frame.WhichOneof("frame")
            if kind != "send" or member.name is None:
                delivery.offer(Notice(ErrorCode.BAD_FRAME, _misplaced(kind, member)))
                continue
            send = frame.send
            posted = hub.post(member, send.text, send.client_msg_id, action=send.action)
            if posted is None:
                return
            if isinstance(posted, Message) and not await send_paced(
                services, member, stream, in_flight, posted
            ):
                return
        await in_flight.wait_idle()  # acks for what it sent come before the end
        membership.leave()
        delivery.close()

    return read


def _misplaced(kind: str | None, member: Member) -> str:
    if kind == "join":
        return f"You are already in {member.room.name}; open a new stream to change rooms."
    if kind == "send":
        return "You are listening without a seat: join the room to talk."
    return "Empty frame ignored."


def _v1_prelude(services: Services, member: Member, join: purechat_v1_pb2.Join) -> Prelude:
    return resume_prelude(
        services,
        member,
        history=join.history,
        after_seq=join.after_seq if join.HasField("after_seq") else None,
        epoch=join.epoch,
    )


def resume_prelude(
    services: Services, member: Member, *, history: int, after_seq: int | None, epoch: str
) -> Prelude:
    """The welcome, then recent history or what the member missed since after_seq
    (a RESET first when the log it resumes in, epoch, is gone): any member with a seat."""

    async def prelude() -> Sequence[Outgoing]:
        welcome = member.welcome
        assert welcome is not None
        lost: list[Outgoing] = []
        start = after_seq
        if after_seq is not None and epoch and epoch != welcome.epoch:
            # The log the client resumes in is gone: it hears so, then gets this one.
            lost.append(RoomEvent(EventKind.RESET, welcome.room, epoch=welcome.epoch))
            start = 0
        earlier = await catch_up(
            services.store,
            member.room.name,
            upto=member.joined_at_seq,
            after_seq=start,
            history=history,
        )
        if after_seq is not None:
            services.observe_catch_up(len(earlier))
        return [welcome, *lost, *earlier]

    return prelude


def _decode_client_frame(stream: Stream, raw: bytes) -> purechat_v1_pb2.ClientFrame | None:
    try:
        frame: purechat_v1_pb2.ClientFrame = purechat_v1_pb2.ClientFrame.FromString(raw)
    except DecodeError:
        stream.end(statuses.undecodable("purechat.v1.ClientFrame"))
        return None
    return frame
