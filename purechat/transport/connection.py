"""One HTTP/2 connection as a task group: a reader, a writer, and (server side) its calls.

The reader handles every event of one socket read before it yields, so messages that
arrive together are handled together; nothing in it awaits per event. Each stream's
incoming messages wait in a queue bounded by the stream's HTTP/2 receive window, and a
message's window is given back only when the application has taken it, so a peer that
floods is slowed by flow control, never buffered without end.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Sequence

import anyio
import anyio.abc
import h2.errors
import h2.exceptions
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from h2.connection import ConnectionState
from purerpc.grpclib.events import (
    Event,
    MessageReceived,
    RequestEnded,
    RequestReceived,
    ResponseEnded,
    WindowUpdated,
)
from purerpc.grpclib.exceptions import ProtocolError

from purechat.transport.flusher import Flusher
from purechat.transport.protocol import (
    ConnectionTerminated,
    Flood,
    GrpcProtocol,
    PingAcknowledged,
    StreamRefused,
    StreamReset,
)
from purechat.transport.status import Status, StatusCode

log = logging.getLogger(__name__)

CallHandler = Callable[["Stream"], Awaitable[Status]]
Metadata = Sequence[tuple[str, str]]

READ_SIZE = 65536
# Bytes handed to h2 but not yet written to the socket, per connection, past which
# senders wait: a peer that opens its windows but does not read cannot grow us.
OUTBOUND_HIGH_WATER = 1024 * 1024
CONTENT_TYPE_SUFFIX = "+proto"
# The status of calls on a connection that closed before the peer sent anything:
# most likely a TLS port spoken to in plain text, or not a gRPC server at all.
NEVER_ANSWERED = "the server closed the connection without answering"
# How long a connection closed for misbehaving tries to tell the peer why.
LAST_WORDS_SECONDS = 1.0
# Bytes waiting for a peer that does not read, past which it is dropped.
MAX_OUTBOUND = 8 * 1024 * 1024
# How long a closing connection waits for the peer to close after our GOAWAY.
LINGER_SECONDS = 1.0


class StreamGone(Exception):
    """The stream can no longer carry messages; `status` says why."""

    def __init__(self, status: Status):
        super().__init__(str(status))
        self.status = status


class Stream:
    """One gRPC call on a connection, seen from either side."""

    def __init__(self, connection: Connection, stream_id: int, request: RequestReceived | None):
        self.connection = connection
        self.stream_id = stream_id
        self.request = request
        # Messages received and not yet taken, with their flow-controlled length. Bounded
        # by the stream's receive window: each message costs at least its 5-byte prefix
        # of window, and h2 refuses a peer that sends beyond the window.
        self._incoming: deque[tuple[bytes, int]] = deque()
        self._incoming_limit = connection.protocol.limits.stream_window // 5 + 1
        self._incoming_ready: anyio.Event | None = None
        self._incoming_done = False
        self._window_opened: anyio.Event | None = None
        self.response_started = False
        self.closed_locally = False
        self.remote_ended = False
        # Why the stream can no longer be used (reset, connection lost, refused).
        self.gone: Status | None = None
        # Server side: a status imposed from outside the handler (evicted, shutdown),
        # and the cancel scope of the call it ends.
        self.end_status: Status | None = None
        self.scope: anyio.CancelScope | None = None
        # Client side: the status from the server's trailers.
        self.status: Status | None = None

    @property
    def metadata(self) -> Metadata:
        return tuple(self.request.custom_metadata) if self.request else ()

    # -- receiving -------------------------------------------------------

    async def receive(self) -> bytes | None:
        """The next message, or None once the peer has finished sending."""
        while not self._incoming:
            if self._incoming_done:
                if self.gone is not None:
                    raise StreamGone(self.gone)
                return None
            self._incoming_ready = anyio.Event()
            await self._incoming_ready.wait()
            self._incoming_ready = None
        data, flow_controlled_length = self._incoming.popleft()
        self.connection.protocol.acknowledge(self.stream_id, flow_controlled_length)
        self.connection.wake_writer()
        return data

    # -- sending ---------------------------------------------------------

    async def send_frames(self, blob: bytes) -> None:
        """Send already framed gRPC messages, as few HTTP/2 DATA frames as the windows allow."""
        connection = self.connection
        h2c = connection.protocol.h2_connection
        sent, total = 0, len(blob)
        while sent < total:
            if self.gone is not None or self.closed_locally:
                raise StreamGone(self.gone or Status(StatusCode.CANCELLED, "stream closed"))
            if connection.outbound_pending() > OUTBOUND_HIGH_WATER:
                connection.wake_writer()
                await connection.wait_drained()
                continue
            try:
                window = h2c.local_flow_control_window(self.stream_id)
            except h2.exceptions.H2Error as error:
                self._mark_gone(Status(StatusCode.CANCELLED, f"stream closed: {error}"))
                continue
            if window <= 0:
                # What was handed over so far must reach the peer, or no window
                # update will ever come back.
                connection.wake_writer()
                if self._window_opened is None:
                    self._window_opened = anyio.Event()
                await self._window_opened.wait()
                continue
            chunk = blob[sent : sent + window]
            self._hand_over(chunk)
            sent += len(chunk)
        connection.wake_writer()

    def send_now(self, blob: bytes) -> bool:
        """Hand framed messages to HTTP/2 at once if the windows take them all; else False.

        Lets a writer that has nothing queued skip its own task: the message goes from
        the broadcast straight into this stream's HTTP/2 buffer.
        """
        if self.gone is not None or self.closed_locally:
            return True  # nothing more will be delivered here; drop it as the queue would
        connection = self.connection
        h2c = connection.protocol.h2_connection
        if connection.outbound_pending() > OUTBOUND_HIGH_WATER:
            return False
        try:
            if h2c.local_flow_control_window(self.stream_id) < len(blob):
                return False
        except h2.exceptions.H2Error as error:
            self._mark_gone(Status(StatusCode.CANCELLED, f"stream closed: {error}"))
            return True
        self._hand_over(blob)
        connection.wake_writer()
        return True

    def _hand_over(self, data: bytes) -> None:
        """Give h2 data the windows allow, as DATA frames of at most the peer's frame size."""
        h2c = self.connection.protocol.h2_connection
        step = h2c.max_outbound_frame_size
        try:
            for start in range(0, len(data), step):
                h2c.send_data(self.stream_id, data[start : start + step])
        except h2.exceptions.H2Error as error:
            self._mark_gone(Status(StatusCode.CANCELLED, f"stream closed: {error}"))

    def start_response(self, metadata: Metadata = ()) -> None:
        """Server side: send the response headers."""
        if not self.response_started and self.gone is None:
            self.connection.protocol.start_response(
                self.stream_id, CONTENT_TYPE_SUFFIX, tuple(metadata)
            )
            self.response_started = True
            self.connection.wake_writer()

    def end(self, status: Status) -> None:
        """Server side: end this call with status from outside its handler.

        Synchronous, so the core's eviction and the server's shutdown can call it;
        the first status wins.
        """
        if self.end_status is None:
            self.end_status = status
        if self.scope is not None:
            self.scope.cancel()

    def close(self, status: Status | None = None) -> None:
        """Finish our side: trailers with status (server), or half-close (client)."""
        if self.closed_locally or self.gone is not None:
            return
        self.closed_locally = True
        protocol = self.connection.protocol
        if protocol.config.client_side:
            # Half-close: the response keeps coming until the server's trailers.
            with contextlib.suppress(h2.exceptions.H2Error, ProtocolError):
                protocol.end_request(self.stream_id)
            self.connection.wake_writer()
            return
        with contextlib.suppress(h2.exceptions.H2Error, ProtocolError):
            status = status or Status(StatusCode.OK)
            if self.response_started:
                protocol.end_response(self.stream_id, status)
            else:
                protocol.respond_status(self.stream_id, status, CONTENT_TYPE_SUFFIX)
            if not self.remote_ended:
                # The call is over; tell the peer to stop sending (as grpc-go does).
                protocol.reset(self.stream_id, h2.errors.ErrorCodes.NO_ERROR)
        self._finish_incoming()
        self._window_update()
        self.connection.stream_closed(self)

    def cancel(self) -> None:
        """Client side: abandon the call (RST_STREAM CANCEL)."""
        if self.gone is None:
            self.connection.protocol.reset(self.stream_id, h2.errors.ErrorCodes.CANCEL)
            self._mark_gone(Status(StatusCode.CANCELLED, "call cancelled"))
            self.connection.stream_closed(self)
            self.connection.wake_writer()

    # -- driven by the connection's reader -------------------------------

    def _deliver(self, data: bytes, flow_controlled_length: int) -> None:
        if self._incoming_done:
            self.connection.protocol.acknowledge(self.stream_id, flow_controlled_length)
        elif len(self._incoming) >= self._incoming_limit:  # a peer ignoring flow control
            self._refused(Status(StatusCode.RESOURCE_EXHAUSTED, "too many messages in flight"))
        else:
            self._incoming.append((data, flow_controlled_length))
            if self._incoming_ready is not None:
                self._incoming_ready.set()

    def _remote_end(self, status: Status | None) -> None:
        self.remote_ended = True
        self.status = status
        self._finish_incoming()

    def _refused(self, status: Status) -> None:
        """This stream broke a rule: end the call with status (server), or reset it."""
        if self.request is not None:
            self.end(status)  # its call task closes it with status, started or not
        else:
            self.connection.protocol.reset(self.stream_id)
            self._mark_gone(status)

    def _mark_gone(self, status: Status) -> None:
        if self.gone is None:
            self.gone = status
        if self.status is None:
            self.status = status
        self._finish_incoming()
        self._window_update()
        if self.scope is not None and self.request is not None:
            self.scope.cancel()

    def _finish_incoming(self) -> None:
        self._incoming_done = True
        if self._incoming_ready is not None:
            self._incoming_ready.set()

    def _window_update(self) -> None:
        if self._window_opened is not None:
            self._window_opened.set()
            self._window_opened = None


