"""Every reach into the internals of h2, hpack and purerpc, and nothing else.

The transport is faster and smaller for touching what these libraries do not promise:
h2's outgoing buffer, state machines, stream windows and frame dispatch table, hpack's
header tables, purerpc's private event handlers and read buffers. An upgrade of any of
them may change those, so they are touched here only, and the rest of the transport
calls this module. At import it checks that the installed versions are the ones whose
internals it mirrors (`PINNED`, the ranges pyproject.toml declares) and refuses any
other with a sentence. The differential tests pin what it mirrors: tests/test_h2fast.py
runs the hand-made moves and h2's on twin connections and compares every byte and
window, tests/test_hpackcache.py replays header tables against hpack's decoding, and
tests/test_transport.py checks the read of h2's buffer and the compact settings.

What it holds:
- the version check;
- compact stand-ins for h2's settings, hpack's table queue and purerpc's read buffers
  (deques cost an idle member kilobytes) and h2's frame dispatch table, bound on lookup;
- `GrpcConnection`, purerpc's `GRPCConnection` with its private hooks turned into
  methods of ours (`on_request`, `on_data`, ...) and h2's state behind small methods
  (`buffered`, `send_windows`, `closed`, ...);
- h2's two hottest moves done by hand (`receive_control`, `send_data`): a broadcast
  costs per member write, and in a busy room most of a server's work is framing DATA
  for a member and reading what every grpc-go client sends back while it receives (a
  WINDOW_UPDATE and a bandwidth-estimation PING per batch). Both are simple in the
  plain case, so they are done directly on h2's own state: the same window arithmetic,
  the same bytes in h2's outgoing buffer, the same events. Anything less plain (another
  frame type, a partial frame, a stream not open, a connection not open, a window that
  would overflow) returns None or False, and the caller hands the work to h2 as before;
- snapshots of an hpack decoder's table, for replaying a first header block
  (hpackcache.py).
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import re
import struct
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import h2
import h2.connection
import h2.events
import h2.settings
import h2.stream
import hpack
import purerpc
from hpack.table import HeaderTable
from purerpc.grpclib.buffers import MessageReadBuffer
from purerpc.grpclib.connection import GRPCConnection
from purerpc.grpclib.events import Event, WindowUpdated

from purechat.errors import PurechatError

# The versions whose internals this module mirrors, as (lowest, first one not checked);
# pyproject.toml declares the same ranges (a test holds them together).
PINNED: Mapping[str, tuple[str, str]] = MappingProxyType(
    {"h2": ("3.2", "3.3"), "hpack": ("3.0", "3.1"), "purerpc": ("0.8", "0.9")}
)


class UnpinnedVersion(PurechatError):
    """An installed h2, hpack or purerpc is not a version this module was checked against."""


def _release(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version string ("3.2.0rc1" -> (3, 2, 0))."""
    match = re.match(r"\d+(\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def check_versions(installed: Mapping[str, str]) -> None:
    """UnpinnedVersion, with a sentence for a person, unless every version is pinned."""
    for name, (lowest, beyond) in PINNED.items():
        version = installed[name]
        if not _release(lowest) <= _release(version) < _release(beyond):
            raise UnpinnedVersion(
                f"purechat reaches into {name}'s internals and was checked against "
                f"{name}>={lowest},<{beyond}, but {name} {version} is installed; "
                f"install a version in that range (pip install '{name}>={lowest},<{beyond}')."
            )


def _installed(module: Any, name: str) -> str:
    version = getattr(module, "__version__", None)
    return str(version) if version else importlib.metadata.version(name)


check_versions(
    {
        "h2": _installed(h2, "h2"),
        "hpack": _installed(hpack, "hpack"),
        "purerpc": _installed(purerpc, "purerpc"),
    }
)


# -- compact stand-ins -------------------------------------------------------------


class ShortDeque(list[Any]):
    """The few deque operations h2, hpack and purerpc use, on a list.

    An empty or one-item deque costs about 600 bytes; h2 keeps one per setting per
    side and hpack one per header table, which made them the largest single cost of
    an idle connection (~8 KiB of ~55). These hold a handful of items at most.
    """

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class CompactSettings(h2.settings.Settings):  # type: ignore[misc]
    """h2's Settings, keeping each setting's values in a ShortDeque.

    Made from the values h2's own constructor gives (`_settings_values`, once per kind
    of connection): building and checking them per connection was 5% of a join.
    """

    def __init__(self, client: bool = True, initial_values: dict[int, int] | None = None):
        values = _settings_values(client, tuple((initial_values or {}).items()))
        self._settings: dict[int, ShortDeque] = {k: ShortDeque(v) for k, v in values}

    def __setitem__(self, key: int, value: int) -> None:
        if key not in self._settings:
            self._settings[key] = ShortDeque([None])
        super().__setitem__(key, value)


@functools.cache
def _settings_values(
    client: bool, initial_values: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, tuple[int, ...]], ...]:
    """What h2's Settings holds when made with these values (checked by h2), frozen."""
    made = h2.settings.Settings(client=client, initial_values=dict(initial_values))
    return tuple((code, tuple(values)) for code, values in made._settings.items())


