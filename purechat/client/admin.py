"""One unary call to a running server (`purechat who ROOM`, `rooms`, the account and
reading commands), its failures said as sentences."""

from __future__ import annotations

import ssl
import sys

import anyio
from google.protobuf.message import Message

from purechat.client.calls import connect
from purechat.client.display import shown_name
from purechat.client.errors import failure_sentence, token_sentence
from purechat.client.session import Address
from purechat.errors import ClientError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.transport import Connection, GrpcProtocol, StatusCode, frame_message
from purechat.transport.protocol import CLIENT_LIMITS

ADMIN = "purechat.v1.Admin"
TIMEOUT = 10.0


class AdminError(ClientError):
    """The call failed; str() is a sentence."""


async def call(
    address: Address,
    method: str,
    request: Message,
    reply_type: type[Message],
    *,
    ssl_context: ssl.SSLContext | None,
    token: str | None,
    service: str = ADMIN,
    saved: bool = False,
) -> Message:
    """One unary call of service (the admin service unless said); AdminError with a
    sentence when it fails (saved: the token is a session `purechat login` kept, which
    a refusal says to make again)."""
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        with anyio.fail_after(TIMEOUT):
            sock = await connect(address.host, address.port, ssl_context)
            async with anyio.create_task_group() as task_group:
                connection = Connection(sock, GrpcProtocol(client_side=True, limits=CLIENT_LIMITS))
                await task_group.start(connection.run)
                stream = connection.start_call(
                    service, method, authority=str(address), metadata=metadata
                )
                await stream.send_frames(frame_message(request.SerializeToString()))
                stream.close_send()
                raw = await stream.receive()
                while await stream.receive() is not None:
                    pass
                task_group.cancel_scope.cancel()
    except TimeoutError:
        raise AdminError(f"the server at {address} did not answer in {TIMEOUT:g}s") from None
    except (OSError, anyio.BrokenResourceError) as error:
        raise AdminError(failure_sentence(error, address.host, address.port)) from None
    status = stream.status
    if status is not None and status.status_code is StatusCode.UNAUTHENTICATED:
        said = token_sentence(
            status.status_message or "", given=bool(token), server=str(address), saved=saved
        )
        raise AdminError(_sentence(said))
    if status is not None and status.status_code is StatusCode.UNIMPLEMENTED:
        raise AdminError(
            f"The server at {address} does not offer {service.rpartition('.')[2]}.{method} "
            "(an older purechat, or another server)."
        )
    if raw is None or status is None or status.status_code is not StatusCode.OK:
        if status is None:
            raise AdminError(f"The server at {address} ended the call without an answer.")
        if status.status_code is StatusCode.UNAVAILABLE:
            raise AdminError(
                f"The server at {address} cannot answer now ({status.status_message}); "
                "try again in a moment."
            )
        # The server's refusals are sentences already ("bob is an operator already.").
        raise AdminError(_ended(status.status_message or status.status_code.name))
    return reply_type.FromString(raw)


def _sentence(text: str) -> str:
    """The client's own words as a sentence: a capital, a full stop."""
    return _ended(text[:1].upper() + text[1:])


def _ended(text: str) -> str:
    """The server's words (which may start with a name: never capitalised) with a full
    stop."""
    text = text.strip()
    return text + ("" if text.endswith((".", "!", "?")) else ".")


def print_members(reply: Message) -> None:
    assert isinstance(reply, v1.ListMembersResponse)
    for name in reply.members:
        print(shown_name(name))
    sys.stdout.flush()
