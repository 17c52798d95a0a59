"""The web member's wire format: purechat.v1's frames as JSON, one per WebSocket text frame.

It mirrors `proto/purechat_v1.proto` field for field (snake_case names, enum values as
lower-case kinds and upper-case error codes), with the token in the join frame, where
a browser can put it (never in the URL), and a last frame saying how the session ended.

Page to server, one JSON object per text frame, the first a join:

    {"join": {"name": "alice", "room": "lobby", "history": 20, "session": "9f…",
              "after_seq": 41, "epoch": "…", "token": "…"}}
    {"send": {"text": "hello", "client_msg_id": "c1", "action": false}}
    {"rooms": {}}
    {"moderate": {"action": "ban", "target": "bob", "seconds": 3600, "reason": "spam",
                  "text": "", "client_msg_id": "c2"}}
    {"send": {"text": "yes", "client_msg_id": "c3", "reply_to": 12}}
    {"edit": {"seq": 12, "text": "new text", "client_msg_id": "c4"}}
    {"delete": {"seq": 12, "client_msg_id": "c5"}}
    {"react": {"seq": 12, "emoji": "👍", "remove": false, "client_msg_id": "c6"}}
    {"typing": {}}
    {"mark_read": {"room": "lobby", "seq": 41}}
    {"history": {"room": "lobby", "dm": "", "before": 41, "after": null, "around": null,
                 "limit": 50}}
    {"search": {"text": "deploy", "room": "", "dm": "", "limit": 20, "page": ""}}
    {"conversations": {}}

Living messages (the proto's EditMessage, DeleteMessage, ReactMessage, TypingSignal):
`edit`, `delete` and `react` are acked like a send (or answered with an error whose
message is the sentence why not); `typing` is sent at most once every 3 s while the
person types, never answered.

Before a join, a page without a token may log in (or register, where the server lets
people register), and is answered with a session token it keeps in memory and sends
in its join, as a gRPC client sends it in `authorization`:

    {"login": {"name": "alice", "password": "…"}}     -> {"session": {"token", "account",
                                                          "expires_unix_ms"}}
    {"register": {"name": "alice", "password": "…"}}  -> {"registered": {"account"}}

`after_seq` and `epoch` resume after the last number seen (leave `after_seq` out, or
null, to join afresh); `token` is needed when the server has `--tokens`; `action` is
`/me`; `rooms` asks for the rooms with members (on every server sharing the store,
as `purechat rooms` lists them), answered by a `rooms` frame. Fields left out take the
proto's defaults.

Server to page:

    {"welcome": {"room", "name", "members": [...], "shown": {...}, "last_seq", "epoch",
                 "max_text_bytes", "rate_limit"}}
    {"event": {"kind": "message", "room", "seq", "user", "user_shown", "text",
               "time_unix_ms", "action", "history"}}
    {"event": {"kind": "join" | "leave", "room", "user", "user_shown", "time_unix_ms"}}
    {"event": {"kind": "gap", "room", "seq", "gap_until"}}
    {"event": {"kind": "reset", "room", "epoch", "time_unix_ms"}}
    {"event": {"kind": "moderation", "room", "seq", "user", "text", "time_unix_ms",
               "moderation": {"action", "by", "target", "reason", "until_ms", ...}}}
    {"event": {"kind": "edit" | "delete" | "reaction", "room", "seq", "user", "text",
               "time_unix_ms", "history", "target": 12,
               "revision": {"edited_unix_ms", "deleted", "deleted_by",
                            "reactions": [{"emoji": "👍", "users": ["alice"]}]},
               "reaction": {"emoji": "👍", "removed": false}}}
    {"typing": {"room", "users": ["bob"], "more": 0}}
    {"conversation": {"room": "@dm:alice:bob", "peer": "alice", "seq": 7, "text": "…"}}
    {"read": {"room", "seq"}}
    {"history": {"room", "epoch", "last_seq", "events": [...], "more_before",
                 "more_after", "peer"}}
    {"search": {"found": [{"event": {...}, "marks": [[start, end], ...], "peer"}, ...],
                "next": "…"}}
    {"conversations": {"entries": [{"room", "peer", "last_seq", "read_seq", "unread",
                                    "mentions"}, ...]}}
    {"ack": {"client_msg_id", "seq", "duplicate"}}
    {"error": {"code": "TEXT_TOO_LONG", "message": "a sentence", "client_msg_id"}}
    {"rooms": {"rooms": [{"name": "lobby", "members": 3, "last_seq": 41}, ...]}}
    {"end": {"code": "UNAVAILABLE", "message": "server shutting down"}}

A `message` event carries `reply_to` (when it answers one) and `revision` (when later
changes made something of it: history, search and resume give messages as they are
now, a deleted one as a tombstone with empty text and `"deleted": true`). An `edit`,
`delete` or `reaction` event carries its target's number and the target's revision
after it (an edit its new text as `text`; a reaction what it did as `reaction`): the
page replaces what it shows of that message. `typing` lists at most 5 others typing
(`more` counts the rest); show each for at most 6 s, or until that member's next
message.
The asks of reading (the proto's MarkRead, HistoryRequest, SearchRequest and
ConversationsRequest): `mark_read` moves the account's read marker (every session of
it hears `read`); `history` asks a room's (or, with `dm`, a conversation's) messages
before, after or around a number (one of them), answered by `history` with gaps as
`gap` events; `search` asks what the account may read (in one room or conversation,
or all), newest first, `marks` as code-point offsets into the event's text, `next`
the page after ("" when none); `conversations` lists the account's conversations and read
rooms with what is unread. A refused ask is an `error` with its sentence.
`conversation` (the proto's ConversationNotice): a message arrived in one of the
account's conversations that this session is not in (it has not got the message), from
the account `peer`, numbered `seq`; `text` is its first 100 characters, for a
notification. Guests never get one.
`error` codes are the proto's `Error.Code` names; the session goes on after one.
`max_text_bytes` (not in the proto) lets the page refuse an over-long line itself;
`rate_limit` is messages a second the server takes from the member (0: no limit).
`user_shown` and `shown` (name -> shown form; neither in the proto) come only for
names that are shown otherwise than they are spelt: look-alike and invisible
characters escaped and a backslash doubled, as `purechat join` shows them
(`names.distinguishable`), so the page needs no confusables data of its own.
`end` is the last frame, before the close frame; its `code` is the gRPC status name
and the close code is 1000 for OK, else 4000 plus the gRPC code (see
`purechat.web.codes.close_code`), with the sentence, cut to fit, as the close reason.

Messages are encoded as WebSocket frames once per broadcast: the encoder remembers the
last item it framed (as `server/wire.py`'s do), so a message to N web members costs one
`json.dumps` and one frame header, and what a member's queue holds are whole frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from purechat.core import (
    Ack,
    ConversationList,
    EntryKind,
    HistoryPage,
    Message,
    Notice,
    Outgoing,
    ReadMarker,
    RoomEvent,
    RoomList,
    SearchPage,
    Typing,
    Welcome,
)
from purechat.core.events import CHANGES, ConversationNotice, Revision
from purechat.core.living import ChangeAsk, reaction_of
from purechat.core.names import distinguishable
from purechat.errors import Refusal
from purechat.server.history import MAX_CATCH_UP
from purechat.server.reading import ConversationsAsk, HistoryAsk, MarkRead, SearchAsk
from purechat.server.wire import Encode, Remembering
from purechat.transport.status import Status

# The longest close reason a close frame can carry (125 bytes less the code).
MAX_CLOSE_REASON = 123


class BadFrame(Refusal):
    """A frame from the page that is not one of the protocol's; str() is a sentence."""