class Connection:
    """An HTTP/2 connection carrying gRPC calls, client or server side.

    The task that runs it reads; its calls are child tasks. A writer task exists only
    while there are bytes the socket would not take at once: on the server, bytes
    normally go out through the flusher without any task of the connection's waking,
    and an idle connection costs no writer task at all.
    """

    def __init__(
        self, sock: anyio.abc.ByteStream, protocol: GrpcProtocol, flusher: Flusher | None = None
    ):
        self._sock = sock
        self.protocol = protocol
        # Plain TCP sockets can be written without waiting, by the flusher; TLS cannot,
        # so a TLS connection leaves all writing to its writer task.
        self._raw: socket.socket | None = None
        self._flusher: Flusher | None = None
        if flusher is not None and isinstance(sock, anyio.abc.SocketStream):
            self._raw = sock.extra(anyio.abc.SocketAttribute.raw_socket)
            self._flusher = flusher
        self._unsent = b""
        self._writer_running = False
        self._writer_sending = False
        self._writer_stopped: anyio.Event | None = None
        self._wake: anyio.Event | None = None
        self._drained: anyio.Event | None = None
        self.streams: dict[int, Stream] = {}
        self._closing = False
        self._task_group: anyio.abc.TaskGroup | None = None
        self._handshake = anyio.CancelScope()
        self._ping_sent_at: float | None = None
        self.last_heard = anyio.current_time()
        self.heard_from_peer = False
        self.peer = _peer_name(sock)

    async def run(
        self,
        handle_call: CallHandler | None = None,
        *,
        task_status: TaskStatus[None] = TASK_STATUS_IGNORED,
    ) -> None:
        """Serve the connection until either side closes it or the caller cancels."""
        self.protocol.initiate_connection()
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                try:
                    self._start_writer()
                    task_status.started()
                    await self._read_until_closed(handle_call, task_group)
                finally:
                    # Marks the group as ending before it closes, so nothing tries to
                    # start a writer in it once it is closed (see _start_writer).
                    task_group.cancel_scope.cancel()
        finally:
            self._task_group = None
            lost = Status(
                StatusCode.UNAVAILABLE,
                "connection lost" if self.heard_from_peer else NEVER_ANSWERED,
            )
            for stream in list(self.streams.values()):
                stream._mark_gone(lost)
            self.streams.clear()
            await anyio.aclose_forcefully(self._sock)

    # -- client side -----------------------------------------------------

    def start_call(
        self, service: str, method: str, *, authority: str, metadata: Metadata = ()
    ) -> Stream:
        if self._closing:
            raise StreamGone(Status(StatusCode.UNAVAILABLE, "connection closing"))
        stream_id = self.protocol.get_next_available_stream_id()
        stream = Stream(self, stream_id, None)
        self.streams[stream_id] = stream
        self.protocol.start_request(
            stream_id,
            "http",
            service,
            method,
            authority=authority,
            content_type_suffix=CONTENT_TYPE_SUFFIX,
            custom_metadata=tuple(metadata),
        )
        self.wake_writer()
        return stream

    # -- both sides ------------------------------------------------------

    def close_gracefully(self) -> None:
        """Refuse new streams; once the open ones have finished, send GOAWAY and close.

        GOAWAY waits for the last stream because h2 sends nothing after it, trailers
        included, and every member is owed its final status.
        """
        self._closing = True
        self._start_writer()

    @property
    def flusher(self) -> Flusher | None:
        """The server's flusher, when writes on this connection may skip the writer task."""
        return self._flusher

    def end_calls(self, status: Status) -> None:
        """Server side: end every call in progress with status."""
        for stream in list(self.streams.values()):
            if stream.request is not None:
                stream.end(status)

    def wake_writer(self) -> None:
        """There are bytes for the socket: have the flusher or a writer task send them."""
        if self._flusher is not None and not self._closing:
            self._flusher.mark(self)
        else:
            self._start_writer()

    def flush_now(self) -> None:
        """Write what is pending without waiting; leave any rest to a writer task."""
        if self._writer_running or self._raw is None or self._closing:
            self._start_writer()
            return
        data = self._take_pending()
        if not data:
            return
        try:
            sent = self._raw.send(data)
        except OSError:  # BlockingIOError, or an error the writer task will meet too
            sent = 0
        if sent < len(data):
            self._unsent = data[sent:]
            self._start_writer()
        else:
            self._notify_drained()

    def outbound_pending(self) -> int:
        # purerpc's h2 patch keeps outgoing bytes in this bytearray.
        return len(self.protocol.h2_connection._data_to_send) + len(self._unsent)

    async def wait_drained(self) -> None:
        """Until the next write to the socket completes."""
        if self._drained is None:
            self._drained = anyio.Event()
        await self._drained.wait()

    def stream_closed(self, stream: Stream) -> None:
        """Forget a stream once our side is done with it."""
        self.streams.pop(stream.stream_id, None)
        self.protocol.forget_stream(stream.stream_id)
        if self._closing and not self.streams:
            self._start_writer()

    # -- internals -------------------------------------------------------

    def _take_pending(self) -> bytes:
        """What the socket has not taken yet, then what h2 queued since, in that order."""
        data: bytes = self._unsent + self.protocol.data_to_send()
        self._unsent = b""
        return data

    def _notify_drained(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    def _start_writer(self) -> None:
        if self._writer_running:
            if self._wake is not None:
                self._wake.set()
            return
        group = self._task_group
        # A group whose scope is cancelled is ending: writing is over (and a closed
        # group, which may still be referenced here until run() resumes, refuses tasks).
        if group is not None and not group.cancel_scope.cancel_called:
            self._writer_running = True
            group.start_soon(self._write_until_idle)

    async def _write_until_idle(self) -> None:
        """Write until nothing is left; when closing, finish with GOAWAY and close."""
        timeout = self.protocol.limits.write_timeout
        # One scope for the writer's life, its deadline armed only around a socket write.
        with anyio.CancelScope() as stalled:
            try:
                await self._write_loop(stalled, write_timeout=timeout)
            finally:
                self._writer_running = False
                if self._writer_stopped is not None:
                    self._writer_stopped.set()
        if stalled.cancelled_caught:
            log.info("%s: peer stopped reading for %ss; closing", self.peer, timeout)
            self._stop()

    async def _write_loop(self, stalled: anyio.CancelScope, *, write_timeout: float) -> None:
        while True:
            self._wake = anyio.Event() if self._closing else None
            data = self._take_pending()
            if data:
                stalled.deadline = anyio.current_time() + write_timeout
                self._writer_sending = True
                try:
                    await self._sock.send(data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    self._stop()
                    return
                finally:
                    self._writer_sending = False
                stalled.deadline = math.inf
                self._notify_drained()
                continue
            if not self._closing:
                return  # idle: the next write starts a new writer
            if self.streams:
                assert self._wake is not None
                await self._wake.wait()  # the last calls are finishing
                continue
            if self.protocol.h2_connection.state_machine.state is not ConnectionState.CLOSED:
                with contextlib.suppress(h2.exceptions.H2Error):
                    self.protocol.h2_connection.close_connection()
                continue
            await self._linger()
            return

    async def _linger(self) -> None:
        """Half-close, give the peer a moment to close first, then close.

        Closing a socket with unread bytes in it sends a reset, and a reset makes the
        peer's kernel drop what it had received and not yet read: the final statuses
        and GOAWAY we just sent. So we stop writing first and let the peer go first;
        when it does, the reader sees the end and the connection is over.
        """
        with contextlib.suppress(
            anyio.BrokenResourceError, anyio.ClosedResourceError, OSError, NotImplementedError
        ):
            await self._sock.send_eof()
        await anyio.sleep(LINGER_SECONDS)
        self._stop()

    def _stop(self) -> None:
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def _read_until_closed(
        self, handle_call: CallHandler | None, task_group: anyio.abc.TaskGroup
    ) -> None:
        """Read and dispatch until the peer goes; a server-side peer that has not made
        its first call within the handshake timeout is dropped."""
        limits = self.protocol.limits
        deadline = anyio.current_time() + limits.handshake_timeout if handle_call else math.inf
        with anyio.CancelScope(deadline=deadline) as self._handshake:
            while True:
                try:
                    data = await self._sock.receive(READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return
                self.last_heard = anyio.current_time()
                self.heard_from_peer = True
                try:
                    events = self.protocol.receive_data(data, self.last_heard)
                except Flood as flood:
                    log.warning("%s: flood (%s); closing", self.peer, flood)
                    await self._last_words()
                    return
                except (h2.exceptions.H2Error, ProtocolError) as error:
                    log.info("%s: HTTP/2 protocol error, closing: %s", self.peer, error)
                    return
                for event in events:
                    self._dispatch(event, handle_call, task_group)
                if self.outbound_pending() > MAX_OUTBOUND:
                    log.warning("%s: peer makes us write but does not read; closing", self.peer)
                    return
                self.wake_writer()
        if self._handshake.cancelled_caught:
            log.info("%s: no call within %ss; closing", self.peer, limits.handshake_timeout)

    async def _last_words(self) -> None:
        """Give what is queued (the GOAWAY saying why) a moment to reach the peer."""
        with anyio.move_on_after(LAST_WORDS_SECONDS):
            while self._writer_running:
                self._writer_stopped = anyio.Event()
                await self._writer_stopped.wait()
            data = self._take_pending()
            if data:
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    await self._sock.send(data)

    def keepalive(self, now: float, idle: float, timeout: float) -> None:
        """Ping a peer silent for `idle` seconds; drop it if a ping went unanswered `timeout`."""
        if self._ping_sent_at is not None:
            if now - self._ping_sent_at > timeout:
                log.info("%s: no answer to a keepalive ping in %ss; closing", self.peer, timeout)
                self._stop()
        elif now - self.last_heard > idle:
            with contextlib.suppress(h2.exceptions.H2Error):
                self.protocol.ping()
                self._ping_sent_at = now
                self.wake_writer()

    def _dispatch(
        self, event: Event, handle_call: CallHandler | None, task_group: anyio.abc.TaskGroup
    ) -> None:
        if isinstance(event, WindowUpdated):
            if event.stream_id == 0:
                for each in self.streams.values():
                    each._window_update()
            elif (updated := self.streams.get(event.stream_id)) is not None:
                updated._window_update()
            return
        if isinstance(event, ConnectionTerminated):
            self.close_gracefully()
            return
        if isinstance(event, PingAcknowledged):
            self._ping_sent_at = None
            return
        if isinstance(event, RequestReceived):
            if handle_call is None or self._closing:
                self.protocol.reset(event.stream_id, h2.errors.ErrorCodes.REFUSED_STREAM)
                return
            self._handshake.deadline = math.inf  # a call: the handshake is done
            call = Stream(self, event.stream_id, event)
            self.streams[event.stream_id] = call
            task_group.start_soon(self._serve_call, call, handle_call)
            return
        if isinstance(event, StreamRefused) and event.stream_id not in self.streams:
            # Malformed request headers: there is no call to end, answer with a status.
            self._refuse(event.stream_id, Status(StatusCode.INVALID_ARGUMENT, event.reason))
            return
        found = self.streams.get(event.stream_id)
        if found is None:
            if isinstance(event, MessageReceived):
                self.protocol.acknowledge(event.stream_id, event.flow_controlled_length)
            return
        stream = found
        if isinstance(event, MessageReceived):
            stream._deliver(event.data, event.flow_controlled_length)
        elif isinstance(event, RequestEnded):
            stream._remote_end(None)
        elif isinstance(event, ResponseEnded):
            stream._remote_end(event.status)
            self.stream_closed(stream)
        elif isinstance(event, StreamReset):
            stream._mark_gone(Status(StatusCode.CANCELLED, "call cancelled by the peer"))
            self.stream_closed(stream)
        elif isinstance(event, StreamRefused):
            code = StatusCode.RESOURCE_EXHAUSTED if event.too_large else StatusCode.INVALID_ARGUMENT
            stream._refused(Status(code, event.reason))

    def _refuse(self, stream_id: int, status: Status) -> None:
        try:
            self.protocol.respond_status(stream_id, status, CONTENT_TYPE_SUFFIX)
            self.protocol.reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.H2Error:
            pass

    async def _serve_call(self, stream: Stream, handle_call: CallHandler) -> None:
        status: Status | None = None
        try:
            # except*: a handler's task group delivers StreamGone (and errors) in a group,
            # and only when the call's scope exits, after its Cancelled is taken out.
            try:
                with anyio.CancelScope() as scope:
                    stream.scope = scope
                    if stream.gone is not None or stream.end_status is not None:
                        # Reset or refused before its task ran (a rapid reset costs no handler).
                        scope.cancel()
                    status = await handle_call(stream)
            except* StreamGone:
                status = None
            except* Exception:
                log.exception("%s: call handler failed", self.peer)
                status = Status(StatusCode.INTERNAL, "internal server error")
            if stream.end_status is not None:
                status = stream.end_status
            if status is not None:
                stream.close(status)
        finally:
            stream.scope = None
            if not stream.closed_locally:
                stream._mark_gone(stream.end_status or Status(StatusCode.CANCELLED, "ended"))
            self.stream_closed(stream)
            self.wake_writer()


def _peer_name(sock: anyio.abc.ByteStream) -> str:
    try:
        address = sock.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "peer"
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address)
