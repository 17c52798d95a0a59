"""h2's hottest moves done by hand against h2: twin connections, one driven by hand and
one by h2, must end in the same state, byte for byte (see purechat/transport/h2private.py)."""

from __future__ import annotations

import copy
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest
from hyperframe.frame import DataFrame, PingFrame, SettingsFrame, WindowUpdateFrame
from hypothesis import given
from hypothesis import strategies as st

from purechat.transport import GrpcProtocol, h2private

STREAM = 1


def _served() -> h2.connection.H2Connection:
    """A server-side h2 connection with one open gRPC call on stream 1, as the server
    holds it once a client has called."""
    server = GrpcProtocol(client_side=False)
    server.initiate_connection()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    headers = [(":method", "POST"), (":scheme", "http"), (":path", "/a/b"),
               (":authority", "x"), ("content-type", "application/grpc")]  # fmt: skip
    client.send_headers(STREAM, headers)
    server.receive_data(client.data_to_send(), 0.0)
    server.start_response(STREAM)
    h2c: h2.connection.H2Connection = server.h2_connection
    h2c.data_to_send()
    return h2c


def _twins() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    one = _served()
    return one, copy.deepcopy(one)


def _state(h2c: h2.connection.H2Connection) -> tuple[Any, ...]:
    stream = h2c.streams[STREAM]
    return (
        bytes(h2c._data_to_send),
        h2c.outbound_flow_control_window,
        stream.outbound_flow_control_window,
        h2c.state_machine.state,
        stream.state_machine.state,
        h2c.incoming_buffer.data,
    )


def _summary(events: list[Any]) -> list[tuple[str, int]]:
    """Events as (kind, window delta), whichever side produced them."""
    names = {
        h2.events.PingReceived: "ping",
        h2private.PingFromPeer: "ping",
        h2.events.PingAckReceived: "ping ack",
        h2private.PingAcknowledged: "ping ack",
    }
    return [(names.get(type(event), "window"), getattr(event, "delta", 0) or 0) for event in events]


def _ping(opaque: bytes, ack: bool = False) -> bytes:
    frame = PingFrame(0)
    frame.opaque_data = opaque
    if ack:
        frame.flags.add("ACK")
    return bytes(frame.serialize())


def _window_update(increment: int, stream_id: int = 0) -> bytes:
    frame = WindowUpdateFrame(stream_id)
    frame.window_increment = increment
    return bytes(frame.serialize())


control_frames = st.lists(
    st.one_of(
        st.builds(_ping, st.binary(min_size=8, max_size=8), st.booleans()),
        st.builds(_window_update, st.integers(1, 2**20)),
    ),
    min_size=1,
    max_size=6,
)


@given(control_frames)
def test_pings_and_window_updates_by_hand_are_what_h2_makes_of_them(frames: list[bytes]) -> None:
    by_hand, by_h2 = _twins()
    data = b"".join(frames)
    fast = h2private.receive_control(by_hand, data)
    assert fast is not None
    slow = by_h2.receive_data(data)
    assert _state(by_hand) == _state(by_h2)
    assert _summary(fast) == _summary(slow)


@given(control_frames, st.binary(max_size=100))
def test_held_answers_are_h2s_answers_sent_later(frames: list[bytes], later: bytes) -> None:
    by_hand, by_h2 = _twins()
    data = b"".join(frames)
    held = bytearray()
    before = bytes(by_hand._data_to_send)
    assert h2private.receive_control(by_hand, data, held) is not None
    assert bytes(by_hand._data_to_send) == before  # nothing answered yet
    by_h2.receive_data(data)
    answers = bytes(by_h2._data_to_send)
    # Bytes queued meanwhile go first; the answers follow, as h2 made them.
    by_hand._data_to_send += later
    h2private.send_held(by_hand, held)
    assert not held
    assert bytes(by_hand._data_to_send) == later + answers


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_ping(b"12345678")[:-1], id="a partial frame"),
        pytest.param(_ping(b"12345678") + _window_update(5)[:4], id="a frame and a partial one"),
        pytest.param(bytes(SettingsFrame(0).serialize()), id="settings"),
        pytest.param(_window_update(5, stream_id=STREAM), id="a stream's window update"),
        pytest.param(_window_update(0), id="a zero increment"),
        pytest.param(_window_update(2**31 - 1), id="a window past its largest"),
        pytest.param(
            b"\x00\x00\x04\x06\x00\x00\x00\x00\x00" + b"1234", id="a ping of the wrong length"
        ),
        pytest.param(
            b"\x00\x00\x08\x06\x00\x00\x00\x00\x01" + b"12345678", id="a ping on a stream"
        ),
    ],
)
def test_anything_else_is_left_to_h2_untouched(data: bytes) -> None:
    by_hand, untouched = _twins()
    assert h2private.receive_control(by_hand, data) is None
    assert _state(by_hand) == _state(untouched)


def test_nothing_is_taken_by_hand_while_h2_holds_part_of_a_frame() -> None:
    by_hand, _ = _twins()
    by_hand.receive_data(_ping(b"12345678")[:5])
    assert h2private.receive_control(by_hand, _window_update(5)) is None


@given(st.binary(max_size=40_000))
def test_data_framed_by_hand_is_what_h2_frames(data: bytes) -> None:
    by_hand, by_h2 = _twins()
    assert h2private.send_data(by_hand, STREAM, data)
    step = by_h2.max_outbound_frame_size
    for start in range(0, len(data), step) if data else (0,):
        by_h2.send_data(STREAM, data[start : start + step])
    assert _state(by_hand) == _state(by_h2)
    # And the peer reads it back whole.
    frames = bytes(by_hand._data_to_send)
    offset, payload = 0, b""
    while offset < len(frames):
        frame, length = DataFrame.parse_frame_header(frames[offset : offset + 9])
        frame.parse_body(memoryview(frames[offset + 9 : offset + 9 + length]))
        assert frame.stream_id == STREAM and not frame.flags
        payload += frame.data
        offset += 9 + length
    assert payload == data


def test_data_beyond_the_window_or_on_a_closed_stream_is_left_to_h2() -> None:
    by_hand, untouched = _twins()
    window = by_hand.local_flow_control_window(STREAM)
    assert not h2private.send_data(by_hand, STREAM, b"x" * (window + 1))
    assert not h2private.send_data(by_hand, 3, b"x")  # no such stream
    by_hand.reset_stream(STREAM)
    untouched.reset_stream(STREAM)
    before = bytes(by_hand._data_to_send)
    assert not h2private.send_data(by_hand, STREAM, b"x")
    assert bytes(by_hand._data_to_send) == before


def test_the_dispatch_bound_on_lookup_finds_what_h2s_own_table_holds() -> None:
    """An h2 that renames or adds a frame handler fails here, not on a live connection."""
    plain = h2.connection.H2Connection()
    table = plain._frame_dispatch_table
    h2private.bind_dispatch_on_lookup(plain)
    for frame_type, handler in table.items():
        assert plain._frame_dispatch_table[frame_type] == handler
    with pytest.raises(KeyError):
        plain._frame_dispatch_table[object]
