"""Logging in, registering and logging out (purechat.v1's Accounts), and passwords read
from a person or a script.

    from purechat.client import connect, login

    session = await login("chat.example.org:50051", "alice", password, tls=True)
    async with connect("chat.example.org:50051", name="alice", token=session.token,
                       tls=True) as chat: ...

`purechat login` does the same and keeps the token (client/saved.py). A password is
read from the terminal without echo, or, when stdin is not a terminal, as its first
line (`printf '%s\\n' "$PASSWORD" | purechat login alice`), and goes to the server
over the connection's TLS, if any; it is never shown, logged or kept.
"""

from __future__ import annotations

import getpass
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from purechat.client.admin import AdminError, call
from purechat.client.session import Address
from purechat.errors import ClientError
from purechat.pb import purechat_v1_pb2 as v1
from purechat.tls import client_context

__all__ = ["Login", "LoginFailed", "PasswordError", "login", "read_password"]

ACCOUNTS = "purechat.v1.Accounts"


class LoginFailed(ClientError):
    """A login, registration or logout the server refused or did not answer; str() is
    a sentence ("Wrong name or password.")."""


class PasswordError(ClientError):
    """No password could be read (none given, or two that differ); str() is a sentence."""


@dataclass(frozen=True, slots=True)
class Login:
    """A session: its token (sent as `authorization: Bearer TOKEN`; keep it secret), the
    account it is for as the server spells it, and when it ends (ms since the epoch)."""

    token: str
    account: str
    expires_ms: int
    server: str


def read_password(prompt: str, *, confirm: bool = False, stdin: TextIO | None = None) -> str:
    """A password from the terminal, without echo (asked twice with confirm), or the
    first line of stdin when it is not a terminal; PasswordError when there is none."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        password = getpass.getpass(prompt)
        if confirm and password and getpass.getpass("The same again: ") != password:
            raise PasswordError("The two passwords differ; nothing was changed.")
    else:
        password = stdin.readline().removesuffix("\n").removesuffix("\r")
    if not password:
        raise PasswordError("No password was given.")
    return password


async def login(
    server: str | Address,
    name: str,
    password: str,
    *,
    tls: bool = False,
    tls_ca: Path | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> Login:
    """Log in as name at server ("HOST:PORT"): a new session; LoginFailed with the
    server's sentence when it refuses ("Wrong name or password.") or cannot be asked."""
    address = server if isinstance(server, Address) else Address.parse(server)
    context = ssl_context or (client_context(tls_ca) if (tls or tls_ca) else None)
    answer = await _accounts(
        address, "Login", v1.LoginRequest(name=name, password=password), v1.LoginResponse, context
    )
    assert isinstance(answer, v1.LoginResponse)
    return Login(answer.token, answer.account, answer.expires_unix_ms, str(address))


async def register(
    address: Address, name: str, password: str, *, ssl_context: ssl.SSLContext | None
) -> str:
    """Register an account (where the server lets people register); the account's name
    as the server spells it. LoginFailed with the server's sentence otherwise."""
    request = v1.RegisterRequest(name=name, password=password)
    answer = await _accounts(address, "Register", request, v1.RegisterResponse, ssl_context)
    assert isinstance(answer, v1.RegisterResponse)
    return answer.account


async def logout(address: Address, token: str, *, ssl_context: ssl.SSLContext | None) -> None:
    """End the session token stands for, on every server sharing the store."""
    await _accounts(
        address, "Logout", v1.LogoutRequest(), v1.LogoutResponse, ssl_context, token=token
    )


async def _accounts(
    address: Address,
    method: str,
    request: v1.LoginRequest | v1.RegisterRequest | v1.LogoutRequest,
    reply: type[v1.LoginResponse | v1.RegisterResponse | v1.LogoutResponse],
    ssl_context: ssl.SSLContext | None,
    *,
    token: str | None = None,
) -> object:
    try:
        return await call(
            address, method, request, reply, ssl_context=ssl_context, token=token, service=ACCOUNTS
        )
    except AdminError as refused:
        raise LoginFailed(str(refused)) from None
