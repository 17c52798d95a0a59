"""A Python client for bots and scripts: `purechat join`'s session, as an async context.

    import anyio
    from purechat.client import connect

    async def main() -> None:
        async with connect("127.0.0.1:50051", name="ci-bot", room="ci") as chat:
            receipt = await chat.send("build 42 passed")  # returns once stored
            print("stored as", receipt.seq)
            async for event in chat.events():  # messages, joins, leaves, ...
                if event.kind == "message" and "deploy?" in event.text:
                    await chat.send(f"deploying, {event.user}")

    anyio.run(main, backend="trio")

It is the same session as `purechat join` (client/session.py around the state machine
in client/machine.py), not a copy: every line gets an id and is sent again after a
reconnect until stored, once, in order; the session resumes after the last number it
saw, in the log (epoch) it saw it in; several servers are tried in turn. Leaving the
block delivers what is still queued (within `give_up_after`) and then leaves.

Conversations and reading back: `connect(..., dm="alice")` joins the conversation with
an account (as `purechat join --dm`); `await chat.send_direct("alice", "hi")` sends one
without leaving the room; `history(before=N)`, `search("words")` and `conversations()`
(unread counts and mentions) read back; a bot marks nothing read unless it says so,
with `chat.mark_read()` (up to what it has received) or `mark_read(seq)`.

Living messages: `send(text, reply_to=12)` answers message 12; `edit(12, "text")`,
`delete(12)` and `react(12, "👍")` (`remove=True` takes it back) return once the server
has them, or raise SendRefused with its sentence; `typing()` tells the room the bot is
typing (nothing else sends it). Events of kind "edit", "delete", "reaction" and "typing"
arrive among the messages.

Operators moderate from here too: `await chat.ban("spammer", for_="1h", reason="spam")`
(and `kick`, `mute`, `op`, `topic`, ...) returns once the server has done it, or raises
SendRefused with its sentence ("Only an operator of this room may ban."). A session
saved by `purechat login` for the server is used unless a token is given.

Ctrl-C (SIGINT, in the main thread) leaves at once, as `purechat join` does, and ends
the program quietly with exit status 130: no traceback, no exception group (trio would
otherwise raise KeyboardInterrupt through the session's tasks). A bot that handles
Ctrl-C itself passes `quiet_interrupt=False` and gets KeyboardInterrupt as usual.
"""

from __future__ import annotations

import contextlib
import signal
import ssl
import threading
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from google.protobuf.message import Message

from purechat.client.admin import AdminError
from purechat.client.display import Shown
from purechat.client.living import delete_frame, edit_frame, react_frame
from purechat.client.machine import event_shown
from purechat.client.moderation import CommandUsage, command, seconds_of
from purechat.client.post import Poster, PostError
from purechat.client.reading import PAGE, Asker
from purechat.client.saved import SavedSessions
from purechat.client.session import Address, ChatSession, SessionError
from purechat.errors import ClientError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.tls import client_context

__all__ = [
    "Chat",
    "Conversation",
    "Event",
    "Found",
    "HistoryPage",
    "Receipt",
    "SearchPage",
    "SendRefused",
    "connect",
]

Event = Shown
"""What happens in the room: `kind` ("message", "join", "leave", "gap", "reset",
"moderation", "edit", "delete", "reaction", "typing", "conversation", "error"), `user`,
`text`, `seq`, `time_ms`, `action`, `history`, and for a moderation event its sentence as `text` and
its details as `moderation` (`action`, `by`, `target`, `reason`, `until_ms`, `topic`,
`mode`). A message answering another has `reply_to`; an edit, delete or reaction names
the message it changes (`target`) and carries it as it is now (`revision`: `edited_ms`,
`deleted`, `deleted_by`, `reactions` as (emoji, names)); an edit's `text` is the new
text, a reaction's `emoji` and `removed` say what it did. "typing": who else is typing
(`typing`, at most five names, and `more`), never stored. "conversation": `user` wrote
message `seq` to the bot's account in a conversation (`room`) it is not in, `text` its
beginning (connect(dm=user) or send_direct answers it)."""

# Events kept for a bot that reads them slowly; a bot that never asks for them gets none.
EVENTS_BUFFER = 1024
# The exit status of a program Ctrl-C ended (128 + SIGINT), as shells report it.
INTERRUPTED = 128 + signal.SIGINT


class SendRefused(ClientError):
    """The server refused a line or a command for good (too long, empty, not an
    operator, ...); str() says why."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """A stored line: its id and its number in the room."""

    client_msg_id: str
    seq: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a room's (or conversation's) log, oldest first: messages, moderation
    events and gaps (kind "gap": messages `seq`+1 onwards are no longer kept, as its
    text says); whether there is more before or after it; the room's newest number."""

    events: tuple[Event, ...]
    more_before: bool
    more_after: bool
    last_seq: int
    peer: str = ""


