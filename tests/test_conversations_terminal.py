"""Conversations in `purechat join` at a terminal (a pseudo-terminal read back through a
terminal emulator): /rooms with unread counts, /dm, /msg, /history and /search, what a
guest is told, and what was printed marked read (and only that)."""

from __future__ import annotations

import trio

from purechat.pb import purechat_v1_pb2 as v1
from tests.accounts import accounts_config, login, register, unary
from tests.helpers import Harness
from tests.polling import eventually
from tests.test_interactive import _has, _idle_after, _in_a_terminal

CHAT = "purechat.v1.Chat"


async def _post(harness: Harness, token: str, to: str, text: str) -> v1.PostResponse:
    request = v1.PostRequest(to=to, text=text, client_msg_id=f"{to}-{text}")
    return await unary(harness, CHAT, "Post", request, v1.PostResponse, token=token)


async def _unread(harness: Harness, token: str) -> dict[str, int]:
    answer = await unary(
        harness,
        CHAT,
        "Conversations",
        v1.ConversationsRequest(),
        v1.ConversationsResponse,
        token=token,
    )
    return {entry.peer or entry.room: entry.unread for entry in answer.entries}


async def test_conversations_at_the_terminal(start_server, nursery, tmp_path) -> None:
    harness: Harness = await start_server(**accounts_config())
    await register(harness.server.directory, "alice", "bob", "carol")
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    with trio.fail_after(60):
        alice, bob = await login(harness, "alice"), await login(harness, "bob")
        carol = await login(harness, "carol")
        await _post(harness, alice, "bob", "are you there, bob?")
        await _post(harness, alice, "bob", "the deploy is done")
        async with _in_a_terminal(nursery, harness, "--token", bob, env=env) as (process, client):
            await _idle_after(client, "joined lobby as bob")
            client.type("/rooms\r")
            await _idle_after(client, "conversations: @alice (2 unread, 1 mention)")
            # Nothing printed from the conversation yet: nothing marked read.
            assert await _unread(harness, bob) == {"alice": 2}

            client.type("/dm alice\r")
            await _idle_after(client, "in the conversation with alice as bob")
            assert client.input_line() == "[@alice] >"
            assert _has(client, "alice: the deploy is done")
            # Printed, so read: on the server, for every session of bob's.
            await eventually(lambda: _unread(harness, bob), {"alice": 0})

            client.type("/history --around 1\r")
            await _idle_after(client, "alice: are you there, bob?  #1")
            client.type("/search DEPLOY\r")
            await _idle_after(client, "@alice #2 [")
            found = next(line for line in client.lines() if line.startswith("@alice #2 ["))
            assert found.endswith("alice: the deploy is done")
            # A message to carol, without leaving: stored, numbered, in her conversation.
            client.type("/msg carol lunch at noon?\r")
            await _idle_after(client, "-> carol: lunch at noon?  #1")
            assert client.input_line() == "[@alice] >"
            assert await _unread(harness, carol) == {"bob": 1}
            # Back to a room; a refused /dm says why and stays.
            client.type("/dm nobody\r")
            await _idle_after(client, "There is no account called nobody.")
            assert client.input_line() == "[@alice] >"
            client.type("\x04")
            await process.wait()
        assert process.returncode == 0


async def test_a_direct_message_while_in_a_room_is_told_and_left_unread(
    start_server, nursery, tmp_path
) -> None:
    """bob is in #lobby; alice writes to him: his terminal says so (with how to answer),
    and the message stays unread until he opens the conversation."""
    harness: Harness = await start_server(**accounts_config())
    await register(harness.server.directory, "alice", "bob")
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    with trio.fail_after(60):
        alice, bob = await login(harness, "alice"), await login(harness, "bob")
        async with _in_a_terminal(nursery, harness, "--token", bob, env=env) as (process, client):
            await _idle_after(client, "joined lobby as bob")
            await _post(harness, alice, "bob", "lunch?")
            await _idle_after(client, "-- alice wrote to you (#1): lunch?  (/dm alice to answer)")
            assert client.input_line() == "[lobby] >"
            assert await _unread(harness, bob) == {"alice": 1}
            client.type("\x04")
            await process.wait()
        assert process.returncode == 0


async def test_a_guest_at_the_terminal_is_told_why_and_stays(
    start_server, nursery, tmp_path
) -> None:
    harness: Harness = await start_server(**accounts_config())
    await register(harness.server.directory, "alice")
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    with trio.fail_after(60):
        async with _in_a_terminal(nursery, harness, "--name", "guest", env=env) as (
            process,
            client,
        ):
            await _idle_after(client, "joined lobby as guest")
            client.type("/dm alice\r")
            await _idle_after(
                client, "Direct messages are between accounts: log in to have conversations."
            )
            assert client.input_line() == "[lobby] >"
            client.type("/msg alice hi\r")
            told = "! Direct messages are between accounts"
            await client.until(lambda: sum(told in line for line in client.lines()) == 2)
            # (Checked before the terminal closes: its reader must not outlive it.)
            assert await _unread(harness, await login(harness, "alice")) == {}
            client.type("\x04")
            await process.wait()
