"""A person in another room learns that someone wrote to them: a direct message stored
on one server is told to the recipient's sessions on every server sharing the store
(ServerFrame.conversation, the page's `conversation` frame), once, and only to seated
purechat.v1 and web sessions that are not in the conversation already."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from purechat.app import ChatServer
from purechat.client.calls import LegacyCall, V1Call
from purechat.core import Limits
from purechat.core.conversations import conversation_room
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store import StoreError
from purechat.store.directory import Control
from purechat.store.redis import RedisStore
from tests.accounts import accounts_config, login, member, register, unary
from tests.helpers import Harness
from tests.polling import settles
from tests.redis_server import RedisProcess, free_port
from tests.webclient import WebClient

CHAT = "purechat.v1.Chat"
LONG = "x" * 150


@pytest.fixture
async def pair(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two servers sharing one Redis, each with a web port; alice and bob registered."""
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    servers: list[tuple[ChatServer, RedisStore]] = []
    harnesses = []
    for _ in range(2):
        store = await RedisStore.open(redis.url, history=1000)
        config = ServerConfig(port=0, web_port=0, limits=Limits(rate_limit=0), **accounts_config())
        server = ChatServer(config, store)
        servers.append((server, store))
        harnesses.append(Harness(server, await nursery.start(server.serve), nursery))
    await register(harnesses[0].server.directory, "alice", "bob")
    for harness in harnesses:
        await settles(lambda h=harness: name_key("bob") in h.server.auth.account_keys)
    try:
        yield harnesses[0], harnesses[1]
    finally:
        with trio.move_on_after(10):
            for server, store in servers:
                server.shutdown()
                await server.stopped()
                await store.aclose()


async def _listener(harness: Harness, token: str, room: str) -> V1Call:
    """A purechat.v1 listener without a seat (`--listen`), past its welcome."""
    connection, _ = await harness.connection()
    call = V1Call(connection, authority=f"127.0.0.1:{harness.port}", token=token)
    await call.send_frame(v1.ClientFrame(join=v1.Join(room=room, observe=True)))
    frame = await call.receive()
    assert frame is not None and frame.WhichOneof("frame") == "welcome", call.status
    return call


async def _frames_until(call: V1Call, text: str) -> list[str]:
    """The kinds of frames a call receives up to the message `text`."""
    kinds = []
    while (frame := await call.receive()) is not None:
        kinds.append(str(frame.WhichOneof("frame")))
        if frame.WhichOneof("frame") == "event" and frame.event.text == text:
            return kinds
    raise AssertionError(f"call ended: {call.status}")


async def test_bob_elsewhere_is_told_once_on_every_door_that_can_say_it(
    pair: tuple[Harness, Harness],
) -> None:
    one, two = pair
    room = conversation_room("alice", "bob")
    with trio.fail_after(60):
        bob_token = await login(two, "bob")
        # bob on the other server: in #ops (purechat.v1), on the page in #random,
        # in the conversation itself, listening to #ops, and an original-contract
        # client in the lobby; a guest in #ops.
        in_ops = await member(two, "bob", bob_token, room="ops")
        assert two.server.web_port is not None
        page = await WebClient.connect(two.server.web_port)
        await page.join("bob", "random", token=bob_token)
        in_conversation = await member(two, "bob", bob_token, dm="alice")
        listening = await _listener(two, bob_token, "ops")
        connection, _ = await two.connection()
        legacy = LegacyCall(connection, authority="test", token=bob_token)
        await legacy.send("bob", "old client here")
        assert (await legacy.receive()) is not None  # its own message: it is named
        guest = await two.v1("carol", "ops")

        alice_token = await login(one, "alice")
        alice = await member(one, "alice", alice_token, dm="bob")
        first = await alice.say(f"lunch? {LONG}", "d1")
        post = v1.PostRequest(to="bob", text="at noon", client_msg_id="d2")
        second = await unary(one, CHAT, "Post", post, v1.PostResponse, token=alice_token)
        # The same post again, on the other server: stored once, told once.
        again = await unary(two, CHAT, "Post", post, v1.PostResponse, token=alice_token)
        assert again.duplicate and again.seq == second.seq

        told = [(await in_ops.next_of("conversation")).conversation for _ in range(2)]
        assert [(n.room, n.peer, n.seq, n.text) for n in told] == [
            (room, "alice", first.seq, f"lunch? {LONG}"[:100]),
            (room, "alice", second.seq, "at noon"),
        ]
        shown = [(await page.next_of("conversation"))["conversation"] for _ in range(2)]
        assert shown == [
            {"room": room, "peer": "alice", "seq": first.seq, "text": f"lunch? {LONG}"[:100]},
            {"room": room, "peer": "alice", "seq": second.seq, "text": "at noon"},
        ]

        # bob in the conversation has the messages, and no notice of them: what it is
        # told comes in order, so a notice would be here before the answer to its say.
        assert [(await in_conversation.next_message()).seq for _ in range(2)] == [
            first.seq,
            second.seq,
        ]
        await in_conversation.say("see you", "b1")
        assert all(f.WhichOneof("frame") != "conversation" for f in in_conversation.unread)
        # The listener, the guest and the original-contract client: nothing new.
        writer = await two.v1("erin", "lobby")
        ops_writer = await two.v1("dave", "ops")
        await ops_writer.say("sync ops", "s1")
        for call in (listening, guest.call):
            assert "conversation" not in await _frames_until(call, "sync ops")
        await writer.say("sync lobby", "s2")
        heard = []
        while (message := await legacy.receive()) is not None:
            heard.append(message.text)
            if message.text == "sync lobby":
                break
        assert heard == ["sync lobby"]
        # One control record per direct message stored, none for the retry.
        controls = await one.server.directory.controls(0)
        told_kinds = [c.kind for _, c in controls if c.kind == "conversation"]
        # alice is told of bob's answer too.
        assert len(told_kinds) == 3
        await page.close()


async def test_a_notice_that_cannot_be_written_does_not_fail_the_send(
    start_server, caplog: pytest.LogCaptureFixture
) -> None:
    harness = await start_server(**accounts_config())
    await register(harness.server.directory, "alice", "bob")
    await settles(lambda: name_key("bob") in harness.server.auth.account_keys)

    async def broken(*_: object) -> None:
        raise StoreError("the store does not answer")

    harness.server.directory.tell_conversation = broken  # type: ignore[method-assign]
    with trio.fail_after(30), caplog.at_level(logging.ERROR, "purechat.server"):
        alice = await member(harness, "alice", await login(harness, "alice"), dm="bob")
        ack = await alice.say("are you there?", "n1")
        assert ack.seq and not ack.duplicate
        bob = await member(harness, "bob", await login(harness, "bob"), dm="alice", history=5)
        assert (await bob.next_message()).text == "are you there?"
    assert any("bob is not told of message" in r.getMessage() for r in caplog.records)


def test_a_conversation_control_keeps_what_a_notice_needs() -> None:
    control = Control("conversation", "bob", room="@dm:alice:bob", seq=7, peer="Alice", text="hi")
    assert Control.from_json(control.to_json()) == control
    # Other controls are written as before.
    assert "peer" not in Control("marker", "bob", room="lobby", seq=3).to_json()
