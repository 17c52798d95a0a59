"""The commands of accounts, moderation and living messages: `purechat login`,
`register`, `logout`, `room claim`, `mod ...`, `edit`, `delete`, `react`, `audit` and
`admin ...` (parse, call, say the outcome).

Each is one call (or two) to a running server, with the session `purechat login` saved
for it unless a token is given, and ends with one sentence: on stdout and exit 0 when
the server has done it, on stderr and exit 1 when it has not (saying why, in the
server's words where it gave some: "Only an operator of this room may ban.").
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

import anyio
from google.protobuf.message import Message

from purechat.client.admin import AdminError
from purechat.client.admin import call as admin_call
from purechat.client.commands import add_connection_options, credential, where
from purechat.client.display import neutralise, shown_name
from purechat.client.login import (
    Login,
    LoginFailed,
    PasswordError,
    login,
    logout,
    read_password,
    register,
)
from purechat.client.moderation import MODES, USAGE, CommandUsage, command
from purechat.client.saved import Saved, SavedSessions, SessionFileError
from purechat.client.session import Address
from purechat.core.moderation import format_duration
from purechat.options import DURATIONS, duration
from purechat.pb import purechat_v1_pb2 as v1
from purechat.tls import TlsSetupError

CHAT = "purechat.v1.Chat"
EXIT_OK = 0
EXIT_FAILED = 1


def add_manage_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add login, register, logout, room, mod, audit and admin to `purechat`."""
    _add_login(commands)
    _add_room(commands)
    _add_mod(commands)
    _add_changes(commands)
    audit = commands.add_parser(
        "audit",
        help="read the audit log: every moderation action, and the server's own acts",
        description="Read the audit log kept in the server's store: every moderation action "
        "(who, what, to whom, when, why) and, for the server's admins, its own acts (accounts "
        "added, sessions ended, addresses banned). A room's owner and operators may read "
        "their room's.",
    )
    audit.add_argument("--room", help="only this room's (default: every room's; admins only)")
    audit.add_argument(
        "--limit", type=int, default=100, metavar="N", help="the newest N entries, 1 to 1000"
    )
    add_connection_options(audit)
    audit.set_defaults(run=_audit)
    _add_admin(commands)


# -- login, register, logout ----------------------------------------------------------


def _add_login(commands: argparse._SubParsersAction[Any]) -> None:
    login_ = commands.add_parser(
        "login",
        help="log in to a server and keep the session for the other commands",
        description="Log in as NAME: the password is read from the terminal without echo, or "
        "as the first line of stdin when it is not a terminal. The session token is kept "
        "for this server in your state directory (a file only you can read), and `purechat "
        "join`, `post`, `who`, `rooms`, `mod`, `audit` and `admin` use it for this server "
        "until it expires or `purechat logout`.",
    )
    login_.add_argument("name", metavar="NAME", help="the account's name")
    add_connection_options(login_, failover=False)
    login_.set_defaults(run=_login)

    register_ = commands.add_parser(
        "register",
        help="register an account (where the server lets people) and log in",
        description="Register the account NAME on a server that lets people register "
        "(`purechat serve --registration open`), then log in as it, as `purechat login` "
        "does. The password (8 characters or more) is read from the terminal twice, "
        "without echo, or as the first line of stdin when it is not a terminal.",
    )
    register_.add_argument("name", metavar="NAME", help="the account's name")
    add_connection_options(register_, failover=False)
    register_.set_defaults(run=_register)

    logout_ = commands.add_parser(
        "logout",
        help="end the session kept for a server, and forget it",
        description="End the session `purechat login` kept for the server (on every server "
        "sharing its store) and forget it.",
    )
    add_connection_options(logout_, failover=False)
    logout_.set_defaults(run=_logout)


def _login(args: argparse.Namespace) -> int:
    def steps(address: Address, tls: Any) -> Saved:
        password = read_password(f"Password for {args.name} at {address}: ")
        session = anyio.run(
            partial(login, address, args.name, password, ssl_context=tls), backend="trio"
        )
        return _logged_in(session)

    return _keeping(args, steps, "Logged in to {server} as {account}")


def _register(args: argparse.Namespace) -> int:
    def steps(address: Address, tls: Any) -> Saved:
        password = read_password(f"A password for {args.name} at {address}: ", confirm=True)

        async def both() -> Saved:
            await register(address, args.name, password, ssl_context=tls)
            return _logged_in(await login(address, args.name, password, ssl_context=tls))

        return anyio.run(both, backend="trio")

    return _keeping(args, steps, "Registered {account} at {server} and logged in")


def _logged_in(session: Login) -> Saved:
    return Saved(session.server, session.token, session.account, session.expires_ms)


