"""The Redis store's Lua scripts go by their SHA, with the keys they touch as KEYS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from purechat.core import Message
from purechat.store import redis_scripts
from purechat.store.redis import RedisStore, Scripts
from tests.redis_server import RedisProcess, free_port


@pytest.fixture
async def redis(tmp_path: Path, nursery: trio.Nursery) -> RedisProcess:
    process = RedisProcess(tmp_path, free_port())
    await process.start(nursery)
    return process


@pytest.fixture
async def store(redis: RedisProcess) -> AsyncIterator[RedisStore]:
    opened = await RedisStore.open(redis.url, history=100)
    try:
        yield opened
    finally:
        await opened.aclose()


def draft(text: str, room: str = "lobby") -> Message:
    return Message(room, 0, "bob", text, 1_700_000_000_000, False, "bob", text)


async def commands_run(store: RedisStore) -> set[str]:
    """The commands Redis has run since it started, by name (INFO commandstats)."""
    info = (await store._call(store._client, ["INFO", "commandstats"])).decode()
    return {
        line.split(":")[0].removeprefix("cmdstat_") for line in info.splitlines() if ":" in line
    }


async def test_scripts_go_by_their_sha_and_are_loaded_again_when_redis_forgot_them(
    store: RedisStore, redis: RedisProcess
) -> None:
    with trio.fail_after(20):
        await store.append([draft("one")])
        await store.join("lobby", ["alice"], "s1/1", "", 1)
        ran = await commands_run(store)
        await redis.command("SCRIPT", "FLUSH")  # as a restarted Redis has forgotten them
        again = await store.append([draft("two"), draft("three", room="ops")])
        head = await store.head("lobby")
        after = await commands_run(store)
    assert "evalsha" in ran and "eval" not in ran, ran
    assert "eval" not in after and "script|load" in after, after
    assert [a.seq for a in again] == [2, 1]
    assert head.seq == 2


async def test_a_join_passes_the_rooms_keys_as_keys(store: RedisStore, redis: RedisProcess) -> None:
    with trio.fail_after(20):
        async with await trio.open_tcp_stream("127.0.0.1", redis.port) as monitor:
            await monitor.send_all(b"MONITOR\r\n")
            assert (await monitor.receive_some(64)).startswith(b"+OK")
            await store.join("lobby", ["alice"], "s1/7", "", 1)
            seen = b""
            while b'"EVALSHA"' not in seen or not seen.endswith(b"\r\n"):
                seen += await monitor.receive_some(65536)
    line = next(line for line in seen.decode().splitlines() if '"EVALSHA"' in line)
    words = line.split('" "')
    count = int(words[2])
    keys = words[3 : 3 + count]
    # Every key in the room's slot, the joining server's seats there included (one
    # Redis keeps the key names it had before clusters: see redis_keys.py).
    assert keys == [
        "purechat:room:lobby:members",
        "purechat:room:lobby:sessions",
        "purechat:room:lobby:keys",
        "purechat:room:lobby:key_of",
        "purechat:room:lobby:presence",
        "purechat:room:lobby:log",
        "purechat:room:lobby:held:s1",
        "purechat:room:lobby:epoch",
    ]
    assert words[3 + count] == "s1/7"  # then the arguments: the holder first


async def test_every_script_compiles(redis: RedisProcess) -> None:
    """A script that does not compile fails only when first run (a sweep, say): each is
    loaded here, so a Lua slip fails this test instead."""
    sources = {
        name: code
        for name, code in vars(redis_scripts).items()
        if name.isupper() and isinstance(code, str)
    }
    loaded = {name: await redis.command("SCRIPT", "LOAD", code) for name, code in sources.items()}
    assert len(vars(Scripts())) == 18 and len(sources) == 20  # with COMMON and PRESENCE
    assert all(reply.startswith(b"$40\r\n") for reply in loaded.values()), loaded
