"""Accounts and moderation from the command line, as processes: `purechat account` on
the store beside a running server, `login`/`logout` and the session kept for a server
and used without being told, `room claim`, `mod`, `audit` and `admin` for scripts, and
the --help of every new command.

The server runs in-process on a SQLite file (as `purechat serve` would, holding it);
each person is a process environment of its own (its own state directory)."""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from purechat.cli import _parser
from purechat.core.names import name_key
from purechat.status import StatusCode
from purechat.store import SqliteStore
from tests.accounts import PASSWORD, accounts_config, login, member, refused_join, register
from tests.helpers import Harness
from tests.people import Person
from tests.polling import settles


@pytest.fixture
async def chat(start_server, tmp_path: Path) -> Any:
    """A server on purechat.db in tmp_path (the default --store there), root its admin."""

    async def start(**config: Any) -> Harness:
        store = await SqliteStore.open(tmp_path / "purechat.db")
        harness: Harness = await start_server(
            store=store, **{**accounts_config(admins=["root"]), **config}
        )
        return harness

    return start


def people(tmp_path: Path, harness: Harness, *names: str) -> list[Person]:
    server = f"127.0.0.1:{harness.port}"
    return [Person(tmp_path / name, server, tmp_path) for name in names]


async def test_account_commands_change_the_store_beside_a_running_server(
    chat, tmp_path: Path
) -> None:
    harness: Harness = await chat()
    (admin,) = people(tmp_path, harness, "admin")
    with trio.fail_after(60):
        said = await admin.run("account", "add", "alice", stdin=f"{PASSWORD}\n")
        assert said == (0, "Added the account alice: it can log in now (purechat login).\n", "")
        assert await admin.run("account", "add", "bob", stdin="short\n") == (
            1,
            "",
            "purechat: A password is at least 8 characters.\n",
        )
        assert await admin.run("account", "add", "ALICE", stdin=f"{PASSWORD}\n") == (
            1,
            "",
            "purechat: The name ALICE is registered already (or one like it).\n",
        )
        code, listed, _ = await admin.run("account", "list")
        assert code == 0 and listed.startswith("alice\tsince ")
        # The running server knows the account at once, and its name is kept for it.
        await settles(lambda: name_key("alice") in harness.server.auth.account_keys)
        alice = await member(harness, "alice", await login(harness, "alice"))
        guest = await member(harness, "alice")
        assert guest.welcome.name != "alice"

        # A new password ends the account's open streams, on every server.
        new = "a brand new password"
        said = await admin.run("account", "passwd", "alice", stdin=f"{new}\n")
        assert said[0] == 0 and "its sessions were ended" in said[1]
        await alice.until_end()
        assert alice.call.status is not None
        assert alice.call.status.status_code is StatusCode.UNAUTHENTICATED
        with pytest.raises(Exception, match="Wrong name or password"):
            await login(harness, "alice")
        await member(harness, "alice", await login(harness, "alice", new))

        assert await admin.run("account", "logout-all", "alice") == (
            0,
            "Ended 1 session(s) of alice, on every server sharing this store.\n",
            "",
        )
        said = await admin.run("account", "remove", "alice")
        assert said[0] == 0 and said[1].startswith("Removed the account alice")
        with pytest.raises(Exception, match="Wrong name or password"):
            await login(harness, "alice", new)
        assert (await admin.run("account", "remove", "alice"))[2] == (
            "purechat: There is no account called alice.\n"
        )
        memory = await admin.run("account", "list", "--store", "memory://")
        assert memory[0] == 1 and "memory:// store lives inside one running server" in memory[2]
        elsewhere = await admin.run("account", "list", "--store", "sqlite:///nowhere.db")
        assert elsewhere[0] == 1 and "There is no store at nowhere.db" in elsewhere[2]
    # A password is never shown, and never kept in the clear.
    await harness.server.store.aclose()
    stored = await trio.to_thread.run_sync(
        lambda: [path.read_bytes() for path in tmp_path.glob("purechat.db*")]
    )
    assert stored and all(PASSWORD.encode() not in data for data in stored)


