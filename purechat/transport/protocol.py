"""purerpc's sans-I/O gRPC connection, with the holes that matter to a server closed.

`GrpcProtocol` builds on purerpc's `GRPCConnection` (bytes in, events out), through
h2private.py's `GrpcConnection`, the one module that touches its internals and h2's, and
changes what it does where one bad stream could hurt its neighbours or where memory
was unbounded: a too-large or compressed message fails that stream alone, a reset
stream is reported instead of silently dropped, malformed request headers refuse
that call instead of killing the connection, and flow-control windows are ours.

Flood control follows grpc-go's server enforcement policy: a PING (or SETTINGS) frame
counts against a peer only when we have sent it no DATA or HEADERS since its previous
one. Real clients ping while they receive (grpc-go estimates bandwidth that way) and
answer data with WINDOW_UPDATEs; a busy room must never look like a flood. A peer that
pings while we send it nothing, or resets streams in a storm, is cut off.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from purerpc.grpclib.connection import GRPCConfiguration
from purerpc.grpclib.events import Event, MessageReceived
from purerpc.grpclib.exceptions import ProtocolError
from purerpc.grpclib.status import Status

from purechat.errors import TransportError
from purechat.transport import h2private
from purechat.transport.h2private import PingFromPeer
from purechat.transport.hpackcache import FirstHeaderBlocks

KIB = 1024


@dataclass(frozen=True, slots=True)
class TransportLimits:
    """Bounds on what one peer can make us hold."""

    # Largest gRPC message accepted; refused from its 5-byte header, before buffering.
    max_message_bytes: int = 64 * KIB
    # Streams one connection may have open at once.
    max_concurrent_streams: int = 100
    # A socket write that makes no progress for this long ends the connection.
    write_timeout: float = 30.0
    # A new connection must have sent its first call within this long.
    handshake_timeout: float = 10.0
    # Per connection and per 10 seconds: more stream resets than this from the peer is
    # a flood (CVE-2023-44487), and so are more PING or SETTINGS frames that arrived
    # while we had sent the peer nothing since its previous one.
    max_resets: int = 200
    max_control_frames: int = 200
    # Per-stream receive window; None derives it from max_message_bytes.
    receive_window: int | None = None

    @property
    def stream_window(self) -> int:
        """Per-stream receive window: must hold one whole message plus its header."""
        floor = max(2 * self.max_message_bytes, 64 * KIB)
        return max(self.receive_window or 0, floor)

    @property
    def connection_window(self) -> int:
        """Receive window shared by all streams of a connection."""
        return max(4 * self.stream_window, 1024 * KIB)


# A client has one or two streams and wants them never to stall on window updates.
CLIENT_LIMITS = TransportLimits(receive_window=1024 * KIB)


class StreamReset(Event):  # type: ignore[misc]
    def __init__(self, stream_id: int, error_code: int):
        self.stream_id = stream_id
        self.error_code = error_code


class StreamRefused(Event):  # type: ignore[misc]
    """A stream this side cannot serve; `reason` is a sentence for the peer."""

    def __init__(self, stream_id: int, reason: str, *, too_large: bool = False):
        self.stream_id = stream_id
        self.reason = reason
        self.too_large = too_large


class ConnectionTerminated(Event):  # type: ignore[misc]
    """The peer sent GOAWAY."""

    def __init__(self, error_code: int):
        self.stream_id = 0
        self.error_code = error_code


class Flood(TransportError):
    """The peer sends control frames or resets faster than any client needs to.

    `reason` names the kind of flood for logs and metrics ("pings", "resets").
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


FLOOD_WINDOW_SECONDS = 10.0


