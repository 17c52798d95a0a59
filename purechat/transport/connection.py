"""One HTTP/2 connection as a task group: a reader, a writer, and (server side) its calls.

The reader handles every event of one socket read before it yields, so messages that
arrive together are handled together; nothing in it awaits per event. Each stream's
incoming messages wait in a queue bounded by the stream's HTTP/2 receive window, and a
message's window is given back only when the application has taken it, so a peer that
floods is slowed by flow control, never buffered without end. Writing belongs to the
connection's `ConnectionWriter`; each call to its `Stream`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import h2.errors
import h2.exceptions
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from purerpc.grpclib.events import (
    Event,
    MessageReceived,
    RequestEnded,
    RequestReceived,
    ResponseEnded,
    WindowUpdated,
)
from purerpc.grpclib.exceptions import ProtocolError

from purechat.transport import status as statuses
from purechat.transport.accept import remote_of
from purechat.transport.flusher import Flusher
from purechat.transport.h2private import PingAcknowledged
from purechat.transport.protocol import (
    ConnectionTerminated,
    Flood,
    GrpcProtocol,
    StreamRefused,
    StreamReset,
)
from purechat.transport.reader import SocketReader
from purechat.transport.status import Status
from purechat.transport.stream import CONTENT_TYPE_SUFFIX, Metadata, Stream, StreamGone
from purechat.transport.writer import ConnectionWriter

log = logging.getLogger("purechat.transport")

CallHandler = Callable[[Stream], Awaitable[Status]]

READ_SIZE = 65536
# How long a connection closed for misbehaving tries to tell the peer why.
LAST_WORDS_SECONDS = 1.0
# Bytes waiting for a peer that does not read, past which it is dropped.
MAX_OUTBOUND = 8 * 1024 * 1024


class Connection:
    """An HTTP/2 connection carrying gRPC calls, client or server side.

    The task that runs it reads; its calls are child tasks. Its writer task exists only
    while there are bytes the socket would not take at once: on the server, bytes
    normally go out through the flusher without any task of the connection's waking,
    and an idle connection costs no writer task at all.
    """

    def __init__(
        self,
        sock: anyio.abc.ByteStream,
        protocol: GrpcProtocol,
        flusher: Flusher | None = None,
        *,
        peer: str | None = None,
        address: str = "",
        on_cut_off: Callable[[str], None] | None = None,
    ):
        """peer: how logs name the other side (from its address when not given);
        address: the other side's host, for rules per address."""
        self._sock = sock
        # Plain TCP is read and written on the socket itself (see reader.py, writer.py).
        raw = (
            sock.extra(anyio.abc.SocketAttribute.raw_socket)
            if isinstance(sock, anyio.abc.SocketStream)
            else None
        )
        self._reader = SocketReader(sock, raw, READ_SIZE)
        self.protocol = protocol
        self.peer = peer or remote_of(sock)[1]
        self.address = address or remote_of(sock)[0]
        self.writer = ConnectionWriter(
            sock,
            protocol,
            raw=raw,
            peer=self.peer,
            flusher=flusher,
            has_calls=lambda: bool(self.streams),
            on_progress=self._wake_senders,
            stop=self._stop,
        )
        self.streams: dict[int, Stream] = {}
        # Streams waiting for room to send; woken when the connection moves.
        self.waiting_to_send: set[Stream] = set()
        self._on_cut_off = on_cut_off or (lambda reason: None)
        self._closing = False
        self._task_group: anyio.abc.TaskGroup | None = None
        # Server side: the peer has made its first call (the handshake is over).
        self._called = False
        self._ping_sent_at: float | None = None
        self.last_heard = anyio.current_time()
        self.heard_from_peer = False
        # The first bytes the peer sent: a client tells a TLS port by them.
        self.first_bytes = b""

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
                self.writer.attach(task_group)
                try:
                    self.writer.wake()
                    task_status.started()
                    await self._read_until_closed(handle_call, task_group)
                finally:
                    # Marks the group as ending before it closes, so nothing tries to
                    # start a writer in it once it is closed.
                    task_group.cancel_scope.cancel()
        finally:
            self._task_group = None
            self.writer.attach(None)
            lost = statuses.connection_lost(heard_from_peer=self.heard_from_peer)
            for stream in list(self.streams.values()):
                stream._lost(lost)
            self.streams.clear()
            try:
                await anyio.aclose_forcefully(self._sock)
            finally:
                # The writer's callbacks are this connection's methods: let go of them,
                # so nothing of the connection is left in a cycle for the collector.
                self.writer.detach()

    # -- client side -------------------------------------------------------------

    def start_call(
        self, service: str, method: str, *, authority: str, metadata: Metadata = ()
    ) -> Stream:
        if self._closing:
            raise StreamGone(statuses.connection_closing())
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
        self.writer.wake()
        return stream

    # -- both sides --------------------------------------------------------------

    def close_gracefully(self) -> None:
        """Refuse new calls; once the open ones have ended, GOAWAY and close."""
        self._closing = True
        self.writer.close()

    def end_calls(self, status: Status) -> None:
        """Server side: end every call in progress with status."""
        for stream in list(self.streams.values()):
            if not stream.client_side:
                stream.end(status)

    def stream_closed(self, stream: Stream) -> None:
        """Forget a stream once it has ended."""
        self.streams.pop(stream.stream_id, None)
        self.waiting_to_send.discard(stream)
        self.protocol.forget_stream(stream.stream_id)
        self.writer.wake()

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
                self.writer.wake()

    # -- internals -----------------------------------------------------------------

    def _wake_senders(self) -> None:
        for stream in self.waiting_to_send:
            stream._wake_writable()

    def _stop(self) -> None:
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def _read_until_closed(
        self, handle_call: CallHandler | None, task_group: anyio.abc.TaskGroup
    ) -> None:
        """Read and dispatch until the peer goes; a server-side peer that has not made
        its first call within the handshake timeout is dropped."""
        if handle_call is not None:
            limits = self.protocol.limits
            # A scope for the handshake only: an idle member keeps none.
            with anyio.move_on_after(limits.handshake_timeout) as handshake:
                while not self._called:
                    if not await self._read_once(handle_call, task_group):
                        return
            if handshake.cancelled_caught:
                log.info("%s: no call within %ss; closing", self.peer, limits.handshake_timeout)
                self._on_cut_off("handshake_timeout")
                return
        while await self._read_once(handle_call, task_group):
            pass

    async def _read_once(
        self, handle_call: CallHandler | None, task_group: anyio.abc.TaskGroup
    ) -> bool:
        """One socket read, every event of it dispatched; False once the connection is
        over (the peer went, or broke a rule)."""
        try:
            data = await self._reader.receive()
        except (
            anyio.EndOfStream,
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            OSError,
        ):
            return False
        self.last_heard = anyio.current_time()
        if not self.heard_from_peer:
            self.heard_from_peer = True
            self.first_bytes = data[:16]
        try:
            events = self.protocol.receive_data(data, self.last_heard)
        except Flood as flood:
            log.warning(
                "%s: cut off for flooding (%s); %d call(s) ended",
                self.peer,
                flood,
                len(self.streams),
            )
            self._on_cut_off(f"flood_{flood.reason}")
            await self.writer.last_words(LAST_WORDS_SECONDS)
            return False
        except (h2.exceptions.H2Error, ProtocolError) as error:
            log.info("%s: HTTP/2 protocol error, closing: %s", self.peer, error)
            self._on_cut_off("protocol_error")
            return False
        for event in events:
            self._dispatch(event, handle_call, task_group)
        if self.writer.pending() > MAX_OUTBOUND:
            log.warning("%s: peer makes us write but does not read; closing", self.peer)
            self._on_cut_off("not_reading")
            return False
        if self.protocol.held_answers_grew:
            self.writer.wake_soon()
        else:
            self.writer.wake()
        return True

    def _dispatch(
        self, event: Event, handle_call: CallHandler | None, task_group: anyio.abc.TaskGroup
    ) -> None:
        if isinstance(event, WindowUpdated):
            if event.stream_id == 0:
                self._wake_senders()
            elif (updated := self.streams.get(event.stream_id)) is not None:
                updated._wake_writable()
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
            self._called = True  # a call: the handshake is done
            call = Stream(self, event.stream_id, event)
            self.streams[event.stream_id] = call
            task_group.start_soon(self._serve_call, call, handle_call)
            return
        if isinstance(event, StreamRefused) and event.stream_id not in self.streams:
            # Malformed request headers: there is no call to end, answer with a status.
            self._refuse(event.stream_id, statuses.malformed_request(event.reason))
            return
        stream = self.streams.get(event.stream_id)
        if stream is None:
            if isinstance(event, MessageReceived):
                self.protocol.acknowledge(event.stream_id, event.flow_controlled_length)
            return
        if isinstance(event, MessageReceived):
            stream._on_message(event.data, event.flow_controlled_length)
        elif isinstance(event, RequestEnded):
            stream._on_remote_end(None)
        elif isinstance(event, ResponseEnded):
            stream._on_remote_end(event.status)
        elif isinstance(event, StreamReset):
            # REFUSED_STREAM: the peer did not start the call (it is closing), so it is
            # safe to try elsewhere: UNAVAILABLE, as gRPC's HTTP/2 mapping has it.
            refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
            stream._lost(statuses.refused_by_peer() if refused else statuses.cancelled_by_peer())
        elif isinstance(event, StreamRefused):
            refusal = statuses.message_too_large if event.too_large else statuses.malformed_request
            stream._on_refused(refusal(event.reason))

    def _refuse(self, stream_id: int, status: Status) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self.protocol.respond_status(stream_id, status, CONTENT_TYPE_SUFFIX)
            self.protocol.reset(stream_id, h2.errors.ErrorCodes.NO_ERROR)

    async def _serve_call(self, stream: Stream, handle_call: CallHandler) -> None:
        """Run one call's handler; its returned status ends the call unless something
        ended it first (`Stream.end`: the first status wins)."""
        status = statuses.cancelled()
        try:
            # except*: a handler's task group delivers StreamGone (and errors) in a group,
            # and only when the call's scope exits, after its Cancelled is taken out.
            try:
                with anyio.CancelScope() as scope:
                    stream.scope = scope
                    if stream.outcome is not None:
                        # Reset or refused before its task ran (a rapid reset costs no handler).
                        scope.cancel()
                    status = await handle_call(stream)
            except* StreamGone:
                pass
            except* Exception:
                log.exception("%s: call handler failed", self.peer)
                status = statuses.internal()
        finally:
            stream.scope = None
            stream.end(status)
