"""The client's commands: `purechat join`, `post`, `rooms` and `who` (parse, build, run);
those of accounts and moderation are in client/manage.py."""

from __future__ import annotations

import argparse
import getpass
import os
import ssl
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import anyio
from google.protobuf.message import Message

from purechat.client.admin import AdminError, print_members
from purechat.client.admin import call as admin_call
from purechat.client.display import Shown
from purechat.client.interactive import run_interactive
from purechat.client.pipe import Output, run_pipe
from purechat.client.post import Poster, PostError
from purechat.client.reading import Asker, room_lines, rooms_and_unread
from purechat.client.saved import SavedSessions
from purechat.client.session import Address, ChatSession
from purechat.pb import purechat_v1_pb2 as v1
from purechat.tls import TlsSetupError, client_context

DEFAULT_SERVER = "127.0.0.1:50051"
# A server to use when --server is not given (before DEFAULT_SERVER).
SERVER_VARIABLE = "PURECHAT_SERVER"
# A pipe that cannot deliver for this long gives up (a person at the keyboard decides).
PIPE_GIVE_UP = 30.0
# Recent messages shown on joining, by a person or a listener (a pipe sender shows none).
SHOWN_HISTORY = 20


def add_client_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add join, post, rooms and who to `purechat`'s subcommands."""

    join = commands.add_parser(
        "join",
        help="chat in a room",
        description="Chat in a room. In a terminal: a line editor, with the room above it "
        "(/help lists the commands). With stdin not a terminal: every input line is one "
        "message, every event one output line; exits 0 once the server has stored every "
        "line, 1 with the reason on stderr when it cannot.",
    )
    add_connection_options(join)
    join.add_argument(
        "--name", default=_login_name(), help="the name you ask for (default: your login)"
    )
    where_ = join.add_mutually_exclusive_group()
    where_.add_argument("--room", default="lobby", help="room to join (default: lobby)")
    where_.add_argument(
        "--dm",
        metavar="NAME",
        default="",
        help="a conversation with the account NAME instead of a room (logged in; messages "
        "sent to you while away are there)",
    )
    join.add_argument(
        "--history",
        type=int,
        metavar="N",
        help=f"recent messages to show on joining (default: {SHOWN_HISTORY}; 0 for a pipe "
        "that sends)",
    )
    join.add_argument("--json", action="store_true", help="pipe mode: one JSON object per line")
    join.add_argument(
        "--listen",
        action="store_true",
        help="print the room's events until interrupted, without a seat: in no member "
        "list, no join or leave seen by others; stdin is ignored",
    )
    join.add_argument(
        "--give-up-after",
        type=float,
        metavar="SECONDS",
        help=f"fail when nothing gets through for this long (default: {PIPE_GIVE_UP:g} for a "
        "pipe that sends; a person or a listener keeps trying unless this is given)",
    )
    join.add_argument(
        "--no-bell", action="store_true", help="do not ring the bell when someone names you"
    )
    join.add_argument(
        "--no-typing",
        action="store_true",
        help="do not tell the room when you are typing (others' typing is still shown; a "
        "pipe never tells it)",
    )
    join.set_defaults(run=_join)

    post = commands.add_parser(
        "post",
        help="post lines into a room without joining it (bots, CI)",
        description="Post each TEXT (or, with none, each line of stdin) into a room, without "
        "a seat: nobody sees a join or a leave. Every line is stored once, in order; exits "
        "0 once all are stored, 1 with the reason on stderr when they cannot be.",
    )
    post.add_argument("text", nargs="*", metavar="TEXT", help="messages to post")
    add_connection_options(post)
    where_ = post.add_mutually_exclusive_group()
    where_.add_argument("--room", default="lobby", help="room to post into (default: lobby)")
    where_.add_argument(
        "--to",
        metavar="NAME",
        default="",
        help="a direct message to the account NAME instead (logged in); kept for it until "
        "it next connects",
    )
    post.add_argument("--name", default=_login_name(), help="the name to post under")
    post.add_argument("--me", action="store_true", help="post actions, shown as '* NAME TEXT'")
    post.add_argument(
        "--reply-to",
        type=int,
        default=0,
        metavar="N",
        help="each line answers message N (shown under a quote of it)",
    )
    post.add_argument(
        "--give-up-after",
        type=float,
        default=PIPE_GIVE_UP,
        metavar="SECONDS",
        help=f"fail when nothing gets through for this long (default: {PIPE_GIVE_UP:g})",
    )
    post.set_defaults(run=_post)

    for name, summary, run in (
        ("rooms", "list a running server's rooms", _rooms),
        ("who", "list the members of a room on a running server", _who),
    ):
        admin = commands.add_parser(name, help=summary, description=summary.capitalize() + ".")
        if name == "who":
            admin.add_argument("room", help="room whose members to list")
        add_connection_options(admin)
        admin.set_defaults(run=run)


def add_connection_options(command: argparse.ArgumentParser, *, failover: bool = True) -> None:
    """--server (several, with failover), --tls, --tls-ca and --token."""
    command.add_argument(
        "--server",
        action="append" if failover else "store",
        metavar="HOST:PORT",
        help=f"server address (default: ${SERVER_VARIABLE}, or {DEFAULT_SERVER})"
        + (
            "; give several (or a comma list) to fail over between servers sharing one store"
            if failover
            else ""
        ),
    )
    command.add_argument("--tls", action="store_true", help="use TLS, trusting the system's roots")
    command.add_argument(
        "--tls-ca", type=Path, metavar="FILE", help="use TLS, trusting this certificate authority"
    )
    if not failover:
        return
    # No default here: --help would show it (the token itself).
    command.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help="bearer token for servers that require one (default: $PURECHAT_TOKEN, or the "
        "session `purechat login` saved for the server)",
    )