class GrpcProtocol(h2private.GrpcConnection):
    def __init__(
        self,
        *,
        client_side: bool,
        limits: TransportLimits | None = None,
        first_header_blocks: FirstHeaderBlocks | None = None,
    ):
        """first_header_blocks: the server's decoded first blocks (hpackcache.py)."""
        self.limits = limits or TransportLimits()
        super().__init__(
            GRPCConfiguration(
                client_side=client_side, max_message_length=self.limits.max_message_bytes
            )
        )
        if first_header_blocks is not None:
            self.use_decoder(first_header_blocks.decoder())
        self.compact()
        # Flow-controlled bytes received per stream and not yet given back, so a stream
        # that goes away returns its share of the connection window.
        self._unacked: dict[int, int] = {}
        self._flood_window_start = 0.0
        self._resets = 0
        # PINGs and SETTINGS that arrived while we had sent nothing since the last one.
        self._control_strikes = 0
        self._sent_since_control = False
        # Server side with a flusher: PING answers wait in `held_answers` until the
        # connection's writer sends them (see flusher.py). held_answers_grew: the last
        # receive_data added to them.
        self.hold_answers = False
        self.held_answers = bytearray()
        self.held_answers_grew = False

    def initial_settings(self) -> dict[int, int]:
        codes = h2.settings.SettingCodes
        return {
            codes.MAX_CONCURRENT_STREAMS: self.limits.max_concurrent_streams,
            codes.INITIAL_WINDOW_SIZE: self.limits.stream_window,
            codes.MAX_FRAME_SIZE: 16 * KIB,
            codes.MAX_HEADER_LIST_SIZE: self.MAX_HEADER_LIST_SIZE,
        }

    def initiate_connection(self) -> None:
        # purerpc opens the connection window by 2**30; ours stays bounded.
        self.h2_connection.initiate_connection()
        extra = self.limits.connection_window - 65535
        if extra > 0:
            self.h2_connection.increment_flow_control_window(extra)

    def on_request(self, event: h2.events.RequestReceived) -> list[Event]:
        try:
            requests = super().on_request(event)
        except (ProtocolError, KeyError, ValueError) as error:
            return [StreamRefused(event.stream_id, f"Malformed gRPC request: {error}")]
        encoding = getattr(requests[0], "message_encoding", None)
        if encoding not in (None, "identity"):
            self.message_read_buffers.pop(event.stream_id, None)
            return [StreamRefused(event.stream_id, "Compressed messages are not supported.")]
        return requests

    def on_data(self, event: h2.events.DataReceived) -> list[Event]:
        stream_id = event.stream_id
        buffer = self.message_read_buffers.get(stream_id)
        if buffer is None:
            # Data for a stream we no longer read: hand its window straight back.
            self._give_back(event.flow_controlled_length, stream_id)
            return []
        self._unacked[stream_id] = self._unacked.get(stream_id, 0) + event.flow_controlled_length
        try:
            buffer.data_received(event.data, event.flow_controlled_length)
        except ProtocolError as error:  # MessageTooLargeError, bad compression flag
            self.forget_stream(stream_id)
            return [StreamRefused(stream_id, str(error), too_large=True)]
        return [
            MessageReceived(stream_id, message, length)
            for message, length in buffer.read_all_complete_messages_flowcontrol()
        ]

    def receive_data(self, data: bytes, now: float = 0.0) -> list[Event]:
        """purerpc's receive_data, dispatching by type, and counting what floods."""
        if now - self._flood_window_start > FLOOD_WINDOW_SECONDS:
            self._flood_window_start, self._resets, self._control_strikes = now, 0, 0
        events: list[Event] = []
        held = len(self.held_answers)
        hold = self.held_answers if self.hold_answers else None
        fast = h2private.receive_control(self.h2_connection, data, hold)
        self.held_answers_grew = len(self.held_answers) > held
        if fast is not None:  # only pings and window updates: the common case
            for event in fast:
                if isinstance(event, PingFromPeer):
                    self._count_control_frame()
                else:
                    events.append(event)
        else:
            for event in self.h2_connection.receive_data(data):
                if isinstance(event, h2.events.StreamReset):
                    self._resets += 1
                elif isinstance(event, (h2.events.PingReceived, h2.events.RemoteSettingsChanged)):
                    self._count_control_frame()
                events.extend(self.translate(event))
        limits = self.limits
        if self._resets > limits.max_resets:
            self._calm_down()
            raise Flood("resets", f"{self._resets} stream resets in {FLOOD_WINDOW_SECONDS:g}s")
        if self._control_strikes > limits.max_control_frames:
            self._calm_down()
            raise Flood(
                "pings",
                f"{self._control_strikes} pings or settings in {FLOOD_WINDOW_SECONDS:g}s "
                "while nothing was sent to it",
            )
        return events

    def _count_control_frame(self) -> None:
        """A PING or SETTINGS after data we sent is a client reacting to it: no strike."""
        if self._sent_since_control:
            self._sent_since_control = False
        else:
            self._control_strikes += 1

    def _calm_down(self) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2_connection.close_connection(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM)

    # -- what we send: DATA and HEADERS reset the peer's control-frame strikes -------

    def send_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        """Send data on a stream, in frames of at most the peer's frame size."""
        self._sent_since_control = True
        h2c = self.h2_connection
        if end_stream or not h2private.send_data(h2c, stream_id, data):
            step = h2c.max_outbound_frame_size
            for start in range(0, len(data), step) if len(data) > step else (0,):
                last = start + step >= len(data)
                h2c.send_data(stream_id, data[start : start + step], end_stream=end_stream and last)

    def start_response(
        self, stream_id: int, content_type_suffix: str = "", custom_metadata: Any = ()
    ) -> None:
        self._sent_since_control = True
        super().start_response(stream_id, content_type_suffix, custom_metadata)

    def end_response(self, stream_id: int, status: Status, custom_metadata: Any = ()) -> None:
        self._sent_since_control = True
        super().end_response(stream_id, status, custom_metadata)

    def respond_status(
        self,
        stream_id: int,
        status: Status,
        content_type_suffix: str = "",
        custom_metadata: Any = (),
    ) -> None:
        self._sent_since_control = True
        super().respond_status(stream_id, status, content_type_suffix, custom_metadata)

    def send_held_answers(self) -> None:
        """Queue the PING answers held since the last time, behind what h2 holds."""
        if self.held_answers:
            h2private.send_held(self.h2_connection, self.held_answers)

    def ping(self) -> None:
        self.h2_connection.ping(b"purechat")

    def on_stream_reset(self, event: h2.events.StreamReset) -> list[Event]:
        self.forget_stream(event.stream_id)
        return [StreamReset(event.stream_id, int(event.error_code))]

    def on_connection_terminated(self, event: h2.events.ConnectionTerminated) -> list[Event]:
        return [ConnectionTerminated(int(event.error_code or 0))]

    def acknowledge(self, stream_id: int, flow_controlled_length: int) -> None:
        """Give back the window of a message the application has consumed."""
        remaining = self._unacked.get(stream_id)
        if remaining is None:
            return
        self._unacked[stream_id] = remaining - flow_controlled_length
        self._give_back(flow_controlled_length, stream_id)

    def forget_stream(self, stream_id: int) -> None:
        """Drop a stream's read state and return its unconsumed connection window."""
        self.message_read_buffers.pop(stream_id, None)
        leftover = self._unacked.pop(stream_id, 0)
        if leftover > 0:
            self._give_back(leftover, None)

    def _give_back(self, size: int, stream_id: int | None) -> None:
        """Return receive window to the peer; nothing to return once the connection closed.

        h2 refuses WINDOW_UPDATE after GOAWAY, and an exception here would lose every
        other event of the same read (final statuses among them).
        """
        with contextlib.suppress(h2.exceptions.ProtocolError):
            if stream_id is None:
                self.h2_connection.increment_flow_control_window(size)
            else:
                self.h2_connection.acknowledge_received_data(size, stream_id)

    def reset(self, stream_id: int, error_code: int = h2.errors.ErrorCodes.CANCEL) -> None:
        """Reset a stream unless h2 already considers it closed."""
        self.forget_stream(stream_id)
        with contextlib.suppress(h2.exceptions.H2Error):
            self.h2_connection.reset_stream(stream_id, error_code)
