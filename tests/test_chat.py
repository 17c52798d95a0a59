"""Members over real sockets, in-process server: what people in a room notice."""

from __future__ import annotations

import logging
import time

import pytest
import trio

from purechat.client.calls import V1Call
from purechat.core import Limits
from purechat.pb import purechat_v1_pb2 as v1
from purechat.transport import StatusCode
from tests.helpers import Harness, Member, final_status, still_served


async def test_two_members_see_each_others_messages_in_the_same_order(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        alice = await harness.v1("alice")
        bob = await harness.v1("bob")
        per_sender = 50

        async def talk(member: Member) -> None:
            for n in range(per_sender):
                await member.call.send(f"{member.name} {n}")

        async def collect(member: Member, into: list[tuple[int, str, str]]) -> None:
            while len(into) < 2 * per_sender:
                event = await member.next_message()
                into.append((event.seq, event.user, event.text))

        seen_by_alice: list[tuple[int, str, str]] = []
        seen_by_bob: list[tuple[int, str, str]] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(talk, alice)
            nursery.start_soon(talk, bob)
            nursery.start_soon(collect, alice, seen_by_alice)
            nursery.start_soon(collect, bob, seen_by_bob)
    assert seen_by_alice == seen_by_bob
    assert [seq for seq, _, _ in seen_by_alice] == list(range(1, 2 * per_sender + 1))
    for name in ("alice", "bob"):
        own = [text for _, user, text in seen_by_alice if user == name]
        assert own == [f"{name} {n}" for n in range(per_sender)]


async def test_welcome_and_presence(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        alice = await harness.v1("alice", "ops")
        assert list(alice.welcome.members) == ["alice"] and alice.welcome.room == "ops"
        bob = await harness.v1("bob", "ops")
        assert list(bob.welcome.members) == ["alice", "bob"]
        joined = (await alice.next_of("event")).event
        while joined.user != "bob":
            joined = (await alice.next_of("event")).event
        assert joined.kind == v1.Event.JOIN and joined.room == "ops"
        bob.call.close_send()
        left = (await alice.next_of("event")).event
        assert (left.kind, left.user) == (v1.Event.LEAVE, "bob")
        await bob.until_end()
        assert bob.call.status is not None and bob.call.status.status_code is StatusCode.OK


async def test_rooms_are_separate(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        in_ops = await harness.v1("alice", "ops")
        in_dev = await harness.v1("bob", "dev")
        await in_dev.say("only for dev")
        await in_ops.say("only for ops")
        assert (await in_ops.next_message()).text == "only for ops"
        assert (await in_dev.next_message()).text == "only for dev"


async def test_a_taken_name_gets_a_distinct_one(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        first = await harness.v1("sam")
        second = await harness.v1("sam")
        assert (first.name, second.name) == ("sam", "sam-2")
        await second.say("it's me")
        assert (await first.next_message()).user == "sam-2"


async def test_a_client_back_before_its_old_stream_ended_keeps_its_name(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        watcher = await harness.v1("watcher")
        old = await harness.v1("sam", session="s1")
        other_client = await harness.v1("sam", session="s2")
        back = await harness.v1("sam", session="s1")  # the old stream is still open
        await old.until_end()
        await back.say("still sam")
        heard = []
        while (event := (await watcher.next_of("event")).event).kind != v1.Event.MESSAGE:
            heard.append((event.kind, event.user))
    assert (back.name, other_client.name) == ("sam", "sam-2")
    assert (event.user, event.text) == ("sam", "still sam")
    assert old.call.status is not None and old.call.status.status_code is StatusCode.ABORTED
    # Nobody saw sam leave and come back: the same client just changed streams.
    assert heard == [(v1.Event.JOIN, "watcher"), (v1.Event.JOIN, "sam"), (v1.Event.JOIN, "sam-2")]


async def test_calls_cancelled_by_the_client_leave_the_connection_serving(
    start_server, caplog: pytest.LogCaptureFixture
) -> None:
    harness: Harness = await start_server()
    connection, _ = await harness.connection()
    with trio.fail_after(10):
        keeper = V1Call(connection, authority="test")
        await keeper.join("keeper", "lobby")
        assert await keeper.receive() is not None
        for n in range(20):  # each a reset while the member's reader and writer both wait
            brief = V1Call(connection, authority="test")
            await brief.join(f"brief-{n}", "lobby")
            assert await brief.receive() is not None
            brief.cancel()
        await keeper.send("still here", "k")
        while (frame := await keeper.receive()) is not None and not frame.HasField("ack"):
            pass
    assert frame is not None and frame.ack.client_msg_id == "k"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_twin_original_clients_can_both_chat_and_cannot_spoof(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        watcher = await harness.v1("watcher")
        go1, _ = await harness.legacy()
        go2, _ = await harness.legacy()
        await go1.send("GoClient", "first")
        assert (await watcher.next_message()).user == "GoClient"
        await go2.send("GoClient", "second")
        assert (await watcher.next_message()).user == "GoClient-2"
        await go1.send("watcher", "I am the watcher now")
        spoof = await watcher.next_message()
        assert (spoof.user, spoof.text) == ("GoClient", "I am the watcher now")


async def test_original_client_sees_its_own_message_with_server_time(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        call, _ = await harness.legacy()
        before = int(time.time())
        await call.send("py", "hello")
        echoed = await call.receive()
        after = int(time.time())
        assert echoed is not None
        assert (echoed.user_id, echoed.text) == ("py", "hello")
        assert before <= echoed.timestamp <= after


async def test_too_long_text_is_an_error_event_and_the_stream_goes_on(start_server) -> None:
    harness: Harness = await start_server(limits=Limits(max_text_bytes=10))
    with trio.fail_after(10):
        alice = await harness.v1("alice")
        await alice.call.send("x" * 11, "long")
        error = (await alice.next_of("error")).error
        assert error.code == v1.Error.TEXT_TOO_LONG and error.client_msg_id == "long"
        assert "10 bytes" in error.message
        ack = await alice.say("short", "ok")
        assert ack.seq == 1


async def test_original_contract_too_long_text_ends_with_invalid_argument(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        watcher = await harness.v1("watcher")
        call, _ = await harness.legacy()
        await call.send("big", "x" * 4097)
        status = await final_status(call.stream)
        assert status.status_code is StatusCode.INVALID_ARGUMENT
        assert "4096 bytes" in status.status_message
        await still_served(watcher, "still here")


async def test_empty_text_is_not_broadcast(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        alice = await harness.v1("alice")
        legacy, _ = await harness.legacy()
        await legacy.send("old", "   ")
        await alice.call.send("  \n ", "blank")
        assert (await alice.next_of("error")).error.code == v1.Error.EMPTY_TEXT
        await alice.say("real")
        assert (await alice.next_message()).text == "real"
        echoed = await legacy.receive()
        assert echoed is not None and echoed.text == "real"


async def test_undecodable_input_ends_only_that_stream(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        alice = await harness.v1("alice")
        for call in (await harness.v1("mallory"), None):
            if call is None:
                legacy, _ = await harness.legacy()
                stream = legacy.stream
            else:
                stream = call.call.stream
            await stream.send_frames(b"\x00\x00\x00\x00\x03\xff\xff\xff")
            status = await final_status(stream)
            assert status.status_code is StatusCode.INVALID_ARGUMENT
            assert "decode" in status.status_message
        await still_served(alice, "unaffected")


async def test_unknown_method_is_unimplemented(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        connection, _ = await harness.connection()
        stream = connection.start_call("chat.ChatService", "Nope", authority="x")
        assert await stream.receive() is None
        assert stream.status is not None and stream.status.status_code is StatusCode.UNIMPLEMENTED


async def test_first_frame_must_be_a_join(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        connection, _ = await harness.connection()
        call = V1Call(connection, authority="x")
        await call.send("hello")
        assert await call.receive() is None
        assert call.status is not None and call.status.status_code is StatusCode.INVALID_ARGUMENT


async def test_shutdown_ends_every_member_with_unavailable(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        members = [await harness.v1(f"m{n}") for n in range(3)]
        legacy, _ = await harness.legacy()
        harness.server.shutdown()
        for member in members:
            await member.until_end()
            assert member.call.status is not None
            assert member.call.status.status_code is StatusCode.UNAVAILABLE
            assert member.call.status.status_message == "server shutting down"
        while await legacy.receive() is not None:
            pass
        assert legacy.status is not None and legacy.status.status_code is StatusCode.UNAVAILABLE
        await harness.server.stopped()
