from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HistoryRequest(_message.Message):
    __slots__ = ("room", "dm", "before", "after", "around", "limit")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    DM_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    AROUND_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    room: str
    dm: str
    before: int
    after: int
    around: int
    limit: int
    def __init__(self, room: _Optional[str] = ..., dm: _Optional[str] = ..., before: _Optional[int] = ..., after: _Optional[int] = ..., around: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class HistoryResponse(_message.Message):
    __slots__ = ("room", "epoch", "last_seq", "events", "more_before", "more_after", "peer")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    MORE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    MORE_AFTER_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    room: str
    epoch: str
    last_seq: int
    events: _containers.RepeatedCompositeFieldContainer[Event]
    more_before: bool
    more_after: bool
    peer: str
    def __init__(self, room: _Optional[str] = ..., epoch: _Optional[str] = ..., last_seq: _Optional[int] = ..., events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., more_before: _Optional[bool] = ..., more_after: _Optional[bool] = ..., peer: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("text", "room", "dm", "limit", "page")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    DM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    text: str
    room: str
    dm: str
    limit: int
    page: str
    def __init__(self, text: _Optional[str] = ..., room: _Optional[str] = ..., dm: _Optional[str] = ..., limit: _Optional[int] = ..., page: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("found", "next")
    class Found(_message.Message):
        __slots__ = ("event", "marks", "peer")
        EVENT_FIELD_NUMBER: _ClassVar[int]
        MARKS_FIELD_NUMBER: _ClassVar[int]
        PEER_FIELD_NUMBER: _ClassVar[int]
        event: Event
        marks: _containers.RepeatedScalarFieldContainer[int]
        peer: str
        def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., marks: _Optional[_Iterable[int]] = ..., peer: _Optional[str] = ...) -> None: ...
    FOUND_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    found: _containers.RepeatedCompositeFieldContainer[SearchResponse.Found]
    next: str
    def __init__(self, found: _Optional[_Iterable[_Union[SearchResponse.Found, _Mapping]]] = ..., next: _Optional[str] = ...) -> None: ...

class ConversationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConversationsResponse(_message.Message):
    __slots__ = ("entries",)
    class Entry(_message.Message):
        __slots__ = ("room", "peer", "last_seq", "read_seq", "unread", "mentions")
        ROOM_FIELD_NUMBER: _ClassVar[int]
        PEER_FIELD_NUMBER: _ClassVar[int]
        LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
        READ_SEQ_FIELD_NUMBER: _ClassVar[int]
        UNREAD_FIELD_NUMBER: _ClassVar[int]
        MENTIONS_FIELD_NUMBER: _ClassVar[int]
        room: str
        peer: str
        last_seq: int
        read_seq: int
        unread: int
        mentions: int
        def __init__(self, room: _Optional[str] = ..., peer: _Optional[str] = ..., last_seq: _Optional[int] = ..., read_seq: _Optional[int] = ..., unread: _Optional[int] = ..., mentions: _Optional[int] = ...) -> None: ...
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ConversationsResponse.Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ConversationsResponse.Entry, _Mapping]]] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("name", "password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("token", "account", "expires_unix_ms")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    token: str
    account: str
    expires_unix_ms: int
    def __init__(self, token: _Optional[str] = ..., account: _Optional[str] = ..., expires_unix_ms: _Optional[int] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("name", "password")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    name: str
    password: str
    def __init__(self, name: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class LogoutRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LogoutResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PostRequest(_message.Message):
    __slots__ = ("room", "name", "text", "client_msg_id", "action", "to", "reply_to")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    room: str
    name: str
    text: str
    client_msg_id: str
    action: bool
    to: str
    reply_to: int
    def __init__(self, room: _Optional[str] = ..., name: _Optional[str] = ..., text: _Optional[str] = ..., client_msg_id: _Optional[str] = ..., action: _Optional[bool] = ..., to: _Optional[str] = ..., reply_to: _Optional[int] = ...) -> None: ...

class PostResponse(_message.Message):
    __slots__ = ("seq", "duplicate", "name", "rate_limit")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    duplicate: bool
    name: str
    rate_limit: float
    def __init__(self, seq: _Optional[int] = ..., duplicate: _Optional[bool] = ..., name: _Optional[str] = ..., rate_limit: _Optional[float] = ...) -> None: ...

class ClientFrame(_message.Message):
    __slots__ = ("join", "send", "moderate", "mark_read", "edit", "delete", "react", "typing")
    JOIN_FIELD_NUMBER: _ClassVar[int]
    SEND_FIELD_NUMBER: _ClassVar[int]
    MODERATE_FIELD_NUMBER: _ClassVar[int]
    MARK_READ_FIELD_NUMBER: _ClassVar[int]
    EDIT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    REACT_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    join: Join
    send: Send
    moderate: ModerationCommand
    mark_read: MarkRead
    edit: EditMessage
    delete: DeleteMessage
    react: ReactMessage
    typing: TypingSignal
    def __init__(self, join: _Optional[_Union[Join, _Mapping]] = ..., send: _Optional[_Union[Send, _Mapping]] = ..., moderate: _Optional[_Union[ModerationCommand, _Mapping]] = ..., mark_read: _Optional[_Union[MarkRead, _Mapping]] = ..., edit: _Optional[_Union[EditMessage, _Mapping]] = ..., delete: _Optional[_Union[DeleteMessage, _Mapping]] = ..., react: _Optional[_Union[ReactMessage, _Mapping]] = ..., typing: _Optional[_Union[TypingSignal, _Mapping]] = ...) -> None: ...

class EditMessage(_message.Message):
    __slots__ = ("seq", "text", "client_msg_id", "room", "dm")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    DM_FIELD_NUMBER: _ClassVar[int]
    seq: int
    text: str
    client_msg_id: str
    room: str
    dm: str
    def __init__(self, seq: _Optional[int] = ..., text: _Optional[str] = ..., client_msg_id: _Optional[str] = ..., room: _Optional[str] = ..., dm: _Optional[str] = ...) -> None: ...

class DeleteMessage(_message.Message):
    __slots__ = ("seq", "client_msg_id", "room", "dm")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    DM_FIELD_NUMBER: _ClassVar[int]
    seq: int
    client_msg_id: str
    room: str
    dm: str
    def __init__(self, seq: _Optional[int] = ..., client_msg_id: _Optional[str] = ..., room: _Optional[str] = ..., dm: _Optional[str] = ...) -> None: ...

class ReactMessage(_message.Message):
    __slots__ = ("seq", "emoji", "remove", "client_msg_id", "room", "dm")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    DM_FIELD_NUMBER: _ClassVar[int]
    seq: int
    emoji: str
    remove: bool
    client_msg_id: str
    room: str
    dm: str
    def __init__(self, seq: _Optional[int] = ..., emoji: _Optional[str] = ..., remove: _Optional[bool] = ..., client_msg_id: _Optional[str] = ..., room: _Optional[str] = ..., dm: _Optional[str] = ...) -> None: ...

class ChangeResponse(_message.Message):
    __slots__ = ("seq", "duplicate")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    duplicate: bool
    def __init__(self, seq: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class TypingSignal(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Typing(_message.Message):
    __slots__ = ("room", "users", "more")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    room: str
    users: _containers.RepeatedScalarFieldContainer[str]
    more: int
    def __init__(self, room: _Optional[str] = ..., users: _Optional[_Iterable[str]] = ..., more: _Optional[int] = ...) -> None: ...

class Join(_message.Message):
    __slots__ = ("name", "room", "after_seq", "history", "session", "epoch", "observe", "dm")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    OBSERVE_FIELD_NUMBER: _ClassVar[int]
    DM_FIELD_NUMBER: _ClassVar[int]
    name: str
    room: str
    after_seq: int
    history: int
    session: str
    epoch: str
    observe: bool
    dm: str
    def __init__(self, name: _Optional[str] = ..., room: _Optional[str] = ..., after_seq: _Optional[int] = ..., history: _Optional[int] = ..., session: _Optional[str] = ..., epoch: _Optional[str] = ..., observe: _Optional[bool] = ..., dm: _Optional[str] = ...) -> None: ...

class Send(_message.Message):
    __slots__ = ("text", "client_msg_id", "action", "reply_to")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    text: str
    client_msg_id: str
    action: bool
    reply_to: int
    def __init__(self, text: _Optional[str] = ..., client_msg_id: _Optional[str] = ..., action: _Optional[bool] = ..., reply_to: _Optional[int] = ...) -> None: ...

class ModerationCommand(_message.Message):
    __slots__ = ("action", "target", "seconds", "reason", "text", "client_msg_id", "room")
    class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        ACTION_UNSPECIFIED: _ClassVar[ModerationCommand.Action]
        CLAIM: _ClassVar[ModerationCommand.Action]
        KICK: _ClassVar[ModerationCommand.Action]
        BAN: _ClassVar[ModerationCommand.Action]
        UNBAN: _ClassVar[ModerationCommand.Action]
        MUTE: _ClassVar[ModerationCommand.Action]
        UNMUTE: _ClassVar[ModerationCommand.Action]
        OP: _ClassVar[ModerationCommand.Action]
        DEOP: _ClassVar[ModerationCommand.Action]
        TOPIC: _ClassVar[ModerationCommand.Action]
        MODE: _ClassVar[ModerationCommand.Action]
        INVITE: _ClassVar[ModerationCommand.Action]
    ACTION_UNSPECIFIED: ModerationCommand.Action
    CLAIM: ModerationCommand.Action
    KICK: ModerationCommand.Action
    BAN: ModerationCommand.Action
    UNBAN: ModerationCommand.Action
    MUTE: ModerationCommand.Action
    UNMUTE: ModerationCommand.Action
    OP: ModerationCommand.Action
    DEOP: ModerationCommand.Action
    TOPIC: ModerationCommand.Action
    MODE: ModerationCommand.Action
    INVITE: ModerationCommand.Action
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    action: ModerationCommand.Action
    target: str
    seconds: float
    reason: str
    text: str
    client_msg_id: str
    room: str
    def __init__(self, action: _Optional[_Union[ModerationCommand.Action, str]] = ..., target: _Optional[str] = ..., seconds: _Optional[float] = ..., reason: _Optional[str] = ..., text: _Optional[str] = ..., client_msg_id: _Optional[str] = ..., room: _Optional[str] = ...) -> None: ...

class ModerateResponse(_message.Message):
    __slots__ = ("seq", "sentence")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sentence: str
    def __init__(self, seq: _Optional[int] = ..., sentence: _Optional[str] = ...) -> None: ...

class MarkRead(_message.Message):
    __slots__ = ("room", "seq")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    room: str
    seq: int
    def __init__(self, room: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class ReadMarker(_message.Message):
    __slots__ = ("room", "seq")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    room: str
    seq: int
    def __init__(self, room: _Optional[str] = ..., seq: _Optional[int] = ...) -> None: ...

class ConversationNotice(_message.Message):
    __slots__ = ("room", "peer", "seq", "text")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    room: str
    peer: str
    seq: int
    text: str
    def __init__(self, room: _Optional[str] = ..., peer: _Optional[str] = ..., seq: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class ServerFrame(_message.Message):
    __slots__ = ("welcome", "event", "ack", "error", "read", "typing", "conversation")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    event: Event
    ack: Ack
    error: Error
    read: ReadMarker
    typing: Typing
    conversation: ConversationNotice
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., event: _Optional[_Union[Event, _Mapping]] = ..., ack: _Optional[_Union[Ack, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., read: _Optional[_Union[ReadMarker, _Mapping]] = ..., typing: _Optional[_Union[Typing, _Mapping]] = ..., conversation: _Optional[_Union[ConversationNotice, _Mapping]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("room", "name", "members", "last_seq", "epoch", "rate_limit", "topic", "account", "role", "peer")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    room: str
    name: str
    members: _containers.RepeatedScalarFieldContainer[str]
    last_seq: int
    epoch: str
    rate_limit: float
    topic: str
    account: str
    role: str
    peer: str
    def __init__(self, room: _Optional[str] = ..., name: _Optional[str] = ..., members: _Optional[_Iterable[str]] = ..., last_seq: _Optional[int] = ..., epoch: _Optional[str] = ..., rate_limit: _Optional[float] = ..., topic: _Optional[str] = ..., account: _Optional[str] = ..., role: _Optional[str] = ..., peer: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("kind", "room", "seq", "user", "text", "time_unix_ms", "action", "history", "gap_until", "epoch", "moderation", "reply_to", "target", "revision", "reaction")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[Event.Kind]
        MESSAGE: _ClassVar[Event.Kind]
        JOIN: _ClassVar[Event.Kind]
        LEAVE: _ClassVar[Event.Kind]
        GAP: _ClassVar[Event.Kind]
        RESET: _ClassVar[Event.Kind]
        MODERATION: _ClassVar[Event.Kind]
        EDIT: _ClassVar[Event.Kind]
        DELETE: _ClassVar[Event.Kind]
        REACTION: _ClassVar[Event.Kind]
    KIND_UNSPECIFIED: Event.Kind
    MESSAGE: Event.Kind
    JOIN: Event.Kind
    LEAVE: Event.Kind
    GAP: Event.Kind
    RESET: Event.Kind
    MODERATION: Event.Kind
    EDIT: Event.Kind
    DELETE: Event.Kind
    REACTION: Event.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    ROOM_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    GAP_UNTIL_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    MODERATION_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REACTION_FIELD_NUMBER: _ClassVar[int]
    kind: Event.Kind
    room: str
    seq: int
    user: str
    text: str
    time_unix_ms: int
    action: bool
    history: bool
    gap_until: int
    epoch: str
    moderation: Moderation
    reply_to: int
    target: int
    revision: Revision
    reaction: Reaction
    def __init__(self, kind: _Optional[_Union[Event.Kind, str]] = ..., room: _Optional[str] = ..., seq: _Optional[int] = ..., user: _Optional[str] = ..., text: _Optional[str] = ..., time_unix_ms: _Optional[int] = ..., action: _Optional[bool] = ..., history: _Optional[bool] = ..., gap_until: _Optional[int] = ..., epoch: _Optional[str] = ..., moderation: _Optional[_Union[Moderation, _Mapping]] = ..., reply_to: _Optional[int] = ..., target: _Optional[int] = ..., revision: _Optional[_Union[Revision, _Mapping]] = ..., reaction: _Optional[_Union[Reaction, _Mapping]] = ...) -> None: ...

class Revision(_message.Message):
    __slots__ = ("edited_unix_ms", "deleted", "deleted_by", "reactions")
    EDITED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    DELETED_BY_FIELD_NUMBER: _ClassVar[int]
    REACTIONS_FIELD_NUMBER: _ClassVar[int]
    edited_unix_ms: int
    deleted: bool
    deleted_by: str
    reactions: _containers.RepeatedCompositeFieldContainer[ReactionCount]
    def __init__(self, edited_unix_ms: _Optional[int] = ..., deleted: _Optional[bool] = ..., deleted_by: _Optional[str] = ..., reactions: _Optional[_Iterable[_Union[ReactionCount, _Mapping]]] = ...) -> None: ...

class ReactionCount(_message.Message):
    __slots__ = ("emoji", "users")
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    emoji: str
    users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, emoji: _Optional[str] = ..., users: _Optional[_Iterable[str]] = ...) -> None: ...

class Reaction(_message.Message):
    __slots__ = ("emoji", "removed")
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    emoji: str
    removed: bool
    def __init__(self, emoji: _Optional[str] = ..., removed: _Optional[bool] = ...) -> None: ...

class Moderation(_message.Message):
    __slots__ = ("action", "by", "target", "reason", "until_unix_ms", "topic", "mode")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    action: str
    by: str
    target: str
    reason: str
    until_unix_ms: int
    topic: str
    mode: str
    def __init__(self, action: _Optional[str] = ..., by: _Optional[str] = ..., target: _Optional[str] = ..., reason: _Optional[str] = ..., until_unix_ms: _Optional[int] = ..., topic: _Optional[str] = ..., mode: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("client_msg_id", "seq", "duplicate")
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    client_msg_id: str
    seq: int
    duplicate: bool
    def __init__(self, client_msg_id: _Optional[str] = ..., seq: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "client_msg_id")
    class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        CODE_UNSPECIFIED: _ClassVar[Error.Code]
        TEXT_TOO_LONG: _ClassVar[Error.Code]
        EMPTY_TEXT: _ClassVar[Error.Code]
        RATE_LIMITED: _ClassVar[Error.Code]
        BAD_FRAME: _ClassVar[Error.Code]
        STORE_UNAVAILABLE: _ClassVar[Error.Code]
        OUTCOME_UNKNOWN: _ClassVar[Error.Code]
        NOT_ALLOWED: _ClassVar[Error.Code]
    CODE_UNSPECIFIED: Error.Code
    TEXT_TOO_LONG: Error.Code
    EMPTY_TEXT: Error.Code
    RATE_LIMITED: Error.Code
    BAD_FRAME: Error.Code
    STORE_UNAVAILABLE: Error.Code
    OUTCOME_UNKNOWN: Error.Code
    NOT_ALLOWED: Error.Code
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MSG_ID_FIELD_NUMBER: _ClassVar[int]
    code: Error.Code
    message: str
    client_msg_id: str
    def __init__(self, code: _Optional[_Union[Error.Code, str]] = ..., message: _Optional[str] = ..., client_msg_id: _Optional[str] = ...) -> None: ...

class AccountRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    class Session(_message.Message):
        __slots__ = ("created_unix_ms", "expires_unix_ms")
        CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
        EXPIRES_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
        created_unix_ms: int
        expires_unix_ms: int
        def __init__(self, created_unix_ms: _Optional[int] = ..., expires_unix_ms: _Optional[int] = ...) -> None: ...
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[ListSessionsResponse.Session]
    def __init__(self, sessions: _Optional[_Iterable[_Union[ListSessionsResponse.Session, _Mapping]]] = ...) -> None: ...

class EndSessionsResponse(_message.Message):
    __slots__ = ("ended",)
    ENDED_FIELD_NUMBER: _ClassVar[int]
    ended: int
    def __init__(self, ended: _Optional[int] = ...) -> None: ...

class ListBansRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class Ban(_message.Message):
    __slots__ = ("target", "by", "reason", "until_unix_ms")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    target: str
    by: str
    reason: str
    until_unix_ms: int
    def __init__(self, target: _Optional[str] = ..., by: _Optional[str] = ..., reason: _Optional[str] = ..., until_unix_ms: _Optional[int] = ...) -> None: ...

class ListBansResponse(_message.Message):
    __slots__ = ("bans",)
    BANS_FIELD_NUMBER: _ClassVar[int]
    bans: _containers.RepeatedCompositeFieldContainer[Ban]
    def __init__(self, bans: _Optional[_Iterable[_Union[Ban, _Mapping]]] = ...) -> None: ...

class BanAddressRequest(_message.Message):
    __slots__ = ("address", "seconds", "reason")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    address: str
    seconds: float
    reason: str
    def __init__(self, address: _Optional[str] = ..., seconds: _Optional[float] = ..., reason: _Optional[str] = ...) -> None: ...

class BanAddressResponse(_message.Message):
    __slots__ = ("prefix",)
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    def __init__(self, prefix: _Optional[str] = ...) -> None: ...

class AuditRequest(_message.Message):
    __slots__ = ("room", "limit")
    ROOM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    room: str
    limit: int
    def __init__(self, room: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class AuditResponse(_message.Message):
    __slots__ = ("entries",)
    class Entry(_message.Message):
        __slots__ = ("time_unix_ms", "actor", "action", "room", "target", "detail")
        TIME_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
        ACTOR_FIELD_NUMBER: _ClassVar[int]
        ACTION_FIELD_NUMBER: _ClassVar[int]
        ROOM_FIELD_NUMBER: _ClassVar[int]
        TARGET_FIELD_NUMBER: _ClassVar[int]
        DETAIL_FIELD_NUMBER: _ClassVar[int]
        time_unix_ms: int
        actor: str
        action: str
        room: str
        target: str
        detail: str
        def __init__(self, time_unix_ms: _Optional[int] = ..., actor: _Optional[str] = ..., action: _Optional[str] = ..., room: _Optional[str] = ..., target: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditResponse.Entry]
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditResponse.Entry, _Mapping]]] = ...) -> None: ...

class ListRoomsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRoomsResponse(_message.Message):
    __slots__ = ("rooms",)
    class Room(_message.Message):
        __slots__ = ("name", "members", "last_seq", "topic")
        NAME_FIELD_NUMBER: _ClassVar[int]
        MEMBERS_FIELD_NUMBER: _ClassVar[int]
        LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
        TOPIC_FIELD_NUMBER: _ClassVar[int]
        name: str
        members: int
        last_seq: int
        topic: str
        def __init__(self, name: _Optional[str] = ..., members: _Optional[int] = ..., last_seq: _Optional[int] = ..., topic: _Optional[str] = ...) -> None: ...
    ROOMS_FIELD_NUMBER: _ClassVar[int]
    rooms: _containers.RepeatedCompositeFieldContainer[ListRoomsResponse.Room]
    def __init__(self, rooms: _Optional[_Iterable[_Union[ListRoomsResponse.Room, _Mapping]]] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ("room",)
    ROOM_FIELD_NUMBER: _ClassVar[int]
    room: str
    def __init__(self, room: _Optional[str] = ...) -> None: ...

class ListMembersResponse(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, members: _Optional[_Iterable[str]] = ...) -> None: ...
