"""The client side of one member's session, as a state machine without I/O.

It takes what happens (a line to send, a connection made or lost, a frame from the
server, time passing) and answers with what to do (`Transmit` a frame, `Show`
something, `Reconnect` at a time, `Finished`, `GiveUp` with a sentence). The session
around it (session.py) only moves bytes and waits; everything that decides whether a
line is stored exactly once, in order, lives here, where a test can throw refusals,
drops and duplicates at it without a network.

The rules, for purechat.v1:
- every line gets a client message id; it stays pending until the server acks it (or
  refuses it for good: too long, empty), and is sent again on every new stream until
  then, with the same id, so the server stores it once;
- a stream carries at most MAX_IN_FLIGHT unacknowledged lines, in order;
- a refusal that is not about the line (the store is away, the outcome is unknown, the
  old rate limit) sends the client back: that line and every later one go again, in
  order, after a pause; the server refuses later lines until the failed one comes
  again, so nothing overtakes it;
- a stream that ends sends the client back to reconnect (with backoff) and resume
  after the last number it saw, in the log (epoch) it saw it in; trouble is told once,
  when it begins (not once per retry, nor per server tried), until the client is back;
- a sender the server slows (its welcome says the rate it takes) is told so once,
  when its lines first outrun that rate;
- it gives up only after `give_up_after` seconds without getting anywhere, and then
  says which lines were not delivered, and whether their outcome is unknown; or at
  once when the server says its store is damaged (STORE_DAMAGED): only its operator
  can repair that, and retrying would go on for ever; or when another client took its
  seat over (ABORTED: an account's other client joined the room), as taking it back
  would start a tug of war.

Moderation commands (/kick, /ban, ...) are lines too: each gets an id, goes in its
place among the person's lines, and is sent again until the server acks it (it then
happened once) or refuses it with a sentence (not an operator, ...). The server's
moderation events are shown in their place among the messages, and keep the room's
topic and this member's role current.

A conversation (`dm`: the other account) is a room like any other to the machine: the
same ids, resends and resume; its join names the account (`Join.dm`) every time, and
the welcome gives its room and its `peer`. Read markers: the account's sessions hear
where it has read up to (`ServerFrame.read`), kept in `read`; `mark_read` says where the
person has read up to, only ever forward, and only for an account (a pipe or a listener
never calls it: what they received nobody has read).

Living messages: a line may answer another (`reply_to`); edits, deletes and reactions
are lines too (`change`), sent once in their place and settled by the server's ack or
sentence, as moderation commands are. Typing goes out at most once every
TYPING_EVERY seconds, never for a listener; others' typing is shown as a "typing" item.

Against a server of the original contract only (UNIMPLEMENTED), lines count as
delivered when their echo comes back: that contract has no acks, and no moderation.
"""

from __future__ import annotations

import enum
import random
import secrets
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from purechat.client.display import Moderation, Revision, Shown, shown_name
from purechat.client.errors import TOKEN_OPTIONS, tls_hint, token_sentence
from purechat.core.living import TYPING_EVERY_SECONDS
from purechat.core.ratelimit import TokenBucket
from purechat.pb import chat_pb2
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import NEVER_ANSWERED, STORE_DAMAGED, Status, StatusCode

# Lines sent on one stream and not yet acknowledged, at most.
MAX_IN_FLIGHT = 64
# How long to wait before sending again after a refusal that was not about the line.
RETRY_PAUSE = 0.5
# Statuses after which trying again cannot help: the server said no to this member.
FATAL = frozenset(
    {
        StatusCode.INVALID_ARGUMENT,
        StatusCode.UNAUTHENTICATED,
        StatusCode.PERMISSION_DENIED,
        StatusCode.FAILED_PRECONDITION,
    }
)
_TRANSIENT = frozenset(
    {v1.Error.STORE_UNAVAILABLE, v1.Error.OUTCOME_UNKNOWN, v1.Error.RATE_LIMITED}
)
_KINDS = {
    v1.Event.MESSAGE: "message",
    v1.Event.JOIN: "join",
    v1.Event.LEAVE: "leave",
    v1.Event.GAP: "gap",
    v1.Event.RESET: "reset",
    v1.Event.MODERATION: "moderation",
    v1.Event.EDIT: "edit",
    v1.Event.DELETE: "delete",
    v1.Event.REACTION: "reaction",
}
# What a command says when the server speaks the original contract only.
NO_MODERATION = (
    "this server speaks only the original chat contract, which has no moderation commands"
)
NO_CHANGES = (
    "this server speaks only the original chat contract, which has no edits, deletes or reactions"
)
# The person's typing is sent at most this often (the server drops faster signals).
TYPING_EVERY = TYPING_EVERY_SECONDS


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter between reconnect attempts."""

    first: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return float(min(self.cap, self.first * 2**attempt) * (0.5 + rng() / 2))


# -- what the machine asks for ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send this on the current stream (a purechat.v1 ClientFrame, or a ChatMessage)."""

    frame: v1.ClientFrame | chat_pb2.ChatMessage