class _CompactReadBuffer(MessageReadBuffer):  # type: ignore[misc]
    """purerpc's per-stream read buffer, keeping its queues in ShortDeques: two empty
    deques cost every idle member about 1.5 KiB."""

    def __init__(self, message_encoding: str | None, max_message_length: int):
        super().__init__(message_encoding, max_message_length)
        self._buffer._deque = ShortDeque()
        self._messages = ShortDeque()

    def read_all_complete_messages_flowcontrol(self) -> list[tuple[bytes, int]]:
        messages: list[tuple[bytes, int]] = self._messages
        self._messages = ShortDeque()
        return messages


class _FrameDispatch:
    """h2's frame type -> handler table, bound when looked up (see `_bind_on_lookup`).

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


# -- purerpc's connection, its private parts behind methods of ours ------------------

# h2 event type -> the GrpcConnection method that turns it into gRPC events.
_HOOKS: Mapping[type, str] = MappingProxyType(
    {
        h2.events.RequestReceived: "on_request",
        h2.events.ResponseReceived: "on_response",
        h2.events.TrailersReceived: "on_trailers",
        h2.events.InformationalResponseReceived: "on_informational",
        h2.events.DataReceived: "on_data",
        h2.events.WindowUpdated: "on_window_updated",
        h2.events.RemoteSettingsChanged: "on_settings_changed",
        h2.events.PingAckReceived: "on_ping_acknowledged",
        h2.events.StreamEnded: "on_stream_ended",
        h2.events.StreamReset: "on_stream_reset",
        h2.events.ConnectionTerminated: "on_connection_terminated",
    }
)
_OPEN = (h2.connection.ConnectionState.SERVER_OPEN, h2.connection.ConnectionState.CLIENT_OPEN)
_CLOSED = h2.connection.ConnectionState.CLOSED
# Stream states in which sending DATA (without END_STREAM) changes nothing.
_SENDING = (h2.stream.StreamState.OPEN, h2.stream.StreamState.HALF_CLOSED_REMOTE)


class GrpcConnection(GRPCConnection):  # type: ignore[misc]
    """purerpc's sans-I/O gRPC connection, as transport/protocol.py builds on it.

    purerpc's private handlers become the `on_*` methods (`translate` dispatches an h2
    event to them; a subclass overrides what it changes), its settings hook takes
    `initial_settings()`, and what the transport needs of h2's state is a method here.
    """

    def initial_settings(self) -> dict[int, int]:
        """The SETTINGS this side announces (h2 SettingCodes -> value)."""
        return {}

    def _set_h2_connection_local_settings(self) -> None:
        # purerpc's hook, called from its constructor.
        h2c = self.h2_connection
        h2c.remote_settings = CompactSettings(client=not self.config.client_side)
        h2c.local_settings = CompactSettings(
            client=self.config.client_side, initial_values=self.initial_settings()
        )

    def use_decoder(self, decoder: hpack.Decoder) -> None:
        """Decode header blocks with decoder (hpackcache.py's), under h2's own limits."""
        h2c = self.h2_connection
        decoder.max_header_list_size = h2c.decoder.max_header_list_size
        decoder.max_allowed_table_size = h2c.decoder.max_allowed_table_size
        h2c.decoder = decoder

    def compact(self) -> None:
        """Swap the connection's deque-based parts for compact ones (see ShortDeque)."""
        h2c = self.h2_connection
        for table in (h2c.encoder.header_table, h2c.decoder.header_table):
            table.dynamic_entries = ShortDeque(table.dynamic_entries)
        bind_dispatch_on_lookup(h2c)

    # -- h2's state ------------------------------------------------------------------

    def buffered(self) -> int:
        """Bytes h2 holds for the socket and has not handed out yet.

        purerpc's patched `data_to_send` keeps outgoing bytes in `_data_to_send` (a
        bytearray it replaces when emptied); tests/test_transport.py pins this read.
        """
        return len(self.h2_connection._data_to_send)

    def send_windows(self, stream_id: int) -> tuple[int, int] | None:
        """(the stream's send window, the connection's); None when h2 has no such stream."""
        h2c = self.h2_connection
        stream = h2c.streams.get(stream_id)
        if stream is None:
            return None
        return stream.outbound_flow_control_window, h2c.outbound_flow_control_window

    def peer_initial_window(self) -> int:
        """The send window the peer gives each new stream."""
        return int(self.h2_connection.remote_settings.initial_window_size)

    def closed(self) -> bool:
        """h2 has sent or received GOAWAY: nothing more goes out on this connection."""
        return self.h2_connection.state_machine.state is _CLOSED

    # -- purerpc's handlers, as ours ------------------------------------------------

    def translate(self, event: Any) -> list[Event]:
        """The gRPC events for one h2 event (purerpc's dispatch, by type)."""
        hook = _HOOKS.get(type(event))
        if hook is None:
            return []
        handled: list[Event] = getattr(self, hook)(event)
        return handled

    def on_request(self, event: h2.events.RequestReceived) -> list[Event]:
        """purerpc's parsing of a request; ProtocolError, KeyError or ValueError when
        the headers are not a gRPC request."""
        requests: list[Event] = self._request_received(event)
        self._compact_read_buffer(event.stream_id, requests[0])
        return requests

    def on_response(self, event: h2.events.ResponseReceived) -> list[Event]:
        responses: list[Event] = self._response_received(event)
        self._compact_read_buffer(event.stream_id, responses[0])
        return responses

    def _compact_read_buffer(self, stream_id: int, opening: Event) -> None:
        if stream_id in self.message_read_buffers:
            self.message_read_buffers[stream_id] = _CompactReadBuffer(
                getattr(opening, "message_encoding", None), self.config.max_message_length
            )

    def on_trailers(self, event: h2.events.TrailersReceived) -> list[Event]:
        return self._trailers_received(event)  # type: ignore[no-any-return]

    def on_informational(self, event: h2.events.InformationalResponseReceived) -> list[Event]:
        return []

    def on_data(self, event: h2.events.DataReceived) -> list[Event]:
        return self._data_received(event)  # type: ignore[no-any-return]

    def on_window_updated(self, event: h2.events.WindowUpdated) -> list[Event]:
        return self._window_updated(event)  # type: ignore[no-any-return]

    def on_settings_changed(self, event: h2.events.RemoteSettingsChanged) -> list[Event]:
        return self._remote_settings_changed(event)  # type: ignore[no-any-return]

    def on_ping_acknowledged(self, event: h2.events.PingAckReceived) -> list[Event]:
        return [PingAcknowledged()]

    def on_stream_ended(self, event: h2.events.StreamEnded) -> list[Event]:
        return self._stream_ended(event)  # type: ignore[no-any-return]

    def on_stream_reset(self, event: h2.events.StreamReset) -> list[Event]:
        return []

    def on_connection_terminated(self, event: h2.events.ConnectionTerminated) -> list[Event]:
        return []


# -- h2's two hottest moves, by hand -------------------------------------------------

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


# -- hpack's header table ------------------------------------------------------------


class TableSnapshot:
    """What a decoder's header table holds, to give another fresh table the same."""

    __slots__ = ("entries", "maxsize", "resized", "size")

    def __init__(self, decoder: hpack.Decoder):
        table = decoder.header_table
        self.entries = tuple(table.dynamic_entries)
        self.size: int = table._current_size
        self.maxsize: int = table._maxsize
        self.resized: bool = table.resized

    def restore(self, decoder: hpack.Decoder) -> None:
        """Make a fresh decoder's table what the snapshot's was."""
        table = decoder.header_table
        table.dynamic_entries.extend(self.entries)
        table._current_size = self.size
        table._maxsize = self.maxsize
        table.resized = self.resized


def table_is_fresh(decoder: hpack.Decoder) -> bool:
    """The decoder's table is as a new connection's: empty, never resized."""
    table = decoder.header_table
    return (
        not table.dynamic_entries
        and not table.resized
        and table._maxsize == HeaderTable.DEFAULT_SIZE
    )
