"""What the core hands to members: messages, presence, acks, notices, welcomes.

`Message` is the one record of a chat message from the sender's stream to every
member's socket: the core validates it (seq 0), the store numbers and keeps it, the hub
broadcasts it, history replays it. Encoded forms are the transport's business and are
not kept here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from purechat.core.moderation import Effect


class EventKind(enum.Enum):
    JOIN = "join"
    LEAVE = "leave"
    # Messages after `seq` up to `gap_until` are no longer kept.
    GAP = "gap"
    # The room's log was lost; a new one (`epoch`) began and numbering starts again.
    RESET = "reset"


class EntryKind(enum.Enum):
    """What a numbered entry of a room's log is."""

    MESSAGE = "message"
    # A moderation action (a kick, a ban, a topic...): `text` is its sentence for
    # people, `data` its details as JSON, `effects` its changes to the room's state.
    MODERATION = "moderation"
    # Changes to an earlier message (`target`), numbered in the log like messages so
    # that every member sees them in order, on resume too (see core/living.py). Each
    # carries the target as it is after the change (`revision`, and for an EDIT its
    # text), never its earlier text.
    EDIT = "edit"
    DELETE = "delete"
    # An emoji added to the target (or taken back): `data` says which and by whom.
    REACTION = "reaction"


# The kinds that change an earlier message.
CHANGES = frozenset({EntryKind.EDIT, EntryKind.DELETE, EntryKind.REACTION})


class ErrorCode(enum.Enum):
    """Why a send was refused; the stream goes on."""

    TEXT_TOO_LONG = "text_too_long"
    EMPTY_TEXT = "empty_text"
    RATE_LIMITED = "rate_limited"
    BAD_FRAME = "bad_frame"
    # Not stored, for now: send it again. Later sends wait for it.
    STORE_UNAVAILABLE = "store_unavailable"
    # Perhaps stored: send it again with the same id. Later sends wait for it.
    OUTCOME_UNKNOWN = "outcome_unknown"
    # The member may not do this here (muted, not an operator, ...): a sentence says why.
    NOT_ALLOWED = "not_allowed"


class EndReason(enum.Enum):
    """Why the core ended a member's stream."""

    TOO_SLOW = "too_slow"
    SHUTTING_DOWN = "shutting_down"
    STORE_UNAVAILABLE = "store_unavailable"
    # The store did not answer whether the member's message was stored.
    OUTCOME_UNKNOWN = "outcome_unknown"
    # Servers sharing a store: this one lost touch with it, and the member's name was
    # given to somebody else meanwhile.
    NAME_LOST = "name_lost"
    # The same client joined again on a newer stream, which took the name over.
    REPLACED = "replaced"
    # The store is damaged: nothing can be stored until its operator repairs it.
    STORE_DAMAGED = "store_damaged"
    # Moderation: the member was kicked or banned (the detail says by whom and why).
    KICKED = "kicked"
    BANNED = "banned"
    # The member's account or session was revoked (logged out everywhere, removed,
    # its password changed, or its token taken out of the token file).
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class Reaction:
    """One emoji on a message, and who put it there (in the order they did)."""

    emoji: str
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Revision:
    """What later entries made of a message: its last edit, its deletion, its reactions.

    On a MESSAGE, its own; on an EDIT, DELETE or REACTION, its target's (after that
    entry when delivered live, as it is now when read back from the store).
    """

    # When its text was last changed (0: never).
    edited_ms: int = 0
    deleted: bool = False
    # Who deleted it when that was not its author (an operator); "" otherwise.
    deleted_by: str = ""
    reactions: tuple[Reaction, ...] = ()
    # Stored before its store kept changes (a Redis log written by an earlier purechat
    # holds the text in the stream entry itself, where a delete could only hide it):
    # it can be read, never changed.
    fixed: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    """An entry of a room's log (a chat message, or a moderation action: `kind`): seq
    0 while it is on its way to the store, which numbers it.

    `sender_key` (the name the sender asked for) and `client_msg_id` identify a send
    across retries and reconnects: the store answers a repeat with the original number.
    `history` marks a message replayed on joining rather than delivered live.
    """

    room: str
    seq: int
    user: str
    text: str
    time_ms: int
    action: bool = False
    sender_key: str = ""
    client_msg_id: str = ""
    history: bool = False
    kind: EntryKind = EntryKind.MESSAGE
    # MODERATION: its details as JSON, and its changes to the room's state; DELETE and
    # REACTION: their details (core/living.py).
    data: str = ""
    effects: tuple[Effect, ...] = ()
    # A MESSAGE: the number of the message it answers (0: none). Only the number is
    # kept: clients quote the message from what they hold, so a deleted one is gone
    # from its replies too.
    reply_to: int = 0
    # EDIT, DELETE, REACTION: the message they change.
    target: int = 0
    # The sender's account (its name key; "" for a guest): who may edit or delete it.
    account: str = ""
    # See Revision (None: never changed).
    revision: Revision | None = None

    def numbered(self, seq: int) -> Message:
        """This message as the store numbered it (cheaper than dataclasses.replace)."""
        return Message(
            self.room,
            seq,
            self.user,
            self.text,
            self.time_ms,
            self.action,
            self.sender_key,
            self.client_msg_id,
            self.history,
            self.kind,
            self.data,
            self.effects,
            self.reply_to,
            self.target,
            self.account,
            self.revision,
        )