async def test_a_login_is_kept_0600_per_server_and_used_without_being_told(
    chat, tmp_path: Path
) -> None:
    harness: Harness = await chat(**accounts_config(admins=["root"], guests=False))
    await register(harness.server.directory, "alice", "bob")
    alice, stranger = people(tmp_path, harness, "alice", "stranger")
    server = f"127.0.0.1:{harness.port}"
    with trio.fail_after(60):
        code, _, said = await alice.run("login", "alice", stdin="not it\n")
        assert (code, said) == (1, "purechat: Wrong name or password.\n")
        assert alice.session_files() == []
        code, said, _ = await alice.run("login", "--server", server, "alice", stdin=f"{PASSWORD}\n")
        assert code == 0 and said.startswith(f"Logged in to {server} as alice, until ")
        (kept,) = alice.session_files()
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
        assert "pcs_" in kept.read_text() and PASSWORD not in kept.read_text()

        # Guests are not let in here: every one of these works only with the session.
        watcher = await member(harness, "bob", await login(harness, "bob"), room="den")
        code, _, said = await alice.run("join", "--room", "den", "--name", "x", stdin="piped\n")
        assert (code, said) == (0, "")
        assert (await watcher.next_message()).user == "alice"
        assert (await alice.run("post", "--room", "den", "posted"))[0] == 0
        assert (await watcher.next_message()).user == "alice"
        assert await alice.run("who", "den") == (0, "bob\n", "")
        assert (await alice.run("rooms"))[1].startswith("den\t1 members")
        refused = await stranger.run("who", "den")
        assert refused[0] == 1 and "is for members with an account: log in first" in refused[2]
        # A token given explicitly wins over the saved session.
        wrong = await alice.run("who", "den", "--token", "not-a-token")
        assert "does not accept this token" in wrong[2]

        # Ended elsewhere (an admin, another machine): the next command says to log in again.
        token = kept.read_text().split('"token": "')[1].split('"')[0]
        await harness.server.directory.end_sessions("alice", "logged out everywhere")
        code, _, said = await alice.run("join", "--room", "den", stdin="again\n")
        assert code == 1
        assert said == (
            f"purechat: Your session on {server} has expired or was ended: log in again "
            f"(purechat login --server {server} NAME).\n"
        )
        assert (await alice.run("login", "alice", stdin=f"{PASSWORD}\n"))[0] == 0
        token = alice.session_files()[0].read_text().split('"token": "')[1].split('"')[0]
        assert await alice.run("logout") == (
            0,
            f"Logged out of {server}: the session is ended and forgotten.\n",
            "",
        )
        assert alice.session_files() == []
        status = await refused_join(harness, "alice", token)
        assert status.status_code is StatusCode.UNAUTHENTICATED
        assert (await alice.run("logout"))[
            1
        ] == f"No session is kept for {server}: nothing to do.\n"


async def test_scripts_claim_op_ban_and_read_the_audit_with_their_sessions(
    chat, tmp_path: Path
) -> None:
    harness: Harness = await chat()
    await register(harness.server.directory, "alice", "bob", "spammer", "root")
    alice, bob, root = people(tmp_path, harness, "alice", "bob", "root")
    with trio.fail_after(90):
        for person, name in ((alice, "alice"), (bob, "bob"), (root, "root")):
            assert (await person.run("login", name, stdin=f"{PASSWORD}\n"))[0] == 0
        spammer = await member(harness, "spammer", await login(harness, "spammer"), room="den")
        assert await alice.run("room", "claim", "--room", "den") == (
            0,
            "den: alice claimed the room and owns it now (#1)\n",
            "",
        )
        assert await bob.run("mod", "ban", "--room", "den", "spammer") == (
            1,
            "",
            "purechat: Only an operator of this room may ban.\n",
        )
        assert (await alice.run("mod", "op", "--room", "den", "bob"))[0] == 0
        banned = await bob.run(
            "mod", "ban", "--room", "den", "spammer", "--for", "1h", "--reason", "spam"
        )
        assert banned == (0, "den: spammer was banned by bob for 1h: spam (#3)\n", "")
        await spammer.until_end()
        assert spammer.call.status is not None
        assert spammer.call.status.status_code is StatusCode.PERMISSION_DENIED
        wrong = await bob.run("mod", "mute", "--room", "den", "spammer", "--for", "3y")
        assert wrong[0] == 2 and "'3y' is not a duration" in wrong[2]
        assert (await bob.run("mod", "topic", "--room", "den", "plans, not spam"))[0] == 0
        assert (await alice.run("mod", "mode", "--room", "den", "invite-only"))[0] == 0
        code, audit, _ = await bob.run("audit", "--room", "den")
        assert code == 0
        assert [line.split("\t", 2)[1:] for line in audit.splitlines()] == [
            ["den", "alice claimed the room and owns it now"],
            ["den", "alice made bob an operator"],
            ["den", "spammer was banned by bob for 1h: spam"],
            ["den", "bob set the topic: plans, not spam"],
            ["den", "alice made the room invite-only"],
        ]
        assert await bob.run("audit") == (
            1,
            "",
            "purechat: Only the server's admins may read that.\n",
        )

        # The server's admin: bans, addresses, sessions.
        code, bans, _ = await root.run("admin", "bans", "--room", "den")
        assert code == 0 and bans.startswith("account:") and "\tby bob\tuntil " in bans
        assert bans.rstrip().endswith("\tspam")
        assert await root.run(
            "admin", "ban-address", "203.0.113.7", "--for", "1h", "--reason", "flood"
        ) == (0, "Banned 203.0.113.7 from the server for 1h: flood.\n", "")
        assert (await root.run("admin", "bans"))[1].startswith("address:203.0.113.7\tby root")
        assert (await root.run("admin", "unban-address", "203.0.113.7"))[0] == 0
        assert (await root.run("admin", "bans"))[1] == "No address is banned.\n"
        code, sessions, _ = await root.run("admin", "sessions", "bob")
        assert code == 0 and sessions.startswith("bob\tsince ")
        assert await bob.run("admin", "bans") == (
            1,
            "",
            "purechat: Only the server's admins may read that.\n",
        )
        assert (await root.run("admin", "end-sessions", "bob"))[1] == (
            "Ended 1 session(s) of bob, on every server sharing the store.\n"
        )
        code, _, said = await bob.run("audit", "--room", "den")
        assert code == 1 and "log in again" in said