@dataclass(frozen=True, slots=True)
class Join:
    name: str
    room: str
    history: int = 0
    session: str = ""
    after_seq: int | None = None
    epoch: str = ""
    token: str = ""
    # A conversation with this account instead of `room`.
    dm: str = ""


@dataclass(frozen=True, slots=True)
class Send:
    text: str
    client_msg_id: str = ""
    action: bool = False
    reply_to: int = 0


@dataclass(frozen=True, slots=True)
class ChangeFrame:
    """An edit, delete or react frame."""

    ask: ChangeAsk
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class TypingFrame:
    """The person is typing."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A login (or, with register, a registration) before the join."""

    name: str
    password: str
    register: bool = False


@dataclass(frozen=True, slots=True)
class ModerateFrame:
    action: str
    target: str = ""
    seconds: float | None = None
    reason: str = ""
    text: str = ""
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class AskRooms:
    """The page asks for the rooms with members."""


ClientFrame = (
    Join
    | Send
    | Credentials
    | ModerateFrame
    | ChangeFrame
    | TypingFrame
    | AskRooms
    | MarkRead
    | HistoryAsk
    | SearchAsk
    | ConversationsAsk
)


# -- page to server ----------------------------------------------------------------


def decode(text: str) -> ClientFrame:
    """The frame a page sent; BadFrame when it is not JSON of the protocol's shape."""
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise BadFrame("a frame was not JSON") from None
    if not isinstance(frame, dict) or len(frame) != 1:
        raise BadFrame('a frame must be one object: {"join": {...}}, {"send": {...}}, ...')
    ((kind, body),) = frame.items()
    if not isinstance(body, dict):
        raise BadFrame(f"{kind!r} must hold an object")
    if kind == "join":
        after_seq = body.get("after_seq")
        return Join(
            name=_string(body, "name"),
            room=_string(body, "room"),
            history=min(_count(body, "history"), MAX_CATCH_UP),
            session=_string(body, "session"),
            after_seq=None if after_seq is None else _count(body, "after_seq"),
            epoch=_string(body, "epoch"),
            token=_string(body, "token"),
            dm=_string(body, "dm"),
        )
    if kind == "send":
        return Send(
            text=_string(body, "text"),
            client_msg_id=_string(body, "client_msg_id"),
            action=_flag(body, "action"),
            reply_to=_count(body, "reply_to"),
        )
    if kind == "edit":
        ask = ChangeAsk(EntryKind.EDIT, _count(body, "seq"), text=_string(body, "text"))
        return ChangeFrame(ask, _string(body, "client_msg_id"))
    if kind == "delete":
        ask = ChangeAsk(EntryKind.DELETE, _count(body, "seq"))
        return ChangeFrame(ask, _string(body, "client_msg_id"))
    if kind == "react":
        ask = ChangeAsk(
            EntryKind.REACTION,
            _count(body, "seq"),
            emoji=_string(body, "emoji"),
            remove=_flag(body, "remove"),
        )
        return ChangeFrame(ask, _string(body, "client_msg_id"))
    if kind == "typing":
        return TypingFrame()
    if kind in ("login", "register"):
        return Credentials(_string(body, "name"), _string(body, "password"), kind == "register")
    if kind == "moderate":
        seconds = body.get("seconds")
        if seconds is not None and (
            isinstance(seconds, bool) or not isinstance(seconds, int | float)
        ):
            raise BadFrame("seconds must be a number")
        return ModerateFrame(
            action=_string(body, "action"),
            target=_string(body, "target"),
            seconds=None if seconds is None else float(seconds),
            reason=_string(body, "reason"),
            text=_string(body, "text"),
            client_msg_id=_string(body, "client_msg_id"),
        )
    if kind == "rooms":
        return AskRooms()
    if kind == "mark_read":
        return MarkRead(_string(body, "room"), _count(body, "seq"))
    if kind == "history":
        return HistoryAsk(
            room=_string(body, "room"),
            dm=_string(body, "dm"),
            before=_optional_count(body, "before"),
            after=_optional_count(body, "after"),
            around=_optional_count(body, "around"),
            limit=_count(body, "limit"),
        )
    if kind == "search":
        return SearchAsk(
            text=_string(body, "text"),
            room=_string(body, "room"),
            dm=_string(body, "dm"),
            limit=_count(body, "limit"),
            page=_string(body, "page"),
        )
    if kind == "conversations":
        return ConversationsAsk()
    raise BadFrame(f"unknown frame {kind!r}: a frame is a join, a send, a moderate, rooms, ...")


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key, "")
    if not isinstance(value, str):
        raise BadFrame(f"{key} must be a string")
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800"): no member could be sent it
        raise BadFrame(f"{key} is not valid Unicode text") from None
    return value


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadFrame(f"{key} must be a whole number, 0 or more")
    return value


