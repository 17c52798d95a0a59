"""The two ways in: the original chat.ChatService contract and purechat.v1.

Each call is one member: its reader and its outbox's writer run as sibling tasks of
one task group, so when either ends badly the call's cancel scope ends both, and the
membership is removed in `finally` whatever ended the call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.lowlevel
from google.protobuf.message import DecodeError

from purechat.core import ErrorCode, Hub, JoinRefused, Member, Notice, Outgoing
from purechat.core.limits import DEFAULT_ROOM
from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.server import errors
from purechat.server.outbox import StreamOutbox
from purechat.server.wire import legacy_frame, v1_frame
from purechat.transport import Status, Stream

log = logging.getLogger("purechat.server")

# A reader handles at most this many messages before letting other tasks run. Messages
# that arrive together are handled together (so members' writers get batches), but a
# burst from one sender cannot fill other members' outboxes before their writers run:
# outboxes hold far more than this (DEFAULT_OUTBOX_SIZE is 64 times this).
READ_BURST = 16


class _Burst:
    """Counts messages handled since the reader last yielded."""

    def __init__(self, limit: int):
        self.limit = limit
        self.count = 0

    async def tick(self) -> None:
        self.count += 1
        if self.count >= self.limit:
            self.count = 0
            await anyio.lowlevel.checkpoint()


async def _run_member(
    stream: Stream,
    outbox: StreamOutbox,
    encode: Callable[[Outgoing], bytes],
    read: Callable[[], Coroutine[Any, Any, None]],
) -> Status:
    """Run reader and writer as siblings; OK once the reader finished and the writer drained.

    The reader closes the outbox when the client has finished sending; the writer then
    delivers what is queued and returns. Errors end the call through `stream.end`.
    """
    stream.start_response()
    async with anyio.create_task_group() as task_group:
        task_group.start_soon(outbox.pump, encode)
        task_group.start_soon(read)
    return errors.OK


async def serve_legacy(stream: Stream, hub: Hub, outbox_size: int) -> Status:
    """/chat.ChatService/JoinChat: room lobby, name from the first message's user_id."""
    outbox = StreamOutbox(stream, outbox_size)
    member = hub.attach(DEFAULT_ROOM, outbox)
    burst = _Burst(min(READ_BURST, max(1, outbox_size // 4)))

    async def read() -> None:
        while (raw := await stream.receive()) is not None:
            await burst.tick()
            try:
                message = chat_pb2.ChatMessage.FromString(raw)
            except DecodeError:
                stream.end(errors.undecodable("chat.ChatMessage"))
                return
            if member.name is None:
                name = hub.claim_name(member, message.user_id)
                log.info("%s joined %s from %s", name, member.room.name, stream.connection.peer)
            refused = hub.post(member, message.text).refused
            if refused is not None and refused.code is ErrorCode.TEXT_TOO_LONG:
                stream.end(errors.text_too_long(hub.limits.max_text_bytes))
                return
        _leave(hub, member, stream)
        outbox.close()

    with outbox:
        try:
            return await _run_member(stream, outbox, legacy_frame, read)
        finally:
            _leave(hub, member, stream)


async def serve_v1(stream: Stream, hub: Hub, outbox_size: int) -> Status:
    """/purechat.v1.Chat/Connect: Join first, then Sends; errors are frames, not endings."""
    outbox = StreamOutbox(stream, outbox_size)
    member: Member | None = None
    burst = _Burst(min(READ_BURST, max(1, outbox_size // 4)))

    async def read() -> None:
        nonlocal member
        raw = await stream.receive()
        first = _decode_client_frame(stream, raw) if raw is not None else None
        if first is None or first.WhichOneof("frame") != "join":
            if raw is not None and first is not None:
                stream.end(errors.first_frame_not_join())
            outbox.close()
            return
        try:
            member = hub.join(first.join.room, first.join.name, outbox)
        except JoinRefused as refusal:
            stream.end(errors.join_refused(str(refusal)))
            return
        log.info("%s joined %s from %s", member.name, member.room.name, stream.connection.peer)
        while (raw := await stream.receive()) is not None:
            await burst.tick()
            frame = _decode_client_frame(stream, raw)
            if frame is None:
                return
            kind = frame.WhichOneof("frame")
            if kind == "send":
                hub.post(
                    member, frame.send.text, frame.send.client_msg_id, action=frame.send.action
                )
            else:
                outbox.offer(
                    Notice(
                        ErrorCode.BAD_FRAME,
                        f"You are already in {member.room.name}; open a new stream to change rooms."
                        if kind == "join"
                        else "Empty frame ignored.",
                    )
                )
        _leave(hub, member, stream)
        outbox.close()

    with outbox:
        try:
            return await _run_member(stream, outbox, v1_frame, read)
        finally:
            if member is not None:
                _leave(hub, member, stream)


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
