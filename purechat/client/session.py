"""One member in one room, kept there across connection losses.

The session owns the sends that the server has not yet acknowledged. Each carries a
client-chosen id; after a reconnect every unacknowledged send goes out again with the
same id, and the server drops any it already has, so each line is delivered once.
Against a server of the original contract (no purechat.v1) the session falls back to
`chat.ChatService/JoinChat`, where a send counts as delivered when its echo comes back.
"""

from __future__ import annotations

import random
import secrets
import ssl
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from purechat.client.calls import LegacyCall, V1Call, connect
from purechat.client.display import Shown, shown_name
from purechat.client.errors import failure_reason, failure_sentence
from purechat.errors import ClientError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import NEVER_ANSWERED
from purechat.transport import Connection, GrpcProtocol, Status, StatusCode, StreamGone
from purechat.transport.protocol import CLIENT_LIMITS

_KINDS = {v1.Event.MESSAGE: "message", v1.Event.JOIN: "join", v1.Event.LEAVE: "leave"}
# Statuses after which trying again cannot help: the server said no to this member.
_FATAL = {
    StatusCode.INVALID_ARGUMENT,
    StatusCode.UNAUTHENTICATED,
    StatusCode.PERMISSION_DENIED,
    StatusCode.FAILED_PRECONDITION,
}


