"""One gRPC call on a connection, seen from either side, with one state and one ending.

A stream is OPEN, then one side finishes sending (REMOTE_DONE on the server when the
client half-closes, LOCAL_DONE on the client after `close_send`), then it is ENDED, and
`outcome` says how: the status we sent (server), the server's trailers (client), or
why it was lost (reset by the peer, connection gone). Our side ends a call in exactly
one way, `end(status)`, and the first status wins. A server call whose handler is
still running is ENDING first: its handler is cancelled, and what it handed over
before it stopped goes out ahead of the trailers. The state moves only as `MOVES`
allows; ENDED is final.
"""

from __future__ import annotations

import contextlib
import enum
import math
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import anyio
import h2.errors
import h2.exceptions
from purerpc.grpclib.events import RequestReceived
from purerpc.grpclib.exceptions import ProtocolError

from purechat.errors import TransportError
from purechat.transitions import Transitions
from purechat.transport import status as statuses
from purechat.transport.protocol import GrpcProtocol
from purechat.transport.status import Status, StatusCode
from purechat.transport.writer import ConnectionWriter

Metadata = Sequence[tuple[str, str]]
CONTENT_TYPE_SUFFIX = "+proto"
# gRPC's length prefix: a compression flag and a 4-byte length.
_PREFIX = 5
# Bytes handed to h2 but not yet written to the socket, per connection, past which
# senders wait: a peer that opens its windows but does not read cannot grow us.
OUTBOUND_HIGH_WATER = 1024 * 1024


class StreamGone(TransportError):
    """The stream can no longer carry messages; `status` says why."""

    def __init__(self, status: Status):
        super().__init__(str(status))
        self.status = status


class Stalled(TransportError):
    """Sending made no progress for the stall timeout: the peer is not reading."""

    def __init__(self, waited: float, blocked_on: str):
        super().__init__(f"made no progress for {waited:g}s, waiting for the {blocked_on}")
        self.waited = waited
        self.blocked_on = blocked_on


class StreamHost(Protocol):
    """What a stream needs of its connection (connection.py's Connection is one)."""

    protocol: GrpcProtocol
    writer: ConnectionWriter
    peer: str
    # The other side's host, for rules per address.
    address: str
    # Streams waiting for room to send; woken when the connection moves.
    waiting_to_send: set[Stream]

    def stream_closed(self, stream: Stream) -> None: ...

    def close_gracefully(self) -> None: ...


class StreamState(enum.Enum):
    OPEN = "open"
    # Server side: the client has finished sending; responses may still go out.
    REMOTE_DONE = "remote done"
    # Client side: we have finished sending; responses keep coming until the trailers.
    LOCAL_DONE = "local done"
    # Server side: the status is chosen and the handler is being stopped.
    ENDING = "ending"
    ENDED = "ended"


MOVES = Transitions[StreamState](
    "gRPC stream",
    {
        StreamState.OPEN: [
            StreamState.REMOTE_DONE,
            StreamState.LOCAL_DONE,
            StreamState.ENDING,
            StreamState.ENDED,
        ],
        StreamState.REMOTE_DONE: [StreamState.ENDING, StreamState.ENDED],
        StreamState.LOCAL_DONE: [StreamState.ENDED],
        StreamState.ENDING: [StreamState.ENDED],
        StreamState.ENDED: [],
    },
)


