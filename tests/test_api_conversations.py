"""The Python API's conversations: `send_direct` to an account that is away, `connect(dm=)`
to read it there, `history`, `search` and `conversations()`, and read markers only
when the bot says (`mark_read`), heard by the account's other sessions."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from purechat.client import SendRefused, connect, login
from purechat.core.names import name_key
from purechat.store import SqliteStore
from tests.accounts import PASSWORD, accounts_config, register
from tests.helpers import Harness
from tests.polling import settles


@pytest.fixture
async def server(start_server, tmp_path: Path) -> Harness:
    store = await SqliteStore.open(tmp_path / "chat.db")
    harness: Harness = await start_server(store=store, **accounts_config())
    await register(harness.server.directory, "alice", "bob")
    await settles(lambda: name_key("bob") in harness.server.auth.account_keys)
    return harness


async def test_a_bot_sends_directly_reads_back_searches_and_marks_read_when_told(
    server: Harness,
) -> None:
    address = f"127.0.0.1:{server.port}"
    with trio.fail_after(30):
        alice = (await login(address, "alice", PASSWORD)).token
        bob = (await login(address, "bob", PASSWORD)).token
        async with connect(address, name="x", token=alice) as chat:
            sent = await chat.send_direct("bob", "build 42 is green, bob")
            assert sent.seq == 1 and chat.room == "lobby"
            assert (await chat.send_direct("bob", "and 43")).seq == 2
            with pytest.raises(SendRefused, match=r"^There is no account called carl\.$"):
                await chat.send_direct("carl", "hi")
        async with (
            connect(address, name="x", token=bob, history=10) as lobby,
            connect(address, name="x", dm="alice", token=bob, history=10) as talk,
        ):
            assert talk.peer == "alice" and lobby.peer == ""
            received = []
            async for event in talk.events():
                received.append(event.text)
                if len(received) == 2:
                    break
            assert received == ["build 42 is green, bob", "and 43"]
            # Received is not read: a bot marks nothing unless it says so.
            (entry,) = await talk.conversations()
            assert (entry.peer, entry.unread, entry.mentions) == ("alice", 2, 1)
            page = await talk.history(before=2)
            assert [e.text for e in page.events] == ["build 42 is green, bob"]
            assert page.more_after and not page.more_before and page.peer == "alice"
            found = await lobby.search("GREEN")
            ((start, end),) = found.found[0].marks
            assert found.found[0].event.text[start:end] == "green"
            assert found.found[0].peer == "alice"
            talk.mark_read()
            # Every session of bob's hears it; the count follows.
            await settles(lambda: talk.room in lobby.read)
            assert lobby.read[talk.room] == 2
            (entry,) = await talk.conversations()
            assert (entry.unread, entry.read_seq) == (0, 2)


async def test_a_guest_bot_is_told_why_it_has_no_conversations(server: Harness) -> None:
    address = f"127.0.0.1:{server.port}"
    sentence = r"^Direct messages are between accounts: log in to have conversations\.$"
    with trio.fail_after(30):
        async with connect(address, name="guest", token="") as chat:
            with pytest.raises(SendRefused, match=sentence):
                await chat.send_direct("bob", "hi")
            with pytest.raises(SendRefused, match=sentence):
                await chat.history(dm="bob")
            with pytest.raises(SendRefused, match=r"log in"):
                await chat.conversations()


async def test_a_bot_in_a_room_hears_of_a_direct_message_as_an_event(server: Harness) -> None:
    address = f"127.0.0.1:{server.port}"
    with trio.fail_after(30):
        alice = (await login(address, "alice", PASSWORD)).token
        bob = (await login(address, "bob", PASSWORD)).token
        async with (
            connect(address, name="x", token=bob) as lobby,
            connect(address, name="x", token=alice) as sender,
        ):
            await sender.send_direct("bob", "deploy done")
            async for event in lobby.events():
                if event.kind == "conversation":
                    break
            assert (event.user, event.seq, event.text) == ("alice", 1, "deploy done")
            assert event.room.startswith("@dm:")