def _keeping(args: argparse.Namespace, steps: Callable[[Address, Any], Saved], said: str) -> int:
    """Log in (steps), keep the session for the server, and say so in one sentence."""
    try:
        addresses, tls = where(args)
        address = addresses[0]
        saved = steps(address, tls)
        SavedSessions().save(saved, address)
    except (ValueError, TlsSetupError, LoginFailed, PasswordError, SessionFileError) as error:
        return _failed(error)
    done = said.format(server=address, account=shown_name(saved.account))
    print(
        f"{done}, until {_when(saved.expires_ms)}: join, post and the other commands use this "
        f"session there (purechat logout ends it)."
    )
    return EXIT_OK


def _logout(args: argparse.Namespace) -> int:
    try:
        addresses, tls = where(args)
    except (ValueError, TlsSetupError) as error:
        return _failed(error)
    address = addresses[0]
    sessions = SavedSessions()
    saved = sessions.load(address)
    if saved is None:
        print(f"No session is kept for {address}: nothing to do.")
        return EXIT_OK
    try:
        anyio.run(partial(logout, address, saved.token, ssl_context=tls), backend="trio")
    except LoginFailed as error:
        sessions.forget(address)
        return _failed(
            f"Forgot the session for {address}, but the server could not be told ({error}): "
            f"it stays valid there until {_when(saved.expires_ms)}"
        )
    try:
        sessions.forget(address)
    except SessionFileError as error:
        return _failed(error)
    print(f"Logged out of {address}: the session is ended and forgotten.")
    return EXIT_OK


# -- room claim and mod ------------------------------------------------------------------


def _add_room(commands: argparse._SubParsersAction[Any]) -> None:
    room = commands.add_parser(
        "room",
        help="what an account does to a room: claim it",
        description="What an account does to a room (with the session `purechat login` kept).",
    )
    actions = room.add_subparsers(dest="room_command", metavar="ACTION", required=True)
    claim = actions.add_parser(
        "claim",
        help="become the owner of a room that has none",
        description="Become the owner of a room that has none (as /claim in `purechat join`): "
        "its owner makes operators (`purechat mod op`), and may do all they do.",
    )
    claim.add_argument("--room", default="lobby", help="the room (default: lobby)")
    add_connection_options(claim)
    claim.set_defaults(run=partial(_moderate, "claim"))


def _add_mod(commands: argparse._SubParsersAction[Any]) -> None:
    mod = commands.add_parser(
        "mod",
        help="moderate a room from a script: kick, ban, mute, op, topic, mode, invite...",
        description="Moderate a room without joining it, as its owner or an operator (or a "
        "server admin), with the session `purechat login` kept: the same commands as "
        "/kick, /ban... in `purechat join`. Exits 0 once the server has done it (every "
        "member sees it in its place among the messages), 1 with the server's sentence "
        "when it will not.",
    )
    actions = mod.add_subparsers(dest="mod_command", metavar="ACTION", required=True)
    for action, (_, about) in USAGE.items():
        if action == "claim":
            continue
        parser = actions.add_parser(
            action, help=about, description=about[:1].upper() + about[1:] + "."
        )
        if action == "topic":
            parser.add_argument("text", metavar="TEXT", help='the new topic ("" clears it)')
        elif action == "mode":
            parser.add_argument("text", metavar="MODE", choices=MODES, help=" or ".join(MODES))
        else:
            parser.add_argument("target", metavar="NAME", help="the member or account")
        if action in ("ban", "mute"):
            parser.add_argument(
                "--for",
                dest="seconds",
                type=duration,
                metavar="DURATION",
                help=f"for how long: {DURATIONS} (default: for good)",
            )
        if action in ("kick", "ban", "mute"):
            parser.add_argument("--reason", default="", help="why, told to everyone in the room")
        parser.add_argument("--room", default="lobby", help="the room (default: lobby)")
        add_connection_options(parser)
        parser.set_defaults(run=partial(_moderate, action))


def _moderate(action: str, args: argparse.Namespace) -> int:
    try:
        moderation = command(
            action,
            getattr(args, "target", ""),
            seconds=getattr(args, "seconds", None),
            reason=getattr(args, "reason", ""),
            text=getattr(args, "text", ""),
        )
    except CommandUsage as wrong:
        return _failed(wrong)
    moderation.room = args.room
    moderation.client_msg_id = secrets.token_hex(16)
    answer = _call(args, "Moderate", moderation, v1.ModerateResponse, service=CHAT)
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.ModerateResponse)
    print(f"{neutralise(args.room)}: {neutralise(answer.sentence)} (#{answer.seq})")
    return EXIT_OK


# -- edit, delete, react ----------------------------------------------------------------


