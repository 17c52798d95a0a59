"""A server killed with SIGKILL loses nothing it acknowledged or delivered."""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio
import trio.lowlevel

from purechat.app import ChatServer
from purechat.client.calls import V1Call, open_connection
from purechat.core import Limits
from purechat.server import ServerConfig
from purechat.store import SqliteStore
from tests.helpers import Harness
from tests.polling import settles
from tests.processes import Lines, start


async def _serve_process(nursery: trio.Nursery, db: Path) -> tuple[trio.Process, int]:
    process = await start(
        nursery, "serve", "--port", "0", "--store", f"sqlite:///{db}", "--rate-limit", "0"
    )
    line = await Lines(process.stdout).next()
    found = re.search(r":(\d+); history kept in (.+)$", line or "")
    assert found and found[2] == str(db), line
    return process, int(found[1])


async def _member(nursery: trio.Nursery, port: int, name: str, history: int = 0) -> V1Call:
    connection = await open_connection(nursery, "127.0.0.1", port)
    call = V1Call(connection, authority="test")
    await call.join(name, "lobby", history=history)
    welcome = await call.receive()
    assert welcome is not None and welcome.WhichOneof("frame") == "welcome"
    return call


async def test_sigkill_mid_traffic_loses_nothing_delivered_and_numbering_goes_on(
    nursery, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"
    acked: dict[int, str] = {}
    delivered: dict[int, str] = {}
    with trio.fail_after(60):
        server, port = await _serve_process(nursery, db)
        watcher = await _member(nursery, port, "watcher")
        enough = trio.Event()

        async def send(name: str) -> None:
            call = await _member(nursery, port, name)
            sent: dict[str, str] = {}

            async def reader() -> None:
                while (frame := await call.receive()) is not None:
                    if frame.WhichOneof("frame") == "ack":
                        acked[frame.ack.seq] = sent[frame.ack.client_msg_id]
                        if len(acked) >= 150:
                            enough.set()

            async with trio.open_nursery() as inner:
                inner.start_soon(reader)
                n = 0
                while True:  # until the server dies under us
                    text = f"{name} {n}"
                    sent[f"{name}-{n}"] = text
                    try:
                        await call.send(text, f"{name}-{n}")
                    except Exception:  # noqa: BLE001 -- the connection went with the server
                        return
                    n += 1
                    if n % 20 == 0:
                        await trio.lowlevel.checkpoint()

        async def watch() -> None:
            while (frame := await watcher.receive()) is not None:
                if frame.WhichOneof("frame") == "event" and frame.event.seq:
                    delivered[frame.event.seq] = frame.event.text

        async with trio.open_nursery() as traffic:
            traffic.start_soon(watch)
            traffic.start_soon(send, "alice")
            traffic.start_soon(send, "bob")
            await enough.wait()
            server.kill()  # SIGKILL: no shutdown, no final commit
            await server.wait()
            traffic.cancel_scope.cancel()

        _, port = await _serve_process(nursery, db)
        reader = await _member(nursery, port, "auditor", history=100_000)
        kept: dict[int, str] = {}
        while len(kept) < max([*acked, *delivered]):
            frame = await reader.receive()
            assert frame is not None
            if frame.WhichOneof("frame") == "event" and frame.event.history:
                kept[frame.event.seq] = frame.event.text
        await reader.send("after the crash", "after")
        while (frame := await reader.receive()) is not None:
            if frame.WhichOneof("frame") == "ack":
                next_seq = frame.ack.seq
                break
    assert acked and delivered
    assert all(kept.get(seq) == text for seq, text in acked.items())
    assert all(kept.get(seq) == text for seq, text in delivered.items())
    store_last = max(kept)
    assert next_seq > store_last >= max([*acked, *delivered])
    assert sorted(kept) == list(range(1, len(kept) + 1))


async def test_purechat_join_resumes_without_loss_or_duplicates_after_a_restart(
    nursery, tmp_path: Path
) -> None:
    db = tmp_path / "chat.db"

    async def serve(port: int) -> Harness:
        config = ServerConfig(port=port, limits=Limits(rate_limit=0))
        server = ChatServer(config, await SqliteStore.open(db))
        bound = await nursery.start(server.serve)
        return Harness(server, bound, nursery)

    with trio.fail_after(60):
        harness = await serve(0)
        listener = await start(
            nursery,
            "join",
            "--server",
            f"127.0.0.1:{harness.port}",
            "--listen",
            "--json",
            "--history",
            "0",
        )
        output = Lines(listener.stdout)
        # a listener has no seat: it says nothing until something happens
        await settles(lambda: harness.server.hub.member_count() == 1)
        sender = await harness.v1("sender")
        for n in range(1, 21):
            await sender.say(f"first {n}")
        harness.server.shutdown()
        await harness.server.stopped()
        await harness.server.store.aclose()

        harness = await serve(harness.port)
        sender = await harness.v1("sender")
        for n in range(1, 21):  # likely before the listener is back: it must catch up
            await sender.say(f"second {n}")
        messages = []
        while len(messages) < 40:
            event = json.loads(await output.next() or "{}")
            if event["kind"] == "message":
                messages.append((event["seq"], event["text"]))
        await harness.server.store.aclose()
    expected = [(n, f"first {n}") for n in range(1, 21)]
    expected += [(20 + n, f"second {n}") for n in range(1, 21)]
    assert messages == expected
