"""Translation between core events and the two wire formats, framed once per broadcast.

A broadcast offers the same event to every member in turn, so each format's encoder
remembers the last event it framed: a message to N members costs one encoding per
format, not N, and nothing about the wire is kept on the core's records.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from purechat.core import (
    Ack,
    ConversationList,
    EntryKind,
    ErrorCode,
    EventKind,
    HistoryPage,
    Message,
    Messages,
    Notice,
    Outgoing,
    ReadMarker,
    RoomEvent,
    SearchPage,
    Typing,
    Welcome,
)
from purechat.core.events import CHANGES, ConversationNotice, Revision
from purechat.core.living import ChangeAsk, reaction_of
from purechat.core.moderation import Command, command_from
from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.transport import frame_message

Encode = Callable[[Outgoing], bytes]

_V1_KIND = {
    EventKind.JOIN: purechat_v1_pb2.Event.JOIN,
    EventKind.LEAVE: purechat_v1_pb2.Event.LEAVE,
    EventKind.GAP: purechat_v1_pb2.Event.GAP,
    EventKind.RESET: purechat_v1_pb2.Event.RESET,
}
_V1_CHANGE = {
    EntryKind.EDIT: purechat_v1_pb2.Event.EDIT,
    EntryKind.DELETE: purechat_v1_pb2.Event.DELETE,
    EntryKind.REACTION: purechat_v1_pb2.Event.REACTION,
}
_V1_ERROR = {
    ErrorCode.TEXT_TOO_LONG: purechat_v1_pb2.Error.TEXT_TOO_LONG,
    ErrorCode.EMPTY_TEXT: purechat_v1_pb2.Error.EMPTY_TEXT,
    ErrorCode.RATE_LIMITED: purechat_v1_pb2.Error.RATE_LIMITED,
    ErrorCode.BAD_FRAME: purechat_v1_pb2.Error.BAD_FRAME,
    ErrorCode.STORE_UNAVAILABLE: purechat_v1_pb2.Error.STORE_UNAVAILABLE,
    ErrorCode.OUTCOME_UNKNOWN: purechat_v1_pb2.Error.OUTCOME_UNKNOWN,
    ErrorCode.NOT_ALLOWED: purechat_v1_pb2.Error.NOT_ALLOWED,
}


class Remembering:
    """Frames items with `frame`, reusing the bytes when the same item comes again (a
    broadcast offers one item to every member in turn): any wire format's encoder."""

    def __init__(self, frame: Encode):
        self._frame = frame
        self._last: Outgoing | None = None
        self._bytes = b""

    def __call__(self, item: Outgoing) -> bytes:
        if item is not self._last:
            if isinstance(item, Messages):
                self._bytes = b"".join([self._frame(message) for message in item.messages])
            else:
                self._bytes = self._frame(item)
            self._last = item
        return self._bytes


def legacy_encoder() -> Encode:
    """chat.ChatMessage frames for the original contract (see `legacy_frame`)."""
    return Remembering(legacy_frame)


def v1_encoder() -> Encode:
    """purechat.v1.ServerFrame frames (see `v1_frame`)."""
    return Remembering(v1_frame)