@dataclass(frozen=True, slots=True)
class Found:
    """A message that holds the words: `marks` are [start, end) of each in its text."""

    event: Event
    marks: tuple[tuple[int, int], ...]
    peer: str = ""


@dataclass(frozen=True, slots=True)
class SearchPage:
    """Results, newest first; `next` asks for older ones (search(..., page=next))."""

    found: tuple[Found, ...]
    next: str = ""


@dataclass(frozen=True, slots=True)
class Conversation:
    """A conversation (`peer`: the other account) or a room the account read in, with
    what is unread and how many of those name the account."""

    room: str
    peer: str
    last_seq: int
    read_seq: int
    unread: int
    mentions: int


class Chat:
    """One member in one room; see the module docstring."""

    def __init__(self, session: ChatSession, events: MemoryObjectReceiveStream[Event]):
        self._session = session
        self._events = events
        self.listening = False

    @property
    def room(self) -> str:
        return self._session.room

    @property
    def name(self) -> str:
        """The name the server gave this member."""
        return self._session.machine.my_name

    @property
    def members(self) -> frozenset[str]:
        return frozenset(self._session.members)

    @property
    def peer(self) -> str:
        """In a conversation: the other account ("" in a room)."""
        return self._session.machine.peer

    @property
    def read(self) -> dict[str, int]:
        """Where the account has read up to, per room, as its sessions marked it."""
        return dict(self._session.machine.read)

    @property
    def position(self) -> tuple[str, int | None]:
        """(epoch, newest number seen): where a resume would start."""
        return self._session.machine.epoch, self._session.machine.last_seq

    async def send(self, text: str, *, action: bool = False, reply_to: int = 0) -> Receipt:
        """Send a line (answering message reply_to: 0 for none) and return once it is
        stored; SendRefused if it never will be, SessionError if the session gave up
        first."""
        client_msg_id = self._session.send(text, action=action, reply_to=reply_to)
        settled = await self._session.settled(client_msg_id)
        if settled is None:
            raise SessionError("The session ended before the line was stored.")
        if settled.failure:
            raise SendRefused(settled.failure)
        return Receipt(client_msg_id, settled.seq)

    def send_nowait(self, text: str, *, action: bool = False, reply_to: int = 0) -> str:
        """Queue a line without waiting (it is delivered before the block is left)."""
        return self._session.send(text, action=action, reply_to=reply_to)

    # -- living messages: each returns once the server has it (the change's number) ---

    async def edit(self, seq: int, text: str) -> Receipt:
        """Make this account's message seq say text (within the server's edit window)."""
        return await self._change(edit_frame(seq, text), f"/edit {seq} {text}")

    async def delete(self, seq: int) -> Receipt:
        """Delete message seq: this account's own, or as an operator anyone's."""
        return await self._change(delete_frame(seq), f"/delete {seq}")

    async def react(self, seq: int, emoji: str, *, remove: bool = False) -> Receipt:
        """React to message seq with one emoji, or take the reaction back (remove)."""
        return await self._change(react_frame(seq, emoji, remove=remove), f"/react {seq} {emoji}")

    def typing(self) -> None:
        """Tell the room this member is typing (sent at most once every 3 s; a bot that
        never calls it is never shown typing)."""
        self._session.typing()

    async def _change(self, frame: v1.ClientFrame, text: str) -> Receipt:
        client_msg_id = self._session.change(frame, text)
        return await self._answered(client_msg_id)

    async def _answered(self, client_msg_id: str) -> Receipt:
        settled = await self._session.settled(client_msg_id)
        if settled is None:
            raise SessionError("The session ended before the server answered.")
        if settled.failure:
            raise SendRefused(settled.failure)
        return Receipt(client_msg_id, settled.seq)

    # -- conversations and reading back -------------------------------------------------

    async def send_direct(self, account: str, text: str, *, action: bool = False) -> Receipt:
        """A direct message to account, without leaving this room; returns once stored
        (exactly once, retried with its id), SendRefused with the server's sentence
        (a guest, no such account) or when it cannot be stored within give_up_after."""
        session = self._session
        poster = Poster(
            session.addresses,
            "",
            self.name,
            give_up_after=session.machine.give_up_after or 30.0,
            ssl_context=session.ssl_context,
            token=session.token,
            token_saved=session.machine.token_saved,
            to=account,
        )
        try:
            (posted,) = await poster.post([text], action=action)
        except PostError as error:
            raise SendRefused(str(error)) from None
        return Receipt(posted.client_msg_id, posted.seq)

    async def history(
        self,
        *,
        before: int | None = None,
        after: int | None = None,
        around: int | None = None,
        limit: int = PAGE,
        room: str = "",
        dm: str = "",
    ) -> HistoryPage:
        """A page of this room's log (or room's, or the conversation with dm's): the
        newest, or before, after or around a number; SendRefused with the server's
        sentence when it may not be read."""
        if not (room or dm):
            room, dm = ("", self.peer) if self.peer else (self.room, "")
        answer = await self._reading(
            self._asker.history(
                room=room, dm=dm, before=before, after=after, around=around, limit=limit
            )
        )
        assert isinstance(answer, v1.HistoryResponse)
        return HistoryPage(
            tuple(event_shown(event) for event in answer.events),
            answer.more_before,
            answer.more_after,
            answer.last_seq,
            answer.peer,
        )

    async def search(
        self, text: str, *, room: str = "", dm: str = "", limit: int = PAGE, page: str = ""
    ) -> SearchPage:
        """Messages holding every word of text, newest first, in everything the account
        may read (or one room, or the conversation with dm)."""
        answer = await self._reading(
            self._asker.search(text, room=room, dm=dm, limit=limit, page=page)
        )
        assert isinstance(answer, v1.SearchResponse)
        found = tuple(
            Found(
                event_shown(f.event),
                tuple(zip(f.marks[::2], f.marks[1::2], strict=False)),
                f.peer,
            )
            for f in answer.found
        )
        return SearchPage(found, answer.next)

    async def conversations(self) -> list[Conversation]:
        """The account's conversations and the rooms it has read in, with unread counts."""
        answer = await self._reading(self._asker.conversations())
        assert isinstance(answer, v1.ConversationsResponse)
        return [
            Conversation(e.room, e.peer, e.last_seq, e.read_seq, e.unread, e.mentions)
            for e in answer.entries
        ]

    def mark_read(self, seq: int | None = None) -> None:
        """Mark this room read up to seq (None: the newest number received), for the
        account's every session. Never done unless asked: what a bot received nobody
        has necessarily read."""
        upto = seq if seq is not None else self._session.machine.last_seq
        if upto:
            self._session.mark_read(upto)

    @property
    def _asker(self) -> Asker:
        session = self._session
        saved = session.machine.token_saved
        return Asker(session.address, session.ssl_context, session.token, saved)

    async def _reading(self, asking: Awaitable[Message]) -> Message:
        try:
            return await asking
        except AdminError as refused:
            raise SendRefused(str(refused)) from None

    # -- moderation: each returns once done, or raises SendRefused saying why ---------

    @property
    def topic(self) -> str:
        return self._session.machine.topic

    @property
    def role(self) -> str:
        """In this room: "member", "operator", "owner" or "admin"."""
        return self._session.machine.role or "member"

    async def claim(self) -> Receipt:
        """Own this room (one without an owner; the session must be an account's)."""
        return await self._moderate(command("claim"), "/claim")

    async def kick(self, name: str, *, reason: str = "") -> Receipt:
        return await self._moderate(command("kick", name, reason=reason), f"/kick {name}")

    async def ban(self, name: str, *, for_: float | str | None = None, reason: str = "") -> Receipt:
        """Ban name from the room, for_ seconds (or "1h", "7d"; None: for good)."""
        seconds = _seconds(for_)
        return await self._moderate(
            command("ban", name, seconds=seconds, reason=reason), f"/ban {name}"
        )

    async def unban(self, name: str) -> Receipt:
        return await self._moderate(command("unban", name), f"/unban {name}")

    async def mute(
        self, name: str, *, for_: float | str | None = None, reason: str = ""
    ) -> Receipt:
        """Mute name here, for_ seconds (or "10m"; None: for good): it reads on."""
        seconds = _seconds(for_)
        return await self._moderate(
            command("mute", name, seconds=seconds, reason=reason), f"/mute {name}"
        )

    async def unmute(self, name: str) -> Receipt:
        return await self._moderate(command("unmute", name), f"/unmute {name}")

    async def op(self, name: str) -> Receipt:
        return await self._moderate(command("op", name), f"/op {name}")

    async def deop(self, name: str) -> Receipt:
        return await self._moderate(command("deop", name), f"/deop {name}")

    async def set_topic(self, text: str) -> Receipt:
        """Set the room's topic ("" clears it)."""
        return await self._moderate(command("topic", text=text), f"/topic {text}")

    async def mode(self, mode: str) -> Receipt:
        """Let in only the invited ("invite-only"), or everyone ("open")."""
        return await self._moderate(command("mode", text=mode), f"/mode {mode}")

    async def invite(self, name: str) -> Receipt:
        return await self._moderate(command("invite", name), f"/invite {name}")

    async def _moderate(self, moderation: v1.ModerationCommand, text: str) -> Receipt:
        return await self._answered(self._session.moderate(moderation, text))

    def events(self) -> AsyncIterator[Event]:
        """What happens in the room since joining, in order, until the session ends.

        Until the first call, up to EVENTS_BUFFER events wait, and later ones are not
        kept (a bot that only sends never holds the session up with events nobody
        reads); from then on, none is dropped: a bot that reads slowly slows its
        session down instead.
        """
        self.listening = True
        return _Events(self._events)


