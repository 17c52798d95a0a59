"""Helpers for accounts and moderation tests: a server with accounts, logins, commands."""

from __future__ import annotations

from typing import Any

import trio

from purechat.client.admin import AdminError, call
from purechat.client.calls import V1Call
from purechat.client.session import Address
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server.identity import AccountsConfig
from purechat.server.passwords import HashCost, Passwords
from purechat.store.directory import Directory
from tests.helpers import Harness, Member

# A password hash that costs little: tests make many.
CHEAP = HashCost(time_cost=1, memory_kib=8, parallelism=1)
PASSWORD = "correct horse battery"


def accounts_config(**fields: Any) -> dict[str, Any]:
    """start_server(...) keyword arguments for a server with accounts."""
    admins = frozenset(fields.pop("admins", ()))
    return {"accounts": AccountsConfig(admins=admins, **fields), "password_cost": CHEAP}


async def register(directory: Directory, *names: str) -> None:
    """Accounts added as `purechat account add` adds them: straight into the store."""
    passwords = Passwords(CHEAP)
    for name in names:
        await directory.add_account(name, passwords.hash_now(PASSWORD))


async def unary(
    harness: Harness, service: str, method: str, request: Any, reply: type, *, token: str = ""
) -> Any:
    return await call(
        Address("127.0.0.1", harness.port),
        method,
        request,
        reply,
        ssl_context=None,
        token=token or None,
        service=service,
    )


async def login(harness: Harness, name: str, password: str = PASSWORD) -> str:
    """A session token for name."""
    answer = await unary(
        harness,
        "purechat.v1.Accounts",
        "Login",
        v1.LoginRequest(name=name, password=password),
        v1.LoginResponse,
    )
    token: str = answer.token
    return token


async def refused_login(harness: Harness, name: str, password: str) -> str:
    """The sentence a login is refused with."""
    try:
        await login(harness, name, password)
    except AdminError as refused:
        return str(refused)
    raise AssertionError("the login was let in")


async def member(
    harness: Harness, name: str, token: str = "", room: str = "lobby", **join: Any
) -> Member:
    """A purechat.v1 member joined with token (a guest without one)."""
    connection, scope = await harness.connection()
    call_ = V1Call(connection, authority=f"127.0.0.1:{harness.port}", token=token or None)
    dm = join.pop("dm", "")
    if dm:
        frame_ = v1.ClientFrame(join=v1.Join(name=name, dm=dm, history=join.get("history", 0)))
        await call_.send_frame(frame_)
    else:
        await call_.join(name, room, **join)
    frame = await call_.receive()
    assert frame is not None, call_.status
    assert frame.WhichOneof("frame") == "welcome", frame
    return Member(call_, frame.welcome, scope)


async def refused_join(harness: Harness, name: str, token: str = "", room: str = "lobby") -> Any:
    """The status a join ends with before any welcome."""
    connection, scope = await harness.connection()
    call_ = V1Call(connection, authority=f"127.0.0.1:{harness.port}", token=token or None)
    await call_.join(name, room)
    while (frame := await call_.receive()) is not None:
        assert frame.WhichOneof("frame") != "welcome", f"{name} was let in"
    scope.cancel()
    return call_.status


async def moderate(member_: Member, action: int, target: str = "", **fields: Any) -> v1.ServerFrame:
    """A moderation frame from member_, and the ack or error that answers it."""
    client_msg_id = f"mod-{trio.current_time()}-{action}-{target}"
    command = v1.ModerationCommand(
        action=action, target=target, client_msg_id=client_msg_id, **fields
    )
    await member_.call.send_frame(v1.ClientFrame(moderate=command))
    while True:
        frame = await member_.next_of_any("ack", "error")
        if frame.WhichOneof("frame") == "ack" and frame.ack.client_msg_id == client_msg_id:
            return frame
        if frame.WhichOneof("frame") == "error" and frame.error.client_msg_id == client_msg_id:
            return frame


async def next_moderation(member_: Member) -> v1.Event:
    while True:
        event = (await member_.next_of("event")).event
        if event.kind == v1.Event.MODERATION:
            return event
