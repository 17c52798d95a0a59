"""purechat.v1.Chat/Post: one message without a seat, for bots and CI.

The poster is in no member list (nobody sees it join or leave) but goes through the
same rules as a member: its name is cleaned and may not be one a member of the room
holds (a look-alike gets a suffix, as on joining), the rate limit holds per
connection, the message is stored by the journal and broadcast like any other, and the
call answers once the store has answered: OK with the number, or the refusal's status
(UNAVAILABLE for a store that is away or did not answer: try again with the same id,
which is never stored twice).
"""

from __future__ import annotations

import logging
import weakref

import anyio
from google.protobuf.message import DecodeError

from purechat import status as statuses
from purechat.core import (
    AccessDenied,
    Ack,
    EndReason,
    ErrorCode,
    Identity,
    Message,
    Notice,
    Outgoing,
)
from purechat.core.hub import GUEST_NAME
from purechat.core.limits import DEFAULT_ROOM, room_problem
from purechat.core.moderation import Actor
from purechat.core.names import name_key, name_problem
from purechat.core.ratelimit import TokenBucket
from purechat.errors import NotAllowed, PurechatError, StoreError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import reading
from purechat.server.journal import InFlight
from purechat.server.services import Services
from purechat.server.wire import change_of, command_of
from purechat.status import Status
from purechat.transport import Stream, frame_message
from purechat.transport.stream import StreamHost

log = logging.getLogger("purechat.server")


class _Answer:
    """The core's Outbox for a poster: keeps the one answer its message gets."""

    def __init__(self) -> None:
        self.item: Ack | Notice | None = None
        self.given = anyio.Event()

    def offer(self, item: Outgoing) -> bool:
        if isinstance(item, Ack | Notice) and self.item is None:
            self.item = item
            self.given.set()
        return True

    def end(self, reason: EndReason, detail: str = "") -> None:
        self.given.set()


_CHANGE_REQUESTS: dict[str, type[v1.EditMessage | v1.DeleteMessage | v1.ReactMessage]] = {
    "Edit": v1.EditMessage,
    "Delete": v1.DeleteMessage,
    "React": v1.ReactMessage,
}


