"""Translation between core events and the two wire formats, framed once per event.

A broadcast event is serialised and framed the first time any member's writer needs it
in a given format, and the bytes are cached on the event, so a message to N members
costs one encoding per format, not N.
"""

from __future__ import annotations

from purechat.core import Ack, ErrorCode, EventKind, Notice, Outgoing, RoomEvent, Welcome
from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.transport import frame_message

LEGACY = "legacy"
V1 = "v1"

_V1_KIND = {
    EventKind.MESSAGE: purechat_v1_pb2.Event.MESSAGE,
    EventKind.JOIN: purechat_v1_pb2.Event.JOIN,
    EventKind.LEAVE: purechat_v1_pb2.Event.LEAVE,
    EventKind.GAP: purechat_v1_pb2.Event.GAP,
}
_V1_ERROR = {
    ErrorCode.TEXT_TOO_LONG: purechat_v1_pb2.Error.TEXT_TOO_LONG,
    ErrorCode.EMPTY_TEXT: purechat_v1_pb2.Error.EMPTY_TEXT,
    ErrorCode.RATE_LIMITED: purechat_v1_pb2.Error.RATE_LIMITED,
    ErrorCode.BAD_FRAME: purechat_v1_pb2.Error.BAD_FRAME,
    ErrorCode.STORE_UNAVAILABLE: purechat_v1_pb2.Error.STORE_UNAVAILABLE,
}


def legacy_frame(item: Outgoing) -> bytes:
    """Framed chat.ChatMessage for a message event; b"" for what that contract cannot say.

    The original contract has only messages: presence, acks, notices and welcomes are
    not sent to its clients.
    """
    if not isinstance(item, RoomEvent) or item.kind is not EventKind.MESSAGE:
        return b""
    cached = item.wire.get(LEGACY)
    if cached is None:
        text = f"* {item.user} {item.text}" if item.action else item.text
        message = chat_pb2.ChatMessage(user_id=item.user, text=text, timestamp=item.time_ms // 1000)
        cached = item.wire[LEGACY] = frame_message(message.SerializeToString())
    return cached


def v1_frame(item: Outgoing) -> bytes:
    """Framed purechat.v1.ServerFrame for anything the core delivers."""
    if isinstance(item, RoomEvent):
        cached = item.wire.get(V1)
        if cached is None:
            event = purechat_v1_pb2.Event(
                kind=_V1_KIND[item.kind],
                room=item.room,
                seq=item.seq,
                user=item.user,
                text=item.text,
                time_unix_ms=item.time_ms,
                action=item.action,
                history=item.history,
                gap_until=item.gap_until,
            )
            cached = item.wire[V1] = _frame(purechat_v1_pb2.ServerFrame(event=event))
        return cached
    if isinstance(item, Ack):
        ack = purechat_v1_pb2.Ack(
            client_msg_id=item.client_msg_id, seq=item.seq, duplicate=item.duplicate
        )
        return _frame(purechat_v1_pb2.ServerFrame(ack=ack))
    if isinstance(item, Notice):
        return v1_error_frame(_V1_ERROR[item.code], item.message, item.client_msg_id)
    if isinstance(item, Welcome):
        welcome = purechat_v1_pb2.Welcome(
            room=item.room, name=item.name, members=item.members, last_seq=item.last_seq
        )
        return _frame(purechat_v1_pb2.ServerFrame(welcome=welcome))
    raise TypeError(f"cannot encode {item!r}")


def v1_error_frame(code: int, message: str, client_msg_id: str = "") -> bytes:
    error = purechat_v1_pb2.Error(code=code, message=message, client_msg_id=client_msg_id)  # type: ignore[arg-type]
    return _frame(purechat_v1_pb2.ServerFrame(error=error))


def _frame(message: purechat_v1_pb2.ServerFrame) -> bytes:
    return frame_message(message.SerializeToString())