def _seconds(duration: float | str | None) -> float | None:
    try:
        return seconds_of(duration)
    except CommandUsage as wrong:
        raise ValueError(str(wrong)) from None


class _Events:
    """The events' iterator: nothing to close when a bot stops reading half-way."""

    def __init__(self, events: MemoryObjectReceiveStream[Event]):
        self._events = events

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._events.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


@asynccontextmanager
async def connect(
    servers: str | Sequence[str],
    *,
    name: str,
    room: str = "lobby",
    history: int = 0,
    token: str | None = None,
    tls: bool = False,
    tls_ca: Path | None = None,
    give_up_after: float | None = 30.0,
    quiet_interrupt: bool = True,
    dm: str = "",
) -> AsyncIterator[Chat]:
    """Join room (or, with dm, the conversation with that account) on the first of
    servers ("HOST:PORT") that answers; see Chat.

    ValueError for an address that is not HOST:PORT; SessionError when no server can
    be joined within give_up_after (None: keep trying). With quiet_interrupt, Ctrl-C
    leaves at once and exits the program with status 130 (SystemExit), quietly.
    Without a token (None), the session `purechat login` saved for the first of servers
    that has one is used (servers sharing a store take each other's sessions); token=""
    joins without any.
    """
    addresses = [Address.parse(s) for s in ([servers] if isinstance(servers, str) else servers)]
    saved = None if token is not None else SavedSessions().first(addresses)
    context: ssl.SSLContext | None = client_context(tls_ca) if (tls or tls_ca) else None
    shown_send, shown = anyio.create_memory_object_stream[Shown](EVENTS_BUFFER)
    events_send, events = anyio.create_memory_object_stream[Event](EVENTS_BUFFER)
    session = ChatSession(
        addresses,
        name,
        room,
        shown_send,
        history=history,
        give_up_after=give_up_after,
        ssl_context=context,
        token=token or (saved.token if saved else None),
        token_where="connect(token=...)",
        token_saved=saved is not None,
        dm=dm,
    )
    chat = Chat(session, events)
    failure: list[SessionError] = []
    interrupted = anyio.Event()

    async def run() -> None:
        try:
            await session.run()
        except SessionError as error:
            failure.append(error)
        finally:
            shown_send.close()

    # What the bot's block raised, raised again once the task group is left: through
    # it, an error would reach the bot wrapped in an exception group.
    raised: list[Exception] = []
    # The streams outlive the tasks that use them: the task group closes first.
    async with events_send, events, shown, anyio.create_task_group() as task_group:
        task_group.start_soon(run)
        task_group.start_soon(_forward, shown, events_send, chat)
        if quiet_interrupt and threading.current_thread() is threading.main_thread():
            await task_group.start(_leave_on_interrupt, task_group.cancel_scope, interrupted)
        try:
            await session.joined()
            try:
                yield chat
            except Exception as error:  # noqa: BLE001 -- raised again below, as it was
                raised.append(error)
            else:
                session.finish()  # the block is done: deliver what is queued, then leave
                await session.wait_delivered()
        except SessionError as error:  # it never joined: run() says why, or this does
            failure.append(error)
        finally:
            task_group.cancel_scope.cancel()
    if interrupted.is_set():
        raise SystemExit(INTERRUPTED)
    if raised:
        raise raised[0]
    if failure:
        raise failure[0]


async def _leave_on_interrupt(
    scope: anyio.CancelScope,
    interrupted: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Ctrl-C while in the room: end the block (and the session) at once."""
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        task_status.started()
        async for _ in signals:
            interrupted.set()
            scope.cancel()
            return


async def _forward(
    shown: MemoryObjectReceiveStream[Shown], events: MemoryObjectSendStream[Event], chat: Chat
) -> None:
    """Room events to the bot (see Chat.events)."""
    async for item in shown:
        if item.kind in ("info", "status"):
            continue
        if chat.listening:
            await events.send(item)
        else:
            with contextlib.suppress(anyio.WouldBlock):
                events.send_nowait(item)