def _optional_count(body: dict[str, Any], key: str) -> int | None:
    return None if body.get(key) is None else _count(body, key)


def _flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if not isinstance(value, bool):
        raise BadFrame(f"{key} must be true or false")
    return value


# -- server to page ----------------------------------------------------------------


def _shown(user: str) -> dict[str, str]:
    """`user_shown`, for a name that is shown otherwise (see names.distinguishable)."""
    shown = distinguishable(user)
    return {} if shown == user else {"user_shown": shown}


def event_json(item: Message | RoomEvent) -> dict[str, Any]:
    """A message or room event as the page's `event` object (live, history, search)."""
    if isinstance(item, Message) and item.kind is EntryKind.MODERATION:
        return {
            "kind": "moderation",
            "room": item.room,
            "seq": item.seq,
            "user": item.user,
            **_shown(item.user),
            "text": item.text,
            "time_unix_ms": item.time_ms,
            "history": item.history,
            "moderation": json.loads(item.data or "{}"),
        }
    if isinstance(item, Message):
        shown: dict[str, Any] = {
            "kind": "message" if item.kind is EntryKind.MESSAGE else item.kind.value,
            "room": item.room,
            "seq": item.seq,
            "user": item.user,
            **_shown(item.user),
            "text": item.text,
            "time_unix_ms": item.time_ms,
            "action": item.action,
            "history": item.history,
        }
        if item.reply_to:
            shown["reply_to"] = item.reply_to
        if item.kind in CHANGES:
            shown["target"] = item.target
        if item.kind is EntryKind.REACTION:
            emoji, removed, _ = reaction_of(item)
            shown["reaction"] = {"emoji": emoji, "removed": removed}
        if item.revision is not None:
            shown["revision"] = _revision(item.revision)
        return shown
    event: dict[str, Any] = {"kind": item.kind.value, "room": item.room}
    if item.user:
        event["user"] = item.user
        event.update(_shown(item.user))
    if item.time_ms:
        event["time_unix_ms"] = item.time_ms
    if item.seq or item.gap_until:
        event["seq"] = item.seq
        event["gap_until"] = item.gap_until
    if item.epoch:
        event["epoch"] = item.epoch
    return event


