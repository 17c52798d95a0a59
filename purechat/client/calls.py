"""Client side of the two contracts, over purechat's transport."""

from __future__ import annotations

import ssl

import anyio
import anyio.abc

from purechat.pb import chat_pb2, purechat_v1_pb2
from purechat.transport import (
    Connection,
    GrpcProtocol,
    Status,
    StatusCode,
    Stream,
    StreamGone,
    frame_message,
)
from purechat.transport import status as statuses
from purechat.transport.protocol import CLIENT_LIMITS
from purechat.transport.stream import Metadata

CONNECT_TIMEOUT = 10.0


async def connect(
    host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> anyio.abc.ByteStream:
    """A connection to the server, TLS when ssl_context is set.

    OSError (TimeoutError included) when there is none; ssl.SSLError (an OSError too)
    when the TLS handshake fails.
    """
    with anyio.fail_after(CONNECT_TIMEOUT):
        if ssl_context is None:
            return await anyio.connect_tcp(host, port)
        return await anyio.connect_tcp(
            host, port, ssl_context=ssl_context, tls_hostname=host, tls_standard_compatible=False
        )


async def open_connection(task_group: anyio.abc.TaskGroup, host: str, port: int) -> Connection:
    """Connect and run the connection in task_group (which then owns it)."""
    sock = await connect(host, port)
    connection = Connection(sock, GrpcProtocol(client_side=True, limits=CLIENT_LIMITS))
    await task_group.start(connection.run)
    return connection


class _Call:
    service = ""
    method = ""

    def __init__(self, connection: Connection, *, authority: str, token: str | None = None):
        metadata: Metadata = [("authorization", f"Bearer {token}")] if token else ()
        self.stream: Stream = connection.start_call(
            self.service, self.method, authority=authority, metadata=metadata
        )

    @property
    def status(self) -> Status | None:
        """The server's final status, once the call has ended."""
        return self.stream.status

    async def _send(self, payload: bytes) -> None:
        await self.stream.send_frames(frame_message(payload))

    async def _receive(self) -> bytes | None:
        try:
            return await self.stream.receive()
        except StreamGone:
            return None

    def close_send(self) -> None:
        """Tell the server we have nothing more to send."""
        self.stream.close_send()

    def cancel(self) -> None:
        self.stream.end(statuses.cancelled())


class V1Call(_Call):
    """/purechat.v1.Chat/Connect."""

    service = "purechat.v1.Chat"
    method = "Connect"

    async def join(
        self,
        name: str,
        room: str,
        *,
        history: int = 0,
        after_seq: int | None = None,
        session: str = "",
        epoch: str = "",
    ) -> None:
        join = purechat_v1_pb2.Join(
            name=name, room=room, history=history, session=session, epoch=epoch
        )
        if after_seq is not None:
            join.after_seq = after_seq
        await self._send(purechat_v1_pb2.ClientFrame(join=join).SerializeToString())

    async def send(self, text: str, client_msg_id: str = "", *, action: bool = False) -> None:
        send = purechat_v1_pb2.Send(text=text, client_msg_id=client_msg_id, action=action)
        await self.send_frame(purechat_v1_pb2.ClientFrame(send=send))

    async def send_frame(self, frame: purechat_v1_pb2.ClientFrame) -> None:
        await self._send(frame.SerializeToString())

    async def receive(self) -> purechat_v1_pb2.ServerFrame | None:
        """The next frame, or None when the call has ended (see `status`)."""
        raw = await self._receive()
        if raw is None:
            return None
        frame: purechat_v1_pb2.ServerFrame = purechat_v1_pb2.ServerFrame.FromString(raw)
        return frame


class LegacyCall(_Call):
    """/chat.ChatService/JoinChat, the original contract."""

    service = "chat.ChatService"
    method = "JoinChat"

    async def send(self, user_id: str, text: str) -> None:
        message = chat_pb2.ChatMessage(user_id=user_id, text=text)
        await self._send(message.SerializeToString())

    async def receive(self) -> chat_pb2.ChatMessage | None:
        raw = await self._receive()
        if raw is None:
            return None
        message: chat_pb2.ChatMessage = chat_pb2.ChatMessage.FromString(raw)
        return message


def is_unimplemented(status: Status | None) -> bool:
    return status is not None and status.status_code is StatusCode.UNIMPLEMENTED
