"""One member in one room, kept there across connection losses: the I/O around the
session's state machine (machine.py), which decides everything else.

`run()` connects, hands the machine what happens (frames, the end of a stream, a
failed connect, time passing) and does what it answers: writes frames, shows events,
waits and reconnects, returns when finished, raises SessionError when it gives up.
The person's side calls `send`, `finish`, `switch_room` (or `switch_dm`) and
`mark_read`.
"""

from __future__ import annotations

import math
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from purechat.client.calls import LegacyCall, V1Call, connect
from purechat.client.display import Shown
from purechat.client.errors import (
    TOKEN_OPTIONS,
    Failure,
    diagnose,
    failure_reason,
    failure_sentence,
)
from purechat.client.machine import (
    Action,
    Backoff,
    Finished,
    GiveUp,
    HalfClose,
    Phase,
    Reconnect,
    SessionMachine,
    Settled,
    Show,
    Transmit,
)
from purechat.errors import ClientError
from purechat.pb import chat_pb2
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import Status
from purechat.transport import Connection, GrpcProtocol, StreamGone
from purechat.transport.protocol import CLIENT_LIMITS

__all__ = ["Address", "Backoff", "ChatSession", "SessionError"]

# Failures no retry can mend: the person must change something (--tls-ca, the name).
_HOPELESS = frozenset({Failure.UNTRUSTED, Failure.NAME_MISMATCH, Failure.EXPIRED, Failure.NOT_TLS})