def legacy_frame(item: Outgoing) -> bytes:
    """Framed chat.ChatMessage for a message; b"" for what that contract cannot say.

    The original contract has only messages: presence, acks, notices and welcomes are
    not sent to its clients.
    """
    if not isinstance(item, Message) or item.kind is EntryKind.REACTION:
        return b""
    if item.kind is EntryKind.MODERATION:
        text = f"* {item.text}"  # "* bob was banned by alice for 1h: spam"
    elif item.kind is EntryKind.EDIT:
        text = f"* {item.user} edited #{item.target}: {item.text}"
    elif item.kind is EntryKind.DELETE:
        text = f"* {item.user} deleted #{item.target}"
    elif item.revision is not None and item.revision.deleted:
        text = f"* message #{item.seq} was deleted"  # a tombstone in history
    elif item.action:
        text = f"* {item.user} {item.text}"
    else:
        text = item.text
    message = chat_pb2.ChatMessage(user_id=item.user, text=text, timestamp=item.time_ms // 1000)
    return frame_message(message.SerializeToString())


def v1_event(item: Message | RoomEvent) -> purechat_v1_pb2.Event:
    """A message or room event as purechat.v1's Event (stream frames and unary answers)."""
    if isinstance(item, Message):
        event = purechat_v1_pb2.Event(
            kind=purechat_v1_pb2.Event.MESSAGE,
            room=item.room,
            seq=item.seq,
            user=item.user,
            text=item.text,
            time_unix_ms=item.time_ms,
            action=item.action,
            history=item.history,
        )
        if item.kind is EntryKind.MODERATION:
            event.kind = purechat_v1_pb2.Event.MODERATION
            event.moderation.CopyFrom(v1_moderation(item.data))
        elif item.kind in CHANGES:
            event.kind = _V1_CHANGE[item.kind]
            event.target = item.target
            if item.kind is EntryKind.REACTION:
                emoji, removed, _ = reaction_of(item)
                event.reaction.CopyFrom(purechat_v1_pb2.Reaction(emoji=emoji, removed=removed))
        event.reply_to = item.reply_to
        if item.revision is not None:
            event.revision.CopyFrom(v1_revision(item.revision))
        return event
    return purechat_v1_pb2.Event(
        kind=_V1_KIND[item.kind],
        room=item.room,
        seq=item.seq,
        user=item.user,
        time_unix_ms=item.time_ms,
        gap_until=item.gap_until,
        epoch=item.epoch,
    )


def v1_revision(revision: Revision) -> purechat_v1_pb2.Revision:
    return purechat_v1_pb2.Revision(
        edited_unix_ms=revision.edited_ms,
        deleted=revision.deleted,
        deleted_by=revision.deleted_by,
        reactions=[
            purechat_v1_pb2.ReactionCount(emoji=r.emoji, users=r.users) for r in revision.reactions
        ],
    )


def v1_frame(item: Outgoing) -> bytes:
    """Framed purechat.v1.ServerFrame for anything the core delivers."""
    if isinstance(item, Message | RoomEvent):
        return _frame(purechat_v1_pb2.ServerFrame(event=v1_event(item)))
    if isinstance(item, Typing):
        typing = purechat_v1_pb2.Typing(room=item.room, users=item.users, more=item.more)
        return _frame(purechat_v1_pb2.ServerFrame(typing=typing))
    if isinstance(item, ReadMarker):
        marker = purechat_v1_pb2.ReadMarker(room=item.room, seq=item.seq)
        return _frame(purechat_v1_pb2.ServerFrame(read=marker))
    if isinstance(item, ConversationNotice):
        notice = purechat_v1_pb2.ConversationNotice(
            room=item.room, peer=item.peer, seq=item.seq, text=item.text
        )
        return _frame(purechat_v1_pb2.ServerFrame(conversation=notice))
    if isinstance(item, HistoryPage | SearchPage | ConversationList):
        return b""  # answers of purechat.v1's unary calls (see v1_event), not stream frames
    if isinstance(item, Ack):
        ack = purechat_v1_pb2.Ack(
            client_msg_id=item.client_msg_id, seq=item.seq, duplicate=item.duplicate
        )
        return _frame(purechat_v1_pb2.ServerFrame(ack=ack))
    if isinstance(item, Notice):
        return v1_error_frame(_V1_ERROR[item.code], item.message, item.client_msg_id)
    if isinstance(item, Welcome):
        welcome = purechat_v1_pb2.Welcome(
            room=item.room,
            name=item.name,
            members=item.members,
            last_seq=item.last_seq,
            epoch=item.epoch,
            topic=item.topic,
            account=item.account,
            role=item.role,
            rate_limit=item.rate_limit,
            peer=item.peer,
        )
        return _frame(purechat_v1_pb2.ServerFrame(welcome=welcome))
    raise TypeError(f"cannot encode {item!r}")


def v1_moderation(data: str) -> purechat_v1_pb2.Moderation:
    """A moderation entry's details (JSON, see core/moderation.py) as the proto's."""
    details = json.loads(data or "{}")
    return purechat_v1_pb2.Moderation(
        action=str(details.get("action", "")),
        by=str(details.get("by", "")),
        target=str(details.get("target", "")),
        reason=str(details.get("reason", "")),
        until_unix_ms=int(details.get("until_ms", 0)),
        topic=str(details.get("topic", "")),
        mode=str(details.get("mode", "")),
    )


def command_of(request: purechat_v1_pb2.ModerationCommand) -> Command:
    """A purechat.v1 moderation command as the core's (ModerationRefused when its
    action is unset)."""
    action = purechat_v1_pb2.ModerationCommand.Action.Name(request.action)
    return command_from(
        "" if request.action == 0 else action,
        request.target,
        request.seconds if request.HasField("seconds") else None,
        request.reason,
        request.text,
    )


def change_of(frame: object) -> ChangeAsk:
    """A purechat.v1 EditMessage, DeleteMessage or ReactMessage as the core's ask."""
    if isinstance(frame, purechat_v1_pb2.EditMessage):
        return ChangeAsk(EntryKind.EDIT, frame.seq, text=frame.text)
    if isinstance(frame, purechat_v1_pb2.DeleteMessage):
        return ChangeAsk(EntryKind.DELETE, frame.seq)
    assert isinstance(frame, purechat_v1_pb2.ReactMessage)
    return ChangeAsk(EntryKind.REACTION, frame.seq, emoji=frame.emoji, remove=frame.remove)


def v1_error_frame(code: int, message: str, client_msg_id: str = "") -> bytes:
    error = purechat_v1_pb2.Error(code=code, message=message, client_msg_id=client_msg_id)  # type: ignore[arg-type]
    return _frame(purechat_v1_pb2.ServerFrame(error=error))


def _frame(message: purechat_v1_pb2.ServerFrame) -> bytes:
    return frame_message(message.SerializeToString())