def addresses_of(args: argparse.Namespace) -> list[Address]:
    """Every --server given (each may be a comma list); ValueError for a bad one."""
    given = args.server or [os.environ.get(SERVER_VARIABLE) or DEFAULT_SERVER]
    if isinstance(given, str):
        given = [given]
    return [Address.parse(part.strip()) for value in given for part in value.split(",") if part]


@dataclass(frozen=True, slots=True)
class Credential:
    """The token a command sends, and whether it is a session `purechat login` saved
    (a refused one is then told to log in again)."""

    token: str | None
    saved: bool = False


def credential(args: argparse.Namespace, addresses: list[Address]) -> Credential:
    """--token, else $PURECHAT_TOKEN, else the session saved for the first of the
    servers that has one, else none."""
    given = getattr(args, "token", None) or os.environ.get("PURECHAT_TOKEN")
    if given:
        return Credential(given)
    saved = SavedSessions().first(addresses)
    return Credential(saved.token, saved=True) if saved is not None else Credential(None)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "guest"


def _problem(error: Exception) -> int:
    print(f"purechat: {error}", file=sys.stderr)
    return 2


def where(args: argparse.Namespace) -> tuple[list[Address], ssl.SSLContext | None]:
    """The servers to try and the TLS to use; ValueError or TlsSetupError when wrong."""
    return addresses_of(args), client_context(args.tls_ca) if (args.tls or args.tls_ca) else None


def _join(args: argparse.Namespace) -> int:
    try:
        addresses, tls = where(args)
    except (ValueError, TlsSetupError) as error:
        return _problem(error)
    given = credential(args, addresses)
    interactive = sys.stdin.isatty() and sys.stdout.isatty() and not (args.listen or args.json)
    sends = not interactive and not args.listen
    history = args.history if args.history is not None else (0 if sends else SHOWN_HISTORY)
    give_up = (
        args.give_up_after if args.give_up_after is not None else (PIPE_GIVE_UP if sends else None)
    )
    shown_send, shown = anyio.create_memory_object_stream[Shown](256)
    session = ChatSession(
        addresses,
        args.name,
        args.room,
        shown_send,
        history=max(0, history),
        give_up_after=give_up,
        ssl_context=tls,
        token=given.token,
        token_saved=given.saved,
        observe=args.listen,
        dm=args.dm,
    )

    async def main() -> int:
        with shown_send:
            if interactive:
                return await run_interactive(
                    session,
                    shown,
                    bell=not args.no_bell,
                    quit_patience=args.give_up_after,
                    typing=not args.no_typing,
                )
            output = Output(sys.stdout, sys.stderr, as_json=args.json)
            return await run_pipe(session, shown, output, listen=args.listen)

    try:
        return anyio.run(main, backend="trio")
    except KeyboardInterrupt:
        return 0 if interactive or args.listen else 130


def _post(args: argparse.Namespace) -> int:
    try:
        addresses, tls = where(args)
    except (ValueError, TlsSetupError) as error:
        return _problem(error)
    given = credential(args, addresses)
    lines = list(args.text) or _stdin_lines(sys.stdin)
    poster = Poster(
        addresses,
        args.room,
        args.name,
        give_up_after=args.give_up_after,
        ssl_context=tls,
        token=given.token,
        token_saved=given.saved,
        to=args.to,
        notice=lambda sentence: print(f"! {sentence}", file=sys.stderr, flush=True),
    )
    try:
        anyio.run(
            partial(poster.post, lines, action=args.me, reply_to=max(0, args.reply_to)),
            backend="trio",
        )
    except PostError as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 1
    return 0


def _stdin_lines(stdin: TextIO) -> list[str]:
    return [line.rstrip("\r\n") for line in stdin if line.strip()]


def _admin(args: argparse.Namespace, method: str, request: Message, reply: type[Message]) -> int:
    try:
        addresses, tls = where(args)
        given = credential(args, addresses)
        answer = anyio.run(
            partial(
                admin_call,
                addresses[0],
                method,
                request,
                reply,
                ssl_context=tls,
                token=given.token,
                saved=given.saved,
            ),
            backend="trio",
        )
    except (ValueError, TlsSetupError, AdminError) as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 1
    print_members(answer)
    return 0


def _rooms(args: argparse.Namespace) -> int:
    """The rooms with members; logged in, with what is unread in each, and the
    account's conversations and the rooms it has read in."""
    try:
        addresses, tls = where(args)
        given = credential(args, addresses)
        asker = Asker(addresses[0], tls, given.token, given.saved)
        rooms, read = anyio.run(partial(rooms_and_unread, asker), backend="trio")
    except (ValueError, TlsSetupError, AdminError) as error:
        print(f"purechat: {error}", file=sys.stderr)
        return 1
    for line in room_lines(rooms, read):
        print(line)
    sys.stdout.flush()
    return 0


def _who(args: argparse.Namespace) -> int:
    return _admin(
        args, "ListMembers", v1.ListMembersRequest(room=args.room), v1.ListMembersResponse
    )
