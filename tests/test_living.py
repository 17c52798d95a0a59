"""Living messages at the server's doors: replies, edits, deletes, reactions and typing
through purechat.v1 (stream and unary), the web frames and the original contract, on
SQLite and on two servers sharing Redis: numbered in the log with the messages, in one
order, once per retry, on resume after a restart; refusals as sentences."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import grpc
import trio
import trio.testing

from purechat.app import ChatServer
from purechat.client.admin import AdminError
from purechat.client.calls import V1Call
from purechat.core import Limits
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store import SqliteStore
from purechat.store.redis import RedisStore
from purechat.store.redis_keys import Layout
from tests.accounts import accounts_config, login, member, moderate, register, unary
from tests.helpers import Harness, Member
from tests.polling import settles
from tests.redis_server import RedisProcess, free_port
from tests.webclient import WebClient

E = v1.Event
M = v1.ModerationCommand
SECRET = "zanzibarquokka"


async def _chat(start_server: Any, path: Path, **config: Any) -> tuple[Harness, dict[str, str]]:
    store = await SqliteStore.open(path)
    harness: Harness = await start_server(store=store, **accounts_config(), **config)
    await register(harness.server.directory, "alice", "bob")
    await settles(lambda: name_key("bob") in harness.server.auth.account_keys)
    tokens = {name: await login(harness, name) for name in ("alice", "bob")}
    return harness, tokens


async def answer(who: Member, frame: v1.ClientFrame, client_msg_id: str) -> v1.ServerFrame:
    """Send frame; the ack or error that answers it (by client_msg_id)."""
    await who.call.send_frame(frame)
    while True:
        got = await who.next_of_any("ack", "error")
        body = got.ack if got.WhichOneof("frame") == "ack" else got.error
        if body.client_msg_id == client_msg_id:
            return got


async def next_event(who: Member) -> v1.Event:
    """The next numbered event (presence skipped)."""
    while True:
        event = (await who.next_of("event")).event
        if event.seq:
            return event


def edit(seq: int, text: str, cid: str) -> v1.ClientFrame:
    return v1.ClientFrame(edit=v1.EditMessage(seq=seq, text=text, client_msg_id=cid))


def react(seq: int, emoji: str, cid: str, *, remove: bool = False) -> v1.ClientFrame:
    return v1.ClientFrame(
        react=v1.ReactMessage(seq=seq, emoji=emoji, remove=remove, client_msg_id=cid)
    )


def delete(seq: int, cid: str) -> v1.ClientFrame:
    return v1.ClientFrame(delete=v1.DeleteMessage(seq=seq, client_msg_id=cid))


async def test_every_change_in_order_at_every_door(start_server: Any, tmp_path: Path) -> None:
    harness, tokens = await _chat(start_server, tmp_path / "chat.db", web_port=0)
    with trio.fail_after(30):
        alice = await member(harness, "alice", tokens["alice"])
        bob = await member(harness, "bob", tokens["bob"])
        guest = await member(harness, "carol")
        legacy, _ = await harness.legacy()
        await legacy.send("dave", "hello from the old client")
        web = await WebClient.connect(harness.server.web_port or 0)
        await web.join("erin")
        assert (await alice.say("the deploy is done", "m1")).seq == 2
        await bob.call.send_frame(
            v1.ClientFrame(send=v1.Send(text="great", client_msg_id="m2", reply_to=2))
        )
        assert (await bob.next_of("ack")).ack.seq == 3

        # Refusals are sentences, and nothing is stored for them.
        refused = await answer(bob, edit(2, "mine now", "e0"), "e0")
        assert refused.error.message == "You can only edit your own messages."
        refused = await answer(guest, edit(2, "x", "e1"), "e1")
        assert "account" in refused.error.message
        refused = await answer(bob, react(2, "ok", "r0"), "r0")
        assert refused.error.message == "A reaction is one emoji, like 👍."
        refused = await answer(bob, v1.ClientFrame(send=v1.Send(text="?", reply_to=99)), "")
        assert "no message #99" in refused.error.message

        assert (await answer(alice, edit(2, "the rollout is done", "e2"), "e2")).ack.seq == 4
        assert (await answer(bob, react(2, "👍", "r1"), "r1")).ack.seq == 5
        again = await answer(bob, react(2, "👍", "r1"), "r1")  # a retry: done once
        assert again.ack.seq == 5 and again.ack.duplicate
        assert (await answer(alice, delete(2, "d1"), "d1")).ack.seq == 6
        refused = await answer(bob, react(2, "🎉", "r2"), "r2")
        assert "deleted" in refused.error.message
        await alice.say("after all that", "m3")

        # Everyone sees one order, each change carrying its target as it is after it.
        for who in (bob, guest):
            events = [await next_event(who) for _ in range(7)][1:]
            assert [e.seq for e in events] == [2, 3, 4, 5, 6, 7]
            said, reply, edited, reacted, deleted, last = events
            assert said.kind == E.MESSAGE and reply.reply_to == 2
            assert edited.kind == E.EDIT and edited.target == 2
            assert edited.text == "the rollout is done" and edited.revision.edited_unix_ms
            assert reacted.kind == E.REACTION and reacted.reaction.emoji == "👍"
            assert [(r.emoji, list(r.users)) for r in reacted.revision.reactions] == [
                ("👍", ["bob"])
            ]
            assert deleted.kind == E.DELETE and deleted.revision.deleted
            assert deleted.user == "alice" and not deleted.revision.deleted_by
            assert last.text == "after all that"

        # The page gets the same, as JSON.
        kinds = []
        while not kinds or kinds[-1][0] < 7:
            event = (await web.next_of("event"))["event"]
            if event.get("seq"):
                kinds.append((event["seq"], event["kind"], event.get("target")))
        kinds = [(kind, target) for seq, kind, target in kinds if seq >= 2]
        assert kinds == [
            ("message", None),
            ("message", None),
            ("edit", 2),
            ("reaction", 2),
            ("delete", 2),
            ("message", None),
        ]

        # The original contract: edits and deletes as sentences, nothing for reactions.
        texts = []
        while len(texts) < 6:
            message = await legacy.receive()
            assert message is not None
            texts.append(message.text)
        assert texts[1:] == [
            "the deploy is done",
            "great",
            "* alice edited #2: the rollout is done",
            "* alice deleted #2",
            "after all that",
        ]

        # History gives the tombstone, and the change entries as they are now.
        history = await unary(
            harness,
            "purechat.v1.Chat",
            "History",
            v1.HistoryRequest(room="lobby", limit=10),
            v1.HistoryResponse,
            token=tokens["bob"],
        )
        by_seq = {event.seq: event for event in history.events}
        assert by_seq[2].text == "" and by_seq[2].revision.deleted
        assert by_seq[4].kind == E.EDIT and by_seq[4].text == ""
        await web.sock.aclose()


async def test_scripts_edit_delete_and_react_with_unary_calls(
    start_server: Any, tmp_path: Path
) -> None:
    harness, tokens = await _chat(start_server, tmp_path / "chat.db")
    with trio.fail_after(30):
        alice = await member(harness, "alice", tokens["alice"])
        await alice.say("typo here", "m1")

        async def call(method: str, request: Any, token: str) -> Any:
            return await unary(
                harness, "purechat.v1.Chat", method, request, v1.ChangeResponse, token=token
            )

        edited = await call(
            "Edit", v1.EditMessage(seq=1, text="no typo", room="lobby"), tokens["alice"]
        )
        assert edited.seq == 2
        reacted = await call(
            "React", v1.ReactMessage(seq=1, emoji="🎉", client_msg_id="x"), tokens["bob"]
        )
        again = await call(
            "React", v1.ReactMessage(seq=1, emoji="🎉", client_msg_id="x"), tokens["bob"]
        )
        assert reacted.seq == again.seq == 3 and again.duplicate
        try:
            await call("Delete", v1.DeleteMessage(seq=1), tokens["bob"])
        except AdminError as refused:
            assert "only delete your own" in str(refused)
        else:
            raise AssertionError("bob deleted alice's message")
        assert (await next_event(alice)).kind == E.MESSAGE
        assert (await next_event(alice)).kind == E.EDIT
        assert (await next_event(alice)).kind == E.REACTION


async def test_an_edit_made_while_away_arrives_on_resume_after_a_restart(
    start_server: Any, tmp_path: Path
) -> None:
    path = tmp_path / "chat.db"
    harness, tokens = await _chat(start_server, path)
    with trio.fail_after(30):
        alice = await member(harness, "alice", tokens["alice"])
        await alice.say("first try", "m1")
        epoch = alice.welcome.epoch
        harness.server.shutdown()
        await harness.server.stopped()
        await harness.server.store.aclose()
        again: Harness = await start_server(store=await SqliteStore.open(path), **accounts_config())
        await settles(lambda: name_key("bob") in again.server.auth.account_keys)
        alice = await member(again, "alice", tokens["alice"])
        assert (await answer(alice, edit(1, "second try", "e1"), "e1")).ack.seq == 2
        bob = await member(again, "bob", tokens["bob"], after_seq=1, epoch=epoch)
        event = await next_event(bob)
        assert event.kind == E.EDIT and event.target == 1 and event.text == "second try"


async def test_typing_reaches_seated_members_only_and_is_never_stored(
    start_server: Any, tmp_path: Path
) -> None:
    harness, tokens = await _chat(start_server, tmp_path / "chat.db")
    with trio.fail_after(30):
        alice = await member(harness, "alice", tokens["alice"])
        bob = await member(harness, "bob", tokens["bob"])
        connection, _ = await harness.connection()
        listener = Member(
            V1Call(connection, authority=f"127.0.0.1:{harness.port}"), v1.Welcome(), _
        )
        await listener.call.send_frame(v1.ClientFrame(join=v1.Join(room="lobby", observe=True)))
        await alice.call.send_frame(v1.ClientFrame(typing=v1.TypingSignal()))
        typing = (await bob.next_of("typing")).typing
        assert list(typing.users) == ["alice"] and typing.room == "lobby"
        await alice.say("done typing", "m1")
        # The listener's next frames are the message, no typing before it.
        frame = await listener.call.receive()
        while frame is not None and frame.WhichOneof("frame") != "event":
            assert frame.WhichOneof("frame") != "typing"
            frame = await listener.call.receive()
        assert frame is not None and frame.event.text == "done typing"
        stored = await harness.server.store.read("lobby", after=0, upto=10)
        assert [m.text for m in stored] == ["done typing"]


# -- two servers sharing Redis --------------------------------------------------------


async def _on_redis(
    nursery: trio.Nursery, redis: RedisProcess, *, register_too: bool = True
) -> Harness:
    """A server with accounts on the shared Redis (owned by the test's nursery)."""
    store = await RedisStore.open(redis.url, history=1000)
    config = ServerConfig(port=0, limits=Limits(rate_limit=0), **accounts_config())
    server = ChatServer(config, store)
    harness = Harness(server, await nursery.start(server.serve), nursery)
    if register_too:
        await register(server.directory, "alice", "bob")
    await settles(lambda: name_key("bob") in server.auth.account_keys)
    return harness


async def _stop(harness: Harness) -> None:
    harness.server.shutdown()
    await harness.server.stopped()
    await harness.server.store.aclose()


async def test_two_servers_on_redis_see_every_change_in_one_order(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    one = await _on_redis(nursery, redis)
    two = await _on_redis(nursery, redis, register_too=False)
    try:
        with trio.fail_after(30):
            alice = await member(one, "alice", await login(one, "alice"))
            bob = await member(two, "bob", await login(two, "bob"))
            legacy, _ = await two.legacy()
            await legacy.send("dave", "hello from the old client")
            for who in (alice, bob):  # stored, and round the shared log to both
                assert (await next_event(who)).text == "hello from the old client"
            assert (await alice.say(f"the code is {SECRET}", "m1")).seq == 2
            await bob.call.send_frame(
                v1.ClientFrame(send=v1.Send(text="noted", client_msg_id="m2", reply_to=2))
            )
            assert (await bob.next_of("ack")).ack.seq == 3
            refused = await answer(bob, edit(2, "mine now", "e0"), "e0")
            assert refused.error.message == "You can only edit your own messages."
            assert (await answer(alice, edit(2, "the code is secret", "e1"), "e1")).ack.seq == 4
            again = await answer(alice, edit(2, "the code is secret", "e1"), "e1")
            assert again.ack.seq == 4 and again.ack.duplicate  # a retry: done once
            assert (await answer(bob, react(2, "👍", "r1"), "r1")).ack.seq == 5
            again = await answer(bob, react(2, "👍", "r1"), "r1")
            assert again.ack.seq == 5 and again.ack.duplicate
            assert (await answer(alice, delete(2, "d1"), "d1")).ack.seq == 6
            refused = await answer(bob, react(2, "🎉", "r2"), "r2")
            assert "deleted" in refused.error.message
            await bob.say("after all that", "m3")

            # Both servers' members see one order, each change with its target after it.
            for who in (alice, bob):
                events = [await next_event(who) for _ in range(6)]
                assert [e.seq for e in events] == [2, 3, 4, 5, 6, 7]
                said, reply, edited, reacted, deleted, last = events
                assert said.kind == E.MESSAGE and reply.reply_to == 2
                assert edited.kind == E.EDIT and edited.target == 2
                assert reacted.kind == E.REACTION
                assert [(r.emoji, list(r.users)) for r in reacted.revision.reactions] == [
                    ("👍", ["bob"])
                ]
                assert deleted.kind == E.DELETE and deleted.revision.deleted
                assert last.text == "after all that"

            # The original contract's client, on the other server, reads sentences.
            texts = []
            while len(texts) < 6:
                message = await legacy.receive()
                assert message is not None
                texts.append(message.text)
            assert texts[3:5] == ["* alice edited #2: the code is secret", "* alice deleted #2"]
            assert texts[5] == "after all that"

            # History on either server gives the tombstone; the text is gone from Redis.
            for harness, name in ((one, "alice"), (two, "bob")):
                history = await unary(
                    harness,
                    "purechat.v1.Chat",
                    "History",
                    v1.HistoryRequest(room="lobby", limit=10),
                    v1.HistoryResponse,
                    token=await login(harness, name),
                )
                by_seq = {event.seq: event for event in history.events}
                assert by_seq[2].text == "" and by_seq[2].revision.deleted
                assert by_seq[3].reply_to == 2
            assert SECRET.encode() not in await redis.command("XRANGE", _log_key(), "-", "+")
    finally:
        with trio.move_on_after(10):
            await _stop(one)
            await _stop(two)


async def test_on_redis_a_change_made_while_away_arrives_on_resume_after_a_restart(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    one = await _on_redis(nursery, redis)
    two = await _on_redis(nursery, redis, register_too=False)
    try:
        with trio.fail_after(30):
            tokens = {"alice": await login(one, "alice"), "bob": await login(two, "bob")}
            bob = await member(two, "bob", tokens["bob"])
            alice = await member(one, "alice", tokens["alice"])
            await alice.say("first try", "m1")
            assert (await next_event(bob)).text == "first try"
            epoch = bob.welcome.epoch
            await _stop(two)  # bob's server goes; alice edits and reacts meanwhile
            assert (await answer(alice, edit(1, "second try", "e1"), "e1")).ack.seq == 2
            assert (await answer(alice, react(1, "🎉", "r1"), "r1")).ack.seq == 3
            two = await _on_redis(nursery, redis, register_too=False)
            bob = await member(two, "bob", tokens["bob"], after_seq=1, epoch=epoch)
            edited, reacted = await next_event(bob), await next_event(bob)
            assert edited.kind == E.EDIT and edited.target == 1
            assert edited.text == "second try"
            assert reacted.kind == E.REACTION
            assert [r.emoji for r in reacted.revision.reactions] == ["🎉"]
    finally:
        with trio.move_on_after(10):
            await _stop(one)
            await _stop(two)


def _log_key() -> str:
    return Layout(cluster=False).room("lobby").log


# -- real grpcio clients --------------------------------------------------------------


def _grpcio_reads(port: int, stubs: tuple[Any, Any], expect: int) -> list[str]:
    """The tutorial's grpcio client: says hi, then reads until `expect` texts came."""
    pb, rpc = stubs
    texts: list[str] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        done = threading.Event()

        def requests() -> Any:
            yield pb.ChatMessage(user_id="tutorial", text="hi")
            done.wait(10)

        responses = rpc.ChatServiceStub(channel).JoinChat(requests(), timeout=20)
        for response in responses:
            texts.append(response.text)
            if len(texts) == expect:
                done.set()
                responses.cancel()
                break
    return texts


def _grpcio_post(port: int, token: str, text: str) -> grpc.RpcError:
    """purechat.v1.Chat/Post from grpcio, expected to fail: its error."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        post = channel.unary_unary(
            "/purechat.v1.Chat/Post",
            request_serializer=v1.PostRequest.SerializeToString,
            response_deserializer=v1.PostResponse.FromString,
        )
        try:
            post(
                v1.PostRequest(room="lobby", text=text),
                metadata=[("authorization", f"Bearer {token}")],
                timeout=10,
            )
        except grpc.RpcError as error:
            return error
    raise AssertionError("the post was taken")


async def test_a_grpcio_client_of_the_original_contract_reads_edits_and_deletes(
    start_server: Any, tmp_path: Path, tutorial_stubs: tuple[Any, Any]
) -> None:
    harness, tokens = await _chat(start_server, tmp_path / "chat.db")
    with trio.fail_after(30):
        alice = await member(harness, "alice", tokens["alice"])
        async with trio.open_nursery() as nursery:
            read: list[list[str]] = []

            async def reader() -> None:
                texts = await trio.to_thread.run_sync(
                    _grpcio_reads, harness.port, tutorial_stubs, 5
                )
                read.append(texts)

            nursery.start_soon(reader)
            assert (await next_event(alice)).text == "hi"
            await alice.say("the deploy is dnoe", "m1")
            await answer(alice, edit(2, "the deploy is done", "e1"), "e1")
            await answer(alice, react(2, "🎉", "r1"), "r1")  # nothing of it on this contract
            await answer(alice, delete(2, "d1"), "d1")
            await alice.say("bye", "m2")
        assert read == [
            ["hi", "the deploy is dnoe", "* alice edited #2: the deploy is done",
             "* alice deleted #2", "bye"]
        ]  # fmt: skip


async def test_a_refused_post_is_permission_denied_for_a_grpcio_client(
    start_server: Any, tmp_path: Path
) -> None:
    harness, tokens = await _chat(start_server, tmp_path / "chat.db")
    with trio.fail_after(30):
        alice = await member(harness, "alice", tokens["alice"])
        await moderate(alice, M.CLAIM)
        assert (await moderate(alice, M.MUTE, "bob")).WhichOneof("frame") == "ack"
        error = await trio.to_thread.run_sync(_grpcio_post, harness.port, tokens["bob"], "hey")
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "muted" in error.details()


async def test_edits_faster_than_the_rate_limit_are_paced_not_refused(
    start_server: Any, autojump_clock: trio.testing.MockClock
) -> None:
    # The clock jumps only once nothing ran for a while (not while a password is
    # hashed in a thread), then at once.
    autojump_clock.autojump_threshold = 0.5
    harness: Harness = await start_server(**accounts_config(), limits=Limits(rate_limit=1))
    await register(harness.server.directory, "alice")
    await settles(lambda: name_key("alice") in harness.server.auth.account_keys)
    alice = await member(harness, "alice", await login(harness, "alice"))
    assert alice.welcome.rate_limit == 1
    autojump_clock.autojump_threshold = 0
    await alice.say("draft 0", "m0")
    start = trio.current_time()
    for n in range(1, 7):
        await alice.call.send_frame(edit(1, f"draft {n}", f"e{n}"))
    acks = []
    while len(acks) < 6:
        frame = await alice.next_of_any("ack", "error")
        assert frame.WhichOneof("frame") == "ack", frame.error.message  # none refused
        acks.append((frame.ack.seq, trio.current_time() - start))
    assert [seq for seq, _ in acks] == [2, 3, 4, 5, 6, 7]
    # A burst of two, then one a second: the sixth waits about four seconds.
    assert acks[-1][1] >= 3.5