# Every command this issue adds, as typed after `purechat`.
NEW_COMMANDS = [
    ["login"],
    ["register"],
    ["logout"],
    ["room", "claim"],
    *[["mod", action] for action in ("kick", "ban", "unban", "mute", "unmute", "op", "deop")],
    *[["mod", action] for action in ("invite", "topic", "mode")],
    ["audit"],
    *[["admin", action] for action in ("sessions", "end-sessions", "bans")],
    *[["admin", action] for action in ("ban-address", "unban-address")],
    *[["account", action] for action in ("add", "passwd", "remove", "list", "logout-all")],
    ["serve"],
]


def _subparser(words: list[str]) -> argparse.ArgumentParser:
    parser, _ = _parser()
    for word in words:
        (choices,) = [
            action.choices
            for action in parser._actions
            if isinstance(action, argparse._SubParsersAction)
        ]
        parser = choices[word]
    return parser


@pytest.mark.parametrize("words", NEW_COMMANDS, ids=" ".join)
def test_help_of_every_new_command_is_complete(words: list[str], capsys) -> None:
    parser = _subparser(words)
    assert parser.description, f"purechat {' '.join(words)} has no description"
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            continue
        assert action.help, f"{action.option_strings or action.dest} of {words} has no help"
    from purechat import cli  # noqa: PLC0415

    with pytest.raises(SystemExit):
        cli.main([*words, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in shown and "(default: False)" not in shown
    if words == ["serve"]:
        for option in ("--guests {allow,deny}", "--registration {open,closed}", "--admin NAME"):
            assert option in shown
        assert "(default: closed)" in shown and "(default: 30d)" in shown
        assert "(default: allow, or deny when --tokens is given)" in shown


def test_serve_takes_the_accounts_options_from_flags_files_and_the_environment(
    tmp_path: Path,
) -> None:
    from purechat.cli import _server_config  # noqa: PLC0415
    from purechat.settings import defaults_from  # noqa: PLC0415

    _, serve = _parser()
    config = tmp_path / "serve.toml"
    config.write_text('admin = ["root", "Alice"]\nregistration = "open"\n')
    serve.set_defaults(**defaults_from(serve, config, {"PURECHAT_SESSION_TTL": "12h"}))
    accounts = _server_config(serve.parse_args(["--guests", "deny"])).accounts
    assert accounts.admins == frozenset({name_key("root"), name_key("alice")})
    assert (accounts.registration, accounts.guests, accounts.session_ttl) == (True, False, 43200)
    defaults = _server_config(_parser()[1].parse_args([])).accounts
    assert (defaults.registration, defaults.guests, defaults.session_ttl) == (
        False,
        None,
        30 * 86400,
    )


async def test_a_bad_accounts_option_is_one_sentence(tmp_path: Path) -> None:
    serve = [sys.executable, "-m", "purechat", "serve", "--store", "memory://", "--port", "0"]
    for options, code, words in (
        (["--session-ttl", "soon"], 2, "'soon' is not a duration"),
        (["--session-ttl", "400d"], 2, "A duration is from a second to a year"),
        (["--admin", "bad\u200bname"], 1, "--admin 'bad\\u200bname' is not a name"),
        (["--guests", "maybe"], 2, "invalid choice: 'maybe'"),
    ):
        done = await trio.run_process(
            [*serve, *options], capture_stdout=True, capture_stderr=True, check=False, cwd=tmp_path
        )
        lines = done.stderr.decode().strip().splitlines()
        assert done.returncode == code and len(lines) == 1 and words in lines[0], lines
