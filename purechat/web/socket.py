"""One accepted WebSocket: whole text messages in for the member, whole frames out.

wsproto turns bytes into frames and back; this class owns the socket around it, with
one state and one way to end a session:

- OPEN: frames both ways. The member's reader takes text messages with `receive`
  (the socket is read only then, so a member held back by the pacer is slowed by
  TCP, as a gRPC member is by flow control); its delivery hands frames over with
  `try_send` (the server's flusher, never waiting) and `send_frames` (its own task,
  waiting for the writer, Stalled when nothing moves for the stall timeout).
- CLOSING: `end(status)` chose how the session ends: an `end` frame and a close
  frame are queued behind what was handed over before, the member's handler is
  cancelled, and nothing more is taken. The writer sends the rest, the peer gets a
  moment to answer the close, then the socket is closed.
- CLOSED: the peer is gone (the connection broke, or stopped answering pings or
  reading), or the session is over; nothing more is read or written.

Every move goes through SOCKET_STATES, and every write through the connection's
SingleWriter, so a move or a write nobody meant raises instead of passing unseen.

What one peer can make us hold or do is bounded as on the gRPC port:
- What waits to be written: delivery waits once HIGH_WATER bytes are queued, and a
  peer that makes us queue control frames (pongs) past MAX_OUTBOUND without reading
  them is cut off.
- What is read: one read at a time, and only when the member's reader asks; a message
  from the page larger than the server's --max-message-bytes ends the session, as it
  ends a gRPC call, before more of it is buffered, and so does one in more than
  MAX_MESSAGE_FRAMES frames (each costs a parse). Once we have decided to close, at
  most CLOSE_READ_BYTES more are read (and dropped) while waiting for the peer's close,
  none after a protocol error, a flood or a message in too many frames: wsproto stops
  parsing after a protocol error and would buffer whatever came next.
- Control frames: a ping or a pong counts against the peer only when we sent it no
  data since its previous one, the rule the gRPC port applies to PINGs
  (transport/protocol.py); more than `max_control_frames` of them in
  FLOOD_WINDOW_SECONDS and the peer is cut off. A page that pings while it receives is
  never cut; one that pings for nothing costs the others nothing for long.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import anyio.abc
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage

from purechat.errors import TransportError
from purechat.transitions import Transitions
from purechat.transport import Stalled, TransportLimits
from purechat.transport import status as statuses
from purechat.transport.guard import SingleWriter
from purechat.transport.protocol import FLOOD_WINDOW_SECONDS
from purechat.transport.status import Status
from purechat.web.codes import (
    binary_frame,
    close_code,
    control_frame_flood,
    message_in_too_many_frames,
)
from purechat.web.frames import MAX_CLOSE_REASON, end_frame

log = logging.getLogger("purechat.web")

READ_SIZE = 65536
# Bytes queued for the socket past which a member's delivery waits (and, waiting with
# no progress for its stall timeout, removes the member).
HIGH_WATER = 1024 * 1024
# Bytes queued for a peer that does not read them, past which it is cut off.
MAX_OUTBOUND = 8 * 1024 * 1024
# Most bytes one socket write takes, so progress is seen while a large backlog goes out.
WRITE_CHUNK = 64 * 1024
# How long an ending session gives its last frames to go out and the peer to answer.
CLOSE_SECONDS = 1.0
# Most bytes read (and dropped) after we decided to close, waiting for the peer's close.
CLOSE_READ_BYTES = 64 * 1024
# Most frames one message may come in. Browsers send a message in one frame, and
# libraries that split one write a few KiB a frame; wsproto spends some 10 µs a frame,
# so a message of the size limit sent a byte a frame would cost most of a second.
MAX_MESSAGE_FRAMES = 256

Handler = Callable[["WebSocket"], Awaitable[Status]]
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class WebSocketGone(TransportError):
    """The session can carry no more frames (it ended, or its connection broke)."""


class SocketState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


SOCKET_STATES = Transitions(
    "WebSocket",
    {
        SocketState.OPEN: [SocketState.CLOSING, SocketState.CLOSED],
        SocketState.CLOSING: [SocketState.CLOSED],
        SocketState.CLOSED: [],
    },
)


@dataclass(frozen=True, slots=True)
class SocketLimits:
    """What one web peer may make us hold, and how long it may keep us waiting."""

    max_message_bytes: int = 64 * 1024
    # A socket write that makes no progress for this long drops the peer.
    write_timeout: float = 30.0
    # A peer silent this long is pinged; one that does not answer in timeout more goes.
    keepalive_idle: float = 30.0
    keepalive_timeout: float = 20.0
    # Control frames per FLOOD_WINDOW_SECONDS that followed no data of ours: the gRPC
    # port's limit on PINGs.
    max_control_frames: int = TransportLimits().max_control_frames


class WebSocket:
    """See the module docstring. Implements the delivery's Sink and the pacer's Paced."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        *,
        peer: str,
        limits: SocketLimits,
        address: str = "",
        trailing_data: bytes = b"",
        on_cut_off: Callable[[str], None] | None = None,
        guard: SingleWriter | None = None,
    ):
        """guard: the connection's one-writer guard (the HTTP side's, before the upgrade)."""
        self._stream = stream
        self.peer = peer
        # The peer's host, for rules per address (bans).
        self.address = address
        self.limits = limits
        self._on_cut_off = on_cut_off or (lambda reason: None)
        self._guard = guard or SingleWriter()
        self._ws = Connection(ConnectionType.SERVER)
        self.state = SocketState.OPEN
        # How the session ended, once it has (None: the peer went without one).
        self.outcome: Status | None = None
        # Whole text messages received and not yet taken; one read's worth at most.
        self._messages: deque[str] = deque()
        self._partial: list[str] = []
        self._partial_bytes = 0
        self._frames_of_message = 0
        # Bytes for the socket, in order: whole frames, a write's worth taken at a time.
        self._out: deque[bytes] = deque()
        self._offset = 0
        self.pending = 0
        self._out_ready = anyio.Event()
        self._moved: anyio.Event | None = None
        self._drained = anyio.Event()
        # The cancel scope of the member's handler, cancelled when the session ends.
        self.scope: anyio.CancelScope | None = None
        self.last_heard = anyio.current_time()
        self._ping_sent_at: float | None = None
        # Since when the member's reader has been waiting on the socket (None: it is not).
        self._listening_since: float | None = None
        self._unread = trailing_data
        # Bytes the close handshake may still read: none once the peer broke the protocol.
        self._close_reads = CLOSE_READ_BYTES
        # The flood rule (see the module docstring), as transport/protocol.py keeps it.
        self._flood_window_start = anyio.current_time()
        self._control_strikes = 0
        self._sent_since_control = False

    @property
    def queued(self) -> int:
        """Messages received and not yet taken (the pacer's measure of a flood)."""
        return len(self._messages)

    # -- the session ---------------------------------------------------------------

    async def run(self, handler: Handler) -> None:
        """Run the member's handler with the writer and the keepalive beside it, end
        the session with the handler's status (unless it ended first), then close."""
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._write)
                task_group.start_soon(self._keep_alive)
                await self._serve(handler)
                await self._close_handshake()
                task_group.cancel_scope.cancel()
        finally:
            self._lost()
            self._messages.clear()
            self._partial.clear()
            self._unread = b""
            await anyio.aclose_forcefully(self._stream)

    async def _serve(self, handler: Handler) -> None:
        status = statuses.internal()
        try:
            # except*: the handler's task group delivers errors in a group, and only
            # once the scope is done with them (as `Connection._serve_call` does).
            try:
                with anyio.CancelScope() as scope:
                    self.scope = scope
                    if self.state is not SocketState.OPEN:
                        scope.cancel()
                    status = await handler(self)
            except* WebSocketGone:
                pass
            except* Exception:
                log.exception("%s: web session handler failed", self.peer)
                status = statuses.internal()
        finally:
            self.scope = None
            self.end(status)

    def end(self, status: Status) -> None:
        """End the session from our side with status: the one way; the first wins.

        Synchronous, so the core's eviction, a token's revocation and the server's
        shutdown can call it.
        """
        if self.state is not SocketState.OPEN:
            return
        self._move(SocketState.CLOSING)
        self.outcome = status
        reason = (status.status_message or "").encode()[:MAX_CLOSE_REASON]
        close = CloseConnection(close_code(status), reason.decode(errors="ignore"))
        self._queue(end_frame(status) + self._ws.send(close))
        self._stop_member()

    # -- the reader's side -----------------------------------------------------------

    async def receive(self) -> str | None:
        """The next text message; None once the session is ending (the peer closed, or
        we did). WebSocketGone when the connection broke."""
        while not self._messages:
            if self.state is not SocketState.OPEN:
                return None
            if self._unread:
                data, self._unread = self._unread, b""
            else:
                data = await self._read()
            self._handle(data)
        return self._messages.popleft()

    async def _read(self) -> bytes:
        self._listening_since = anyio.current_time()
        try:
            data = await self._stream.receive(READ_SIZE)
        except _GONE:
            self._lost()
            raise WebSocketGone("connection lost") from None
        finally:
            self._listening_since = None
        self.last_heard = anyio.current_time()
        self._ping_sent_at = None  # it is there
        return data

    def _handle(self, data: bytes) -> None:
        """Take one read's frames: messages for the reader, answers to control frames."""
        now = anyio.current_time()
        if now - self._flood_window_start > FLOOD_WINDOW_SECONDS:
            self._flood_window_start, self._control_strikes = now, 0
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, TextMessage):
                if not self._take_text(event):
                    return
            elif isinstance(event, BytesMessage):
                self.end(binary_frame())
                return
            elif isinstance(event, Ping | Pong):
                if self._flooding():
                    return
                if isinstance(event, Ping):
                    self._queue(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self._on_close(event)
                return
        if self.pending > MAX_OUTBOUND:
            log.warning("%s: peer makes us write but does not read; closing", self.peer)
            self._on_cut_off("web_not_reading")
            self._lost()

    def _take_text(self, event: TextMessage) -> bool:
        """Add a piece of a text message; False when the message is too large, or in
        too many frames."""
        self._partial_bytes += len(event.data.encode(errors="surrogatepass"))
        limit = self.limits.max_message_bytes
        if self._partial_bytes > limit:
            self.end(
                statuses.message_too_large(f"a message is larger than the limit of {limit} bytes")
            )
            return False
        if event.frame_finished and not event.message_finished:
            self._frames_of_message += 1
            if self._frames_of_message >= MAX_MESSAGE_FRAMES:
                self._close_reads = 0  # more of the same, at the same cost
                self.end(message_in_too_many_frames(MAX_MESSAGE_FRAMES))
                return False
        if event.data:
            self._partial.append(event.data)
        if event.message_finished:
            self._messages.append("".join(self._partial))
            self._partial.clear()
            self._partial_bytes = 0
            self._frames_of_message = 0
        return True

    def _flooding(self) -> bool:
        """Count a control frame against the peer, and cut it off past the limit; True
        when it was. One that follows data of ours is a page reacting to it: no strike."""
        if self._sent_since_control:
            self._sent_since_control = False
            return False
        self._control_strikes += 1
        limit = self.limits.max_control_frames
        if self._control_strikes <= limit:
            return False
        log.warning(
            "%s: cut off for flooding (%d pings or other control frames in %gs while "
            "nothing was sent to it)",
            self.peer,
            self._control_strikes,
            FLOOD_WINDOW_SECONDS,
        )
        self._cut_off("web_flood_pings", control_frame_flood(limit, FLOOD_WINDOW_SECONDS))
        return True

    def _on_close(self, event: CloseConnection) -> None:
        if self._ws.state is ConnectionState.REMOTE_CLOSING:
            # The peer is leaving: answer its close; nothing more is owed to it.
            if self.state is SocketState.OPEN:
                self._move(SocketState.CLOSING)
                self.outcome = statuses.OK
                self._stop_member()
            self._queue(self._ws.send(event.response()))
        elif self._ws.state is ConnectionState.OPEN:  # frames wsproto could not parse
            log.info("%s: WebSocket protocol error: %s", self.peer, event.reason)
            self._cut_off(
                "web_protocol_error",
                statuses.malformed_request(f"WebSocket protocol error: {event.reason}"),
            )

    def _cut_off(self, reason: str, status: Status) -> None:
        """End the session for breaking a rule: counted, and nothing more is read."""
        self._on_cut_off(reason)
        self._close_reads = 0
        self.end(status)

    # -- the delivery's side (the Sink) --------------------------------------------

    def try_send(self, blob: bytes) -> int:
        """Take blob (whole frames) for the writer if there is room now; all or nothing.

        A session that has ended takes everything: there is nowhere to deliver it.
        """
        if self.state is not SocketState.OPEN:
            return len(blob)
        if self.pending >= HIGH_WATER:
            return 0
        self._queue_data(blob)
        return len(blob)

    async def send_frames(self, blob: bytes, *, stall_timeout: float = math.inf) -> None:
        """Queue blob once there is room; Stalled when the writer makes no progress for
        stall_timeout, WebSocketGone when the session ends first."""
        deadline = anyio.current_time() + stall_timeout
        while True:
            if self.state is not SocketState.OPEN:
                raise WebSocketGone("the session has ended")
            if self.pending < HIGH_WATER:
                self._queue_data(blob)
                return
            self._moved = anyio.Event()
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                await self._moved.wait()
                deadline = anyio.current_time() + stall_timeout  # something went out
                continue
            if self.state is SocketState.OPEN:
                raise Stalled(stall_timeout, "peer to read")

    # -- the writer ------------------------------------------------------------------

    def _queue_data(self, blob: bytes) -> None:
        """Queue frames of the member's delivery: the peer's next ping is then free."""
        self._sent_since_control = True
        self._queue(blob)

    def _queue(self, data: bytes) -> None:
        if data and self.state is not SocketState.CLOSED:
            self._out.append(data)
            self.pending += len(data)
            self._out_ready.set()

    def _next_chunk(self) -> bytes:
        """Up to WRITE_CHUNK bytes from the front of the queue."""
        head = self._out[0]
        rest = len(head) - self._offset
        if rest >= WRITE_CHUNK or len(self._out) == 1:
            size = min(rest, WRITE_CHUNK)
            chunk = head[self._offset : self._offset + size]
            self._offset += size
            if self._offset == len(head):
                self._out.popleft()
                self._offset = 0
            return chunk
        parts = [head[self._offset :]]
        size = rest
        self._out.popleft()
        self._offset = 0
        while self._out and size + len(self._out[0]) <= WRITE_CHUNK:
            piece = self._out.popleft()
            parts.append(piece)
            size += len(piece)
        return b"".join(parts)

    async def _write(self) -> None:
        timeout = self.limits.write_timeout
        while self.state is not SocketState.CLOSED:
            if not self._out:
                if self.state is SocketState.CLOSING:
                    self._drained.set()
                self._out_ready = anyio.Event()
                await self._out_ready.wait()
                continue
            chunk = self._next_chunk()
            try:
                with self._guard, anyio.fail_after(timeout):
                    await self._stream.send(chunk)
            except TimeoutError:
                log.info("%s: peer stopped reading for %ss; closing", self.peer, timeout)
                self._lost()
                return
            except _GONE:
                self._lost()
                return
            self.pending -= len(chunk)
            if self._moved is not None:
                self._moved.set()

    async def _keep_alive(self) -> None:
        """Ping a silent peer; drop it when a ping goes unanswered while we listen."""
        idle, timeout = self.limits.keepalive_idle, self.limits.keepalive_timeout
        while self.state is SocketState.OPEN:
            await anyio.sleep(min(idle, timeout) / 2)
            now = anyio.current_time()
            if self._ping_sent_at is None:
                if now - self.last_heard > idle and self.state is SocketState.OPEN:
                    self._queue(self._ws.send(Ping(b"purechat")))
                    self._ping_sent_at = now
            elif (
                self._listening_since is not None
                and now - max(self._ping_sent_at, self._listening_since) > timeout
            ):
                log.info("%s: no answer to a keepalive ping in %ss; closing", self.peer, timeout)
                self._lost()

    async def _close_handshake(self) -> None:
        """Let the last frames go out and the peer answer our close, within reason.

        Closing with the peer's bytes unread resets the connection, and a reset can lose
        our close at the peer; so a little is read (and dropped) while we wait for its
        close, CLOSE_READ_BYTES at most, and nothing after a protocol error or a flood.
        """
        with anyio.move_on_after(CLOSE_SECONDS):
            await self._drained.wait()  # set at once when the peer is gone
            while (
                self._close_reads > 0
                and self._ws.state is not ConnectionState.CLOSED
                and not self._is_lost()
            ):
                try:
                    data = await self._stream.receive(min(READ_SIZE, self._close_reads))
                except _GONE:
                    return
                self._close_reads -= len(data)
                self._ws.receive_data(data)
                if any(isinstance(event, CloseConnection) for event in self._ws.events()):
                    return

    # -- internals ---------------------------------------------------------------------

    def _is_lost(self) -> bool:
        """CLOSED, asked anew after an await (the writer or keepalive may have moved it)."""
        return self.state is SocketState.CLOSED

    def _move(self, new: SocketState) -> None:
        self.state = SOCKET_STATES.move(self.state, new)

    def _stop_member(self) -> None:
        if self.scope is not None:
            self.scope.cancel()
        if self._moved is not None:
            self._moved.set()

    def _lost(self) -> None:
        """The peer is gone: nothing more is read or written."""
        if self.state is SocketState.CLOSED:
            return
        self._move(SocketState.CLOSED)
        self._out.clear()
        self.pending = 0
        self._drained.set()
        self._out_ready.set()
        self._stop_member()
