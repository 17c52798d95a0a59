"""One contract for every store, and the SQLite file's own promises."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from purechat.core import Message
from purechat.errors import StoreDamaged
from purechat.store import MemoryStore, SqliteStore, Store, StoreError, open_store
from purechat.store.sqlite import APPLICATION_ID, META, SCHEMA
from tests.fakes import damage_last_page
from tests.stores import every_store  # noqa: F401 (the `store` fixture)


def draft(text: str, room: str = "lobby", sender: str = "bob", msg_id: str = "") -> Message:
    return Message(room, 0, sender, text, 1_700_000_000_000, False, sender, msg_id)


async def test_every_answer_names_the_log_it_is_from(store: Store) -> None:
    head = await store.head("lobby")
    assert head.epoch and head.seq == 0
    appended = await store.append([draft("a"), draft("b", room="ops")])
    assert appended[0].epoch == head.epoch == (await store.head("lobby")).epoch
    assert appended[1].epoch == (await store.head("ops")).epoch


async def test_a_new_memory_store_is_a_new_log() -> None:
    assert (await MemoryStore().head("lobby")).epoch != (await MemoryStore().head("lobby")).epoch


async def test_a_sqlite_file_keeps_its_epoch_and_a_replaced_one_has_another(
    tmp_path: Path,
) -> None:
    first = await SqliteStore.open(tmp_path / "chat.db")
    epoch = (await first.head("lobby")).epoch
    await first.aclose()
    again = await SqliteStore.open(tmp_path / "chat.db")
    assert (await again.head("lobby")).epoch == epoch
    await again.aclose()
    (tmp_path / "chat.db").unlink()
    replaced = await SqliteStore.open(tmp_path / "chat.db")
    assert (await replaced.head("lobby")).epoch != epoch
    await replaced.aclose()


async def test_a_version_1_sqlite_file_is_brought_up_to_date(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "old.db")
    old.executescript(SCHEMA.removeprefix(META))
    old.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    old.execute("PRAGMA user_version = 1")
    old.execute("INSERT INTO rooms VALUES ('lobby', 7)")
    old.commit()
    old.close()
    store = await SqliteStore.open(tmp_path / "old.db")
    head = await store.head("lobby")
    await store.aclose()
    assert head.seq == 7 and head.epoch


async def test_numbers_are_per_room_consecutive_and_in_order(store: Store) -> None:
    results = await store.append([draft("a"), draft("b", room="ops"), draft("c")])
    assert [(r.seq, r.duplicate) for r in results] == [(1, False), (1, False), (2, False)]
    assert (await store.head("lobby")).seq == 2
    assert (await store.head("ops")).seq == 1
    assert (await store.head("never")).seq == 0


async def test_read_returns_a_range_oldest_first(store: Store) -> None:
    await store.append([draft(f"m{n}") for n in range(1, 11)])
    found = await store.read("lobby", after=3, upto=6)
    assert [(m.seq, m.text, m.user) for m in found] == [
        (4, "m4", "bob"),
        (5, "m5", "bob"),
        (6, "m6", "bob"),
    ]
    assert await store.read("lobby", after=10, upto=10) == []
    assert await store.read("nowhere", after=0, upto=5) == []


async def test_a_repeated_id_gets_the_original_number(store: Store) -> None:
    first = await store.append([draft("deploy", msg_id="x1")])
    again = await store.append([draft("deploy", msg_id="x1"), draft("deploy", msg_id="x1")])
    other_sender = await store.append([draft("deploy", sender="alice", msg_id="x1")])
    no_id = await store.append([draft("same"), draft("same")])
    assert first[0].seq == 1
    assert [(r.seq, r.duplicate) for r in again] == [(1, True), (1, True)]
    assert other_sender[0].duplicate is False
    assert [r.duplicate for r in no_id] == [False, False]
    assert (await store.head("lobby")).seq == 4


async def test_a_repeat_within_one_batch_is_stored_once(store: Store) -> None:
    results = await store.append([draft("a", msg_id="same"), draft("a", msg_id="same")])
    assert [(r.seq, r.duplicate) for r in results] == [(1, False), (1, True)]


async def test_the_memory_store_keeps_the_newest_n_and_forgets_their_ids() -> None:
    store = MemoryStore(history=3)
    await store.append([draft(f"m{n}", msg_id=f"id{n}") for n in range(1, 6)])
    assert [m.seq for m in await store.read("lobby", after=0, upto=5)] == [3, 4, 5]
    assert (await store.append([draft("m5", msg_id="id5")]))[0].duplicate
    assert not (await store.append([draft("m1", msg_id="id1")]))[0].duplicate


async def test_sqlite_keeps_messages_and_numbering_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    first = await SqliteStore.open(path)
    await first.append([draft("before", msg_id="a"), draft("restart")])
    await first.aclose()
    second = await SqliteStore.open(path)
    try:
        assert (await second.head("lobby")).seq == 2
        assert [m.text for m in await second.read("lobby", after=0, upto=2)] == [
            "before",
            "restart",
        ]
        assert (await second.append([draft("before", msg_id="a")]))[0].duplicate
        assert (await second.append([draft("after")]))[0].seq == 3
    finally:
        await second.aclose()


async def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "chat.db")
    await store.aclose()
    db = sqlite3.connect(tmp_path / "chat.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not a database at all" * 100, "is not a purechat database"),
        (None, "is a database of another program"),
    ],
)
async def test_foreign_files_are_refused_with_a_sentence(
    tmp_path: Path, content: bytes | None, message: str
) -> None:
    path = tmp_path / "other.db"
    if content is None:
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY)")
        db.commit()
        db.close()
    else:
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(StoreError, match=message):
        await open_store(f"sqlite:///{path}")
    assert path.read_bytes() == before  # nothing of it was changed


async def test_bad_store_urls_and_places_are_sentences(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown store 'postgres://x'"):
        await open_store("postgres://x")
    with pytest.raises(StoreError, match="does not exist"):
        await open_store(f"sqlite:///{tmp_path}/missing/dir/chat.db")
    with pytest.raises(StoreError, match="is a directory"):
        await open_store(f"sqlite:///{tmp_path}")


async def test_store_urls_follow_sqlalchemys_slashes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = await open_store("sqlite:///rel.db")
    absolute = await open_store(f"sqlite:///{tmp_path}/abs.db")  # tmp_path starts with /
    try:
        assert relative.description == str(tmp_path / "rel.db")
        assert absolute.description == str(tmp_path / "abs.db")
    finally:
        await relative.aclose()
        await absolute.aclose()


async def test_a_cancelled_close_still_frees_the_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    store = await SqliteStore.open(path)
    await store.append([draft("kept")])
    with trio.CancelScope() as shutdown:
        shutdown.cancel()  # a shutdown cut short while the store closes
        await store.aclose()
    again = await SqliteStore.open(path)  # not "in use by another purechat server"
    try:
        assert [m.text for m in await again.read("lobby", after=0, upto=1)] == ["kept"]
    finally:
        await again.aclose()
    await store.aclose()  # a second close is harmless


async def test_a_repeat_is_found_without_reading_the_whole_room(tmp_path: Path) -> None:
    """A send with an id looks for an earlier one through the index: the work does not
    grow with the room (it read every message of it before)."""
    store = await SqliteStore.open(tmp_path / "chat.db")
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    store._writer.set_progress_handler(count, 100)

    async def work_of_one_send(msg_id: str) -> int:
        nonlocal steps
        steps = 0
        await store.append([draft("x", msg_id=msg_id)])
        return steps

    try:
        small = await work_of_one_send("first")
        for batch in range(10):
            await store.append([draft("m", msg_id=f"{batch}-{n}") for n in range(1000)])
        large = await work_of_one_send("later")
    finally:
        await store.aclose()
    # A few hundred steps more at most: the full-text index's own upkeep (its segments
    # merge now and then), not a read of the room, which cost tens of thousands.
    assert large <= small + 10, (small, large)


async def _lobby_file(path: Path, count: int = 300) -> None:
    """A store whose last page holds the lobby's newest messages."""
    store = await SqliteStore.open(path)
    for start in range(0, count, 20):
        await store.append([draft(f"line {n}", msg_id=f"id{n}") for n in range(start, start + 20)])
    await store.aclose()


async def test_a_damaged_file_is_refused_at_open_with_a_sentence_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chat.db"
    await _lobby_file(path)
    assert damage_last_page(path) == "messages"
    with pytest.raises(StoreDamaged) as refused:
        await open_store(f"sqlite:///{path}")
    assert str(refused.value).startswith(f"the message store {path} is damaged (SQLite: ")
    assert refused.value.where == str(path)
    again = sqlite3.connect(path)  # and the file was let go: not locked, not altered
    again.close()


async def test_a_read_that_meets_damage_says_so_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    await _lobby_file(path)
    store = await SqliteStore.open(path)
    try:
        assert damage_last_page(path) == "messages"  # after the check at open
        assert (await store.head("lobby")).seq == 300  # the rooms' table is sound
        with pytest.raises(StoreDamaged) as failed:
            await store.read("lobby", after=250, upto=300)
        assert "database disk image is malformed" in str(failed.value)
        assert failed.value.where == str(path)
    finally:
        await store.aclose()
