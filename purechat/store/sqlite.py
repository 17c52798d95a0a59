"""sqlite:///PATH: every room's log in one SQLite file, committed before anything is sent.

WAL mode with synchronous=FULL, so a message survives a crash of the process or the
machine once `append` returns. Appends arriving together are committed in one
transaction by the caller's batching, so throughput is not one fsync per message.
Blocking calls run on worker threads: one writer connection and one reader
connection, each used by one thread at a time.

A damaged file is said as such (StoreDamaged, naming the file): at open where it shows
in what a server reads first, and later by any read or write that meets the damage.
At open the schema and the rooms are read, and every room's newest CHECKED_HISTORY
messages with the index entry of its newest one: the pages joins and appends touch
first. A full check sees more but reads the whole file: `time sqlite3 FILE 'PRAGMA
quick_check'` on 1,000,000 messages in 10 rooms (229 MB) took 2.5-3.9 s from a cold
page cache (0.4-0.7 s warm), where opening with this check took 0.02-0.07 s. It grows
with the rooms, not the messages: 0.8-1.2 s cold for 1,000,000 messages in 10,000
rooms (quick_check: 3.7-4.4 s). `sqlite3 FILE 'PRAGMA quick_check'` is the
operator's full check.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.to_thread

from purechat.core import Message
from purechat.core.events import CHANGES, EntryKind
from purechat.core.living import as_kept, as_read, revise, revision_json, revision_of
from purechat.core.moderation import Effect
from purechat.store.base import (
    Appended,
    Head,
    SearchCursor,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
    new_epoch,
    state_key,
    state_space,
)

T = TypeVar("T")

# "pcht": marks a file as ours, so a foreign database is refused instead of altered.
APPLICATION_ID = 0x70636874
SCHEMA_VERSION = 4
# Version 2 added the file's epoch: a file replaced by another is another log.
# Version 3 added entries of other kinds than messages (moderation), and the directory
# (accounts, sessions, room state, audit and control records: see store/directory.py).
VERSION_3 = """
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message';
ALTER TABLE messages ADD COLUMN data TEXT NOT NULL DEFAULT '';
CREATE TABLE kv (
    space TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (space, key)
) WITHOUT ROWID;
CREATE TABLE records (
    stream TEXT NOT NULL,
    id INTEGER NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (stream, id)
) WITHOUT ROWID;
CREATE VIRTUAL TABLE search USING fts5(
    text, room UNINDEXED, seq UNINDEXED, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TABLE search_rows (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
"""
# Version 4 added living messages: a message's answer (reply_to), a change's target,
# the sender's account (who may edit or delete it), and what changes made of a message
# (revision: core/living.revision_json).
VERSION_4 = """
ALTER TABLE messages ADD COLUMN reply_to INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN target INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN revision TEXT NOT NULL DEFAULT '';
"""
META = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""
SCHEMA = (
    META
    + """
CREATE TABLE rooms (
    name TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE messages (
    room TEXT NOT NULL,
    seq INTEGER NOT NULL,
    user TEXT NOT NULL,
    text TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    action INTEGER NOT NULL,
    sender_key TEXT NOT NULL,
    client_msg_id TEXT NOT NULL,
    PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX message_ids ON messages (room, sender_key, client_msg_id)
    WHERE client_msg_id != '';
"""
)


# Messages of each room read at open: a join's history (the page's is 50) starts there.
CHECKED_HISTORY = 50
# CROSS JOIN keeps the rooms as the outer loop: one primary-key search per room.
CHECK_NEWEST = """
SELECT count(*), sum(length(m.user) + length(m.text)) FROM rooms AS r
CROSS JOIN messages AS m ON m.room = r.name AND m.seq > r.last_seq - ?
"""
CHECK_NEWEST_IDS = """
SELECT count(*) FROM rooms AS r
CROSS JOIN messages AS m ON m.room = r.name AND m.seq = r.last_seq
CROSS JOIN messages AS i INDEXED BY message_ids ON i.room = m.room
    AND i.sender_key = m.sender_key AND i.client_msg_id = m.client_msg_id
    AND i.client_msg_id != ''
"""
# SQLite's primary result codes for a file it cannot make sense of.
DAMAGE_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class SqliteStore:
    # Its full-text index covers every room: a search needs no list of rooms.
    searches_everything = True
    # Edits, deletes and reactions are applied to their targets (see Store.append).
    keeps_changes = True

    def __init__(
        self,
        path: Path,
        writer: sqlite3.Connection,
        reader: sqlite3.Connection,
        held: int,
        epoch: str,
    ):
        self.path = path
        # One epoch for the file: every room's log lives and dies with it.
        self.epoch = epoch
        self._writer = writer
        self._reader = reader
        # A descriptor of the file whose lock says "this server's": see _open_held.
        self._held = held
        self._write_lock = anyio.CapacityLimiter(1)
        self._read_lock = anyio.CapacityLimiter(1)
        self._closed = False

    @classmethod
    async def open(cls, path: Path, *, shared: bool = False) -> SqliteStore:
        """Open or create the store at path; StoreError with the reason when it cannot.

        A server holds the file for itself; `shared` opens it beside a running server
        (`purechat account`, which only reads and writes the directory, under SQLite's
        own locking).
        """
        return await anyio.to_thread.run_sync(cls._open_blocking, path, shared)

    @classmethod
    def _open_blocking(cls, path: Path, shared: bool = False) -> SqliteStore:
        path = path.expanduser().resolve()
        if path.is_dir():
            raise StoreError(f"{path} is a directory, not a database file")
        if not path.parent.is_dir():
            raise StoreError(f"cannot create {path}: the folder {path.parent} does not exist")
        try:  # so that a path that cannot be opened says why, not "not a database"
            held = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot open or create {path}: {error.strerror}") from None
        try:
            return cls._open_held(path, held, shared)
        except BaseException:
            os.close(held)
            raise

    @classmethod
    def _open_held(cls, path: Path, held: int, shared: bool = False) -> SqliteStore:
        try:
            # One server per file: a second one would number correctly but never see
            # the first one's messages live. Held until aclose.
            if not shared:
                fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"{path} is in use by another purechat server; one SQLite file serves one "
                "server (for several servers as one chat, use --store redis://HOST:PORT)"
            ) from None
        try:
            writer, reader, epoch = _connections(path)
        except sqlite3.DatabaseError as error:
            raise _cannot_use(path, error) from None
        return cls(path, writer, reader, held, epoch)

    @property
    def description(self) -> str:
        return str(self.path)

    async def append(self, messages: Sequence[Message]) -> list[Appended]:
        results = await self._run(self._write_lock, self._append_blocking, messages)
        if any(
            m.kind is EntryKind.DELETE and not r.duplicate
            for m, r in zip(messages, results, strict=True)
        ):
            await self._purge()
        return results

    async def _purge(self) -> None:
        """After a delete, the text's bytes leave the file and its WAL: the search
        index is merged (dropping the deleted entry's words from its segments; freed
        pages are zeroed, secure_delete being on) and the WAL checkpointed and
        truncated, under both locks so no read holds an older snapshot meanwhile."""
        async with self._write_lock, self._read_lock:
            try:
                await anyio.to_thread.run_sync(_purge, self._writer)
            except sqlite3.Error as error:
                raise StoreUnavailable(f"the message store failed: {error}") from None

    def _append_blocking(self, drafts: Sequence[Message]) -> list[Appended]:
        db = self._writer
        results: list[Appended] = []
        last: dict[str, int] = {}
        with db:  # one transaction: committed (and fsynced) on exit
            db.execute("BEGIN IMMEDIATE")
            for draft in drafts:
                if draft.client_msg_id:
                    # "!= ''" lets SQLite use the partial index message_ids; without
                    # it every send with an id scanned the room's whole log.
                    row = db.execute(
                        "SELECT seq FROM messages WHERE room = ? AND sender_key = ?"
                        " AND client_msg_id = ? AND client_msg_id != ''",
                        (draft.room, draft.sender_key, draft.client_msg_id),
                    ).fetchone()
                    if row is not None:
                        results.append(Appended(row[0], duplicate=True, epoch=self.epoch))
                        continue
                if draft.room not in last:
                    last[draft.room] = _last_seq(db, draft.room)
                seq = last[draft.room] = last[draft.room] + 1
                kept = as_kept(draft)
                db.execute(
                    "INSERT INTO messages (room, seq, user, text, time_ms, action, sender_key,"
                    " client_msg_id, kind, data, reply_to, target, account)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        draft.room,
                        seq,
                        draft.user,
                        kept.text,
                        draft.time_ms,
                        int(draft.action),
                        draft.sender_key,
                        draft.client_msg_id,
                        draft.kind.value,
                        draft.data,
                        draft.reply_to,
                        draft.target,
                        draft.account,
                    ),
                )
                _apply_effects(db, draft.room, draft.effects)
                revised = None
                if draft.kind is EntryKind.MESSAGE:
                    _index(db, draft.room, seq, draft.text)
                elif draft.kind in CHANGES:
                    revised = _revise(db, draft)
                results.append(Appended(seq, duplicate=False, epoch=self.epoch, target=revised))
            db.executemany(
                "INSERT INTO rooms VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET last_seq = excluded.last_seq",
                last.items(),
            )
        return results

    async def sent(self, room: str, sender_key: str, client_msg_id: str) -> int | None:
        """The number a send with this id was stored under (None: not stored)."""

        def find(db: sqlite3.Connection) -> int | None:
            row = db.execute(
                "SELECT seq FROM messages WHERE room = ? AND sender_key = ?"
                " AND client_msg_id = ? AND client_msg_id != ''",
                (room, sender_key, client_msg_id),
            ).fetchone()
            return None if row is None else int(row[0])

        return await self._run(self._read_lock, find, self._reader)

    async def head(self, room: str) -> Head:
        seq = await self._run(self._read_lock, _last_seq, self._reader, room)
        return Head(self.epoch, seq)

    async def read(self, room: str, *, after: int, upto: int) -> list[Message]:
        return await self._run(self._read_lock, self._read_blocking, room, after, upto)

    def _read_blocking(self, room: str, after: int, upto: int) -> list[Message]:
        db = self._reader
        with db:  # one snapshot: changes and their targets as of one moment
            db.execute("BEGIN")
            rows = db.execute(
                f"SELECT {COLUMNS} FROM messages WHERE room = ? AND seq > ? AND seq <= ?"
                " ORDER BY seq",
                (room, after, upto),
            ).fetchall()
            found = [_row(room, row) for row in rows]
            targets = {m.target for m in found if m.kind in CHANGES}
            held = {m.seq: m for m in found if m.seq in targets}
            for seq in targets - held.keys():
                if (target := _message_at(db, room, seq)) is not None:
                    held[seq] = target
        return [as_read(m, held.get(m.target)) if m.kind in CHANGES else m for m in found]

    async def search(
        self,
        words: Sequence[str],
        rooms: Sequence[str] | None,
        limit: int,
        before: SearchCursor | None = None,
    ) -> list[Message]:
        """With SQLite's full-text index (FTS5), kept in the message's transaction."""
        return await self._run(
            self._read_lock, _search, self._reader, list(words), rooms, limit, before
        )

    # -- the directory's primitives (see store/directory.py) ---------------------------

    async def kv_get(self, space: str, key: str) -> str | None:
        return await self._run(self._read_lock, _kv_get, self._reader, space, key)

    async def kv_put(self, space: str, key: str, value: str, *, only_new: bool = False) -> bool:
        return await self._run(self._write_lock, _kv_put, self._writer, space, key, value, only_new)

    async def kv_delete(self, space: str, key: str) -> bool:
        return await self._run(self._write_lock, _kv_delete, self._writer, space, key)

    async def kv_items(self, space: str) -> list[tuple[str, str]]:
        return await self._run(self._read_lock, _kv_items, self._reader, space)

    async def kv_present(self, space: str, keys: Sequence[str]) -> set[str]:
        return await self._run(self._read_lock, _kv_present, self._reader, space, list(keys))

    async def record(self, stream: str, value: str) -> int:
        return await self._run(self._write_lock, _record, self._writer, stream, value)

    async def records(self, stream: str, *, after: int = 0, last: int = 0) -> list[tuple[int, str]]:
        return await self._run(self._read_lock, _records, self._reader, stream, after, last)

    async def apply_effects(self, room: str, effects: Sequence[Effect]) -> None:
        def apply(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN IMMEDIATE")
                _apply_effects(db, room, effects)

        await self._run(self._write_lock, apply, self._writer)

    async def aclose(self) -> None:
        """Close both connections and give the file's lock back, even when cancelled
        (a shutdown cut short): otherwise the lock is held until the process exits and
        no server can open the file meanwhile. Shielded, it waits for a statement in
        progress, which SQLite's busy timeout bounds."""
        with anyio.CancelScope(shield=True):
            async with self._write_lock, self._read_lock:
                if not self._closed:
                    self._closed = True
                    await anyio.to_thread.run_sync(self._close_blocking)

    def _close_blocking(self) -> None:
        try:
            self._writer.close()  # the last connection out checkpoints the WAL
        finally:
            try:
                self._reader.close()
            finally:
                os.close(self._held)

    async def _run(
        self, lock: anyio.CapacityLimiter, function: Callable[..., T], *args: object
    ) -> T:
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=lock)
        except sqlite3.Error as error:
            if _damage_code(error) in DAMAGE_CODES:
                raise damaged(self.path, error) from None
            raise StoreUnavailable(f"the message store failed: {error}") from None


def damaged(path: Path, error: sqlite3.Error) -> StoreDamaged:
    """The error for a file SQLite cannot make sense of: what is wrong, and what to do."""
    return StoreDamaged(
        f"the message store {path} is damaged (SQLite: {error}); keep a copy of it, then "
        "repair it (sqlite3's .recover) or move it aside to start a new one",
        str(path),
    )


def _damage_code(error: sqlite3.Error) -> int:
    """SQLite's primary result code for error (-1 when it did not come from SQLite)."""
    code: int = getattr(error, "sqlite_errorcode", -1)
    return code & 0xFF if code >= 0 else code


def _cannot_use(path: Path, error: sqlite3.DatabaseError) -> StoreError:
    """Why a file that opened cannot serve as the store, as a sentence."""
    if _damage_code(error) == sqlite3.SQLITE_CORRUPT:  # ours (or SQLite's), but damaged
        return damaged(path, error)
    if isinstance(error, sqlite3.OperationalError):  # can open the file, but not use it
        return StoreError(
            f"cannot use {path}: {error} (purechat writes the file and, beside it, "
            "its -wal and -shm files)"
        )
    # A header SQLite does not know (NOTADB): another program's file, or a wreck.
    return StoreError(
        f"{path} is not a purechat database ({error}): it is a file of another program"
    )


def _connections(path: Path) -> tuple[sqlite3.Connection, sqlite3.Connection, str]:
    """The writer and reader connections of a file checked to be a sound purechat
    store (created when empty), and its epoch; closed again if anything fails."""
    with contextlib.ExitStack() as undo:
        writer = _connect(path)
        undo.callback(writer.close)
        epoch = _prepare(writer, path)  # before any pragma: a foreign file is untouched
        _check(writer)
        _use_wal(writer)
        reader = _connect(path)
        undo.callback(reader.close)
        _use_wal(reader)
        undo.pop_all()
    return writer, reader, epoch


def _check(db: sqlite3.Connection) -> None:
    """Read what a server reads first (see the module docstring): damage there is
    said at startup, not to the first member who joins."""
    db.execute(CHECK_NEWEST, (CHECKED_HISTORY,)).fetchall()
    db.execute(CHECK_NEWEST_IDS).fetchall()


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: we issue BEGIN ourselves; check_same_thread=False: each
    # connection is used by one worker thread at a time, under its limiter.
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)


def _use_wal(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    # Freed space is overwritten with zeros: a deleted (or edited) text's bytes do not
    # linger in free pages of the file.
    db.execute("PRAGMA secure_delete = ON")


def _prepare(db: sqlite3.Connection, path: Path) -> str:
    """Create the schema in a new file (or bring a version 1 file up to date); refuse
    files that are not ours. The file's epoch."""
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application_id == 0 and tables == 0:
        with db:
            db.execute("BEGIN IMMEDIATE")
            _create(db, SCHEMA)
            _create(db, VERSION_3)
            _create(db, VERSION_4)
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        return _upgraded(db)
    if application_id != APPLICATION_ID:
        raise StoreError(f"{path} is a database of another program, not a purechat store")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version in (1, 2, 3):
        with db:
            db.execute("BEGIN IMMEDIATE")
            if version == 1:
                _create(db, META)
            if version < 3:
                _create(db, VERSION_3)
            _create(db, VERSION_4)
            if version > 1:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if version == 1:
            return _upgraded(db)
    elif version != SCHEMA_VERSION:
        raise StoreError(
            f"{path} has purechat store version {version}; this purechat reads version "
            f"{SCHEMA_VERSION}"
        )
    row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
    return str(row[0])


def _create(db: sqlite3.Connection, schema: str) -> None:
    for statement in schema.split(";"):
        if statement.strip():
            db.execute(statement)


def _upgraded(db: sqlite3.Connection) -> str:
    """Give the file its epoch and mark it the current version."""
    epoch = new_epoch()
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO meta VALUES ('epoch', ?)", (epoch,))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return epoch


def _index(db: sqlite3.Connection, room: str, seq: int, text: str) -> None:
    """A message's words into the full-text index, in the caller's transaction."""
    cursor = db.execute("INSERT INTO search (text, room, seq) VALUES (?, ?, ?)", (text, room, seq))
    db.execute("INSERT INTO search_rows VALUES (?, ?, ?)", (room, seq, cursor.lastrowid))


def _search(
    db: sqlite3.Connection,
    words: list[str],
    rooms: Sequence[str] | None,
    limit: int,
    before: SearchCursor | None,
) -> list[Message]:
    if not words or (rooms is not None and not rooms):
        return []
    # query_words gives letters and digits only; FTS folds case and accents itself.
    match = " ".join(f'"{word}"' for word in words)
    columns = ", ".join(f"m.{column.strip()}" for column in COLUMNS.split(","))
    sql = (
        f"SELECT m.room, {columns}"
        " FROM search JOIN messages AS m ON m.room = search.room AND m.seq = search.seq"
        " WHERE search MATCH ?"
    )
    args: list[object] = [match]
    if rooms is not None:
        sql += f" AND search.room IN ({','.join('?' * len(rooms))})"
        args += list(rooms)
    if before is not None:
        sql += " AND (m.time_ms, m.room, m.seq) < (?, ?, ?)"
        args += [before.time_ms, before.room, before.seq]
    sql += " ORDER BY m.time_ms DESC, m.room DESC, m.seq DESC LIMIT ?"
    args.append(limit)
    return [_row(row[0], row[1:]) for row in db.execute(sql, args).fetchall()]


COLUMNS = "seq, user, text, time_ms, action, kind, data, reply_to, target, account, revision"


def _row(room: str, row: Sequence[object]) -> Message:
    """A messages row (COLUMNS) as the core's Message."""
    seq, user, text, ms, action, kind, data, reply_to, target, account, revision = row
    return Message(
        room,
        int(str(seq)),
        str(user),
        str(text),
        int(str(ms)),
        bool(action),
        kind=EntryKind(kind),
        data=str(data),
        reply_to=int(str(reply_to)),
        target=int(str(target)),
        account=str(account),
        revision=revision_of(str(revision)),
    )


def _message_at(db: sqlite3.Connection, room: str, seq: int) -> Message | None:
    row = db.execute(
        f"SELECT {COLUMNS} FROM messages WHERE room = ? AND seq = ?", (room, seq)
    ).fetchone()
    return None if row is None else _row(room, row)


def _revise(db: sqlite3.Connection, change: Message) -> Message | None:
    """Apply a change to its target (living.revise), in the caller's transaction: the
    row's text and revision, and the search index, replaced. The target as it is now
    (None: not kept)."""
    target = _message_at(db, change.room, change.target)
    if target is None or target.kind is not EntryKind.MESSAGE:
        return None
    revised = revise(target, change)
    if revised is target:
        return target
    db.execute(
        "UPDATE messages SET text = ?, revision = ? WHERE room = ? AND seq = ?",
        (revised.text, revision_json(revised.revision), change.room, change.target),
    )
    if revised.text != target.text:
        _unindex(db, change.room, change.target)
        if revised.text:
            _index(db, change.room, change.target, revised.text)
    return revised


def _unindex(db: sqlite3.Connection, room: str, seq: int) -> None:
    """A message's words out of the full-text index, in the caller's transaction."""
    row = db.execute(
        "SELECT row FROM search_rows WHERE room = ? AND seq = ?", (room, seq)
    ).fetchone()
    if row is not None:
        db.execute("DELETE FROM search WHERE rowid = ?", (row[0],))
        db.execute("DELETE FROM search_rows WHERE room = ? AND seq = ?", (room, seq))


def _purge(db: sqlite3.Connection) -> None:
    """See SqliteStore._purge. FTS5's 'optimize' rewrites the index as one segment
    (its cost grows with the index: a delete pays it, an edit does not, see README)."""
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO search (search) VALUES ('optimize')")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _apply_effects(db: sqlite3.Connection, room: str, effects: Sequence[Effect]) -> None:
    """A moderation entry's changes to its room's state, in the caller's transaction."""
    space = state_space(room)
    for effect in effects:
        key = state_key(effect)
        if effect.value is None:
            db.execute("DELETE FROM kv WHERE space = ? AND key = ?", (space, key))
        else:
            db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?, ?)", (space, key, effect.value))


def _kv_get(db: sqlite3.Connection, space: str, key: str) -> str | None:
    row = db.execute("SELECT value FROM kv WHERE space = ? AND key = ?", (space, key)).fetchone()
    return None if row is None else str(row[0])


def _kv_put(db: sqlite3.Connection, space: str, key: str, value: str, only_new: bool) -> bool:
    with db:
        db.execute("BEGIN IMMEDIATE")
        verb = "INSERT OR IGNORE" if only_new else "INSERT OR REPLACE"
        cursor = db.execute(f"{verb} INTO kv VALUES (?, ?, ?)", (space, key, value))
        return cursor.rowcount > 0


def _kv_delete(db: sqlite3.Connection, space: str, key: str) -> bool:
    with db:
        db.execute("BEGIN IMMEDIATE")
        cursor = db.execute("DELETE FROM kv WHERE space = ? AND key = ?", (space, key))
        return cursor.rowcount > 0


def _kv_items(db: sqlite3.Connection, space: str) -> list[tuple[str, str]]:
    rows = db.execute("SELECT key, value FROM kv WHERE space = ? ORDER BY key", (space,))
    return [(str(key), str(value)) for key, value in rows.fetchall()]


def _kv_present(db: sqlite3.Connection, space: str, keys: list[str]) -> set[str]:
    if not keys:
        return set()
    marks = ",".join("?" * len(keys))
    rows = db.execute(f"SELECT key FROM kv WHERE space = ? AND key IN ({marks})", (space, *keys))
    return {str(row[0]) for row in rows.fetchall()}


def _record(db: sqlite3.Connection, stream: str, value: str) -> int:
    with db:
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT max(id) FROM records WHERE stream = ?", (stream,)).fetchone()
        number = int(row[0] or 0) + 1
        db.execute("INSERT INTO records VALUES (?, ?, ?)", (stream, number, value))
        return number


def _records(db: sqlite3.Connection, stream: str, after: int, last: int) -> list[tuple[int, str]]:
    if last:
        rows = db.execute(
            "SELECT id, value FROM records WHERE stream = ? ORDER BY id DESC LIMIT ?",
            (stream, last),
        ).fetchall()
        rows.reverse()
    else:
        rows = db.execute(
            "SELECT id, value FROM records WHERE stream = ? AND id > ? ORDER BY id",
            (stream, after),
        ).fetchall()
    return [(int(number), str(value)) for number, value in rows]


def _last_seq(db: sqlite3.Connection, room: str) -> int:
    row = db.execute("SELECT last_seq FROM rooms WHERE name = ?", (room,)).fetchone()
    return int(row[0]) if row else 0
