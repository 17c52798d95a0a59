"""purechat.v1.Accounts: log in for a session token, register, log out.

The answers are the Authenticator's (server/identity.py): a wrong name or password is
one sentence for both, and repeated failures are answered more and more slowly.
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError

from purechat import status as statuses
from purechat.errors import PurechatError, StoreError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server.auth import presented_token
from purechat.server.identity import Authenticator
from purechat.status import Status
from purechat.transport import Stream, frame_message

ACCOUNTS_SERVICE = "purechat.v1.Accounts"

log = logging.getLogger("purechat.server")


async def serve_accounts(stream: Stream, method: str, auth: Authenticator) -> Status:
    """One call of the Accounts service."""
    raw = await stream.receive()
    address = stream.connection.address
    try:
        if method == "Login":
            login = v1.LoginRequest.FromString(raw or b"")
            token, session, account = await auth.login(login.name, login.password, address)
            return await answer(
                stream,
                v1.LoginResponse(
                    token=token, account=account.name, expires_unix_ms=session.expires_ms
                ),
            )
        if method == "Register":
            register = v1.RegisterRequest.FromString(raw or b"")
            account = await auth.register(register.name, register.password, address)
            return await answer(stream, v1.RegisterResponse(account=account.name))
        if method == "Logout":
            await auth.logout(presented_token(stream.metadata))
            return await answer(stream, v1.LogoutResponse())
    except DecodeError:
        return statuses.undecodable(f"purechat.v1.{method}Request")
    except StoreError as error:
        log.error("%s; a %s was refused", error, method.lower())
        return statuses.for_error(error)
    except PurechatError as refused:
        return statuses.for_error(refused)
    return statuses.unimplemented(f"/{ACCOUNTS_SERVICE}/{method}")


async def answer(stream: Stream, response: object) -> Status:
    """Send a unary call's one response message; OK."""
    stream.start_response()
    await stream.send_frames(frame_message(response.SerializeToString()))  # type: ignore[attr-defined]
    return statuses.OK