@dataclass(frozen=True, slots=True)
class RoomEvent:
    """Something other than a message that happened in a room: a join, a leave, a gap,
    a new log."""

    kind: EventKind
    room: str
    user: str = ""
    time_ms: int = 0
    # GAP: the messages after `seq` up to `gap_until` are no longer kept.
    seq: int = 0
    gap_until: int = 0
    # RESET: the new log's epoch.
    epoch: str = ""


@dataclass(frozen=True, slots=True)
class Welcome:
    room: str
    name: str
    members: tuple[str, ...]
    last_seq: int
    # The room's log: `last_seq` (and every number the member sees) is of this epoch.
    epoch: str = ""
    topic: str = ""
    # The account the member is logged in as ("" for a guest), and its role here.
    account: str = ""
    role: str = "member"
    # Messages a second the server takes from this member (bursts of twice as many);
    # faster senders are slowed, not refused. 0: no limit.
    rate_limit: float = 0.0
    # A conversation: the other account's name.
    peer: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    client_msg_id: str
    seq: int
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Notice:
    """A refused send, told to its sender only."""

    code: ErrorCode
    message: str
    client_msg_id: str = ""


@dataclass(frozen=True, slots=True)
class Messages:
    """A room's messages stored together, offered to each member as one item: a
    broadcast of k messages costs each member one offer, not k (see Hub.publish_all)."""

    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class Typing:
    """Who in a room started or went on typing lately (never stored): a client shows
    each for at most TYPING_SHOWN_SECONDS, or until that member's next message.
    `more` counts those typing beyond the names listed."""

    room: str
    users: tuple[str, ...]
    more: int = 0


@dataclass(frozen=True, slots=True)
class RoomCount:
    """A room with members, as `purechat rooms` lists it."""

    name: str
    members: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class RoomList:
    """The answer to a member's ask for the rooms (the web page's room list)."""

    rooms: tuple[RoomCount, ...]


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """The member's account read `room` up to `seq` (in any of its sessions)."""

    room: str
    seq: int


@dataclass(frozen=True, slots=True)
class ConversationNotice:
    """A message arrived in one of the account's conversations (`room`, from the
    account `peer`, numbered `seq`; `text` its first 100 characters): told to
    its members elsewhere, which do not have the message, so they can say so."""

    room: str
    peer: str
    seq: int
    text: str


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A room's messages by position (a `history` ask), oldest first, gaps said."""

    room: str
    epoch: str
    last_seq: int
    events: tuple[Message | RoomEvent, ...]
    more_before: bool
    more_after: bool
    # The other account, for a conversation.
    peer: str = ""


@dataclass(frozen=True, slots=True)
class Found:
    """A search result: the message, where its words are ([start, end) pairs), and
    the other account when it is in a conversation."""

    message: Message
    marks: tuple[int, ...]
    peer: str = ""


@dataclass(frozen=True, slots=True)
class SearchPage:
    found: tuple[Found, ...]
    # The next page's cursor ("" when there is none).
    next: str = ""


@dataclass(frozen=True, slots=True)
class ConversationEntry:
    room: str
    peer: str
    last_seq: int
    read_seq: int
    unread: int
    mentions: int


@dataclass(frozen=True, slots=True)
class ConversationList:
    entries: tuple[ConversationEntry, ...]


Outgoing = (
    Message
    | Messages
    | Typing
    | RoomEvent
    | Welcome
    | Ack
    | Notice
    | RoomList
    | ReadMarker
    | ConversationNotice
    | HistoryPage
    | SearchPage
    | ConversationList
)
