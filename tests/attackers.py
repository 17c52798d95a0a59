"""Misbehaving peers: raw HTTP/2 written with h2's own frame classes, and raw WebSocket
frames after a well-formed handshake. The server must survive them."""

from __future__ import annotations

import json

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
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
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


# -- the web port ------------------------------------------------------------------------

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WebPeer:
    """A WebSocket client that sends exactly the frames it is told to, after a well-formed
    handshake (wsproto's), with no Origin unless given one; it reads with wsproto."""

    def __init__(self, sock: anyio.abc.SocketStream, ws: WSConnection):
        self.sock = sock
        self.ws = ws
        self.pongs = 0
        # Text messages received (whole: the server sends each in one frame).
        self.texts: list[str] = []
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    async def connect(cls, port: int, *, origin: str | None = None) -> WebPeer:
        sock = await anyio.connect_tcp("127.0.0.1", port)
        ws = WSConnection(ConnectionType.CLIENT)
        extra = [(b"origin", origin.encode())] if origin is not None else []
        await sock.send(
            ws.send(Request(host=f"127.0.0.1:{port}", target="/ws", extra_headers=extra))
        )
        while True:
            ws.receive_data(await sock.receive(65536))
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return cls(sock, ws)
                if isinstance(event, RejectConnection):
                    await anyio.aclose_forcefully(sock)
                    raise AssertionError(f"refused: {event.status_code}")

    @staticmethod
    def frame(
        opcode: int, payload: bytes = b"", *, fin: bool = True, length: int | None = None
    ) -> bytes:
        """One masked client frame. The mask is zero, so the payload goes as it is; length
        announces another size than the payload's (a frame that is then streamed)."""
        size = len(payload) if length is None else length
        first = (0x80 if fin else 0) | opcode
        if size < 126:
            head = bytes([first, 0x80 | size])
        elif size < 1 << 16:
            head = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
        else:
            head = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
        return head + b"\0\0\0\0" + payload

    async def send(self, data: bytes) -> bool:
        """Send; False once the server has closed the connection."""
        try:
            await self.sock.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False
        return True

    async def read(self) -> bool:
        """Read once: count pongs, note the server's close; False once the connection
        (or the session) is over."""
        if self.close_code is not None:
            return False
        try:
            data = await self.sock.receive(65536)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.close_code = 1006
            return False
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, Pong):
                self.pongs += 1
            elif isinstance(event, TextMessage):
                self.texts.append(event.data)
            elif isinstance(event, CloseConnection):
                self.close_code, self.close_reason = event.code, event.reason
        return self.close_code is None

    async def join(self, name: str, **fields: object) -> None:
        """Join as a page would, and wait for the welcome."""
        join = json.dumps({"join": {"name": name, "room": "lobby", **fields}})
        await self.send(self.frame(OP_TEXT, join.encode()))
        while not any('"welcome"' in text for text in self.texts):
            if not await self.read():
                raise AssertionError(f"closed: {self.close_code} {self.close_reason}")

    async def read_until_closed(self) -> None:
        while await self.read():
            pass

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.sock)