def _add_changes(commands: argparse._SubParsersAction[Any]) -> None:
    said = (
        " with the session `purechat login` kept. Exits 0 once the server has it (and prints "
        "the change's number in the room's log), 1 with the server's sentence when it will "
        "not."
    )
    edit = commands.add_parser(
        "edit",
        help="make one of your messages say something else",
        description="Make your message N say TEXT (within the server's edit window): every "
        "member sees the new text in its place, marked edited," + said,
    )
    edit.add_argument("seq", type=_number, metavar="N", help="the message's number")
    edit.add_argument("text", metavar="TEXT", help="its new text")
    delete = commands.add_parser(
        "delete",
        help="delete a message (yours; an operator: anyone's)",
        description="Delete message N: yours, or as the room's operator or owner anyone's. "
        "Every member sees a tombstone in its place, and the text is gone from the store," + said,
    )
    delete.add_argument("seq", type=_number, metavar="N", help="the message's number")
    react = commands.add_parser(
        "react",
        help="react to a message with one emoji (or take it back)",
        description="React to message N with one EMOJI (one of each kind per account), or "
        "take it back with --remove," + said,
    )
    react.add_argument("seq", type=_number, metavar="N", help="the message's number")
    react.add_argument("emoji", metavar="EMOJI", help="one emoji, like 👍")
    react.add_argument("--remove", action="store_true", help="take the reaction back")
    for parser, run in ((edit, _edit), (delete, _delete), (react, _react)):
        where_ = parser.add_mutually_exclusive_group()
        where_.add_argument("--room", default="lobby", help="the room (default: lobby)")
        where_.add_argument(
            "--dm", metavar="NAME", default="", help="the conversation with the account NAME"
        )
        add_connection_options(parser)
        parser.set_defaults(run=run)


def _number(text: str) -> int:
    """A message's number: 12 or #12."""
    digits = text.removeprefix("#")
    if not digits.isdigit() or int(digits) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a message's number")
    return int(digits)


def _edit(args: argparse.Namespace) -> int:
    request = v1.EditMessage(seq=args.seq, text=args.text)
    return _change(args, "Edit", request, f"edited #{args.seq}")


def _delete(args: argparse.Namespace) -> int:
    return _change(args, "Delete", v1.DeleteMessage(seq=args.seq), f"deleted #{args.seq}")


def _react(args: argparse.Namespace) -> int:
    request = v1.ReactMessage(seq=args.seq, emoji=args.emoji, remove=args.remove)
    did = "took back" if args.remove else "reacted"
    return _change(args, "React", request, f"{did} {neutralise(args.emoji)} on #{args.seq}")


def _change(
    args: argparse.Namespace,
    method: str,
    request: v1.EditMessage | v1.DeleteMessage | v1.ReactMessage,
    done: str,
) -> int:
    """One change by the unary call, with an id: a retry of it is never done twice."""
    request.room, request.dm = ("", args.dm) if args.dm else (args.room, "")
    request.client_msg_id = secrets.token_hex(16)
    answer = _call(args, method, request, v1.ChangeResponse, service=CHAT)
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.ChangeResponse)
    where_ = f"@{args.dm}" if args.dm else args.room
    print(f"{neutralise(where_)}: {done} (#{answer.seq})")
    return EXIT_OK


# -- audit and admin ------------------------------------------------------------------


def _audit(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= 1000:
        return _failed(f"--limit must be a number of entries from 1 to 1000, not {args.limit}")
    request = v1.AuditRequest(room=args.room or "", limit=args.limit)
    answer = _call(args, "Audit", request, v1.AuditResponse)
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.AuditResponse)
    if not answer.entries:
        print(
            f"Nothing in the audit log of {args.room}." if args.room else "The audit log is empty."
        )
    for entry in answer.entries:
        what = entry.detail or " ".join(
            part for part in (entry.actor, entry.action, entry.target) if part
        )
        print(f"{_when(entry.time_unix_ms)}\t{neutralise(entry.room or '-')}\t{neutralise(what)}")
    return EXIT_OK


