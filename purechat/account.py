"""`purechat account`: the accounts in a server's store, changed without the server.

`purechat account add|passwd|remove|list|logout-all` open the store the server uses
(`--store`, with the same default and forms as `purechat serve`, or its --config file
or PURECHAT_STORE) and change it directly: a SQLite file beside a running server (under
SQLite's own locking; the server holds the file for itself, this opens it shared), or
the Redis every server shares. Servers act on what changed within a second (the
store's control records): a new password, a removed account or `logout-all` ends the
account's open streams everywhere. A memory:// store lives in one server's memory,
out of reach of another process: it is refused with a sentence.

A password is read from the terminal without echo (twice, for a new one), or as the
first line of stdin when it is not a terminal, and hashed here (argon2id) before it
goes to the store: the store never holds it in the clear. Every outcome is one
sentence: on stdout with exit 0, or on stderr with exit 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread

from purechat.client.display import shown_name
from purechat.client.login import PasswordError, read_password
from purechat.core import Limits
from purechat.core.names import name_problem
from purechat.errors import PurechatError
from purechat.server.passwords import Passwords, password_problem
from purechat.settings import SettingsError, setting
from purechat.store import DEFAULT_STORE_URL, SqliteStore, Store, StoreError, open_store
from purechat.store.base import Records
from purechat.store.directory import AccountRefused, Directory

EXIT_OK = 0
EXIT_FAILED = 1


class AccountError(PurechatError):
    """What `purechat account` could not do; str() is a sentence."""


def add_account_command(commands: argparse._SubParsersAction[Any]) -> None:
    """Add `purechat account` and its actions."""
    account = commands.add_parser(
        "account",
        help="add, change, remove or list the accounts in a server's store",
        description="Add, change, remove or list accounts, working on the server's store "
        "directly (beside a running server, or before one starts). Passwords are read from "
        "the terminal without echo, or as the first line of stdin when it is not a "
        "terminal, and kept only as argon2id hashes.",
    )
    actions = account.add_subparsers(dest="account_command", metavar="ACTION", required=True)
    for name, summary, run in (
        ("add", "add an account (its name is then kept for it)", _add),
        ("passwd", "give an account a new password (its sessions end)", _passwd),
        ("remove", "remove an account (its sessions end; its name is free again)", _remove),
        ("list", "list the accounts", _list),
        ("logout-all", "end every session of an account, on every server", _logout_all),
    ):
        action = actions.add_parser(name, help=summary, description=summary.capitalize() + ".")
        if name != "list":
            action.add_argument("name", metavar="NAME", help="the account's name")
        action.add_argument(
            "--store",
            metavar="URL",
            help="the server's store: sqlite:///PATH (relative; sqlite:////PATH for an "
            "absolute path) or redis://HOST:PORT[/DB] (rediss:// for TLS), as for `purechat "
            f"serve` (default: $PURECHAT_STORE, the --config file's, or {DEFAULT_STORE_URL})",
        )
        action.add_argument(
            "--config", type=Path, metavar="FILE", help="the server's TOML file, for its store"
        )
        action.set_defaults(run=_running(run))


def _running(action: Callable[[Directory, argparse.Namespace, _Portal], str]) -> Any:
    """The command's `run`: open the store, do action, say its sentence; the exit status."""

    def run(args: argparse.Namespace) -> int:
        try:
            said = _with_directory(args, action)
        except (PurechatError, PasswordError) as error:
            print(f"purechat: {_sentence(str(error))}", file=sys.stderr)
            return EXIT_FAILED
        print(said)
        return EXIT_OK

    return run


