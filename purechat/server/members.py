"""The two gRPC doors: the original chat.ChatService contract and purechat.v1.

Each decodes its wire into the requests of `server/session.py`, which runs the
member's session the same way for every door (the web page's is web/member.py).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from google.protobuf.message import DecodeError

from purechat import status as statuses
from purechat.core import ErrorCode, Identity, Member, Notice
from purechat.core.limits import DEFAULT_ROOM
from purechat.core.moderation import ModerationRefused
from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.server.reading import MarkRead
from purechat.server.services import Services
from purechat.server.session import (
    Change,
    JoinAsk,
    Misplaced,
    Moderate,
    Post,
    Request,
    TypingSignal,
    serve_member,
)
from purechat.server.wire import Encode, change_of, command_of
from purechat.status import Status
from purechat.transport import Stream


async def serve_legacy(stream: Stream, services: Services, identity: Identity) -> Status:
    """/chat.ChatService/JoinChat: room lobby, named by the token or the first user_id."""
    return await serve_member(LegacyDoor(stream, services, identity), services)


async def serve_v1(stream: Stream, services: Services, identity: Identity) -> Status:
    """/purechat.v1.Chat/Connect: a Join first, then Sends; errors are frames, not endings."""
    return await serve_member(V1Door(stream, services, identity), services)


class _GrpcDoor:
    """What both gRPC doors share: the call is the channel; a token was checked (and
    is watched for revocation) by the listener, around the whole call."""

    def __init__(self, stream: Stream, encode: Encode, identity: Identity):
        self._stream = stream
        self._encode = encode
        self._identity = identity

    @property
    def channel(self) -> Stream:
        return self._stream

    @property
    def encode(self) -> Encode:
        return self._encode

    @property
    def peer(self) -> str:
        return self._stream.connection.peer

    def admitted(self) -> AbstractContextManager[object]:
        return nullcontext()

    def begin(self) -> None:
        self._stream.start_response()


class LegacyDoor(_GrpcDoor):
    """The tutorial's contract: no join (the lobby, with recent history), a member named
    by the token or its first message's user_id, no errors to tell."""

    def __init__(self, stream: Stream, services: Services, identity: Identity):
        super().__init__(stream, services.legacy_encode, identity)
        self._history = services.legacy_history
        self._max_text = services.hub.limits.max_text_bytes

    async def join(self) -> JoinAsk:
        return JoinAsk(DEFAULT_ROOM, None, history=self._history, identity=self._identity)

    def decode(self, raw: bytes, member: Member) -> Request | Status:
        try:
            message = chat_pb2.ChatMessage.FromString(raw)
        except DecodeError:
            return statuses.undecodable("chat.ChatMessage")
        return Post(message.text, name=self._identity.account or message.user_id)

    def refusal_ends(self, notice: Notice) -> Status | None:
        # An empty text is nothing to broadcast; a too long one cannot be told apart
        # from a stored one by this contract's client, so its call ends saying why.
        if notice.code is ErrorCode.TEXT_TOO_LONG:
            return statuses.text_too_long(self._max_text)
        return None


class V1Door(_GrpcDoor):
    """purechat.v1: a Join frame first, then Sends."""

    def __init__(self, stream: Stream, services: Services, identity: Identity):
        super().__init__(stream, services.v1_encode, identity)

    async def join(self) -> JoinAsk | Status:
        raw = await self._stream.receive()
        if raw is None:
            return statuses.OK  # gone before joining
        first = _decode_client_frame(raw)
        if first is None:
            return statuses.undecodable("purechat.v1.ClientFrame")
        if first.WhichOneof("frame") != "join":
            return statuses.first_frame_not_join()
        join = first.join
        return JoinAsk(
            room=join.room or DEFAULT_ROOM,
            requested=None if join.observe else self._identity.account or join.name,
            session=join.session,
            observe=join.observe,
            history=join.history,
            after_seq=join.after_seq if join.HasField("after_seq") else None,
            epoch=join.epoch,
            identity=self._identity,
            dm=join.dm,
        )

    def decode(self, raw: bytes, member: Member) -> Request | Status:
        frame = _decode_client_frame(raw)
        if frame is None:
            return statuses.undecodable("purechat.v1.ClientFrame")
        kind = frame.WhichOneof("frame")
        if kind == "mark_read":
            return MarkRead(frame.mark_read.room, frame.mark_read.seq)
        if kind == "typing":
            return TypingSignal()
        if kind in ("edit", "delete", "react") and member.name is not None:
            change = getattr(frame, kind)
            return Change(change_of(change), change.client_msg_id)
        if kind not in ("send", "moderate") or member.name is None:
            return Misplaced(_misplaced(kind, member))
        if kind == "moderate":
            try:
                command = command_of(frame.moderate)
            except ModerationRefused as refused:
                return Misplaced(str(refused))
            return Moderate(command, frame.moderate.client_msg_id)
        send = frame.send
        return Post(send.text, send.client_msg_id, send.action, reply_to=send.reply_to)

    def refusal_ends(self, notice: Notice) -> Status | None:
        return None  # told as an Error frame


def _misplaced(kind: str | None, member: Member) -> str:
    if kind == "join":
        return f"You are already in {member.room.name}; open a new stream to change rooms."
    if kind in ("send", "edit", "delete", "react"):
        return "You are listening without a seat: join the room to talk."
    return "Empty frame ignored."


def _decode_client_frame(raw: bytes) -> purechat_v1_pb2.ClientFrame | None:
    try:
        frame: purechat_v1_pb2.ClientFrame = purechat_v1_pb2.ClientFrame.FromString(raw)
    except DecodeError:
        return None
    return frame