def _revision(revision: Revision) -> dict[str, Any]:
    return {
        "edited_unix_ms": revision.edited_ms,
        "deleted": revision.deleted,
        "deleted_by": revision.deleted_by,
        "reactions": [{"emoji": r.emoji, "users": list(r.users)} for r in revision.reactions],
    }


def to_json(item: Outgoing, max_text_bytes: int) -> dict[str, Any]:
    """The JSON object for anything the core delivers (see the module docstring)."""
    if isinstance(item, Message | RoomEvent):
        return {"event": event_json(item)}
    if isinstance(item, Typing):
        return {"typing": {"room": item.room, "users": list(item.users), "more": item.more}}
    if isinstance(item, ReadMarker):
        return {"read": {"room": item.room, "seq": item.seq}}
    if isinstance(item, ConversationNotice):
        return {
            "conversation": {
                "room": item.room,
                "peer": item.peer,
                "seq": item.seq,
                "text": item.text,
            }
        }
    if isinstance(item, HistoryPage):
        return {
            "history": {
                "room": item.room,
                "epoch": item.epoch,
                "last_seq": item.last_seq,
                "events": [event_json(event) for event in item.events],
                "more_before": item.more_before,
                "more_after": item.more_after,
                "peer": item.peer,
            }
        }
    if isinstance(item, SearchPage):
        return {
            "search": {
                "found": [
                    {"event": event_json(f.message), "marks": list(f.marks), "peer": f.peer}
                    for f in item.found
                ],
                "next": item.next,
            }
        }
    if isinstance(item, ConversationList):
        return {
            "conversations": {
                "entries": [
                    {
                        "room": e.room,
                        "peer": e.peer,
                        "last_seq": e.last_seq,
                        "read_seq": e.read_seq,
                        "unread": e.unread,
                        "mentions": e.mentions,
                    }
                    for e in item.entries
                ]
            }
        }
    if isinstance(item, Ack):
        return {
            "ack": {
                "client_msg_id": item.client_msg_id,
                "seq": item.seq,
                "duplicate": item.duplicate,
            }
        }
    if isinstance(item, Notice):
        return {
            "error": {
                "code": item.code.name,
                "message": item.message,
                "client_msg_id": item.client_msg_id,
            }
        }
    if isinstance(item, Welcome):
        return {
            "welcome": {
                "room": item.room,
                "name": item.name,
                "members": list(item.members),
                "shown": {
                    name: shown
                    for name in (item.name, *item.members)
                    if (shown := distinguishable(name)) != name
                },
                "last_seq": item.last_seq,
                "epoch": item.epoch,
                "topic": item.topic,
                "account": item.account,
                "role": item.role,
                "peer": item.peer,
                "max_text_bytes": max_text_bytes,
                "rate_limit": item.rate_limit,
            }
        }
    if isinstance(item, RoomList):
        return {
            "rooms": {
                "rooms": [
                    {"name": room.name, "members": room.members, "last_seq": room.last_seq}
                    for room in item.rooms
                ]
            }
        }
    raise TypeError(f"cannot encode {item!r}")


class _Framer:
    """Whole WebSocket text frames, as wsproto writes them for a server (unmasked,
    unfragmented, no extensions: nothing about them depends on the connection)."""

    def __init__(self) -> None:
        self._ws = Connection(ConnectionType.SERVER)

    def text(self, obj: object) -> bytes:
        data = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        return bytes(self._ws.send(TextMessage(data=data)))


def web_encoder(max_text_bytes: int) -> Encode:
    """One per server: every web member's delivery shares it, so a broadcast is encoded
    and framed once."""
    framer = _Framer()
    return Remembering(lambda item: framer.text(to_json(item, max_text_bytes)))


def session_frame(token: str, account: str, expires_ms: int) -> bytes:
    """The answer to a login: the session token the page sends in its join."""
    return _Framer().text(
        {"session": {"token": token, "account": account, "expires_unix_ms": expires_ms}}
    )


def registered_frame(account: str) -> bytes:
    return _Framer().text({"registered": {"account": account}})


def error_frame(code: str, message: str) -> bytes:
    """An error that answers no send (a refused login, say): the session goes on."""
    return _Framer().text({"error": {"code": code, "message": message, "client_msg_id": ""}})


def end_frame(status: Status) -> bytes:
    """The `end` frame: the last data frame of a session, saying how it ended."""
    message = status.status_message or ""
    return _Framer().text({"end": {"code": status.status_code.name, "message": message}})
