"""`purechat history` and `purechat search`: reading back from a script or a shell.

Each is one call to a running server (with the session `purechat login` saved for it
unless a token is given): lines on stdout and exit 0, or the server's sentence on
stderr and exit 1 (a conversation that is not yours, a guest asking for one...).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import anyio

from purechat.client.admin import AdminError
from purechat.client.commands import add_connection_options, credential, where
from purechat.client.reading import (
    MOST,
    PAGE,
    Asker,
    history_json,
    history_lines,
    search_json,
    search_lines,
)
from purechat.tls import TlsSetupError

EXIT_OK = 0
EXIT_FAILED = 1


def add_read_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add history and search to `purechat`'s subcommands."""
    history = commands.add_parser(
        "history",
        help="read a room's or a conversation's messages back, by number",
        description="Read a room's (or, logged in, a conversation's) messages back: the "
        "newest, or those before, after or around a number; each with its number, to page "
        "on from, and messages no longer kept said as a gap. Whoever may join a room may "
        "read it back; a conversation, only its two accounts.",
    )
    _where(history)
    at = history.add_mutually_exclusive_group()
    at.add_argument("--before", type=_number, metavar="N", help="messages before number N")
    at.add_argument("--after", type=_number, metavar="N", help="messages after number N")
    at.add_argument("--around", type=_number, metavar="N", help="messages around number N")
    _limit(history)
    history.add_argument(
        "--json", action="store_true", help="one JSON object per message (as a pipe's)"
    )
    add_connection_options(history)
    history.set_defaults(run=_history)

    search = commands.add_parser(
        "search",
        help="find messages holding words, in what you may read",
        description="Find messages holding every word of TEXT (case and accents aside, in any "
        "script), newest first: in one room or conversation, or in everything you may read. "
        "Each result says where, its number (purechat history --around N shows it in "
        "place), when, who, and the words found (marked [[like this]], or highlighted in a "
        "terminal).",
    )
    search.add_argument("text", nargs="+", metavar="TEXT", help="the words to find")
    _where(search, default_room=False)
    _limit(search)
    search.add_argument(
        "--page", default="", metavar="TOKEN", help="older results: the token a search gave"
    )
    search.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per result, with `marks`: [start, end) of each word found",
    )
    add_connection_options(search)
    search.set_defaults(run=_search)


def _where(command: argparse.ArgumentParser, *, default_room: bool = True) -> None:
    group = command.add_mutually_exclusive_group()
    group.add_argument(
        "--room",
        default="lobby" if default_room else "",
        help="the room (default: lobby)" if default_room else "only this room",
    )
    group.add_argument(
        "--dm", default="", metavar="NAME", help="the conversation with the account NAME"
    )


def _limit(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--limit",
        type=int,
        default=PAGE,
        metavar="N",
        help=f"at most N messages, 1 to {MOST} (default: {PAGE})",
    )


def _number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a message number")
    return int(text)


def _asker(args: argparse.Namespace) -> Asker:
    addresses, tls = where(args)
    given = credential(args, addresses)
    return Asker(addresses[0], tls, given.token, given.saved)


def _history(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MOST:
        return _failed(f"--limit must be a number of messages from 1 to {MOST}, not {args.limit}")
    try:
        asker = _asker(args)
        page = anyio.run(
            lambda: asker.history(
                room="" if args.dm else args.room,
                dm=args.dm,
                before=args.before,
                after=args.after,
                around=args.around,
                limit=args.limit,
            ),
            backend="trio",
        )
    except (ValueError, TlsSetupError, AdminError) as error:
        return _failed(error)
    lines = history_json(page) if args.json else history_lines(page, colour=sys.stdout.isatty())
    _print(lines)
    return EXIT_OK


def _search(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= MOST:
        return _failed(f"--limit must be a number of results from 1 to {MOST}, not {args.limit}")
    text = " ".join(args.text)
    try:
        asker = _asker(args)
        found = anyio.run(
            lambda: asker.search(
                text, room=args.room, dm=args.dm, limit=args.limit, page=args.page
            ),
            backend="trio",
        )
    except (ValueError, TlsSetupError, AdminError) as error:
        return _failed(error)
    _print(search_json(found) if args.json else search_lines(found, colour=sys.stdout.isatty()))
    if found.next:
        print(f"purechat: older results: add --page {found.next}", file=sys.stderr)
    return EXIT_OK


def _print(lines: list[str]) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


def _failed(error: Exception | str) -> int:
    text = str(error).strip()
    text += "" if text.endswith((".", "!", "?")) else "."
    print(f"purechat: {text}", file=sys.stderr)
    return EXIT_FAILED
