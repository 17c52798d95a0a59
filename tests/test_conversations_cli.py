"""Conversations, history and search from the command line, as processes: `purechat post
--to`, `join --dm` (a pipe, which never marks anything read), `history` and `search`
(lines and --json), `rooms` with unread counts, and what a guest is told.

The server runs in-process on a SQLite file with accounts; each person is a process
environment of its own (its own state directory, its own saved session)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from purechat.cli import _parser
from purechat.store import SqliteStore
from tests.accounts import accounts_config, register
from tests.helpers import Harness
from tests.people import Person


@pytest.fixture
async def people(start_server, tmp_path: Path) -> Any:
    """alice, bob and carol logged in (each their own process environment), and a guest,
    on a server with accounts on SQLite."""
    store = await SqliteStore.open(tmp_path / "purechat.db")
    harness: Harness = await start_server(store=store, **accounts_config())
    await register(harness.server.directory, "alice", "bob", "carol")
    server = f"127.0.0.1:{harness.port}"
    alice, bob, carol, guest = (
        Person(tmp_path / n, server, tmp_path) for n in ("alice", "bob", "carol", "guest")
    )
    with trio.fail_after(60):
        for person, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            await person.login(name)
    return alice, bob, carol, guest


async def test_a_direct_message_is_posted_read_back_found_and_counted_unread(people) -> None:
    alice, bob, *_ = people
    with trio.fail_after(90):
        assert await alice.run("post", "--to", "bob", "are you there, bob?") == (0, "", "")
        posted = await alice.run("post", "--to", "bob", "the déploy is done", "are you free?")
        assert posted[0] == 0
        # bob, who was away, finds them counted unread, with the mention of his name.
        code, listed, _ = await bob.run("rooms")
        assert code == 0
        assert "@alice\tconversation\tlast message #3\t3 unread, 1 mention" in listed.splitlines()
        # ... and reads them back, numbered, oldest first.
        code, shown, _ = await bob.run("history", "--dm", "alice")
        assert code == 0
        lines = shown.splitlines()
        assert lines[0].endswith("alice: are you there, bob?  #1")
        assert lines[2].endswith("alice: are you free?  #3")
        code, shown, _ = await bob.run("history", "--dm", "alice", "--before", "3", "--limit", "1")
        assert shown.splitlines() == [
            shown.splitlines()[0],
            "-- older: --before 2",
            "-- newer: --after 2",
        ]
        assert shown.splitlines()[0].endswith("alice: the déploy is done  #2")
        code, shown, _ = await bob.run("history", "--dm", "alice", "--json")
        first = json.loads(shown.splitlines()[0])
        assert (first["user"], first["seq"], first["peer"]) == ("alice", 1, "alice")
        # Search: accents aside, the found word marked, where it was said.
        code, found, _ = await bob.run("search", "deploy")
        assert code == 0
        (line,) = found.splitlines()
        assert line.startswith("@alice #2 [") and line.endswith("alice: the [[déploy]] is done")
        code, found, _ = await bob.run("search", "--dm", "alice", "DEPLOY", "--json")
        (result,) = [json.loads(line) for line in found.splitlines()]
        assert result["marks"] == [[4, 10]] and result["text"][4:10] == "déploy"
        # Paged: the newest first, and the token for older ones.
        code, found, hint = await bob.run("search", "you", "--limit", "1")
        assert found.splitlines()[0].startswith("@alice #3 ")
        assert hint.startswith("purechat: older results: add --page ")
        token = hint.split("--page ", 1)[1].strip()
        code, found, hint = await bob.run("search", "you", "--limit", "1", "--page", token)
        assert found.splitlines()[0].startswith("@alice #1 ")
        # A pipe in the conversation reads it and marks nothing read: still 3 unread.
        code, piped, problem = await bob.run(
            "join", "--dm", "alice", "--history", "10", stdin="got them\n"
        )
        assert code == 0, problem
        assert "alice: are you free?" in piped and "bob: got them" in piped
        code, listed, _ = await bob.run("rooms")
        assert "@alice\tconversation\tlast message #4\t3 unread, 1 mention" in listed.splitlines()
        code, listed, _ = await alice.run("rooms")
        assert "@bob\tconversation\tlast message #4\t1 unread" in listed.splitlines()


async def test_nobody_else_reads_a_conversation_and_a_guest_is_told_why(people) -> None:
    alice, _, carol, guest = people
    with trio.fail_after(90):
        assert (await alice.run("post", "--to", "bob", "the secret is 42"))[0] == 0
        # carol has her own conversation with alice, empty; she cannot find bob's words.
        code, shown, _ = await carol.run("history", "--dm", "alice")
        assert (code, shown) == (0, "-- nothing in @alice there\n")
        code, found, _ = await carol.run("search", "secret")
        assert (code, found) == (0, "-- nothing found\n")
        code, _, problem = await carol.run("history", "--room", "@dm:alice:bob")
        assert code == 1 and "not yours" in problem
        # A guest: the server's sentence, at every door, and exit 1.
        words = "purechat: Direct messages are between accounts: log in to have conversations.\n"
        assert await guest.run("post", "--to", "bob", "hi") == (1, "", words)
        assert await guest.run("history", "--dm", "bob") == (1, "", words)
        code, _, problem = await guest.run("join", "--dm", "bob", stdin="hi\n")
        assert code == 1 and problem == words
        # An account that does not exist.
        code, _, problem = await alice.run("post", "--to", "nobody", "hi")
        assert (code, problem) == (1, "purechat: There is no account called nobody.\n")


def test_help_of_the_new_commands_is_tidy() -> None:
    parser, _ = _parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    for name in ("history", "search", "join", "post", "rooms"):
        text = commands.choices[name].format_help()  # type: ignore[attr-defined]
        assert "default: None" not in text and "(default: )" not in text, name
    assert "--dm NAME" in commands.choices["join"].format_help()  # type: ignore[attr-defined]
    assert "--to NAME" in commands.choices["post"].format_help()  # type: ignore[attr-defined]
