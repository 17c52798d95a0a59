"""Living messages in every store: an edit replaces, a delete really deletes, reactions
aggregate; changes are numbered in the log and read back with their target as it is."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import trio

from purechat.core import EntryKind, Message
from purechat.core.events import Reaction
from purechat.store import SqliteStore, Store
from purechat.store.base import query_words
from purechat.store.redis import RedisStore
from tests.polling import eventually
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisProcess, free_port
from tests.stores import every_store  # noqa: F401 (the `store` fixture)

T0 = 1_700_000_000_000
SECRET = "zanzibarquokka"


def said(text: str, account: str = "bob", msg_id: str = "", reply_to: int = 0) -> Message:
    return Message(
        "lobby", 0, account, text, T0, False, account, msg_id, reply_to=reply_to, account=account
    )


def change(
    kind: EntryKind, target: int, by: str = "bob", msg_id: str = "", **data: object
) -> Message:
    text = str(data.pop("text", ""))
    return Message(
        "lobby",
        0,
        by,
        text,
        T0 + 1000,
        sender_key=by,
        client_msg_id=msg_id,
        kind=kind,
        data=json.dumps(data, ensure_ascii=False) if data else "",
        target=target,
        account=by,
    )


def react(target: int, emoji: str, by: str, *, removed: bool = False, msg_id: str = "") -> Message:
    return change(EntryKind.REACTION, target, by, msg_id, emoji=emoji, removed=removed, key=by)


async def test_an_edit_replaces_the_text_in_history_and_search(store: Store) -> None:
    await store.append([said(f"the {SECRET} deploy is done", reply_to=0)])
    await store.append([said("answering", account="carol", reply_to=1)])
    [edited] = await store.append([change(EntryKind.EDIT, 1, text="the rollout is done")])
    assert edited.seq == 3 and edited.target is not None
    assert edited.target.text == "the rollout is done"
    first, answer, entry = await store.read("lobby", after=0, upto=3)
    assert first.text == "the rollout is done" and first.revision is not None
    assert first.revision.edited_ms == T0 + 1000 and first.account == "bob"
    assert answer.reply_to == 1
    assert entry.kind is EntryKind.EDIT and entry.target == 1
    assert entry.text == "the rollout is done"  # the target's text now
    assert await store.search(query_words(SECRET), ["lobby"], 10) == []
    [found] = await store.search(query_words("rollout"), ["lobby"], 10)
    assert found.seq == 1 and found.text == "the rollout is done"


async def test_a_delete_leaves_a_tombstone_and_takes_the_edits_text_too(store: Store) -> None:
    await store.append([said("first words")])
    await store.append([change(EntryKind.EDIT, 1, text=f"now {SECRET}")])
    [gone] = await store.append(
        [change(EntryKind.DELETE, 1, by="alice", author="bob", moderated=True)]
    )
    assert gone.target is not None and gone.target.text == ""
    message, edit, delete = await store.read("lobby", after=0, upto=3)
    assert message.text == "" and message.revision is not None and message.revision.deleted
    assert message.revision.deleted_by == "alice"
    assert edit.text == "" and delete.kind is EntryKind.DELETE
    assert await store.search(query_words(SECRET), None, 10) == []
    # A change that meets a deleted message changes nothing.
    await store.append([change(EntryKind.EDIT, 1, text="back again")])
    assert (await store.read("lobby", after=0, upto=1))[0].text == ""


async def test_reactions_aggregate_once_per_account(store: Store) -> None:
    await store.append([said("ship it")])
    await store.append(
        [
            react(1, "👍", "alice"),
            react(1, "👍", "carol"),
            react(1, "🎉", "alice"),
            react(1, "👍", "alice"),  # again: nothing more
        ]
    )
    [taken_back] = await store.append([react(1, "🎉", "alice", removed=True)])
    assert taken_back.target is not None
    assert taken_back.target.revision is not None
    assert taken_back.target.revision.reactions == (Reaction("👍", ("alice", "carol")),)
    [message] = await store.read("lobby", after=0, upto=1)
    assert message.revision is not None
    assert message.revision.reactions == (Reaction("👍", ("alice", "carol")),)


async def test_a_retried_change_is_done_once(store: Store) -> None:
    await store.append([said("hello")])
    first = await store.append([react(1, "👍", "alice", msg_id="r1")])
    again = await store.append([react(1, "👍", "alice", msg_id="r1")])
    assert again[0].seq == first[0].seq and again[0].duplicate
    assert (await store.head("lobby")).seq == 2


async def test_a_deleted_text_is_gone_from_the_sqlite_file_its_wal_and_index(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    store = await SqliteStore.open(path)
    try:
        for n in range(50):
            await store.append([said(f"filler {n} words to spread the index")])
        await store.append([said(f"the code is {SECRET} do not share")])
        await store.append([change(EntryKind.EDIT, 51, text=f"the code is {SECRET}2")])
        wal = path.with_name("chat.db-wal")
        before = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert SECRET.encode() in before  # the test can see it when it is there
        await store.append([change(EntryKind.DELETE, 51, author="bob", moderated=False)])
        after = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
        assert SECRET.encode() not in after
        assert await store.search(query_words(SECRET + "2"), None, 10) == []
        assert len(await store.search(query_words("filler"), None, 100)) == 50
    finally:
        await store.aclose()


def _everything_in(cli: list[str], port: int) -> str:
    """Every key on one Redis node and its whole value, as redis-cli prints them: what
    an operator (or an attacker with the node) could read back."""
    keys = subprocess.run(
        [*cli, "-p", str(port), "--scan"], capture_output=True, text=True, check=True
    ).stdout.split()
    kinds = _pipeline(cli, port, [f'TYPE "{key}"' for key in keys]).split()
    reads = {
        "string": "GET",
        "hash": "HGETALL",
        "list": "LRANGE",
        "set": "SMEMBERS",
        "zset": "ZRANGE",
        "stream": "XRANGE",
    }
    ranges = {"list": " 0 -1", "zset": " 0 -1 WITHSCORES", "stream": " - +"}
    asked = [
        f'{reads[kind]} "{key}"{ranges.get(kind, "")}'
        for key, kind in zip(keys, kinds, strict=True)
    ]
    return "\n".join(keys) + "\n" + _pipeline(cli, port, asked)


def _pipeline(cli: list[str], port: int, commands: list[str]) -> str:
    """commands on one connection (READONLY first: a cluster's replica answers reads)."""
    done = subprocess.run(
        [*cli, "-p", str(port)],
        input="\n".join(["ECHO start", "READONLY", *commands]) + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    # What follows READONLY's answer (OK, or an error on one Redis: no cluster there).
    return done.stdout.split("\n", 2)[2]


@pytest.mark.parametrize("where", ["redis", "cluster"])
async def test_a_deleted_text_is_in_no_key_or_value_of_redis(
    where: str, tmp_path: Path, nursery: trio.Nursery, request: pytest.FixtureRequest
) -> None:
    if where == "redis":
        redis = RedisProcess(tmp_path, free_port())
        await redis.start(nursery)
        cli = [shutil.which("redis-cli") or "redis-cli"]
        primaries, replicas = [redis.port], []
        store = await RedisStore.open(redis.url, history=100)
    else:
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        await trio.to_thread.run_sync(cluster.heal)
        await trio.to_thread.run_sync(cluster.flush)
        cli = cluster._cli
        nodes = cluster.nodes()
        primaries = [node.port for node in nodes if node.primary and not node.failed]
        replicas = [node.port for node in nodes if not node.primary and not node.failed]
        store = await RedisStore.open(cluster.url(0), history=100)

    async def anywhere(ports: list[int]) -> bool:
        dumps = [await trio.to_thread.run_sync(_everything_in, cli, port) for port in ports]
        return any(SECRET in dump for dump in dumps)

    try:
        await store.append([said("filler")])
        await store.append([said(f"the code is {SECRET} do not share", msg_id="m2")])
        await store.append([react(2, "👍", "carol")])
        await store.append([change(EntryKind.EDIT, 2, text=f"the code is {SECRET}2")])
        assert await anywhere(primaries)  # the test sees it while it is there
        await store.append([change(EntryKind.DELETE, 2, author="bob", moderated=False)])
        assert not await anywhere(primaries)
        with trio.fail_after(10):  # replicas follow their primary
            await eventually(lambda: anywhere(replicas), False)
        first, message, _, edit, _ = await store.read("lobby", after=0, upto=5)
        assert first.text == "filler" and message.text == "" and edit.text == ""
        assert message.revision is not None and message.revision.deleted
        assert message.revision.reactions == ()
        assert await store.search(query_words(SECRET), ["lobby"], 10) == []
        assert await store.search(query_words(SECRET + "2"), ["lobby"], 10) == []
    finally:
        await store.aclose()


async def test_redis_drops_the_bodies_of_messages_its_log_no_longer_keeps(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    store = await RedisStore.open(redis.url, history=100)  # the log keeps ~LOG_FLOOR
    try:
        for batch in range(10):
            await store.append([said(f"message {batch}.{n}") for n in range(500)])
        keys = store.layout.room("lobby")
        kept = int((await redis.command("XLEN", keys.log)).strip()[1:])
        bodies = int((await redis.command("HLEN", keys.bodies)).strip()[1:])
        assert kept < 5000
        assert bodies == kept + 1  # and `from`, which keeps the hash from emptying
    finally:
        await store.aclose()
