"""History on joining, resume after a drop, gaps, retries: nothing lost, nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import trio

from purechat.app import ChatServer
from purechat.core import Limits, Message
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.store import Appended, MemoryStore, SqliteStore, Store, StoreError
from purechat.transport import StatusCode
from tests.helpers import Harness, Member


async def _send_all(member: Member, texts: Sequence[str]) -> None:
    for text in texts:
        await member.say(text)


async def _start(nursery: trio.Nursery, store, **config) -> Harness:
    config.setdefault("limits", Limits(rate_limit=0))
    server = ChatServer(ServerConfig(port=0, **config), store)
    port = await nursery.start(server.serve)
    return Harness(server, port, nursery)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    opened: Store = MemoryStore()
    if request.param == "sqlite":
        opened = await SqliteStore.open(tmp_path / "chat.db")
    try:
        yield opened
    finally:
        await opened.aclose()


async def test_joining_shows_the_last_n_messages_marked_then_live_ones(nursery, store) -> None:
    harness = await _start(nursery, store)
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        await _send_all(alice, [f"m{n}" for n in range(1, 31)])
        bob = await harness.v1("bob", history=10)
        assert bob.welcome.last_seq == 30
        earlier = [await bob.next_message() for _ in range(10)]
        await alice.say("live")
        live = await bob.next_message()
    assert [(e.seq, e.text, e.history) for e in earlier] == [
        (n, f"m{n}", True) for n in range(21, 31)
    ]
    assert (live.seq, live.text, live.history) == (31, "live", False)


async def test_resume_returns_exactly_what_was_missed_while_traffic_goes_on(nursery, store) -> None:
    harness = await _start(nursery, store)
    total = 300
    with trio.fail_after(30):
        alice = await harness.v1("alice")
        bob = await harness.v1("bob")
        await _send_all(alice, ["before 1", "before 2"])
        seen = [(await bob.next_message()).seq for _ in range(2)]
        bob.drop()
        async with trio.open_nursery() as traffic:
            traffic.start_soon(_send_all, alice, [f"during {n}" for n in range(total)])
            await alice.next_message()  # traffic is flowing before bob comes back
            back = await harness.v1("bob", after_seq=seen[-1])
            while len(seen) < total + 2:
                event = await back.next_message()
                assert not event.history
                seen.append(event.seq)
    assert seen == list(range(1, total + 3))


async def test_a_resume_older_than_what_is_kept_gets_a_gap_event(nursery) -> None:
    harness = await _start(nursery, MemoryStore(history=5))
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        await _send_all(alice, [f"m{n}" for n in range(1, 21)])
        bob = await harness.v1("bob", after_seq=2)
        gap = (await bob.next_of("event")).event
        rest = [await bob.next_message() for _ in range(5)]
    assert (gap.kind, gap.seq, gap.gap_until) == (v1.Event.GAP, 2, 15)
    assert [e.seq for e in rest] == [16, 17, 18, 19, 20]


async def test_a_retry_after_reconnecting_is_acked_but_not_repeated(nursery, store) -> None:
    harness = await _start(nursery, store)
    with trio.fail_after(20):
        watcher = await harness.v1("watcher")
        bot = await harness.v1("bot")
        first = await bot.say("deploy done", "id-1")
        bot.drop()
        again = await harness.v1("bot")  # may come back as bot-2 before the drop is seen
        retry = await again.say("deploy done", "id-1")
        await again.say("next", "id-2")
        texts = [(await watcher.next_message()).text for _ in range(2)]
    assert (retry.seq, retry.duplicate) == (first.seq, True)
    assert texts == ["deploy done", "next"]


async def test_original_clients_get_recent_lobby_messages_on_arrival(nursery) -> None:
    harness = await _start(nursery, MemoryStore(), legacy_history=3)
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        await _send_all(alice, ["one", "two", "three", "four"])
        call, _ = await harness.legacy()
        recent = [await call.receive() for _ in range(3)]
        await alice.say("five")
        live = await call.receive()
    assert [m.text for m in recent if m] == ["two", "three", "four"]
    assert live is not None and live.text == "five"


class BrokenStore(MemoryStore):
    async def append(self, drafts: Sequence[Message]) -> list[Appended]:
        raise StoreError("the disk is full")


async def test_a_store_failure_refuses_the_send_and_loses_nothing_silently(nursery) -> None:
    harness = await _start(nursery, BrokenStore())
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        await alice.call.send("hello", "h1")
        error = (await alice.next_of("error")).error
        assert (error.code, error.client_msg_id) == (v1.Error.STORE_UNAVAILABLE, "h1")
        call, _ = await harness.legacy()
        await call.send("old", "hello")
        while await call.receive() is not None:
            pass
    assert call.status is not None and call.status.status_code is StatusCode.UNAVAILABLE
    assert "cannot store" in call.status.status_message