@dataclass(frozen=True, slots=True)
class HalfClose:
    """Nothing more to send on this stream: the server ends it once it has answered."""


@dataclass(frozen=True, slots=True)
class Show:
    item: Shown


@dataclass(frozen=True, slots=True)
class Settled:
    """A line is done with: stored as `seq`, or refused for good (`failure` says why)."""

    client_msg_id: str
    seq: int = 0
    failure: str = ""


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Drop the current stream if any, and connect again at `at`."""

    at: float


@dataclass(frozen=True, slots=True)
class Finished:
    """Everything was delivered and the person is done."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The session cannot go on; `reason` is a sentence."""

    reason: str


Action = Transmit | HalfClose | Show | Settled | Reconnect | Finished | GiveUp


class Phase(enum.Enum):
    # Waiting to connect (at `reconnect_at`), or connecting.
    AWAY = "away"
    # A stream is up and the join was sent; no welcome yet.
    JOINING = "joining"
    # In the room: lines go out.
    JOINED = "joined"
    DONE = "done"


@dataclass
class Line:
    """One line the person or the script sent."""

    id: str
    text: str
    action: bool
    # Times it was sent without an answer yet: a stream that ended before answering
    # leaves it counted, as the server may have stored it.
    unanswered: int = 0
    # The server said it could not tell whether it was stored.
    unknown: bool = False
    # A moderation command or a change (edit, delete, react) as a ClientFrame, whose
    # client_msg_id is set when sent; `text` then says it as typed ("/ban spammer 1h").
    command: v1.ClientFrame | None = None
    # The number of the message this line answers (0: none).
    reply_to: int = 0

    @property
    def maybe_stored(self) -> bool:
        return self.unknown or self.unanswered > 0


