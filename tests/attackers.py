"""Misbehaving peers, written with h2's own frame classes: the server must survive them."""

from __future__ import annotations

import anyio
import anyio.abc
import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def request_headers(
    path: str = "/chat.ChatService/JoinChat", **extra: str
) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "attacker"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra.items(),
    ]


class RawPeer:
    """An HTTP/2 client that sends exactly the frames it is told to."""

    def __init__(self, sock: anyio.abc.SocketStream):
        self.sock = sock
        self.encoder = hpack.Encoder()

    @classmethod
    async def connect(cls, port: int, *, preface: bool = True) -> RawPeer:
        peer = cls(await anyio.connect_tcp("127.0.0.1", port))
        if preface:
            await peer.sock.send(PREFACE + SettingsFrame(0).serialize())
        return peer

    def headers(
        self, stream_id: int, headers: list[tuple[str, str]], *, end: bool = False
    ) -> bytes:
        frame = HeadersFrame(stream_id)
        frame.data = self.encoder.encode(headers)
        frame.flags.add("END_HEADERS")
        if end:
            frame.flags.add("END_STREAM")
        return frame.serialize()

    @staticmethod
    def reset(stream_id: int) -> bytes:
        return RstStreamFrame(stream_id, error_code=8).serialize()

    @staticmethod
    def ping(n: int) -> bytes:
        return PingFrame(0, opaque_data=n.to_bytes(8, "big")).serialize()

    @staticmethod
    def settings() -> bytes:
        return SettingsFrame(0, settings={SettingsFrame.MAX_CONCURRENT_STREAMS: 100}).serialize()

    @staticmethod
    def data(stream_id: int, payload: bytes) -> bytes:
        frame = DataFrame(stream_id)
        frame.data = payload
        return frame.serialize()

    @staticmethod
    def window_update(stream_id: int, increment: int) -> bytes:
        return WindowUpdateFrame(stream_id, window_increment=increment).serialize()

    async def send(self, data: bytes) -> None:
        await self.sock.send(data)

    async def read_until_closed(self) -> bytes:
        """Everything the server sends until it closes the connection (then ours closes)."""
        received = b""
        while True:
            try:
                received += await self.sock.receive(65536)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                await self.aclose()
                return received

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.sock)


def frames_in(received: bytes) -> list[Frame]:
    """Parse what a server sent (after nothing: servers send no preface)."""
    frames = []
    position = 0
    while len(received) - position >= 9:
        frame, length = Frame.parse_frame_header(memoryview(received[position : position + 9]))
        body = received[position + 9 : position + 9 + length]
        if len(body) < length:
            break
        frame.parse_body(memoryview(body))
        frames.append(frame)
        position += 9 + length
    return frames


def grpc_status(received: bytes) -> str | None:
    """The grpc-status a server sent, decoding its HEADERS frames."""
    decoder = hpack.Decoder()
    status = None
    for frame in frames_in(received):
        if isinstance(frame, HeadersFrame):
            for name, value in decoder.decode(frame.data):
                if name == "grpc-status":
                    status = value
    return status


def ping_answers(received: bytes) -> list[int]:
    """The numbers of the PINGs (sent with RawPeer.ping) the server answered, in order."""
    return [
        int.from_bytes(frame.opaque_data, "big")
        for frame in frames_in(received)
        if isinstance(frame, PingFrame) and "ACK" in frame.flags
    ]


def goaway_code(received: bytes) -> int | None:
    codes = [f.error_code for f in frames_in(received) if isinstance(f, GoAwayFrame)]
    return codes[-1] if codes else None
