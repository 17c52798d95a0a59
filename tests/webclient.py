"""A WebSocket client for the web listener's protocol tests: wsproto over a trio socket.

It speaks what a browser's page would (JSON frames, an Origin header), and lets a test
do what a page never does (send garbage, stop reading, send from another origin).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from dataclasses import dataclass, field
from typing import Any

import h11
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

READ_SIZE = 65536


class Refused(Exception):
    """The server answered the handshake with an HTTP status instead of upgrading."""

    def __init__(self, status: int, body: str):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class WebClient:
    sock: trio.SocketStream | trio.SSLStream[trio.SocketStream]
    ws: WSConnection
    # Frames received and not yet taken.
    inbox: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""
    end: dict[str, Any] | None = None
    _partial: list[str] = field(default_factory=list)

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        origin: str | None = None,
        host: str | None = None,
        path: str = "/ws",
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebClient:
        """Open a session (over TLS with ssl_context, to "localhost"); Refused when the
        server answers with a status instead."""
        sock: trio.SocketStream | trio.SSLStream[trio.SocketStream]
        sock = await trio.open_tcp_stream("127.0.0.1", port)
        if ssl_context is not None:
            sock = trio.SSLStream(sock, ssl_context, server_hostname="localhost")
            await sock.do_handshake()
        ws = WSConnection(ConnectionType.CLIENT)
        headers = [(b"origin", origin.encode())] if origin is not None else []
        await sock.send_all(
            ws.send(Request(host=host or f"127.0.0.1:{port}", target=path, extra_headers=headers))
        )
        client = cls(sock, ws)
        try:
            await client._handshake()
        except BaseException:
            await sock.aclose()
            raise
        return client

    async def _handshake(self) -> None:
        sock, ws = self.sock, self.ws
        rejected: RejectConnection | None = None
        body = b""
        while True:
            data = await sock.receive_some(READ_SIZE)
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    rejected = event
                    if not event.has_body:
                        raise Refused(event.status_code, "")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished and rejected is not None:
                        raise Refused(rejected.status_code, body.decode())
                elif isinstance(event, Message | Ping):
                    self._take(event)
            if not data:
                raise Refused(0, "connection closed during the handshake")

    async def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        await self.sock.send_all(self.ws.send(TextMessage(data=text)))

    async def join(self, name: str, room: str = "lobby", **fields: Any) -> dict[str, Any]:
        """Join and return the welcome."""
        await self.send({"join": {"name": name, "room": room, **fields}})
        frame = await self.next_of("welcome")
        return dict(frame["welcome"])

    async def say(self, text: str, client_msg_id: str, *, action: bool = False) -> dict[str, Any]:
        """Send and wait for the ack (frames read on the way are kept)."""
        send = {"text": text, "client_msg_id": client_msg_id, "action": action}
        await self.send({"send": send})
        while True:
            for frame in self.inbox:
                body = frame.get("ack") or frame.get("error")
                if body is not None and body.get("client_msg_id") == client_msg_id:
                    self.inbox.remove(frame)
                    return frame
            if not await self._read():
                raise AssertionError(f"closed: {self.close_code} {self.close_reason}")

    async def receive(self) -> dict[str, Any] | None:
        """The next frame; None once the session is closed (close_code is then set)."""
        while not self.inbox:
            if not await self._read():
                return None
        return self.inbox.pop(0)

    async def next_of(self, *kinds: str) -> dict[str, Any]:
        """The next frame of these kinds; others read on the way stay, in order."""
        while True:
            for frame in self.inbox:
                if next(iter(frame)) in kinds:
                    self.inbox.remove(frame)
                    return frame
            if not await self._read():
                raise AssertionError(f"closed: {self.close_code} {self.close_reason}")

    async def _read(self) -> bool:
        """Read once and take its frames; False once the session is closed."""
        if self.close_code is not None:
            return False
        try:
            data = await self.sock.receive_some(READ_SIZE)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            self.close_code = self.close_code or 1006
            await self.sock.aclose()
            return False
        self.ws.receive_data(data)
        for event in self.ws.events():
            await self._handle(event)
        return True

    async def next_message(self) -> dict[str, Any]:
        """The next message event (presence, acks and errors skipped, and kept)."""
        while True:
            frame = await self.next_of("event")
            if frame["event"]["kind"] == "message":
                return dict(frame["event"])

    async def until_closed(self) -> list[dict[str, Any]]:
        """Read to the end; the frames read."""
        frames = []
        while (frame := await self.receive()) is not None:
            frames.append(frame)
        return frames

    async def close(self) -> None:
        try:
            await self.sock.send_all(self.ws.send(CloseConnection(code=1000)))
            await self.until_closed()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self.sock.aclose()

    async def _handle(self, event: object) -> None:
        if isinstance(event, CloseConnection):
            self.close_code, self.close_reason = event.code, event.reason
            if self.ws.state is ConnectionState.REMOTE_CLOSING:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self.sock.send_all(self.ws.send(event.response()))
        elif isinstance(event, Ping):
            await self.sock.send_all(self.ws.send(event.response()))
        elif isinstance(event, Message):
            self._take(event)

    def _take(self, event: Message | Ping) -> None:
        if isinstance(event, TextMessage):
            self._partial.append(event.data)
            if event.message_finished:
                frame = json.loads("".join(self._partial))
                self._partial.clear()
                if "end" in frame:
                    self.end = frame["end"]
                self.inbox.append(frame)
        elif isinstance(event, BytesMessage):
            raise AssertionError("the server sent a binary frame")


async def http_get(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP/1.1 GET (with h11): status, headers, body."""
    sock = await trio.open_tcp_stream("127.0.0.1", port)
    conn = h11.Connection(h11.CLIENT)
    request_headers = [("host", f"127.0.0.1:{port}"), ("connection", "close")]
    request_headers += list((headers or {}).items())
    await sock.send_all(conn.send(h11.Request(method="GET", target=path, headers=request_headers)))
    await sock.send_all(conn.send(h11.EndOfMessage()))
    status, found, body = 0, {}, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await sock.receive_some(READ_SIZE))
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
            found = {k.decode(): v.decode() for k, v in event.headers}
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    await sock.aclose()
    return status, found, body
