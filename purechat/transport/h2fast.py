"""h2's two hottest moves done by hand, with exactly h2's effects, or not at all.

A broadcast costs per member write, and in a busy room most of a server's work is two
things h2 does slowly for what they are: framing DATA for a member (a state machine
step, a frame object and its serialisation per frame) and reading what every grpc-go
client sends back while it receives (a WINDOW_UPDATE and a bandwidth-estimation PING
per batch, parsed through frame objects and events). Both are simple in the plain
case, so here they are done directly on h2's own state: the same window arithmetic,
the same bytes in h2's outgoing buffer, the same events. Anything less plain (another
frame type, a partial frame, a stream not open, a connection not open, a window that
would overflow) returns None, and the caller hands the work to h2 as before.

tests/test_h2fast.py runs each move both ways on twin connections and compares every
byte and every window, so an h2 upgrade that changes what these mirror fails there.

One more reach into h2, for memory rather than time: `bind_dispatch_on_lookup`.
"""

from __future__ import annotations

import copy
import struct
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import h2.connection
import h2.stream
from purerpc.grpclib.events import Event, WindowUpdated

# Frame types and flags (RFC 9113, section 6).
_DATA, _PING, _WINDOW_UPDATE = 0x0, 0x6, 0x8
_ACK = 0x1
_HEADER = 9
_FRAME_HEADER = struct.Struct(">BHBBI")  # length (24 bits), type, flags, stream id
_WORD = struct.Struct(">I")
_LARGEST_WINDOW = 2**31 - 1
# Stream ids and window increments are 31 bits; the top bit is reserved.
_31_BITS = 2**31 - 1
_PING_ACK_HEADER = b"\x00\x00\x08" + bytes([_PING, _ACK]) + b"\x00\x00\x00\x00"
# Connection states in which receiving PING and WINDOW_UPDATE and sending DATA leave
# the state as it is (h2's transition table).
_OPEN = (h2.connection.ConnectionState.SERVER_OPEN, h2.connection.ConnectionState.CLIENT_OPEN)
# Stream states in which sending DATA (without END_STREAM) changes nothing.
_SENDING = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)


class PingFromPeer(Event):  # type: ignore[misc]
    """A PING the peer sent (answered already); for the flood rule to count."""

    def __init__(self) -> None:
        self.stream_id = 0


class PingAcknowledged(Event):  # type: ignore[misc]
    """The peer answered our (keepalive) PING."""

    def __init__(self) -> None:
        self.stream_id = 0


def receive_control(
    h2c: h2.connection.H2Connection, data: bytes, hold: bytearray | None = None
) -> list[Event] | None:
    """Take data that is only whole PING and connection WINDOW_UPDATE frames, as h2's
    receive_data would: PINGs answered in h2's outgoing buffer (or in `hold`, for the
    caller to send a little later), the window grown.

    None (and nothing changed) for anything else; then h2 takes data.
    """
    if h2c.state_machine.state not in _OPEN or h2c.incoming_buffer.data:
        return None
    buffer = h2c.incoming_buffer
    if buffer._preamble_len or buffer._headers_buffer:
        return None
    # Read every frame first, so nothing is applied unless all of it can be.
    size, offset, window = len(data), 0, h2c.outbound_flow_control_window
    events: list[Event] = []
    answers = b""
    while offset < size:
        if size - offset < _HEADER:
            return None
        high, low, kind, flags, stream_id = _FRAME_HEADER.unpack_from(data, offset)
        end = offset + _HEADER + (high << 16 | low)
        if end > size or stream_id & _31_BITS:
            return None
        if kind == _PING and end - offset == _HEADER + 8:
            if flags & _ACK:
                events.append(PingAcknowledged())
            else:
                answers += _PING_ACK_HEADER + data[offset + _HEADER : end]
                events.append(PingFromPeer())
        elif kind == _WINDOW_UPDATE and end - offset == _HEADER + 4:
            increment = _WORD.unpack_from(data, end - 4)[0] & _31_BITS
            window += increment
            if increment == 0 or window > _LARGEST_WINDOW:
                return None
            events.append(WindowUpdated(stream_id=0, delta=increment))
        else:
            return None
        offset = end
    h2c.outbound_flow_control_window = window
    if answers:
        if hold is not None:
            hold += answers
        else:
            h2c._data_to_send += answers
    return events


def send_held(h2c: h2.connection.H2Connection, held: bytearray) -> None:
    """Queue PING answers held by receive_control, after whatever h2 queued since."""
    h2c._data_to_send += held
    del held[:]


def send_data(h2c: h2.connection.H2Connection, stream_id: int, data: bytes) -> bool:
    """Frame data for an open stream as h2's send_data would (no END_STREAM), in frames
    of at most the peer's frame size; False (and nothing changed) when the stream or
    the connection is not plainly open or the windows would not take it all."""
    stream = h2c.streams.get(stream_id)
    size = len(data)
    if (
        stream is None
        or stream.state_machine.state not in _SENDING
        or h2c.state_machine.state not in _OPEN
        or size > h2c.outbound_flow_control_window
        or size > stream.outbound_flow_control_window
    ):
        return False
    step = h2c.max_outbound_frame_size
    tail = b"\x00\x00" + stream_id.to_bytes(4, "big")  # type DATA, no flags, the stream
    out = h2c._data_to_send
    for start in range(0, size, step) if size > step else (0,):
        chunk = data[start : start + step] if size > step else data
        out += len(chunk).to_bytes(3, "big")
        out += tail
        out += chunk
    h2c.outbound_flow_control_window -= size
    stream.outbound_flow_control_window -= size
    return True


class _FrameDispatch:
    """h2's frame type -> handler table, bound when looked up (see below).

    It holds its connection weakly: the connection holds it, and a strong reference
    back would make every connection a reference cycle, freed only by the collector.
    """

    __slots__ = ("_h2c",)

    def __init__(self, h2c: h2.connection.H2Connection):
        self._h2c = weakref.ref(h2c)

    def __getitem__(self, frame_type: type) -> Any:
        return getattr(self._h2c(), _HANDLER_NAMES[frame_type])

    def __deepcopy__(self, memo: dict[int, Any]) -> _FrameDispatch:
        """A copy of a connection dispatches to the copy (tests make twins this way)."""
        return _FrameDispatch(copy.deepcopy(self._h2c(), memo))


# The handlers' names, by frame type, as h2 dispatches them.
_HANDLER_NAMES: Mapping[type, str] = MappingProxyType(
    {
        frame_type: handler.__name__
        for frame_type, handler in h2.connection.H2Connection()._frame_dispatch_table.items()
    }
)


def bind_dispatch_on_lookup(h2c: h2.connection.H2Connection) -> None:
    """Replace h2's per-connection dict of twelve bound frame handlers (~1.4 KiB, about
    a twentieth of an idle member) with an object that binds on lookup; h2 only ever
    indexes it by frame type, and an unknown type still raises KeyError."""
    h2c._frame_dispatch_table = _FrameDispatch(h2c)