class _Portal:
    """Calls into the event loop that owns the store, from the command's own thread
    (which reads passwords: a terminal must be given back as it was, even on Ctrl-C)."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal):
        self._portal = portal

    def call(self, function: Callable[..., Any], *args: Any) -> Any:
        return self._portal.call(function, *args)


def _with_directory(
    args: argparse.Namespace, action: Callable[[Directory, argparse.Namespace, _Portal], str]
) -> str:
    url = _store_url(args)
    with anyio.from_thread.start_blocking_portal(backend="trio") as blocking:
        portal = _Portal(blocking)
        store: Store = portal.call(_open, url, args.account_command == "add")
        try:
            if not isinstance(store, Records):
                raise AccountError(f"the store at {url} keeps no accounts")
            return action(Directory(store), args, portal)
        finally:
            portal.call(store.aclose)


def _store_url(args: argparse.Namespace) -> str:
    try:
        return args.store or setting("store", args.config) or DEFAULT_STORE_URL
    except SettingsError as error:
        raise AccountError(str(error)) from None


async def _open(url: str, creating: bool) -> Store:
    """The server's store, opened beside it; AccountError for memory://, and for a
    SQLite file that is not there (unless an account is being added: a store may be
    made ready before its server first starts)."""
    if url == "memory://":
        raise AccountError(
            "a memory:// store lives inside one running server, out of reach of this "
            "command: give the server a store that keeps accounts (sqlite:///PATH or "
            "redis://HOST:PORT) and pass the same --store here"
        )
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not creating and not await (await anyio.Path(path).expanduser()).exists():
            raise AccountError(
                f"there is no store at {path} (is --store the one the server uses? run "
                "this where the server runs, or give its absolute path)"
            )
        return await SqliteStore.open(path, shared=True)
    try:
        return await open_store(url)
    except StoreError:
        raise
    except PurechatError as error:
        raise AccountError(str(error)) from None


def _new_password(name: str) -> str:
    """A new password for name, read and checked (PasswordError with the sentence)."""
    password = read_password(f"A password for {name}: ", confirm=True)
    if problem := password_problem(password):
        raise PasswordError(problem)
    return password


def _add(directory: Directory, args: argparse.Namespace, portal: _Portal) -> str:
    name = args.name
    if not name or (problem := name_problem(name, Limits())):
        raise AccountError(problem or "An account needs a name.")
    if portal.call(directory.account, name) is not None:
        raise AccountRefused(f"The name {name} is registered already (or one like it).")
    hashed = Passwords().hash_now(_new_password(name))
    account = portal.call(directory.add_account, name, hashed)
    return f"Added the account {shown_name(account.name)}: it can log in now (purechat login)."


def _passwd(directory: Directory, args: argparse.Namespace, portal: _Portal) -> str:
    account = _existing(directory, args.name, portal)
    hashed = Passwords().hash_now(_new_password(account.name))
    portal.call(directory.set_password, account.name, hashed)
    return (
        f"Changed the password of {shown_name(account.name)}; its sessions were ended, on "
        "every server sharing this store."
    )


def _remove(directory: Directory, args: argparse.Namespace, portal: _Portal) -> str:
    account = _existing(directory, args.name, portal)
    portal.call(directory.remove_account, account.name)
    return (
        f"Removed the account {shown_name(account.name)} and ended its sessions; its name is "
        "free again."
    )


def _list(directory: Directory, args: argparse.Namespace, portal: _Portal) -> str:
    accounts = portal.call(directory.accounts)
    if not accounts:
        return "No accounts yet (purechat account add NAME adds one)."
    return "\n".join(
        f"{shown_name(account.name)}\tsince {_day(account.created_ms)}" for account in accounts
    )


def _logout_all(directory: Directory, args: argparse.Namespace, portal: _Portal) -> str:
    account = _existing(directory, args.name, portal)
    ended = portal.call(directory.end_sessions, account.name, "logged out everywhere")
    return (
        f"Ended {ended} session(s) of {shown_name(account.name)}, on every server sharing "
        "this store."
    )


def _existing(directory: Directory, name: str, portal: _Portal) -> Any:
    account = portal.call(directory.account, name)
    if account is None:
        raise AccountRefused(f"There is no account called {name}.")
    return account


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000).astimezone().strftime("%Y-%m-%d")


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