class PostService:
    """Serves Post calls; owns one rate-limit bucket per connection that posts."""

    def __init__(self, services: Services):
        self._services = services
        self._buckets: weakref.WeakKeyDictionary[StreamHost, TokenBucket] = (
            weakref.WeakKeyDictionary()
        )

    async def serve(self, stream: Stream, identity: Identity) -> Status:
        raw = await stream.receive()
        try:
            request = v1.PostRequest.FromString(raw or b"")
        except DecodeError:
            return statuses.undecodable("purechat.v1.PostRequest")
        room = request.room or DEFAULT_ROOM
        services, hub = self._services, self._services.hub
        problem = room_problem(room, hub.limits) or (
            None if identity.account else name_problem(request.name, hub.limits)
        )
        if problem:
            return statuses.refused(problem)
        if request.to:
            try:
                room, _ = await reading.conversation(services, identity, request.to)
            except StoreError as error:
                services.store_failed(error, "a direct message")
                return statuses.for_error(error)
            except PurechatError as refused:
                return statuses.for_error(refused)
        await self._pace(stream.connection, identity)
        try:
            name = identity.account or await self._free_name(room, request.name, identity)
            state = await services.known_state(room)
            answer = _Answer()
            poster = hub.poster(room, name, answer, identity=identity, state=state)
            # A reply names a number the room has given: the hub knows an open room's
            # newest; the store a room not open here.
            closed = request.reply_to and not hub.has_room(room)
            newest = (await services.known_head(room)).seq if closed else None
        except StoreError as error:
            services.store_failed(error, "a post")
            return statuses.for_error(error)
        except AccessDenied as refused:
            return statuses.for_error(refused)
        posted = hub.post(
            poster,
            request.text,
            request.client_msg_id,
            action=request.action,
            reply_to=request.reply_to,
            newest=newest,
        )
        if isinstance(posted, Message):
            await services.journal.submit(posted, poster, InFlight())
        await answer.given.wait()
        return await self._respond(stream, answer.item, name)

    async def serve_moderate(self, stream: Stream, identity: Identity) -> Status:
        """Chat.Moderate: a moderation command without a seat, by identity's account."""
        raw = await stream.receive()
        try:
            request = v1.ModerationCommand.FromString(raw or b"")
        except DecodeError:
            return statuses.undecodable("purechat.v1.ModerationCommand")
        room = request.room or DEFAULT_ROOM
        services, hub = self._services, self._services.hub
        if problem := room_problem(room, hub.limits):
            return statuses.refused(problem)
        try:
            command = command_of(request)
            await self._pace(stream.connection, identity)
            target = await services.resolve_target(room, command.target)
            state = await services.known_state(room)
            actor = Actor(identity.account or "", identity.key, identity.admin)
            entry = hub.moderate(
                actor, room, command, target, client_msg_id=request.client_msg_id, state=state
            )
        except StoreError as error:
            services.store_failed(error, "a moderation command")
            return statuses.for_error(error)
        except PurechatError as refused:
            return statuses.for_error(refused)
        answer = _Answer()
        poster = hub.poster(room, actor.name, answer, identity=identity, state=state)
        await services.journal.submit(entry, poster, InFlight())
        await answer.given.wait()
        if isinstance(answer.item, Ack):
            response = v1.ModerateResponse(seq=answer.item.seq, sentence=entry.text)
            stream.start_response()
            await stream.send_frames(frame_message(response.SerializeToString()))
            return statuses.OK
        return await self._respond(stream, answer.item, actor.name)

    async def serve_change(self, stream: Stream, identity: Identity, method: str) -> Status:
        """Chat.Edit, Chat.Delete, Chat.React: a change to a message without a seat, by
        identity's account, decided by the core as a member's frame is."""
        request_type = _CHANGE_REQUESTS[method]
        raw = await stream.receive()
        try:
            request = request_type.FromString(raw or b"")
        except DecodeError:
            return statuses.undecodable(f"purechat.v1.{request_type.__name__}")
        services, hub = self._services, self._services.hub
        room = request.room or DEFAULT_ROOM
        try:
            if request.dm:
                room, _ = await reading.conversation(services, identity, request.dm)
            elif problem := room_problem(room, hub.limits):
                return statuses.refused(problem)
            await self._pace(stream.connection, identity)
            state = await services.known_state(room)
            answer = _Answer()
            name = identity.account or GUEST_NAME
            poster = hub.poster(room, name, answer, identity=identity, state=state)
            ask = change_of(request)
            target = await services.message_at(room, ask.seq)
            first = await services.already_sent(room, name, request.client_msg_id)
        except StoreError as error:
            services.store_failed(error, "a change to a message")
            return statuses.for_error(error)
        except PurechatError as refused:
            return statuses.for_error(refused)
        if first is not None:
            response = v1.ChangeResponse(seq=first, duplicate=True)
            stream.start_response()
            await stream.send_frames(frame_message(response.SerializeToString()))
            return statuses.OK
        entry = hub.change_member(poster, ask, target, request.client_msg_id)
        if isinstance(entry, Message):
            await services.journal.submit(entry, poster, InFlight())
        await answer.given.wait()
        item = answer.item
        if isinstance(item, Ack):
            response = v1.ChangeResponse(seq=item.seq, duplicate=item.duplicate)
            stream.start_response()
            await stream.send_frames(frame_message(response.SerializeToString()))
            return statuses.OK
        if isinstance(item, Notice) and item.code is ErrorCode.NOT_ALLOWED:
            return statuses.for_error(NotAllowed(item.message))
        return await self._respond(stream, item, name)

    async def _pace(self, connection: StreamHost, identity: Identity) -> None:
        """Posts over one connection keep to the rate limit, paced like members' sends."""
        limit = self._services.hub.limits.rate_limit
        rate = limit if identity.rate is None else identity.rate
        if rate <= 0:
            return
        bucket = self._buckets.setdefault(connection, TokenBucket.full(rate))
        delay = bucket.reserve(anyio.current_time())
        if delay > 0:
            await anyio.sleep(delay)

    async def _free_name(self, room: str, requested: str, identity: Identity) -> str:
        """The requested name, or with a suffix when a member of the room holds it (or
        a look-alike of it): a post cannot pass for a member."""
        services = self._services
        if services.presence is not None:
            held = await services.presence.store.members(room)
        else:
            held = services.hub.members_of(room)
        keys = {name_key(name) for name in held}
        reserved = await services.reserved_for(identity, requested)
        return next(
            c for c in services.hub.candidate_names(requested, reserved) if name_key(c) not in keys
        )

    async def _respond(self, stream: Stream, item: Ack | Notice | None, name: str) -> Status:
        if isinstance(item, Ack):
            response = v1.PostResponse(
                seq=item.seq,
                duplicate=item.duplicate,
                name=name,
                rate_limit=self._services.hub.limits.rate_limit,
            )
            stream.start_response()
            await stream.send_frames(frame_message(response.SerializeToString()))
            return statuses.OK
        if item is None:  # the server is stopping
            return statuses.for_end(EndReason.SHUTTING_DOWN)
        if item.code is ErrorCode.OUTCOME_UNKNOWN:
            return statuses.for_end(EndReason.OUTCOME_UNKNOWN)
        if item.code is ErrorCode.STORE_UNAVAILABLE:
            return statuses.for_end(EndReason.STORE_UNAVAILABLE)
        if item.code is ErrorCode.NOT_ALLOWED:  # muted, banned, not its message...
            return statuses.for_error(NotAllowed(item.message))
        return statuses.refused(item.message)