# How long to wait before sending again when the server says we send too fast.
RATE_LIMIT_PAUSE = 0.5


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


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter between reconnect attempts."""

    first: float = 0.5
    cap: float = 10.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        return float(min(self.cap, self.first * 2**attempt) * (0.5 + rng() / 2))


@dataclass
class _PendingSend:
    client_msg_id: str
    text: str
    action: bool


class ChatSession:
    """Join, receive, send; reconnect with backoff and resume after every loss."""

    def __init__(
        self,
        address: Address,
        name: str,
        room: str,
        shown: MemoryObjectSendStream[Shown],
        *,
        history: int = 0,
        backoff: Backoff | None = None,
        give_up_after: float | None = None,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
    ):
        self.address = address
        self.name = name
        self.room = room
        self.history = history
        self.members: set[str] = set()
        self.legacy = False
        self.failures: list[str] = []
        self._shown = shown
        self._backoff = backoff or Backoff()
        self._give_up_after = give_up_after
        self._pending: OrderedDict[str, _PendingSend] = OrderedDict()
        self._last_seq: int | None = None
        self._finishing = False
        self._changed = anyio.Event()
        self._call: V1Call | LegacyCall | None = None
        self._switching = False
        self._ssl_context = ssl_context
        self._token = token
        self._ever_joined = False
        # Sends the server asked us to slow down for: sent again after a pause.
        self._resend_after = 0.0
        self._sent_here: dict[str, None] = {}
        # Sent with every join: back after a lost connection, this client takes its
        # name over instead of getting a suffix while the server still holds it.
        self._session = secrets.token_hex(16)

    # -- what the UI calls ---------------------------------------------

    def send(self, text: str, *, action: bool = False) -> None:
        """Queue a message; it goes out now, or after the next reconnect."""
        client_msg_id = uuid.uuid4().hex
        self._pending[client_msg_id] = _PendingSend(client_msg_id, text, action)
        self._notify()

    @property
    def undelivered(self) -> int:
        return len(self._pending)

    async def wait_delivered(self) -> None:
        """Until every queued message is acknowledged (or refused)."""
        while self._pending:
            await self._wait_change()

    def finish(self) -> None:
        """Leave once everything queued is delivered: run() then returns."""
        self._finishing = True
        self._notify()

    def switch_room(self, room: str) -> None:
        """Leave this room and join another over a fresh stream."""
        self.room = room
        self._last_seq = None
        self.members.clear()
        self._switching = True
        if self._call is not None:
            self._call.cancel()
        self._notify()

    # -- the connection loop --------------------------------------------

    async def run(self) -> None:
        """Stay connected until finish() completes; SessionError when that cannot be."""
        attempt = 0
        down_since: float | None = None
        while True:
            try:
                joined, status = await self._connect_once()
            except ssl.SSLError as error:
                raise SessionError(
                    failure_sentence(error, self.address.host, self.address.port)
                ) from None
            except (OSError, anyio.BrokenResourceError) as error:
                joined, status = False, Status(StatusCode.UNAVAILABLE, _reason(error))
            self._ever_joined = self._ever_joined or joined
            if status is not None and _never_answered(status) and not self._ever_joined:
                hint = "" if self._ssl_context else " (is it a TLS port? try --tls)"
                raise SessionError(f"The server at {self.address} closed the connection{hint}.")
            if status is None:
                return  # finished
            if joined:
                attempt, down_since = 0, None
            if self._switching:
                self._switching = False
                continue
            if status.status_code is StatusCode.UNIMPLEMENTED and not self.legacy:
                self.legacy = True
                continue
            if status.status_code in _FATAL:
                raise SessionError(_sentence(status.status_message or status.status_code.name))
            now = anyio.current_time()
            down_since = down_since if down_since is not None else now
            if self._give_up_after is not None and now - down_since >= self._give_up_after:
                raise SessionError(self._unreachable(status))
            delay = self._backoff.delay(attempt)
            attempt += 1
            await self._show_status(
                f"{_describe(status, self.address)}; reconnecting in {delay:.1f}s"
            )
            await anyio.sleep(delay)

    async def _connect_once(self) -> tuple[bool, Status | None]:
        """One connection: (whether we got into the room, the status it ended with)."""
        sock = await connect(self.address.host, self.address.port, self._ssl_context)
        async with anyio.create_task_group() as task_group:
            connection = Connection(sock, GrpcProtocol(client_side=True, limits=CLIENT_LIMITS))
            await task_group.start(connection.run)
            authority, token = str(self.address), self._token
            if self.legacy:
                result = await self._run_legacy(
                    LegacyCall(connection, authority=authority, token=token)
                )
            else:
                result = await self._run_v1(V1Call(connection, authority=authority, token=token))
            task_group.cancel_scope.cancel()
        return result

    async def _run_v1(self, call: V1Call) -> tuple[bool, Status | None]:
        self._call = call
        resume = self._last_seq
        await call.join(
            self.name,
            self.room,
            history=self.history if resume is None else 0,
            after_seq=resume,
            session=self._session,
        )
        first = await call.receive()
        if first is None or first.WhichOneof("frame") != "welcome":
            return False, call.status or _lost()
        welcome = first.welcome
        self.room = welcome.room
        self.members = set(welcome.members)
        if self._last_seq is None:
            self._last_seq = welcome.last_seq
        await self._shown.send(
            Shown(
                "info",
                welcome.room,
                f"joined {welcome.room} as {shown_name(welcome.name)}; here: "
                + ", ".join(shown_name(name) for name in sorted(self.members)),
            )
        )
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._write_v1, call)
            await self._read_v1(call)
            task_group.cancel_scope.cancel()
        return True, self._ending(call.status)

    async def _write_v1(self, call: V1Call) -> None:
        async def send(pending: _PendingSend) -> None:
            await call.send(pending.text, pending.client_msg_id, action=pending.action)

        self._sent_here = {}
        await self._write_pending(call, self._sent_here, send)

    async def _write_pending(
        self,
        call: V1Call | LegacyCall,
        sent_here: dict[str, None],
        send: Callable[[_PendingSend], Awaitable[None]],
    ) -> None:
        """Send each pending message once on this stream; half-close once finished."""
        try:
            while True:
                if (pause := self._resend_after - anyio.current_time()) > 0:
                    await anyio.sleep(pause)
                waiting = self._wait_change
                for pending in list(self._pending.values()):
                    if pending.client_msg_id not in sent_here:
                        sent_here[pending.client_msg_id] = None
                        await send(pending)
                if self._finishing and not self._pending:
                    call.close_send()
                    return
                await waiting()
        except StreamGone:
            return  # the reader sees the end and reports it

    async def _read_v1(self, call: V1Call) -> None:
        while (frame := await call.receive()) is not None:
            kind = frame.WhichOneof("frame")
            if kind == "event":
                await self._on_event(frame.event)
            elif kind == "ack":
                self._settle(frame.ack.client_msg_id)
            elif kind == "error":
                error = frame.error
                if error.code == v1.Error.RATE_LIMITED and error.client_msg_id in self._pending:
                    self._retry_later(error.client_msg_id)
                    continue
                if self._settle(error.client_msg_id):
                    self.failures.append(error.message)
                await self._shown.send(Shown("error", self.room, error.message))

    def _retry_later(self, client_msg_id: str) -> None:
        """The server said slow down: send it (and what follows) again after a pause."""
        self._resend_after = anyio.current_time() + RATE_LIMIT_PAUSE
        sent = list(self._sent_here)
        if client_msg_id in sent:
            for later in sent[sent.index(client_msg_id) :]:
                del self._sent_here[later]
        self._notify()

    async def _on_event(self, event: v1.Event) -> None:
        kind = _KINDS.get(event.kind, "gap")
        if kind == "join":
            self.members.add(event.user)
        elif kind == "leave":
            self.members.discard(event.user)
        elif event.seq:
            self._last_seq = max(self._last_seq or 0, event.seq)
        text = event.text
        if kind == "gap":
            text = f"messages {event.seq + 1} to {event.gap_until} are no longer kept"
        await self._shown.send(
            Shown(
                kind,
                event.room,
                text,
                user=event.user,
                seq=event.seq,
                time_ms=event.time_unix_ms,
                action=event.action,
                history=event.history,
            )
        )

    async def _run_legacy(self, call: LegacyCall) -> tuple[bool, Status | None]:
        """The original contract: no room, no acks; our own echo confirms a send."""
        self._call = call
        sent: dict[str, None] = {}  # ids sent on this stream, awaiting their echo, in order

        async def send(pending: _PendingSend) -> None:
            await call.send(self.name, _legacy_text(pending))

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(self._write_pending, call, sent, send)
            while (message := await call.receive()) is not None:
                oldest = next(iter(sent), None)
                echo = self._pending.get(oldest) if oldest is not None else None
                if oldest is not None and echo is not None and _legacy_text(echo) == message.text:
                    del sent[oldest]
                    self._settle(oldest)
                await self._shown.send(
                    Shown(
                        "message",
                        self.room,
                        message.text,
                        user=message.user_id,
                        time_ms=message.timestamp * 1000,
                    )
                )
            task_group.cancel_scope.cancel()
        return True, self._ending(call.status)

    # -- internals ---------------------------------------------------------

    def _ending(self, status: Status | None) -> Status | None:
        """None when the call ended because we finished; the status otherwise."""
        finished = self._finishing and not self._pending
        if finished and status is not None and status.status_code is StatusCode.OK:
            return None
        return status or _lost()

    def _settle(self, client_msg_id: str) -> bool:
        found = self._pending.pop(client_msg_id, None) is not None
        if found:
            self._notify()
        return found

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    @property
    def _wait_change(self) -> Callable[[], Awaitable[None]]:
        """The wait for the next change, taken before looking, so no change is missed."""
        return self._changed.wait

    async def _show_status(self, text: str) -> None:
        await self._shown.send(Shown("status", self.room, text))

    def _unreachable(self, status: Status) -> str:
        what = f"{self.undelivered} message(s) not delivered: " if self._pending else ""
        return f"{what}{_describe(status, self.address)}"


def _legacy_text(pending: _PendingSend) -> str:
    return f"/me {pending.text}" if pending.action else pending.text


def _never_answered(status: Status) -> bool:
    return bool(status.status_message == NEVER_ANSWERED)


def _lost() -> Status:
    return Status(StatusCode.UNAVAILABLE, "connection lost")


def _reason(error: BaseException) -> str:
    """The most specific reason, in a few words (see client/errors.py)."""
    return failure_reason(error)


def _describe(status: Status, address: Address) -> str:
    message = status.status_message or status.status_code.name.lower()
    if status.status_code is StatusCode.UNAVAILABLE:
        return f"cannot reach the server at {address} ({message})"
    return f"the server ended the stream ({message})"


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
