"""Real clients under real load: a member that keeps reading is never cut off.

grpc-go members (tests/go/load, one connection each unless said) and grpcio members,
as the tutorial's users run them: they ping while they receive (grpc-go estimates
bandwidth that way) and answer data with window updates. Only a member that stops
reading is removed, and the server says so in its log.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest
import trio
import trio.lowlevel

from purechat.core import Limits
from purechat.store import SqliteStore
from tests.helpers import Harness

# Reading the non-readers at last tells whether the server removed them.
TOO_SLOW = "ResourceExhausted: you were removed from the room: too slow to receive messages"


async def _load(client: Path, harness: Harness, *flags: str) -> dict[str, Any]:
    done = await trio.run_process(
        [str(client), "-addr", f"127.0.0.1:{harness.port}", "-json", *flags],
        capture_stdout=True,
        capture_stderr=True,
    )
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _everyone_got_everything(summary: dict[str, Any], members: int) -> None:
    assert summary["errors"] == {}, summary["errors"]
    assert summary["join"]["confirmed"] == members
    assert summary["lost"] == 0 and summary["received"] == summary["expected"] > 0
    assert summary["complete_members"] == members
    assert (summary["order_violations"], summary["duplicates"]) == (0, 0)


async def test_twenty_readers_get_every_big_message_from_a_flat_out_sender_on_sqlite(
    start_server, go_load_client: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The default store commits in batches; a batch must not cost a reader its seat.
    The one member that never reads is removed, and the log says why.

    Its backlog (5 MB sent to it) passes the 2 MiB budget whatever the timing, or it
    makes no progress for a second first: either way it goes while the readers, held
    to the same budget, keep theirs."""
    store = await SqliteStore.open(tmp_path / "purechat.db")
    harness: Harness = await start_server(
        store=store, slow_member_timeout=1.0, slow_member_bytes=2 * 1024 * 1024
    )
    try:
        with trio.fail_after(120), caplog.at_level(logging.INFO, "purechat"):
            summary = await _load(
                go_load_client,
                harness,
                *("-members", "20", "-nonreaders", "1", "-messages", "5000", "-size", "1000"),
            )
    finally:
        await store.aclose()
    _everyone_got_everything(summary, 20)
    assert summary["expected_per_member"] == 5000
    assert summary["nonreader_outcomes"] == {TOO_SLOW: 1}
    removed = [r.getMessage() for r in caplog.records if "removed: too slow" in r.getMessage()]
    assert len(removed) == 1, removed
    assert "made no progress" in removed[0] or "would pass the budget" in removed[0], removed


@pytest.mark.parametrize(
    "streams_per_connection", [1, 20], ids=["a connection each", "20 a connection"]
)
async def test_a_thousand_members_say_hello_then_hear_300_messages_and_lose_nothing(
    start_server, go_load_client: Path, tmp_path: Path, streams_per_connection: int
) -> None:
    """Every hello goes to every member at once (a million deliveries, committed by the
    default store in big batches), then a sender goes flat out: nobody is evicted for
    a burst it keeps reading through."""
    store = await SqliteStore.open(tmp_path / "purechat.db")
    harness: Harness = await start_server(store=store, max_conns_per_addr=0)
    try:
        with trio.fail_after(240):
            summary = await _load(
                go_load_client,
                harness,
                *("-members", "1000", "-hello", "-messages", "300"),
                *("-streams-per-conn", str(streams_per_connection), "-join-concurrency", "0"),
            )
    finally:
        await store.aclose()
    _everyone_got_everything(summary, 1000)
    assert summary["hello"]["complete_members"] == 1000
    assert summary["expected_per_member"] == 300


async def test_a_hundred_members_at_500_messages_a_second_for_30_seconds_stay(
    start_server, go_load_client: Path
) -> None:
    """Three of the flood guard's 10-second windows of a busy room: every grpc-go member
    pings back the whole time, and none of them is taken for a flooder."""
    harness: Harness = await start_server(max_conns_per_addr=0)
    with trio.fail_after(120):
        summary = await _load(
            go_load_client, harness, *("-members", "100", "-rate", "500", "-messages", "15000")
        )
    _everyone_got_everything(summary, 100)
    assert summary["sent"] == 15000
    assert not any("too_many_pings" in line or "GOAWAY" in line for line in summary["grpc_log"])
    assert harness.server.cut_offs == {}


def _grpcio_member(
    port: int, stubs: tuple[ModuleType, ModuleType], user: str, texts: list[str], expect: int
) -> list[str]:
    """A tutorial-style grpcio client: send texts, collect `expect` messages."""
    pb, rpc = stubs
    received: list[str] = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        done = threading.Event()

        def requests():  # type: ignore[no-untyped-def]
            for text in texts:
                yield pb.ChatMessage(user_id=user, text=text)
            done.wait(60)

        responses = rpc.ChatServiceStub(channel).JoinChat(requests(), timeout=60)
        for response in responses:
            if response.text.startswith("big "):
                received.append(response.text)
            if len(received) == expect:
                break
        done.set()
        responses.cancel()
    return received


async def test_grpcio_members_keep_reading_through_a_flat_out_sender(
    start_server, tutorial_stubs: tuple[ModuleType, ModuleType]
) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=0), max_conns_per_addr=0)
    count = 2000
    texts = [f"big {n:05d} " + "z" * 500 for n in range(count)]
    results: dict[str, list[str]] = {}

    async def member(name: str, sends: list[str]) -> None:
        results[name] = await trio.to_thread.run_sync(
            _grpcio_member, harness.port, tutorial_stubs, name, sends, count
        )

    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            for n in range(8):
                nursery.start_soon(member, f"reader{n}", [f"hello from {n}"])
            await trio.lowlevel.checkpoint()
            while harness.server.hub.member_count() < 8:  # noqa: ASYNC110
                await trio.sleep(0.05)
            nursery.start_soon(member, "sender", texts)
    assert all(got == texts for got in results.values()), {k: len(v) for k, v in results.items()}
    assert harness.server.cut_offs == {}
