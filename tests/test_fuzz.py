"""Property-based tests: whatever bytes arrive, the server's decoders fail cleanly, and
whatever text people send, the terminal shows it without obeying it."""

from __future__ import annotations

import contextlib
import json

import h2.exceptions
import trio
from google.protobuf.message import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st
from purerpc.grpclib.exceptions import ProtocolError

from purechat.app import ChatServer
from purechat.client.display import Shown, json_line, neutralise, plain_line
from purechat.core import Limits
from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.server import ServerConfig
from purechat.transport import GrpcProtocol
from purechat.transport.protocol import Flood
from tests.attackers import PREFACE, RawPeer, request_headers
from tests.helpers import Harness

PATHS = {"legacy": "/chat.ChatService/JoinChat", "v1": "/purechat.v1.Chat/Connect"}
SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
FAST = settings(max_examples=300, deadline=None)


@FAST
@given(st.binary(max_size=2048))
def test_any_bytes_after_the_preface_fail_only_as_protocol_errors(data: bytes) -> None:
    protocol = GrpcProtocol(client_side=False)
    protocol.initiate_connection()
    protocol.receive_data(PREFACE + SETTINGS)
    with contextlib.suppress(h2.exceptions.H2Error, ProtocolError, Flood):
        protocol.receive_data(data, 0.0)  # or a clean refusal: the connection closes


@FAST
@given(st.lists(st.binary(max_size=64), max_size=20))
def test_any_frames_split_anywhere_fail_only_as_protocol_errors(chunks: list[bytes]) -> None:
    protocol = GrpcProtocol(client_side=False)
    protocol.initiate_connection()
    try:
        for chunk in [PREFACE, SETTINGS, *chunks]:
            protocol.receive_data(chunk, 0.0)
    except (h2.exceptions.H2Error, ProtocolError, Flood):
        pass


@FAST
@given(st.binary(max_size=512))
def test_message_decoders_accept_or_raise_decode_error(payload: bytes) -> None:
    for message_type in (chat_pb2.ChatMessage, purechat_v1_pb2.ClientFrame):
        with contextlib.suppress(DecodeError):
            message_type.FromString(payload)


async def _send_and_check(payload: bytes, contract: str) -> None:
    async with trio.open_nursery() as nursery:
        server = ChatServer(ServerConfig(port=0, limits=Limits(rate_limit=0)))
        harness = Harness(server, await nursery.start(server.serve), nursery)
        with trio.fail_after(10):
            calm = await harness.v1("calm")
            peer = await RawPeer.connect(harness.port)
            path = (
                "/chat.ChatService/JoinChat"
                if contract == "legacy"
                else "/purechat.v1.Chat/Connect"
            )
            message = b"\x00" + len(payload).to_bytes(4, "big") + payload
            await peer.send(peer.headers(1, request_headers(path)) + peer.data(1, message))
            await peer.aclose()
            ack = await calm.say("still here")
            assert ack.seq > 0
        nursery.cancel_scope.cancel()


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=300), contract=st.sampled_from(["legacy", "v1"]))
def test_the_server_answers_any_message_and_keeps_serving(payload: bytes, contract: str) -> None:
    trio.run(_send_and_check, payload, contract)


@FAST
@given(st.text())
def test_neutralised_text_has_nothing_a_terminal_would_obey(text: str) -> None:
    shown = neutralise(text)
    assert all(ch.isprintable() or ch == " " for ch in shown)
    line = plain_line(Shown("message", "lobby", text, user=text, time_ms=1), colour=True)
    # a message of several lines shows as several, each after the first indented under
    # the text, so none can pass for a line of its own (a fake "[12:00] admin: ...")
    shown_lines = line.split("\n")
    assert len(shown_lines) == text.count("\n") + 1 and "\r" not in line
    assert all(rest.startswith(" ") for rest in shown_lines[1:])
    assert line.replace("\x1b[0m", "").count("\x1b") <= 1  # only our own colour code


@FAST
@given(st.text(), st.text())
def test_json_lines_are_always_one_valid_object(user: str, text: str) -> None:
    line = json_line(Shown("message", "lobby", text, user=user, seq=1, time_ms=1))
    assert "\n" not in line
    decoded = json.loads(line)
    assert (decoded["user"], decoded["text"]) == (user, text)