@dataclass
class SessionMachine:
    """See the module docstring. `now` is always the caller's monotonic clock."""

    name: str
    room: str
    address: str = "the server"
    history: int = 0
    # Listen without a seat: in no member list, no join or leave; nothing is sent.
    observe: bool = False
    # A conversation with this account instead of `room` (whose name the welcome gives).
    dm: str = ""
    give_up_after: float | None = None
    tls: bool = False
    # Whether a token is sent, and where the person gives one (for a refused token).
    token_given: bool = False
    token_where: str = TOKEN_OPTIONS
    # The token is a session `purechat login` saved (a refusal says to log in again).
    token_saved: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    rng: Callable[[], float] = random.random
    # Sent with every join: back after a lost connection, this client takes its name
    # over instead of getting a suffix while the server still holds it.
    session_id: str = field(default_factory=lambda: secrets.token_hex(16))
    new_id: Callable[[], str] = field(default_factory=lambda: lambda: uuid.uuid4().hex)

    phase: Phase = Phase.AWAY
    legacy: bool = False
    pending: OrderedDict[str, Line] = field(default_factory=OrderedDict)
    # Lines refused for good, as sentences (text too long...).
    failures: list[str] = field(default_factory=list)
    members: set[str] = field(default_factory=set)
    # The name the server gave us, the newest number seen and the log it is in.
    my_name: str = ""
    last_seq: int | None = None
    epoch: str = ""
    # The room's topic, this member's account ("" for a guest) and role in the room
    # ("member", "operator", "owner", "admin"), from the welcome and moderation events.
    topic: str = ""
    account: str = ""
    role: str = ""
    # A conversation's other account, as the welcome names it ("" in a room).
    peer: str = ""
    # Where the account has read up to, per room, as the server said (from any session).
    read: dict[str, int] = field(default_factory=dict)
    # The newest number this session has marked read in the room it is in.
    _marked: int = 0
    finishing: bool = False
    reconnect_at: float = 0.0
    # Ids sent on the current stream, in order (and not yet settled).
    _sent: OrderedDict[str, None] = field(default_factory=OrderedDict)
    _resend_at: float = 0.0
    _half_closed: bool = False
    _attempt: int = 0
    # Since when we have not been in the room, or a line has been refused for now.
    _down_since: float | None = None
    _stuck_since: float | None = None
    _last_trouble: str = ""
    # The trouble told to the person since the session was last in the room: trouble
    # is told when it begins, not per retry nor per server tried ("" when none was).
    _told_trouble: str = ""
    # The server's rate for this member as the welcome said it (0: none), followed here
    # as the server follows it, so the person hears once when lines begin to wait.
    rate_limit: float = 0.0
    _pace: TokenBucket | None = None
    _told_pace: bool = False
    _ever_joined: bool = False
    _switching: bool = False
    # When the last typing signal went out (None: none yet).
    _typed_at: float | None = None

    # -- what the person does --------------------------------------------------------

    def send(
        self,
        text: str,
        now: float,
        *,
        action: bool = False,
        client_msg_id: str = "",
        reply_to: int = 0,
    ) -> list[Action]:
        """Queue a line (under client_msg_id, or a new one), answering message reply_to
        (0: none); it goes out now if it can, or after the next reconnect."""
        line = Line(client_msg_id or self.new_id(), text, action, reply_to=reply_to)
        self.pending[line.id] = line
        return self._pump(now)

    def moderate(
        self, command: v1.ModerationCommand, text: str, now: float, *, client_msg_id: str = ""
    ) -> list[Action]:
        """Queue a moderation command (text: as the person typed it, for showing it
        while pending); it goes in its place among the lines, exactly once."""
        return self.change(v1.ClientFrame(moderate=command), text, now, client_msg_id=client_msg_id)

    def change(
        self, frame: v1.ClientFrame, text: str, now: float, *, client_msg_id: str = ""
    ) -> list[Action]:
        """Queue an edit, delete, reaction or moderation command (a ClientFrame with one
        of them; text: as typed, shown while pending): it goes in its place among the
        lines, exactly once, and is settled by the server's ack or sentence."""
        line = Line(client_msg_id or self.new_id(), text, False, command=frame)
        self.pending[line.id] = line
        return self._pump(now)

    def typing(self, now: float) -> list[Action]:
        """The person is typing: tell the room, at most once every TYPING_EVERY seconds
        (never for a listener, nor on the original contract, nor when not in the room)."""
        if self.phase is not Phase.JOINED or self.legacy or self.observe:
            return []
        if self._typed_at is not None and now - self._typed_at < TYPING_EVERY:
            return []
        self._typed_at = now
        return [Transmit(v1.ClientFrame(typing=v1.TypingSignal()))]

    def finish(self, now: float) -> list[Action]:
        """Leave once every line is delivered (or given up on)."""
        self.finishing = True
        return self._pump(now)

    def switch_room(self, room: str, now: float) -> list[Action]:
        """Leave this room and join another over a fresh stream."""
        self.room, self.dm, self.peer = room, "", ""
        return self._elsewhere(now)

    def switch_dm(self, account: str, now: float) -> list[Action]:
        """Leave this room for the conversation with account, over a fresh stream."""
        self.dm, self.peer = account, account
        return self._elsewhere(now)

    def _elsewhere(self, now: float) -> list[Action]:
        self.last_seq = None
        self.epoch = ""
        self._marked = 0
        self.members.clear()
        return self._rejoin(now)

    def mark_read(self, seq: int, now: float) -> list[Action]:
        """The person has seen this room up to seq: tell the server (an account's
        session in the room, forward only; nothing otherwise)."""
        if (
            self.phase is not Phase.JOINED
            or self.legacy
            or not self.account
            or seq <= max(self._marked, self.read.get(self.room, 0))
        ):
            return []
        self._marked = seq
        return [Transmit(v1.ClientFrame(mark_read=v1.MarkRead(seq=seq)))]

    @property
    def place(self) -> str:
        """Where the session is, as a person names it: the room, or @peer."""
        return f"@{self.peer or self.dm}" if self.dm else self.room

    def rename(self, name: str, now: float) -> list[Action]:
        """Go on in this room under another name: a fresh stream, announced as the old
        name leaving and the new one joining; what was pending goes on it."""
        self.name = name
        return self._rejoin(now)

    def _rejoin(self, now: float) -> list[Action]:
        self._switching = True
        self.phase = Phase.AWAY
        self.reconnect_at = now
        return [Reconnect(now)]

    @property
    def trouble(self) -> str:
        """What keeps the session out of the room now ("" when it is in)."""
        return "" if self.phase is Phase.JOINED else self._last_trouble

    @property
    def undelivered(self) -> int:
        return len(self.pending)

    # -- what the connection does ---------------------------------------------------

    def connected(self, now: float) -> list[Action]:
        """A new stream is up: join (purechat.v1), or start sending (original)."""
        self._sent.clear()
        self._half_closed = False
        self._switching = False
        if self.legacy:
            self.phase = Phase.JOINED
            self._joined(now)
            return self._pump(now)
        self.phase = Phase.JOINING
        join = v1.Join(
            name=self.name,
            room="" if self.dm else self.room,
            dm=self.dm,
            history=self.history if self.last_seq is None else 0,
            session=self.session_id,
            observe=self.observe,
        )
        if self.last_seq is not None:
            join.after_seq = self.last_seq
            join.epoch = self.epoch
        return [Transmit(v1.ClientFrame(join=join))]

    def received(self, frame: v1.ServerFrame, now: float) -> list[Action]:
        """A frame from the server on the current purechat.v1 stream."""
        kind = frame.WhichOneof("frame")
        if kind == "welcome":
            return self._welcome(frame.welcome, now)
        if kind == "event":
            return self._event(frame.event)
        if kind == "ack":
            return self._ack(frame.ack, now)
        if kind == "error":
            return self._error(frame.error, now)
        if kind == "read":
            marker = frame.read
            self.read[marker.room] = max(self.read.get(marker.room, 0), marker.seq)
        if kind == "conversation":
            # A message in one of the account's conversations that this stream is not in.
            notice = frame.conversation
            shown = Shown(
                "conversation", notice.room, notice.text, user=notice.peer, seq=notice.seq
            )
            return [Show(shown)]
        if kind == "typing":
            typing = frame.typing
            users = tuple(user for user in typing.users if user != self.my_name)
            shown = Shown("typing", typing.room, "", typing=users, more=typing.more)
            return [Show(shown)]
        return []

    def received_legacy(self, message: chat_pb2.ChatMessage, now: float) -> list[Action]:
        """A message on the original contract's stream: ours back (our ack), or news."""
        actions: list[Action] = []
        oldest = next(iter(self._sent), None)
        line = self.pending.get(oldest) if oldest is not None else None
        if line is not None and _legacy_text(line) == message.text:
            self._settle(line.id, now)
            actions += [Settled(line.id), *self._pump(now)]
        shown = Shown(
            "message",
            self.room,
            message.text,
            user=message.user_id,
            time_ms=message.timestamp * 1000,
        )
        return [Show(shown), *actions]

    def ended(self, status: Status | None, now: float, *, first_bytes: bytes = b"") -> list[Action]:
        """The stream (or its connection) ended with status (None: without one).

        first_bytes: what the server sent first on this connection (to tell a TLS
        port spoken to in plaintext from a server that closes at once).
        """
        status = status or Status(StatusCode.UNAVAILABLE, "connection lost")
        was_joined = self.phase is Phase.JOINED
        self.phase = Phase.AWAY
        self._sent.clear()
        if self._switching:
            return [Reconnect(self.reconnect_at)]
        if status.status_code is StatusCode.OK and self.finishing and not self.pending:
            self.phase = Phase.DONE
            return [Finished()]
        if status.status_code is StatusCode.UNIMPLEMENTED and not self.legacy:
            self.legacy = True  # a server of the original contract only
            self.reconnect_at = now
            return [Reconnect(now)]
        message = status.status_message or ""
        if status.status_code is StatusCode.UNAUTHENTICATED:
            self.phase = Phase.DONE
            said = token_sentence(
                message,
                given=self.token_given,
                where=self.token_where,
                server=self.address,
                saved=self.token_saved,
            )
            return [GiveUp(_sentence(said))]
        if status.status_code in FATAL:
            self.phase = Phase.DONE
            return [GiveUp(_sentence(message or status.status_code.name))]
        if status.status_code is StatusCode.ABORTED:
            # Another client took this seat over (its own lost streams are never read
            # again): coming back would take it back, and the two would take turns.
            self.phase = Phase.DONE
            return [GiveUp(self._taken_over(message))]
        if status.status_code is StatusCode.UNAVAILABLE and message.startswith(STORE_DAMAGED):
            self.phase = Phase.DONE
            self._last_trouble = f"{message}: its operator must repair it; retrying cannot help"
            return [GiveUp(self._unreachable())]
        return self._trouble(
            _describe(status, self.address, first_bytes, self.tls), now, was_joined
        )

    def _taken_over(self, message: str) -> str:
        if not self.account:
            return _sentence(f"the server ended the stream ({message or 'replaced'})")
        return _sentence(
            f"another client of {self.account} joined {self.place} and has the seat now (an "
            "account has one seat in a room)"
        )

    def connect_failed(self, reason: str, now: float) -> list[Action]:
        """No connection could be made; reason is a few words ("connection refused")."""
        self.phase = Phase.AWAY
        return self._trouble(f"cannot reach the server at {self.address} ({reason})", now, False)

    def tick(self, now: float) -> list[Action]:
        """Time passed: pauses end, and patience may run out."""
        if self.phase is Phase.DONE:
            return []
        if (given_up := self._give_up_if_late(now)) is not None:
            return [given_up]
        return self._pump(now) if self.phase is Phase.JOINED else []

    def deadline(self) -> float | None:
        """The next time `tick` has something to do, if any."""
        if self.phase is Phase.DONE:
            return None
        times = []
        if self.phase is Phase.JOINED and self._resend_at and self._unsent():
            times.append(self._resend_at)
        if self.give_up_after is not None:
            for since in (self._down_since, self._stuck_since):
                if since is not None:
                    times.append(since + self.give_up_after)
        return min(times) if times else None

    # -- internals -------------------------------------------------------------------

    def _welcome(self, welcome: v1.Welcome, now: float) -> list[Action]:
        self.phase = Phase.JOINED
        self.room = welcome.room
        self.my_name = welcome.name
        self.members = set(welcome.members)
        if self.last_seq is None:
            self.last_seq = welcome.last_seq
        if not self.epoch:
            self.epoch = welcome.epoch
        self.rate_limit = welcome.rate_limit
        self.topic, self.account, self.role = welcome.topic, welcome.account, welcome.role
        self.peer = welcome.peer
        # A new stream is a new member to the server, with a full bucket.
        self._pace = TokenBucket.full(welcome.rate_limit) if welcome.rate_limit > 0 else None
        self._joined(now)
        here = ", ".join(shown_name(name) for name in sorted(self.members))
        role = f" ({welcome.role})" if welcome.role not in ("", "member") else ""
        if welcome.peer:
            joined = (
                f"in the conversation with {shown_name(welcome.peer)} as "
                f"{shown_name(welcome.name)}; here: {here}"
            )
        else:
            joined = f"joined {welcome.room} as {shown_name(welcome.name)}{role}; here: {here}"
        shown = [Show(Shown("info", welcome.room, joined))]
        if welcome.topic:
            shown.append(Show(Shown("info", welcome.room, f"topic: {welcome.topic}")))
        return [*shown, *self._pump(now)]

    def _joined(self, now: float) -> None:
        self._ever_joined = True
        self._down_since = None
        self._attempt = 0
        self._told_trouble = ""

    def _event(self, event: v1.Event) -> list[Action]:
        shown = event_shown(event)
        kind = shown.kind
        if kind == "join":
            if event.user in self.members and event.user != self.my_name:
                return []  # already listed (a server that lost its store lists it again)
            self.members.add(event.user)
        elif kind == "leave":
            self.members.discard(event.user)
        elif kind == "reset":
            self.epoch = event.epoch
            self.last_seq = 0
        elif kind != "gap" and event.seq:
            self.last_seq = max(self.last_seq or 0, event.seq)
        if shown.moderation is not None and not event.history:
            self._moderated(shown.moderation)
        return [Show(shown)]

    def _moderated(self, done: Moderation) -> None:
        """What a moderation event changes for this member: the topic, its role."""
        if done.action == "topic":
            self.topic = done.topic
        if self.role == "admin" or not self.my_name:
            return
        if done.action == "claim" and done.by == self.my_name:
            self.role = "owner"
        elif done.action == "op" and done.target == self.my_name:
            self.role = "operator"
        elif done.action == "deop" and done.target == self.my_name:
            self.role = "member"

    def _ack(self, ack: v1.Ack, now: float) -> list[Action]:
        if not self._settle(ack.client_msg_id, now):
            return []  # answered twice, or for a line given up on
        return [Settled(ack.client_msg_id, seq=ack.seq), *self._pump(now)]

    def _error(self, error: v1.Error, now: float) -> list[Action]:
        line = self.pending.get(error.client_msg_id)
        if line is not None:
            line.unanswered = max(0, line.unanswered - 1)
        if line is not None and error.code in _TRANSIENT:
            # Not about the line: it, and everything after it, goes again, in order.
            if error.code == v1.Error.OUTCOME_UNKNOWN:
                line.unknown = True
            self._rewind(line.id)
            self._resend_at = now + RETRY_PAUSE
            if self._stuck_since is None:
                self._stuck_since = now
            self._last_trouble = error.message
            return []
        said = error.message
        if line is not None and line.command is None:
            said = f"{error.message} ({_excerpt(line.text)})"
        actions: list[Action] = [Show(Shown("error", self.room, said))]
        if line is not None:
            self.failures.append(error.message)
            self._settle(line.id, now)
            actions += [Settled(line.id, failure=error.message), *self._pump(now)]
        return actions

    def _rewind(self, client_msg_id: str) -> None:
        """Forget that this line and the ones sent after it went out on this stream."""
        sent = list(self._sent)
        if client_msg_id in sent:
            for later in sent[sent.index(client_msg_id) :]:
                del self._sent[later]

    def _settle(self, client_msg_id: str, now: float) -> bool:
        """A line is done with (stored, or refused for good): progress. False when it
        was not pending."""
        if self.pending.pop(client_msg_id, None) is None:
            return False
        self._sent.pop(client_msg_id, None)
        self._stuck_since = None
        return True

    def _unsent(self) -> list[Line]:
        return [line for line in self.pending.values() if line.id not in self._sent]

    def _pump(self, now: float) -> list[Action]:
        """Send what may go now, in order; half-close once finished."""
        if self.phase is not Phase.JOINED:
            return []
        if self._resend_at > now:
            return []
        self._resend_at = 0.0
        actions: list[Action] = []
        for line in self._unsent():
            if len(self._sent) >= MAX_IN_FLIGHT:
                break
            if line.command is not None and self.legacy:
                said = NO_MODERATION if line.command.HasField("moderate") else NO_CHANGES
                self.failures.append(said)
                self._settle(line.id, now)
                actions += [
                    Show(Shown("error", self.room, _sentence(said))),
                    Settled(line.id, failure=_sentence(said)),
                ]
                continue
            self._sent[line.id] = None
            line.unanswered += 1
            actions.append(Transmit(self._frame(line)))
            if self._pace is not None and self._pace.reserve(now) > 0 and not self._told_pace:
                self._told_pace = True
                actions.append(Show(Shown("status", self.room, pace_sentence(self.rate_limit))))
        if self.finishing and not self.pending and not self._half_closed:
            self._half_closed = True
            actions.append(HalfClose())
        return actions

    def _frame(self, line: Line) -> v1.ClientFrame | chat_pb2.ChatMessage:
        if line.command is not None:
            frame = v1.ClientFrame()
            frame.CopyFrom(line.command)
            which = frame.WhichOneof("frame")
            assert which in ("moderate", "edit", "delete", "react")
            getattr(frame, which).client_msg_id = line.id
            return frame
        if self.legacy:
            return chat_pb2.ChatMessage(user_id=self.name, text=_legacy_text(line))
        send = v1.Send(
            text=line.text, client_msg_id=line.id, action=line.action, reply_to=line.reply_to
        )
        return v1.ClientFrame(send=send)

    def _trouble(self, what: str, now: float, was_joined: bool) -> list[Action]:
        """Something went wrong that trying again may fix: back off, unless it is time
        to give up."""
        self._last_trouble = what
        if self._down_since is None or was_joined:
            self._down_since = now
        if (given_up := self._give_up_if_late(now)) is not None:
            return [given_up]
        delay = self.backoff.delay(self._attempt, self.rng)
        self._attempt += 1
        self.reconnect_at = now + delay
        if self.give_up_after is not None:
            # Never sleep past the moment we would give up: give up on time.
            self.reconnect_at = min(self.reconnect_at, self._down_since + self.give_up_after)
        actions: list[Action] = []
        if not self._told_trouble:  # when it begins: not per retry, nor per server
            self._told_trouble = what
            actions.append(Show(Shown("status", self.room, f"{what}; reconnecting")))
        return [*actions, Reconnect(self.reconnect_at)]

    def _give_up_if_late(self, now: float) -> GiveUp | None:
        if self.give_up_after is None:
            return None
        late = [s for s in (self._down_since, self._stuck_since) if s is not None]
        if not late or now - min(late) < self.give_up_after:
            return None
        self.phase = Phase.DONE
        return GiveUp(self._unreachable())

    def _unreachable(self) -> str:
        why = self._last_trouble
        if not self.pending:
            return _sentence(why)
        unknown = sum(1 for line in self.pending.values() if line.maybe_stored)
        lost = len(self.pending) - unknown
        parts = []
        if lost:
            parts.append(f"{lost} message(s) not delivered")
        if unknown:
            parts.append(f"{unknown} message(s) may or may not have been stored")
        return _sentence(f"{' and '.join(parts)}: {why}")