class Stream:
    """One gRPC call. The connection's reader drives the private `_on_*` methods."""

    def __init__(self, connection: StreamHost, stream_id: int, request: RequestReceived | None):
        self.connection = connection
        self.stream_id = stream_id
        self.request = request
        self.state = StreamState.OPEN
        # How the call ended, once it has: see the module docstring.
        self.outcome: Status | None = None
        # False while the call may still end cleanly: a lost stream raises StreamGone.
        self._clean_end = False
        # ENDING: the status the call ends with once its handler has stopped.
        self._chosen: Status | None = None
        # Server side: the client has finished sending (whatever our state says now).
        self._peer_done = False
        self.headers_sent = False
        # Messages received and not yet taken, with their flow-controlled length. Bounded
        # by the stream's receive window: each message costs at least its 5-byte prefix
        # of window, and h2 refuses a peer that sends beyond the window. A deque only
        # while there are some (an empty one costs an idle member ~750 bytes).
        self._incoming: deque[tuple[bytes, int]] | None = None
        self._incoming_limit = connection.protocol.limits.stream_window // 5 + 1
        self._incoming_ready: anyio.Event | None = None
        # Set when this stream may be able to send more: a window opened, the
        # connection drained, or the stream ended.
        self._writable: anyio.Event | None = None
        # Server side: the cancel scope of the call's handler, cancelled by `end`.
        self.scope: anyio.CancelScope | None = None
        # Part of a message (one too large for any window) is out and the rest is not.
        self._unfinished = False

    @property
    def client_side(self) -> bool:
        return self.request is None

    @property
    def metadata(self) -> Metadata:
        return tuple(self.request.custom_metadata) if self.request else ()

    @property
    def status(self) -> Status | None:
        """Client side: the server's final status once the call is over (else None)."""
        return self.outcome

    @property
    def queued(self) -> int:
        """Messages received and not yet taken by `receive`."""
        return len(self._incoming) if self._incoming else 0

    # -- receiving ---------------------------------------------------------------

    def _no_more_incoming(self) -> bool:
        return self.state in (StreamState.ENDING, StreamState.ENDED) or self._peer_done

    async def receive(self) -> bytes | None:
        """The next message; None once the peer has finished sending cleanly.

        StreamGone when the call was lost or ended before the peer finished.
        """
        while not self._incoming:
            self._incoming = None
            if self._no_more_incoming():
                ending = self.outcome or self._chosen
                if ending is None or self._clean_end:
                    return None
                raise StreamGone(ending)
            self._incoming_ready = anyio.Event()
            await self._incoming_ready.wait()
            self._incoming_ready = None
        data, flow_controlled_length = self._incoming.popleft()
        self.connection.protocol.acknowledge(self.stream_id, flow_controlled_length)
        self.connection.writer.wake()
        return data

    # -- sending -----------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is StreamState.ENDED:
            assert self.outcome is not None
            raise StreamGone(self.outcome)
        if self.state is StreamState.LOCAL_DONE:
            raise StreamGone(statuses.stream_closed("we finished sending"))

    def _room(self) -> tuple[int, str]:
        """How many bytes may be handed to h2 now, and what limits it."""
        connection = self.connection
        if connection.writer.pending() > OUTBOUND_HIGH_WATER:
            return 0, "connection to drain"
        windows = connection.protocol.send_windows(self.stream_id)
        if windows is None:
            self._lost(statuses.stream_closed("reset"))
            return 0, "stream"
        stream_window, connection_window = windows
        if stream_window <= 0:
            return 0, "stream's window"
        if connection_window <= 0:
            return 0, "connection's window"
        return min(stream_window, connection_window), ""

    def try_send(self, blob: bytes) -> int:
        """Hand as much of blob to HTTP/2 as the windows allow now; the bytes taken.

        Lets a member's delivery skip its own task when nothing is queued: the bytes go
        from the broadcast straight into this stream's HTTP/2 buffer. A stream that has
        ended takes everything (there is nowhere to deliver it).
        """
        if self.state is StreamState.ENDED:
            return len(blob)
        if self.state is StreamState.LOCAL_DONE:
            return 0
        room, _ = self._room()
        taken = self._whole_messages(blob, 0, room)
        if taken:
            self._hand_over(blob[:taken] if taken < len(blob) else blob)
            self.connection.writer.wake()
        return taken

    async def send_frames(self, blob: bytes, *, stall_timeout: float = math.inf) -> None:
        """Send already framed gRPC messages, in as few DATA frames as the windows allow.

        Stalled when no progress is made for stall_timeout: none of our bytes taken
        and, while the connection is what we wait for, nothing moved on it either
        (a member behind a shared, busy connection is not stalled).
        """
        sent, total = 0, len(blob)
        deadline = anyio.current_time() + stall_timeout
        while sent < total:
            self._check_open()
            room, blocked_on = self._room()
            room = self._whole_messages(blob, sent, room)
            if room:
                chunk = blob[sent : sent + room] if room < total - sent else blob[sent:]
                self._hand_over(chunk)
                sent += len(chunk)
                deadline = anyio.current_time() + stall_timeout
                continue
            blocked_on = blocked_on or "stream's window"
            # What was handed over so far must reach the peer, or no window update
            # will ever come back.
            self.connection.writer.wake()
            if not await self._wait_writable(deadline):
                self._check_open()
                raise Stalled(stall_timeout, blocked_on)
            if blocked_on != "stream's window":
                deadline = anyio.current_time() + stall_timeout
        self.connection.writer.wake()

    def _whole_messages(self, blob: bytes, start: int, room: int) -> int:
        """How much of blob from start to hand over within room: whole gRPC messages
        only, so a call that ends meanwhile never leaves its peer half a message.

        A message that could never fit a window whole (larger than the peer's initial
        window) goes in pieces; `_unfinished` then says so until its end is out.
        """
        if len(blob) - start <= room:
            self._unfinished = False
            return len(blob) - start
        end = start
        while end + _PREFIX <= len(blob):
            size = _PREFIX + int.from_bytes(blob[end + 1 : end + _PREFIX], "big")
            if end + size - start > room:
                break
            end += size
        if end > start:
            self._unfinished = False
            return end - start
        first = _PREFIX + int.from_bytes(blob[start + 1 : start + _PREFIX], "big")
        if first > self.connection.protocol.peer_initial_window() and room:
            self._unfinished = True
            return room
        return 0

    async def _wait_writable(self, deadline: float) -> bool:
        """Until something may have made room; False when the deadline passed first."""
        self._writable = anyio.Event()
        self.connection.waiting_to_send.add(self)
        try:
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                await self._writable.wait()
                return True
            return False
        finally:
            self._writable = None
            self.connection.waiting_to_send.discard(self)

    def _hand_over(self, data: bytes) -> None:
        """Give h2 data the windows allow, as DATA frames of at most the peer's frame size."""
        try:
            self.connection.protocol.send_data(self.stream_id, data)
        except h2.exceptions.H2Error as error:
            self._lost(statuses.stream_closed(str(error)))

    def start_response(self, metadata: Metadata = ()) -> None:
        """Server side: send the response headers."""
        if not self.headers_sent and self.state is not StreamState.ENDED:
            self.connection.protocol.start_response(
                self.stream_id, CONTENT_TYPE_SUFFIX, tuple(metadata)
            )
            self.headers_sent = True
            self.connection.writer.wake()

    def close_send(self) -> None:
        """Client side: we have nothing more to send (half-close)."""
        if self.state is not StreamState.OPEN:
            return
        self.state = MOVES.move(self.state, StreamState.LOCAL_DONE)
        with _quietly():
            self.connection.protocol.end_request(self.stream_id)
        self.connection.writer.wake()

    def end(self, status: Status) -> None:
        """End the call from our side: the one way to end it; the first status wins.

        Server side: trailers with status (and a reset telling the client to stop
        sending, as grpc-go does, if it has not finished), once the call's handler
        has stopped: a running handler is cancelled first (ENDING). Client side: a
        reset that abandons the call. Synchronous, so the core's eviction and the
        server's shutdown can call it.
        """
        if self.state is StreamState.ENDED:
            return
        if self.state is StreamState.ENDING:
            if self.scope is None:  # the handler has stopped
                assert self._chosen is not None
                self._close(self._chosen)
            return
        if self.scope is not None:
            self._chosen = status
            self.state = MOVES.move(self.state, StreamState.ENDING)
            self._wake_reader()
            self.scope.cancel()
            return
        self._close(status)

    def _close(self, status: Status) -> None:
        protocol = self.connection.protocol
        with _quietly():
            if self.client_side or self._unfinished:
                # Trailers after half a message would read as a broken message.
                protocol.reset(self.stream_id, h2.errors.ErrorCodes.CANCEL)
            else:
                if self.headers_sent:
                    protocol.end_response(self.stream_id, status)
                else:
                    protocol.respond_status(self.stream_id, status, CONTENT_TYPE_SUFFIX)
                if not self._peer_done:
                    protocol.reset(self.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        self._clean_end = status.status_code is StatusCode.OK
        self._ended(status)

    # -- driven by the connection's reader -------------------------------------------

    def _on_message(self, data: bytes, flow_controlled_length: int) -> None:
        if self._no_more_incoming():
            self.connection.protocol.acknowledge(self.stream_id, flow_controlled_length)
        elif self.queued >= self._incoming_limit:  # a peer ignoring flow control
            self._on_refused(statuses.too_many_in_flight())
        else:
            if self._incoming is None:
                self._incoming = deque()
            self._incoming.append((data, flow_controlled_length))
            if self._incoming_ready is not None:
                self._incoming_ready.set()

    def _on_remote_end(self, trailers: Status | None) -> None:
        """The peer finished sending: a half-close (server), or the trailers (client)."""
        if self.state is StreamState.ENDED:
            return
        if not self.client_side:
            self._peer_done = True
            if self.state is StreamState.OPEN:
                self.state = MOVES.move(self.state, StreamState.REMOTE_DONE)
            self._wake_reader()
            return
        self._clean_end = True
        self._ended(trailers or statuses.connection_lost())

    def _on_refused(self, status: Status) -> None:
        """The peer broke a rule on this stream: end it with status (client: reset)."""
        if self.client_side:
            self.connection.protocol.reset(self.stream_id)
            self._lost(status)
        else:
            self.end(status)

    def _lost(self, status: Status) -> None:
        """The stream is gone without our ending it: reset by the peer, connection lost."""
        if self.state is not StreamState.ENDED:
            self._ended(status)

    def _wake_writable(self) -> None:
        if self._writable is not None:
            self._writable.set()

    # -- internals -------------------------------------------------------------------

    def _ended(self, status: Status) -> None:
        self.state = MOVES.move(self.state, StreamState.ENDED)
        self.outcome = status
        self._wake_reader()
        self._wake_writable()
        self.connection.stream_closed(self)
        if self.scope is not None:
            self.scope.cancel()

    def _wake_reader(self) -> None:
        if self._incoming_ready is not None:
            self._incoming_ready.set()


def _quietly() -> contextlib.suppress:
    """h2 refuses frames for streams it already considers closed: nothing to send then."""
    return contextlib.suppress(h2.exceptions.H2Error, ProtocolError)