class SessionError(ClientError):
    """The session cannot go on; str() is a sentence for a person."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Address:
        """HOST:PORT, [IPv6]:PORT, or HOST alone (port 50051)."""
        host, sep, port = text.rpartition(":")
        if not sep or "]" in port:
            host, port = text, "50051"
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{text!r} is not HOST:PORT")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _Stream:
    """What the session writes on the current stream, in order, and the wake-up."""

    def __init__(self, call: V1Call | LegacyCall, scope: anyio.CancelScope):
        self.call = call
        self.scope = scope
        self.outgoing: deque[v1.ClientFrame | chat_pb2.ChatMessage | None] = deque()
        self.wake = anyio.Event()

    def push(self, frame: v1.ClientFrame | chat_pb2.ChatMessage | None) -> None:
        """A frame to write; None half-closes."""
        self.outgoing.append(frame)
        self.wake.set()


class ChatSession:
    """Join, receive, send; reconnect with backoff and resume after every loss.

    With several addresses (servers sharing one store), a reconnect after a failure
    tries the next one, and resumes there where it left off.
    """

    def __init__(
        self,
        addresses: Address | Sequence[Address],
        name: str,
        room: str,
        shown: MemoryObjectSendStream[Shown],
        *,
        history: int = 0,
        backoff: Backoff | None = None,
        give_up_after: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
        observe: bool = False,
        token_where: str = TOKEN_OPTIONS,
        token_saved: bool = False,
        dm: str = "",
    ):
        self.addresses = [addresses] if isinstance(addresses, Address) else list(addresses)
        self._next = 0
        self.machine = SessionMachine(
            name=name,
            room=room,
            address=str(self.address),
            history=history,
            give_up_after=give_up_after,
            tls=ssl_context is not None,
            backoff=backoff or Backoff(),
            observe=observe,
            token_given=bool(token),
            token_where=token_where,
            token_saved=token_saved,
            dm=dm,
        )
        self._shown = shown
        self._ssl_context = ssl_context
        self._token = token
        self._stream: _Stream | None = None
        self._changed = anyio.Event()
        self._outcome: Finished | GiveUp | None = None
        # Lines someone waits on (`settled`), and what became of them.
        self._settling: dict[str, anyio.Event] = {}
        self._settled: dict[str, Settled] = {}
        # What the machine said to show, in order, until the connection loop shows it
        # (showing may wait; the person's side never does). Only the connection loop's
        # own actions, and at most a notice from the person's side, pass through.
        self._to_show: deque[Shown] = deque()

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl_context

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def address(self) -> Address:
        """The server this session talks to now (or tries to)."""
        return self.addresses[self._next % len(self.addresses)]

    # -- what the person's side calls -----------------------------------------------

    @property
    def room(self) -> str:
        return self.machine.room

    @property
    def members(self) -> set[str]:
        return self.machine.members

    @property
    def failures(self) -> list[str]:
        return self.machine.failures

    @property
    def legacy(self) -> bool:
        return self.machine.legacy

    @property
    def undelivered(self) -> int:
        return self.machine.undelivered

    @property
    def gave_up(self) -> bool:
        """The session could not go on (run() raises, or raised, SessionError saying why)."""
        return isinstance(self._outcome, GiveUp)

    def send(self, text: str, *, action: bool = False, reply_to: int = 0) -> str:
        """Queue a line (answering message reply_to: 0 for none); it goes out now, or
        after the next reconnect. Its id."""
        client_msg_id = self.machine.new_id()
        now = anyio.current_time()
        sent = self.machine.send(
            text, now, action=action, client_msg_id=client_msg_id, reply_to=reply_to
        )
        self._apply(sent)
        return client_msg_id

    def change(self, frame: v1.ClientFrame, text: str) -> str:
        """Queue an edit, delete or reaction (text: as typed, shown while pending); its id."""
        client_msg_id = self.machine.new_id()
        now = anyio.current_time()
        self._apply(self.machine.change(frame, text, now, client_msg_id=client_msg_id))
        return client_msg_id

    def typing(self) -> None:
        """The person is typing: the room hears it (at most once every 3 s)."""
        self._apply(self.machine.typing(anyio.current_time()))

    def moderate(self, command: v1.ModerationCommand, text: str) -> str:
        """Queue a moderation command (text: as typed, shown while pending); its id."""
        client_msg_id = self.machine.new_id()
        now = anyio.current_time()
        self._apply(self.machine.moderate(command, text, now, client_msg_id=client_msg_id))
        return client_msg_id

    def finish(self) -> None:
        """Leave once everything queued is delivered: run() then returns."""
        self._apply(self.machine.finish(anyio.current_time()))

    def switch_room(self, room: str) -> None:
        """Leave this room and join another over a fresh stream."""
        self._apply(self.machine.switch_room(room, anyio.current_time()))

    def switch_dm(self, account: str) -> None:
        """Leave this room for the conversation with account, over a fresh stream."""
        self._apply(self.machine.switch_dm(account, anyio.current_time()))

    def mark_read(self, seq: int) -> None:
        """The person has seen this room up to seq (an account's session: the server
        keeps it and tells the account's other sessions)."""
        self._apply(self.machine.mark_read(seq, anyio.current_time()))

    def rename(self, name: str) -> None:
        """Go on in this room under another name (a fresh stream)."""
        self._apply(self.machine.rename(name, anyio.current_time()))

    async def settled(self, client_msg_id: str) -> Settled | None:
        """Until the line is stored or refused for good: what became of it (None when
        the session ended first)."""
        if client_msg_id in self.machine.pending:
            event = self._settling.setdefault(client_msg_id, anyio.Event())
            while client_msg_id in self.machine.pending and self._outcome is None:
                await event.wait()
        self._settling.pop(client_msg_id, None)
        return self._settled.pop(client_msg_id, None)

    async def joined(self) -> None:
        """Until the session is in the room (SessionError if it gives up first)."""
        while self.machine.phase is not Phase.JOINED:
            if self._over():
                raise SessionError("The session ended before it joined.")
            await self._changed.wait()

    async def wait_delivered(self) -> None:
        """Until every queued line is acknowledged (or refused)."""
        while self.machine.undelivered and self._outcome is None:
            await self._changed.wait()

    # -- the connection loop ----------------------------------------------------------

    async def run(self) -> None:
        """Stay in the room until finish() completes; SessionError when that cannot be."""
        while True:
            await self._wait_until(self.machine.reconnect_at)
            if self._over():
                return
            self.machine.address = str(self.address)
            try:
                sock = await connect(self.address.host, self.address.port, self._ssl_context)
            except (OSError, anyio.BrokenResourceError) as error:
                if diagnose(error).failure in _HOPELESS:
                    raise SessionError(
                        failure_sentence(error, self.address.host, self.address.port)
                    ) from None
                self._next += 1  # the next server, if there are several
                await self._act(self.machine.connect_failed(failure_reason(error), _now()))
                continue
            await self._run_stream(sock)
            if self._over():
                return
            if self.machine.trouble:
                self._next += 1

    async def _run_stream(self, sock: anyio.abc.ByteStream) -> None:
        """One connection with one call, until it ends; then tell the machine."""
        status: Status | None = None
        first_bytes = b""
        async with anyio.create_task_group() as task_group:
            connection = Connection(sock, GrpcProtocol(client_side=True, limits=CLIENT_LIMITS))
            await task_group.start(connection.run)
            authority = str(self.address)
            call: V1Call | LegacyCall
            if self.machine.legacy:
                call = LegacyCall(connection, authority=authority, token=self._token)
            else:
                call = V1Call(connection, authority=authority, token=self._token)
            self._stream = _Stream(call, task_group.cancel_scope)
            try:
                await self._act(self.machine.connected(_now()))
                task_group.start_soon(self._write, self._stream)
                task_group.start_soon(self._keep_time)
                status = await self._read(call)
            finally:
                self._stream = None
                first_bytes = connection.first_bytes
                task_group.cancel_scope.cancel()
        if self._outcome is None:
            await self._act(self.machine.ended(status, _now(), first_bytes=first_bytes))

    async def _read(self, call: V1Call | LegacyCall) -> Status | None:
        """Hand every frame to the machine until the call ends; its final status."""
        if isinstance(call, V1Call):
            while (frame := await call.receive()) is not None:
                await self._act(self.machine.received(frame, _now()))
        else:
            while (message := await call.receive()) is not None:
                await self._act(self.machine.received_legacy(message, _now()))
        return call.status

    async def _write(self, stream: _Stream) -> None:
        """Write the machine's frames in order, as flow control allows."""
        try:
            while True:
                while stream.outgoing:
                    frame = stream.outgoing.popleft()
                    if frame is None:
                        stream.call.close_send()
                    elif isinstance(stream.call, V1Call):
                        assert isinstance(frame, v1.ClientFrame)
                        await stream.call.send_frame(frame)
                    else:
                        assert isinstance(frame, chat_pb2.ChatMessage)
                        await stream.call.send(frame.user_id, frame.text)
                stream.wake = anyio.Event()
                await stream.wake.wait()
        except StreamGone:
            return  # the reader sees the end and reports it

    async def _keep_time(self) -> None:
        """While connected: tell the machine when its deadlines come (resends, give-up)."""
        while True:
            await self._wait_until(math.inf)

    async def _wait_until(self, until: float) -> None:
        """Sleep until `until`, ticking the machine at each of its deadlines meanwhile
        (and looking again whenever it has acted: it may have a new one)."""
        while True:
            deadline = self.machine.deadline()
            wake = min(until, deadline if deadline is not None else math.inf)
            changed = self._changed
            with anyio.move_on_after(max(0.0, wake - _now())):
                await changed.wait()
            if deadline is not None and _now() >= deadline:
                await self._act(self.machine.tick(_now()))
            if _now() >= until or self._outcome is not None:
                return

    # -- doing what the machine says ----------------------------------------------------

    async def _act(self, actions: Sequence[Action]) -> None:
        # Frames first, all at once: showing may wait, and a line sent meanwhile must
        # not overtake the ones the machine already counts as sent.
        self._apply(actions)
        while self._to_show:
            await self._shown.send(self._to_show.popleft())

    def _apply(self, actions: Sequence[Action]) -> None:
        """Everything at once but showing, which waits for the connection loop (`_act`):
        the person's side (send, finish) never waits on the display."""
        for action in actions:
            if isinstance(action, Show):
                self._to_show.append(action.item)
            elif isinstance(action, Transmit):
                if self._stream is not None:
                    self._stream.push(action.frame)
            elif isinstance(action, HalfClose):
                if self._stream is not None:
                    self._stream.push(None)
            elif isinstance(action, Reconnect):
                if self._stream is not None:
                    self._stream.scope.cancel()
            elif isinstance(action, Settled):
                if (waiting := self._settling.get(action.client_msg_id)) is not None:
                    self._settled[action.client_msg_id] = action
                    waiting.set()
            elif isinstance(action, Finished | GiveUp):
                self._outcome = action
                if self._stream is not None:
                    self._stream.scope.cancel()
                for waiting in self._settling.values():
                    waiting.set()
        self._changed.set()
        self._changed = anyio.Event()

    def _over(self) -> bool:
        """True once finished; SessionError once given up."""
        if isinstance(self._outcome, GiveUp):
            raise SessionError(self._outcome.reason)
        return self._outcome is not None


def _now() -> float:
    return anyio.current_time()