def event_shown(event: v1.Event) -> Shown:
    """A purechat.v1 event as shown (live, or read back): gaps and resets in words."""
    kind = _KINDS.get(event.kind, "gap")
    text = event.text
    if kind == "reset":
        text = "the server lost this room's history; numbering starts again"
    elif kind == "gap":
        text = f"messages {event.seq + 1} to {event.gap_until} are no longer kept"
    return Shown(
        kind,
        event.room,
        text,
        user=event.user,
        seq=event.seq,
        time_ms=event.time_unix_ms,
        action=event.action,
        history=event.history,
        moderation=_moderation(event.moderation) if kind == "moderation" else None,
        reply_to=event.reply_to,
        target=event.target,
        revision=_revision(event.revision) if event.HasField("revision") else None,
        emoji=event.reaction.emoji,
        removed=event.reaction.removed,
    )


def _revision(revision: v1.Revision) -> Revision:
    return Revision(
        edited_ms=revision.edited_unix_ms,
        deleted=revision.deleted,
        deleted_by=revision.deleted_by,
        reactions=tuple((r.emoji, tuple(r.users)) for r in revision.reactions),
    )


def pace_sentence(rate: float) -> str:
    """What a sender hears, once, when the server starts to slow it down."""
    return (
        f"the server takes at most {rate:g} messages a second from one sender (its rate "
        f"limit, with bursts of {2 * rate:g}): lines wait their turn, none is lost or reordered"
    )


def _moderation(details: v1.Moderation) -> Moderation:
    return Moderation(
        action=details.action,
        by=details.by,
        target=details.target,
        reason=details.reason,
        until_ms=details.until_unix_ms,
        topic=details.topic,
        mode=details.mode,
    )


def _excerpt(text: str, most: int = 40) -> str:
    """A line's start, quoted, to say which line a refusal is about."""
    first = text.split("\n", 1)[0]
    return repr(first if len(first) <= most else first[: most - 1] + "…")


def _legacy_text(line: Line) -> str:
    return f"/me {line.text}" if line.action else line.text


def _describe(status: Status, address: str, first_bytes: bytes, tls: bool) -> str:
    message = status.status_message or status.status_code.name.lower()
    if message == NEVER_ANSWERED:
        return _never_answered(address, first_bytes, tls)
    if status.status_code is StatusCode.UNAVAILABLE:
        return f"cannot reach the server at {address} ({message})"
    return f"the server ended the stream ({message})"


def _never_answered(address: str, first_bytes: bytes, tls: bool) -> str:
    hint = "" if tls or not tls_hint(first_bytes) else " (is it a TLS port? try --tls)"
    return f"the server at {address} closed the connection without a word{hint}"


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