def _add_admin(commands: argparse._SubParsersAction[Any]) -> None:
    admin = commands.add_parser(
        "admin",
        help="the server admins' commands: sessions, bans of addresses",
        description="What the server's admins (`purechat serve --admin NAME`) do on a running "
        "server, with the session `purechat login` kept: list and end an account's sessions, "
        "list bans, ban an address from the whole server. (Accounts themselves are added and "
        "removed with `purechat account`, on the server's store.)",
    )
    actions = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    sessions = actions.add_parser(
        "sessions", help="list an account's sessions", description="List an account's sessions."
    )
    sessions.add_argument("account", metavar="NAME", help="the account")
    sessions.set_defaults(run=_sessions)
    end = actions.add_parser(
        "end-sessions",
        help="end every session of an account, on every server",
        description="End every session of an account on every server sharing the store: its "
        "open streams end at once, and it must log in again.",
    )
    end.add_argument("account", metavar="NAME", help="the account")
    end.set_defaults(run=_end_sessions)
    bans = actions.add_parser(
        "bans",
        help="list the addresses banned from the server, or a room's bans",
        description="List the addresses banned from the server, or with --room the bans of a "
        "room (its owner and operators may read those too).",
    )
    bans.add_argument("--room", help="a room's bans (default: the server's bans of addresses)")
    bans.set_defaults(run=_bans)
    ban = actions.add_parser(
        "ban-address",
        help="ban an address from the whole server",
        description="Ban an address from the whole server (an IPv6 address by its /64): its "
        "connections end at once, on every server sharing the store, and new ones are refused.",
    )
    ban.add_argument("address", metavar="ADDR", help="an IPv4 or IPv6 address")
    ban.add_argument(
        "--for",
        dest="seconds",
        type=duration,
        metavar="DURATION",
        help=f"for how long: {DURATIONS} (default: for good)",
    )
    ban.add_argument("--reason", default="", help="why (told to the address when refused)")
    ban.set_defaults(run=_ban_address)
    unban = actions.add_parser(
        "unban-address",
        help="lift a ban of an address",
        description="Lift a ban of an address from the server.",
    )
    unban.add_argument("address", metavar="ADDR", help="the address (or prefix) banned")
    unban.set_defaults(run=_unban_address)
    for parser in (sessions, end, bans, ban, unban):
        add_connection_options(parser)


def _sessions(args: argparse.Namespace) -> int:
    answer = _call(
        args, "ListSessions", v1.AccountRequest(account=args.account), v1.ListSessionsResponse
    )
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.ListSessionsResponse)
    name = shown_name(args.account)
    if not answer.sessions:
        print(f"{name} has no open sessions.")
    for session in answer.sessions:
        since, until = _when(session.created_unix_ms), _when(session.expires_unix_ms)
        print(f"{name}\tsince {since}\tuntil {until}")
    return EXIT_OK


def _end_sessions(args: argparse.Namespace) -> int:
    answer = _call(
        args, "EndSessions", v1.AccountRequest(account=args.account), v1.EndSessionsResponse
    )
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.EndSessionsResponse)
    print(
        f"Ended {answer.ended} session(s) of {shown_name(args.account)}, on every server "
        "sharing the store."
    )
    return EXIT_OK


def _bans(args: argparse.Namespace) -> int:
    answer = _call(args, "ListBans", v1.ListBansRequest(room=args.room or ""), v1.ListBansResponse)
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.ListBansResponse)
    if not answer.bans:
        print(f"Nobody is banned from {args.room}." if args.room else "No address is banned.")
    for ban in answer.bans:
        until = f"until {_when(ban.until_unix_ms)}" if ban.until_unix_ms else "for good"
        reason = f"\t{neutralise(ban.reason)}" if ban.reason else ""
        print(f"{neutralise(ban.target)}\tby {shown_name(ban.by)}\t{until}{reason}")
    return EXIT_OK


def _ban_address(args: argparse.Namespace) -> int:
    request = v1.BanAddressRequest(address=args.address, reason=args.reason)
    if args.seconds is not None:
        request.seconds = args.seconds
    answer = _call(args, "BanAddress", request, v1.BanAddressResponse)
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.BanAddressResponse)
    how_long = f" for {format_duration(args.seconds)}" if args.seconds else ""
    why = f": {args.reason}" if args.reason else ""
    print(f"Banned {answer.prefix} from the server{how_long}{why}.")
    return EXIT_OK


def _unban_address(args: argparse.Namespace) -> int:
    request = v1.BanAddressRequest(address=args.address)
    answer = _call(args, "UnbanAddress", request, v1.BanAddressResponse)
    if answer is None:
        return EXIT_FAILED
    assert isinstance(answer, v1.BanAddressResponse)
    print(f"Lifted the ban of {answer.prefix}.")
    return EXIT_OK


# -- shared --------------------------------------------------------------------------


def _call(
    args: argparse.Namespace,
    method: str,
    request: Message,
    reply: type[Message],
    *,
    service: str = "purechat.v1.Admin",
) -> Message | None:
    """One call with the command's server, TLS and token; None (said on stderr) when
    it fails."""
    try:
        addresses, tls = where(args)
        given = credential(args, addresses)
        return anyio.run(
            partial(
                admin_call,
                addresses[0],
                method,
                request,
                reply,
                ssl_context=tls,
                token=given.token,
                saved=given.saved,
                service=service,
            ),
            backend="trio",
        )
    except (ValueError, TlsSetupError, AdminError) as error:
        _failed(error)
        return None


def _failed(error: Exception | str) -> int:
    """Say why on stderr, in one sentence; EXIT_FAILED."""
    text = str(error).strip()
    text += "" if text.endswith((".", "!", "?")) else "."
    print(f"purechat: {text}", file=sys.stderr)
    return EXIT_FAILED


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d %H:%M")
