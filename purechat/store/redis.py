"""redis://, rediss://, redis+cluster:// and rediss+cluster://: every room's log as a
Redis (or Valkey) Stream, shared by servers, on one Redis or spread over a Redis Cluster.

Several purechat servers pointed at one Redis, or at one cluster, are one chat. A
message is numbered and appended atomically by a Lua script (INCR the room's counter,
XADD with that number as the entry id, remember the client's message id), so numbers
are per room, monotonic and the same for every server; every server then delivers
each room from the stream (`tail`), so all members everywhere see the stream's one
order. Names, member lists, joins and leaves are kept beside each log, with a
heartbeat per server. Where every key lives, and the rules that let the same scripts
run on a cluster, is redis_keys.py; the scripts are redis_scripts.py.

On a cluster each room lives in the slot of its name, so rooms spread over the shards;
work on several rooms is one call per slot, sent concurrently. A server reads the logs
of the rooms its members are in, slot by slot (a read cannot span slots), when the
room's sharded pub/sub channel says something was logged, and every second anyway in
case such a word was lost (a failover, a move).

How durable an acknowledgement is follows `?replicas=N`: by default a message counts as
stored once the primary has it (a failover may lose the newest, and the log's epoch
then changes: see APPEND's fence); with N, it is first staged, then moved into the log
(where readers see it) only once Redis says N replicas have it (WAIT), so nothing a
member saw or was acknowledged is lost by a failover.

Who is typing goes from server to server on each room's `typing` channel (sharded
pub/sub on a cluster, plain on one Redis), heard by the servers whose feed reads the
room; nothing of it is kept in Redis.

Uses valkey-glide (its async client runs under trio and asyncio). Blocking reads (one
Redis) and pub/sub use a client of their own (on a cluster the same one: its reads do
not block), as does WAIT with replicas: WAIT blocks its connection, and counts that
connection's writes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import anyio
import glide

from purechat.core import EntryKind, EventKind, Message
from purechat.core.events import CHANGES, Reaction, Revision
from purechat.core.living import as_read
from purechat.core.moderation import Effect
from purechat.core.names import name_key
from purechat.store.base import (
    Appended,
    Head,
    OutcomeUnknown,
    SearchCursor,
    StoreError,
    StoreUnavailable,
    holds_words,
    new_epoch,
)
from purechat.store.redis_address import RedisAddress
from purechat.store.redis_keys import Layout, RoomKeys
from purechat.store.redis_scripts import (
    APPEND,
    BEHIND_ELSEWHERE,
    CLAIM,
    COMMIT,
    EFFECTS,
    FORGET,
    HEADS,
    HEARTBEAT,
    JOIN,
    LEAVE,
    POSITION,
    READ,
    RECORD,
    REPORT_BEHIND,
    RESTORE,
    RETIRE_ROOM,
    ROOM_INFO,
    STAGED,
)
from purechat.store.shared import (
    TAIL_COUNT,
    TYPING_HEARD,
    TYPING_TOLD,
    EpochChange,
    Heartbeat,
    Joined,
    LogEntry,
    Position,
    PresenceChange,
    PresenceId,
    Seat,
)

__all__ = ["RedisAddress", "RedisStore"]

log = logging.getLogger("purechat.server")

REQUEST_TIMEOUT_MS = 2000
# WAIT's own bound, inside the request's: past it the send's outcome is unknown.
WAIT_TIMEOUT_MS = 1000
# Retried sends are recognised among at least this many of a room's newest messages,
# and a log keeps as many while a server is behind in its room.
IDS_KEPT = 10_000
# A log keeps at least this many messages, --history or not: a server may be a few
# commits of the journal behind (each up to 1,024 messages) when the next one lands,
# and what it has not read must still be there (see SharedStore.tail_count).
LOG_FLOOR = 4096
# Messages a search reads of each room, newest first (Redis keeps no index of words).
SEARCH_SCANNED = 5000
# How long a sweeper's claim on a silent server lasts (another sweeps it after).
CLAIM_MS = 10_000
SERVERS_PER_SWEEP = 100
# Seats freed per script: Redis runs one script at a time.
SEATS_PER_CALL = 1000
# Calls to different slots in flight at once.
CALLS_AT_ONCE = 32
# A cluster's feed reads every room it follows at least this often, news or not ...
POLL_SECONDS = 1.0
# ... and stops listening to a room it has not been asked about for this long.
UNFOLLOW_SECONDS = 5.0
# How long a subscription may take to be confirmed before reads go on without it.
SUBSCRIBE_TIMEOUT_MS = 500
# A typing message longer than this is not read (TYPING_TOLD names of at most 32
# characters, quoted, fit in well under it).
TYPING_MESSAGE_BYTES = 64 * 1024

T = TypeVar("T")


def _script(code: str) -> Any:
    return glide.Script(code)  # type: ignore[no-untyped-call]  # glide's is untyped


class Scripts:
    """The Lua scripts, kept while the store is open: glide sends each by its SHA
    (EVALSHA), loading it (SCRIPT LOAD) on a node that does not know it, as after a
    restart or a failover; each script's text is sent once per node, not per call."""

    def __init__(self) -> None:
        self.append = _script(APPEND)
        self.commit = _script(COMMIT)
        self.heads = _script(HEADS)
        self.staged = _script(STAGED)
        self.position = _script(POSITION)
        self.read = _script(READ)
        self.join = _script(JOIN)
        self.leave = _script(LEAVE)
        self.restore = _script(RESTORE)
        self.retire_room = _script(RETIRE_ROOM)
        self.room_info = _script(ROOM_INFO)
        self.heartbeat = _script(HEARTBEAT)
        self.claim = _script(CLAIM)
        self.forget = _script(FORGET)
        self.report_behind = _script(REPORT_BEHIND)
        self.behind_elsewhere = _script(BEHIND_ELSEWHERE)
        self.record = _script(RECORD)
        self.effects = _script(EFFECTS)


class RedisStore:
    # Edits, deletes and reactions are applied to their targets (see Store.append): a
    # message's text lives in the room's `bodies` hash, not its stream entry.
    keeps_changes = True

    def __init__(
        self,
        address: RedisAddress,
        clients: tuple[Any, Any, Any, Any],
        history: int,
        ids_kept: int,
    ):
        self.address = address
        self.layout = Layout(address.cluster)
        # For everything but blocking work; for blocking reads (and a cluster's pub/sub);
        # for the writes a WAIT follows (the first one when no replica is asked for);
        # for pub/sub (the reader on a cluster, whose reads do not block).
        self._client, self._reader, self._durable, self._listener = clients
        self.history = history
        # What a log keeps (MAXLEN ~): see LOG_FLOOR.
        self.kept = max(history, LOG_FLOOR)
        self.ids_kept = ids_kept
        # A quarter of what a log keeps: see SharedStore.tail_count.
        self.tail_count = min(TAIL_COUNT, self.kept // 4)
        self._scripts = Scripts()
        # This store's name in rooms' `behind` sets (its server's feed's).
        self.reader_id = uuid.uuid4().hex
        # Rooms an append said another server is behind in, not yet taken.
        self._behind_hints: set[str] = set()
        # Per server, the rooms listed as places it may hold seats (see _enlist), and
        # per room the joins under way; the lock orders listing against unlisting.
        self._listed: dict[str, set[str]] = {}
        self._joining: Counter[str] = Counter()
        self._listing = anyio.Lock()
        # The feed: rooms followed (when last asked about), channels listened to (news
        # on a cluster, typing everywhere), rooms with news not yet read, and when every
        # room is read anyway (a cluster's).
        self._following: dict[str, float] = {}
        self._channels: dict[str, str] = {}
        self._typing_channels: dict[str, str] = {}
        self._woken: set[str] = set()
        self._news = anyio.Event()
        self._next_poll = 0.0
        # With replicas: per room the oldest staged number seen at the last check.
        self._staged_seen: dict[str, int] = {}
        # Who typed on other servers, by room, not yet taken (heard_typing).
        self._typing_heard: dict[str, dict[str, None]] = {}

    @classmethod
    async def open(
        cls,
        url: str,
        history: int,
        ids_kept: int = IDS_KEPT,
        *,
        address_resolver: Callable[[str, int], tuple[str, int]] | None = None,
    ) -> RedisStore:
        """Connect; StoreError with a sentence when Redis cannot be reached.

        address_resolver maps the nodes' addresses (as a cluster announces them) to
        those to connect to: the tests put a proxy in between that way.
        """
        address = RedisAddress.parse(url)
        # glide's core logs reconnect attempts, and on a cluster every failed attempt to
        # subscribe again while a slot moves or a shard fails over, as coloured lines on
        # stdout; purechat's own log already says, once, in a sentence, that the store is
        # away and it retries, and every failure a caller meets reaches it as an error.
        glide.Logger.set_logger_config(glide.LogLevel.OFF)
        try:
            client = await _connect(address, address_resolver)
            reader = await _connect(address, address_resolver)
            durable = await _connect(address, address_resolver) if address.replicas else client
            listener = reader if address.cluster else await _connect(address, address_resolver)
        except glide.GlideError as error:
            what = "Redis Cluster" if address.cluster else "Redis"
            raise StoreError(f"cannot reach {what} at {address.where}: {_reason(error)}") from None
        clients = (client, reader, durable, listener)
        return cls(address, clients, history, max(history, ids_kept))

    @property
    def description(self) -> str:
        where = f"{self.address.scheme}://{self.address.where}"
        if not self.address.cluster:
            where += f"/{self.address.database}"
        durability = (
            f"acknowledged once on {self.address.replicas} replica(s)"
            if self.address.replicas
            else "acknowledged once on the primary"
        )
        return f"{where} (streams of the newest ~{self.kept} messages per room; {durability})"

    # -- messages -------------------------------------------------------------------

    async def append(self, messages: Sequence[Message]) -> list[Appended]:
        results: list[Appended | None] = [None] * len(messages)
        groups: dict[int, dict[str, list[int]]] = {}
        for at, message in enumerate(messages):
            rooms = groups.setdefault(self.layout.slot_of(message.room), {})
            rooms.setdefault(message.room, []).append(at)

        async def one_slot(rooms: dict[str, list[int]]) -> None:
            await self._append_slot(rooms, messages, results)

        outcomes = await self._each([_later(one_slot, rooms) for rooms in groups.values()])
        failed = [outcome for outcome in outcomes if isinstance(outcome, StoreError)]
        if failed:
            if len(failed) == len(outcomes) and not any(
                isinstance(error, OutcomeUnknown) for error in failed
            ):
                raise failed[0]
            # Some slots stored theirs: "not stored" would be untrue for them.
            raise OutcomeUnknown(str(failed[0]))
        return [result for result in results if result is not None]

    async def _append_slot(
        self,
        rooms: dict[str, list[int]],
        messages: Sequence[Message],
        results: list[Appended | None],
    ) -> None:
        """Append the messages of the rooms of one slot; with replicas, stage them, WAIT,
        then move them into the logs."""
        names = list(rooms)
        keys_of = [self.layout.room(room) for room in names]
        keys = [key for room in keys_of for key in room.for_append()]
        staged = self.address.replicas > 0
        args = [
            str(self.kept),
            str(self.ids_kept),
            new_epoch(),
            "1" if staged else "0",
            "0" if staged else "1",
            self.reader_id,
            str(len(names)),
            *(self._news_of(room) for room in keys_of),
        ]
        order = [at for room in names for at in rooms[room]]
        for place, room in enumerate(names, 1):
            for at in rooms[room]:
                d = messages[at]
                args += [
                    str(place),
                    d.user,
                    d.text,
                    str(d.time_ms),
                    "1" if d.action else "0",
                    d.sender_key,
                    d.client_msg_id,
                    d.kind.value,
                    d.data,
                    json.dumps([e.as_list() for e in d.effects]) if d.effects else "",
                    str(d.reply_to),
                    str(d.target),
                    d.account,
                ]
        # A room whose log was started again by the fence is appended to once more.
        out = await self._run(self._scripts.append, keys, args, self._durable)
        if int(out[0]):
            out = await self._run(self._scripts.append, keys, args, self._durable)
            if int(out[0]):
                raise StoreUnavailable(self._sentence("a room's log keeps being started again"))
        behind = dict(zip(names, (int(flag) for flag in out[1 : 1 + len(names)]), strict=True))
        self._behind_hints.update(room for room, flag in behind.items() if flag == 2)
        answers = out[1 + len(names) :]
        upto: dict[str, int] = {}
        for at, seq, epoch, target in zip(
            order, answers[::3], answers[1::3], answers[2::3], strict=True
        ):
            number = abs(int(seq))
            room = messages[at].room
            revised = _message(room, *target) if target else None
            results[at] = Appended(
                number, duplicate=int(seq) < 0, epoch=epoch.decode(), target=revised
            )
            upto[room] = max(upto.get(room, 0), number)
        if staged:
            await self._replicated(keys_of[0].log)
            await self._commit(keys_of, upto, {room for room, flag in behind.items() if flag})

    async def _commit(
        self, rooms: Sequence[RoomKeys], upto: dict[str, int], behind: Collection[str] = ()
    ) -> None:
        """Move what is staged up to upto[room] into each room's log (rooms of one slot);
        the logs of rooms some server is behind in keep more (see APPEND)."""
        keys = [key for room in rooms for key in (room.staged, room.log)]
        args = []
        for room in rooms:
            kept = self.ids_kept if room.room in behind else self.kept
            args += [str(upto[room.room]), str(kept), self._news_of(room)]
        await self._run(self._scripts.commit, keys, args, self._durable)

    async def _replicated(self, key: str) -> None:
        """With replicas: OutcomeUnknown unless N replicas have everything written so
        far on the durable connection to key's node (WAIT)."""
        wanted = self.address.replicas
        if not wanted:
            return
        command = ["WAIT", str(wanted), str(WAIT_TIMEOUT_MS)]
        if self.address.cluster:
            route = glide.SlotKeyRoute(glide.SlotType.PRIMARY, key)
            count = await self._answer(lambda: self._durable.custom_command(command, route))
        else:
            count = await self._answer(lambda: self._durable.custom_command(command))
        if int(count) < wanted:
            raise OutcomeUnknown(
                self._sentence(
                    f"{count} of the {wanted} replica(s) asked for confirmed within "
                    f"{WAIT_TIMEOUT_MS} ms"
                )
            )

    async def head(self, room: str) -> Head:
        top, epoch, _ = (await self._heads([room]))[room]
        return Head(epoch, top)

    async def epochs(self, rooms: Sequence[str]) -> dict[str, str]:
        heads = await self._heads(rooms)
        if self.address.replicas:
            await self._recover_staged(heads)
        return {room: epoch for room, (_, epoch, _) in heads.items()}

    async def _heads(self, rooms: Sequence[str]) -> dict[str, tuple[int, str, int]]:
        """Per room: newest number, epoch, oldest staged number (0: none)."""
        found: dict[str, tuple[int, str, int]] = {}

        async def one_slot(names: list[str]) -> None:
            keys = [
                key
                for room in names
                for key in (self.layout.room(room).log, self.layout.room(room).epoch,
                            self.layout.room(room).staged)
            ]  # fmt: skip
            out = await self._run(self._scripts.heads, keys, [new_epoch()])
            for at, room in enumerate(names):
                top, epoch, oldest = out[3 * at : 3 * at + 3]
                found[room] = (int(top), epoch.decode(), int(oldest))

        outcomes = await self._each([_later(one_slot, names) for names in self._slots(rooms)])
        _raise_first(outcomes)
        return found

    async def _recover_staged(self, heads: dict[str, tuple[int, str, int]]) -> None:
        """Staged messages still staged a check later lost their WAIT or their move (the
        server died in between, or the move was lost in a failover): move them now,
        once N replicas have them, so a quiet room does not hide a message."""
        for room, (_, _, oldest) in heads.items():
            seen = self._staged_seen.pop(room, 0)
            if not oldest:
                continue
            if oldest != seen:
                self._staged_seen[room] = oldest
                continue
            keys = self.layout.room(room)
            newest = int(await self._run(self._scripts.staged, [keys.staged, keys.writer], [],
                                         self._durable))  # fmt: skip
            if newest:
                await self._replicated(keys.log)
                await self._commit([keys], {room: newest})

    async def read(self, room: str, *, after: int, upto: int) -> list[Message]:
        if upto <= after:
            return []
        return await self._read(room, [str(after), str(upto), "0"])

    async def _read(self, room: str, span: list[str]) -> list[Message]:
        """READ's entries of room (span: after, upto, newest), as they are now: messages
        with their latest text and revision, changes with their target's."""
        keys = self.layout.room(room)
        entries, targets, _ = await self._run(
            self._scripts.read, [keys.log, keys.bodies], [*span, "0"]
        )
        found = [_message(room, *entry) for entry in entries]
        held = {m.seq: m for m in [*found, *(_message(room, *t) for t in targets)]}
        return [as_read(m, held.get(m.target)) if m.kind in CHANGES else m for m in found]

    async def sent(self, room: str, sender_key: str, client_msg_id: str) -> int | None:
        """The number a send with this id was stored under (None: not stored, or its id
        forgotten: see IDS_KEPT)."""
        ids = self.layout.room(room).ids
        found = await self._call(self._client, ["HGET", ids, f"{sender_key}|{client_msg_id}"])
        return None if found is None else int(found)

    async def _filled(self, entries: list[LogEntry]) -> list[LogEntry]:
        """A tail's entries as they are now (see _read): messages with their text from
        `bodies`, changes with their target; one READ per room."""
        rooms: dict[str, list[Message]] = {}
        for entry in entries:
            if isinstance(entry, Message):
                rooms.setdefault(entry.room, []).append(entry)
        now: dict[tuple[str, int], Message] = {}

        async def one(room: str, read: list[Message]) -> None:
            keys = self.layout.room(room)
            asked = [m.seq for m in read if m.kind is EntryKind.MESSAGE]
            wanted = {m.target for m in read if m.kind in CHANGES} - set(asked)
            args = ["0", "0", "0", str(len(asked)), *map(str, asked), *map(str, sorted(wanted))]
            _, targets, bodies = await self._run(self._scripts.read, [keys.log, keys.bodies], args)
            held = {seq: _revised(m, body) for seq, m, body in
                    zip(asked, (m for m in read if m.kind is EntryKind.MESSAGE), bodies,
                        strict=True)}  # fmt: skip
            held.update((t.seq, t) for t in (_message(room, *target) for target in targets))
            for m in read:
                if m.kind is EntryKind.MESSAGE:
                    now[room, m.seq] = held[m.seq]
                elif m.kind in CHANGES:
                    now[room, m.seq] = as_read(m, held.get(m.target))

        _raise_first(await self._each([_later(one, room, read) for room, read in rooms.items()]))
        return [
            now.get((entry.room, entry.seq), entry) if isinstance(entry, Message) else entry
            for entry in entries
        ]

    # -- the feed -------------------------------------------------------------------

    async def tail(self, positions: dict[str, Position], block_ms: int) -> list[LogEntry]:
        if not positions:
            return []
        if not self.address.cluster:
            return await self._tail_one_redis(positions, block_ms)
        return await self._tail_cluster(positions, block_ms)

    async def _tail_one_redis(
        self, positions: dict[str, Position], block_ms: int
    ) -> list[LogEntry]:
        """One blocking XREAD over every room: one Redis has no slots to keep apart."""
        await self._follow(list(positions))
        streams, command = self._reads(list(positions), positions)
        command[1:1] = ["BLOCK", str(block_ms)]
        found = await self._call(self._reader, command)
        return await self._filled(_entries([found], streams, positions))

    async def _tail_cluster(self, positions: dict[str, Position], block_ms: int) -> list[LogEntry]:
        """Read the rooms with news (and, every POLL_SECONDS, all), one XREAD per slot."""
        rooms = list(positions)
        await self._follow(rooms)
        due = self._due(rooms)
        if not due:
            self._news = anyio.Event()
            due = self._due(rooms)  # news that came while the event was replaced
            if not due:
                with anyio.move_on_after(block_ms / 1000):
                    await self._news.wait()
                due = self._due(rooms)
        if not due:
            return []
        found: list[Any] = []
        streams: dict[str, tuple[str, bool]] = {}

        async def one_slot(names: list[str]) -> None:
            named, command = self._reads(names, positions)
            try:
                answer = await self._call(self._reader, command)
            except StoreError:
                self._woken.update(names)  # read again next time
                raise
            found.append(answer)
            streams.update(named)
            for key, logged in (answer or {}).items():
                room, is_log = named[key.decode()]
                if is_log and len(logged) >= self.tail_count:
                    self._woken.add(room)  # more is waiting: no news will say so

        outcomes = await self._each([_later(one_slot, names) for names in self._slots(due)])
        if all(isinstance(outcome, StoreError) for outcome in outcomes):
            _raise_first(outcomes)
        return await self._filled(_entries(found, streams, positions))

    def _reads(
        self, rooms: list[str], positions: dict[str, Position]
    ) -> tuple[dict[str, tuple[str, bool]], list[str]]:
        """An XREAD of rooms' logs and presence (which stream is whose), non-blocking."""
        streams: dict[str, tuple[str, bool]] = {}
        keys, ids = [], []
        for room in rooms:
            room_keys = self.layout.room(room)
            streams[room_keys.log] = (room, True)
            streams[room_keys.presence] = (room, False)
            keys += [room_keys.log, room_keys.presence]
            ids += [f"{positions[room].seq}-0", str(positions[room].presence)]
        return streams, ["XREAD", "COUNT", str(self.tail_count), "STREAMS", *keys, *ids]

    async def _follow(self, rooms: list[str]) -> None:
        """Listen to the typing (and on a cluster the news) of rooms, reading each once
        when it starts, and stop listening to rooms not asked about for UNFOLLOW_SECONDS."""
        now = anyio.current_time()
        new = [room for room in rooms if room not in self._following]
        self._following.update(dict.fromkeys(rooms, now))
        if new:
            typing = {self.layout.room(room).typing: room for room in new}
            self._typing_channels.update(typing)
            channels = dict(typing)
            if self.address.cluster:
                news = {self.layout.room(room).news: room for room in new}
                self._channels.update(news)
                channels.update(news)
                self._woken.update(new)
            # Confirmed (so the first read cannot miss news) or, past the timeout, left to
            # glide, which subscribes when it can; the poll covers the meantime.
            with contextlib.suppress(glide.GlideError):
                await self._subscribe(set(channels), subscribe=True)
        stale = [room for room, asked in self._following.items() if now - asked > UNFOLLOW_SECONDS]
        if stale:
            dropped: set[str] = set()
            for room in stale:
                keys = self.layout.room(room)
                del self._following[room]
                self._woken.discard(room)
                self._typing_heard.pop(room, None)
                self._typing_channels.pop(keys.typing, None)
                dropped.add(keys.typing)
                if self._channels.pop(keys.news, None) is not None:
                    dropped.add(keys.news)
            with contextlib.suppress(glide.GlideError):
                await self._subscribe(dropped, subscribe=False)

    async def _subscribe(self, channels: set[str], *, subscribe: bool) -> None:
        """(Un)subscribe the listener: sharded channels on a cluster, plain on one Redis."""
        if not channels:
            return
        listener = self._listener
        if self.address.cluster:
            if subscribe:
                await listener.ssubscribe(channels, SUBSCRIBE_TIMEOUT_MS)
            else:
                await listener.sunsubscribe(channels, SUBSCRIBE_TIMEOUT_MS)
        elif subscribe:
            await listener.subscribe(channels, SUBSCRIBE_TIMEOUT_MS)
        else:
            await listener.unsubscribe(channels, SUBSCRIBE_TIMEOUT_MS)

    def _due(self, rooms: list[str]) -> list[str]:
        """Rooms to read now: those with news, or all when the poll is due."""
        now = anyio.current_time()
        if now >= self._next_poll:
            self._next_poll = now + POLL_SECONDS
            self._woken.difference_update(rooms)
            return rooms
        due = [room for room in rooms if room in self._woken]
        self._woken.difference_update(due)
        return due

    async def listen(self) -> None:
        """Take the cluster's word that rooms have news (sharded pub/sub), for tail, and
        every store's word of who typed on other servers, for heard_typing.

        Runs beside the feed for as long as it does: a wait for a message is never
        cancelled midway, since glide would hand the next message to the cancelled wait.
        (On one Redis, tail blocks on the logs themselves: only typing comes this way.)
        """
        while True:
            try:
                message = await self._listener.get_pubsub_message()
            except glide.GlideError:
                await anyio.sleep(0.1)  # closing, or a reconnect
                continue
            channel = message.channel
            name = channel.decode() if isinstance(channel, bytes) else channel
            room = self._channels.get(name)
            if room is not None:
                self._woken.add(room)
                self._news.set()
                continue
            room = self._typing_channels.get(name)
            if room is not None:
                self._heard(room, message.message)

    # -- typing -----------------------------------------------------------------------

    async def publish_typing(self, typed: dict[str, Sequence[str]]) -> None:
        """PUBLISH (SPUBLISH on a cluster) to each room's typing channel: nothing kept."""

        async def one(room: str, users: Sequence[str]) -> None:
            body = json.dumps({"from": self.reader_id, "users": list(users[:TYPING_TOLD])})
            channel = self.layout.room(room).typing
            if self.address.cluster:
                await self._answer(lambda: self._client.publish(body, channel, sharded=True))
            else:
                await self._answer(lambda: self._client.publish(body, channel))

        jobs = [_later(one, room, users) for room, users in typed.items() if users]
        _raise_first(await self._each(jobs))

    def heard_typing(self) -> dict[str, tuple[str, ...]]:
        heard, self._typing_heard = self._typing_heard, {}
        return {room: tuple(users) for room, users in heard.items()}

    def _heard(self, room: str, body: bytes | str) -> None:
        """Keep who another server says typed in room (its own words are not news;
        anything malformed or oversized is dropped, at most TYPING_HEARD names a room)."""
        if len(body) > TYPING_MESSAGE_BYTES:
            return
        try:
            told = json.loads(body)
        except ValueError:
            return
        if not isinstance(told, dict) or told.get("from") == self.reader_id:
            return
        users = told.get("users")
        if not isinstance(users, list):
            return
        kept = self._typing_heard.setdefault(room, {})
        for user in users[:TYPING_TOLD]:
            if len(kept) >= TYPING_HEARD:
                break
            if isinstance(user, str) and user:
                kept[user] = None
        if not kept:
            del self._typing_heard[room]

    async def position(self, room: str) -> Position:
        keys = self.layout.room(room)
        seq, presence, epoch = await self._run(
            self._scripts.position, [keys.presence, keys.log, keys.epoch], [new_epoch()]
        )
        return Position(int(seq), PresenceId.parse(presence.decode()), epoch.decode())

    # -- keeping up with each other -------------------------------------------------

    async def report_behind(
        self, behind: Collection[str], caught_up: Collection[str], ttl_ms: int
    ) -> None:
        jobs = [
            _later(self._report, room, str(ttl_ms) if room in behind else "0")
            for room in [*behind, *caught_up]
        ]
        _raise_first(await self._each(jobs))

    async def _report(self, room: str, until: str) -> None:
        keys = [self.layout.room(room).behind]
        await self._run(self._scripts.report_behind, keys, [self.reader_id, until])

    async def behind_elsewhere(self, rooms: Collection[str]) -> set[str]:
        found: set[str] = set()

        async def one(room: str) -> None:
            keys = [self.layout.room(room).behind]
            if int(await self._run(self._scripts.behind_elsewhere, keys, [self.reader_id])):
                found.add(room)

        _raise_first(await self._each([_later(one, room) for room in rooms]))
        return found

    def behind_hints(self) -> set[str]:
        hints, self._behind_hints = self._behind_hints, set()
        return hints

    # -- presence -------------------------------------------------------------------

    async def join(
        self, room: str, candidates: Sequence[str], holder: str, session: str, time_ms: int
    ) -> Joined | None:
        server = _server_of(holder)
        keys_of = self.layout.room(room)
        keyed = [part for name in candidates for part in (name, name_key(name))]
        keys = [*keys_of.for_presence(server), keys_of.epoch]
        args = [holder, session, str(time_ms), new_epoch(), self._news_of(keys_of), *keyed]
        self._joining[room] += 1
        try:
            await self._enlist(server, [room])
            answer = await self._run(self._scripts.join, keys, args, self._durable)
            await self._replicated(keys_of.members)
        finally:
            self._joining[room] -= 1
            if not self._joining[room]:
                del self._joining[room]
        if answer is None:
            return None
        name, seq, before, members, epoch = answer
        position = Position(int(seq), PresenceId.parse(before.decode()), epoch.decode())
        return Joined(name.decode(), position, tuple(sorted(m.decode() for m in members)))

    async def leave(self, seats: Sequence[Seat], time_ms: int) -> None:
        groups: dict[tuple[str, str], list[Seat]] = {}
        for seat in seats:
            groups.setdefault((seat[0], _server_of(seat[2])), []).append(seat)

        async def one(room: str, server: str, group: list[Seat]) -> None:
            keys_of = self.layout.room(room)
            flat = [part for _, name, holder in group for part in (name, holder)]
            args = [str(time_ms), self._news_of(keys_of), *flat]
            await self._run(self._scripts.leave, keys_of.for_presence(server), args, self._durable)
            await self._replicated(keys_of.members)

        jobs = [_later(one, room, server, group) for (room, server), group in groups.items()]
        _raise_first(await self._each(jobs))

    async def restore(self, held: Sequence[tuple[Seat, str]], time_ms: int) -> list[Seat]:
        groups: dict[tuple[str, str], list[tuple[Seat, str]]] = {}
        for seat, session in held:
            groups.setdefault((seat[0], _server_of(seat[2])), []).append((seat, session))
        for server in {server for _, server in groups}:
            await self._enlist(server, [room for room, at in groups if at == server])
        lost: list[Seat] = []

        async def one(room: str, server: str, group: list[tuple[Seat, str]]) -> None:
            keys_of = self.layout.room(room)
            args = [str(time_ms), self._news_of(keys_of)]
            for (_, name, holder), session in group:
                args += [name, holder, session, name_key(name)]
            keys = keys_of.for_presence(server)
            parts = await self._run(self._scripts.restore, keys, args, self._durable)
            await self._replicated(keys_of.members)
            lost.extend((room, name.decode(), holder.decode()) for name, holder in
                        zip(parts[::2], parts[1::2], strict=True))  # fmt: skip

        jobs = [_later(one, room, server, group) for (room, server), group in groups.items()]
        _raise_first(await self._each(jobs))
        return lost

    async def heartbeat(self, server: str, ttl_ms: int, rooms: Collection[str]) -> Heartbeat:
        servers = self.layout.servers
        listed = self._listed.setdefault(server, set())
        async with self._listing:
            wanted = set(rooms) | set(self._joining)
            unlist = listed - wanted
            listed -= unlist  # a join from now on lists its room again, after this
            keys = [servers.alive, servers.sweep, servers.rooms(server)]
            args = [server, str(ttl_ms), str(len(wanted)), *sorted(wanted), *sorted(unlist)]
            try:
                beat = int(await self._run(self._scripts.heartbeat, keys, args))
            except StoreError:
                listed |= unlist
                raise
            if beat == 0:  # lapsed: a sweep may have forgotten what was listed
                listed.clear()
            if beat >= 0:
                listed |= wanted
        return {1: Heartbeat.KEPT, 0: Heartbeat.LAPSED}.get(beat, Heartbeat.SWEEPING)

    async def _enlist(self, server: str, rooms: Iterable[str]) -> None:
        """List rooms as places server may hold seats in, before it takes one there, so
        whoever sweeps the server after a crash finds them."""
        listed = self._listed.setdefault(server, set())
        missing = [room for room in rooms if room not in listed]
        if not missing:
            return
        async with self._listing:
            missing = [room for room in missing if room not in listed]
            if missing:
                key = self.layout.servers.rooms(server)
                await self._call(self._client, ["SADD", key, *missing])
                listed.update(missing)

    async def sweep(self, time_ms: int) -> int:
        servers = self.layout.servers
        claimed = await self._run(
            self._scripts.claim,
            [servers.alive, servers.sweep],
            [str(CLAIM_MS), str(SERVERS_PER_SWEEP)],
        )
        gone = 0
        for raw in claimed:
            server = raw.decode()
            rooms = await self._call(self._client, ["SMEMBERS", servers.rooms(server)])
            gone += await self._retire_rooms(server, [room.decode() for room in rooms], time_ms)
            await self._forget(server, retiring=False)
        return gone

    async def retire(self, server: str, time_ms: int) -> None:
        rooms = await self._call(self._client, ["SMEMBERS", self.layout.servers.rooms(server)])
        everywhere = {room.decode() for room in rooms} | self._listed.pop(server, set())
        await self._retire_rooms(server, sorted(everywhere), time_ms)
        await self._forget(server, retiring=True)

    async def _retire_rooms(self, server: str, rooms: list[str], time_ms: int) -> int:
        """Free every seat server holds in rooms; how many members that removed."""
        gone = 0

        async def one(room: str) -> None:
            nonlocal gone
            keys_of = self.layout.room(room)
            keys = keys_of.for_presence(server)
            args = [str(time_ms), self._news_of(keys_of), str(SEATS_PER_CALL)]
            while True:
                freed, looked = await self._run(
                    self._scripts.retire_room, keys, args, self._durable
                )
                gone += int(freed)
                if int(looked) < SEATS_PER_CALL:
                    break
            await self._replicated(keys_of.members)

        _raise_first(await self._each([_later(one, room) for room in rooms]))
        return gone

    async def _forget(self, server: str, *, retiring: bool) -> None:
        servers = self.layout.servers
        keys = [servers.alive, servers.sweep, servers.rooms(server)]
        await self._run(self._scripts.forget, keys, [server, "1" if retiring else "0"])

    async def members(self, room: str) -> tuple[str, ...]:
        names = await self._call(self._client, ["HKEYS", self.layout.room(room).members])
        return tuple(sorted(name.decode() for name in names))

    async def rooms(self) -> list[tuple[str, int, int]]:
        servers = self.layout.servers
        alive = await self._call(self._client, ["ZRANGE", servers.alive, "0", "-1"])
        names: set[str] = set()
        for start in range(0, len(alive), 100):
            keys = [servers.rooms(server.decode()) for server in alive[start : start + 100]]
            names.update(
                room.decode() for room in await self._call(self._client, ["SUNION", *keys])
            )
        found: list[tuple[str, int, int]] = []

        async def one(room: str) -> None:
            keys_of = self.layout.room(room)
            count, top = await self._run(
                self._scripts.room_info, [keys_of.members, keys_of.log], []
            )
            if int(count):
                found.append((room, int(count), int(top)))

        _raise_first(await self._each([_later(one, room) for room in names]))
        return sorted(found)

    async def search(
        self,
        words: Sequence[str],
        rooms: Sequence[str] | None,
        limit: int,
        before: SearchCursor | None = None,
    ) -> list[Message]:
        """A bounded scan of each room's kept log (its newest --history messages;
        SEARCH_SCANNED at most per room), latest texts: Redis keeps no index of words."""
        found: list[Message] = []
        for room in rooms or []:
            for message in await self._read(room, ["0", "0", str(SEARCH_SCANNED)]):
                older = before is None or SearchCursor(message.time_ms, room, message.seq) < before
                if message.kind is EntryKind.MESSAGE and older and holds_words(message.text, words):
                    found.append(message)
        found.sort(key=lambda m: SearchCursor(m.time_ms, m.room, m.seq), reverse=True)
        return found[:limit]

    # -- the directory's primitives (see store/directory.py) ---------------------------

    async def kv_get(self, space: str, key: str) -> str | None:
        found = await self._call(self._client, ["HGET", self.layout.space(space), key])
        return None if found is None else str(found.decode())

    async def kv_put(self, space: str, key: str, value: str, *, only_new: bool = False) -> bool:
        verb = "HSETNX" if only_new else "HSET"
        done = await self._call(self._client, [verb, self.layout.space(space), key, value])
        return bool(done) or not only_new

    async def kv_delete(self, space: str, key: str) -> bool:
        return bool(await self._call(self._client, ["HDEL", self.layout.space(space), key]))

    async def kv_items(self, space: str) -> list[tuple[str, str]]:
        found = await self._call(self._client, ["HGETALL", self.layout.space(space)])
        return sorted((k.decode(), v.decode()) for k, v in (found or {}).items())

    async def kv_present(self, space: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        found = await self._call(self._client, ["HMGET", self.layout.space(space), *keys])
        return {key for key, value in zip(keys, found, strict=True) if value is not None}

    async def record(self, stream: str, value: str) -> int:
        log, count = self.layout.records(stream)
        return int(await self._run(self._scripts.record, [log, count], [value]))

    async def records(self, stream: str, *, after: int = 0, last: int = 0) -> list[tuple[int, str]]:
        log, _ = self.layout.records(stream)
        if last:
            found = await self._call(self._client, ["XREVRANGE", log, "+", "-", "COUNT", str(last)])
            entries = list(reversed(list((found or {}).items())))
        else:
            found = await self._call(self._client, ["XRANGE", log, f"{after + 1}-0", "+"])
            entries = list((found or {}).items())
        return [
            (int(entry_id.decode().split("-")[0]), _fields(fields)["value"])
            for entry_id, fields in entries
        ]

    async def apply_effects(self, room: str, effects: Sequence[Effect]) -> None:
        if effects:
            value = json.dumps([e.as_list() for e in effects])
            await self._run(self._scripts.effects, [self.layout.room(room).state], [value])

    async def aclose(self) -> None:
        clients = (self._client, self._reader, self._durable, self._listener)
        for client in {id(c): c for c in clients}.values():
            with contextlib.suppress(glide.GlideError):
                await client.close()

    # -- calls ----------------------------------------------------------------------

    def _news_of(self, room: RoomKeys) -> str:
        """The room's news channel on a cluster; "" on one Redis (tail blocks instead)."""
        return room.news if self.address.cluster else ""

    def _slots(self, rooms: Iterable[str]) -> list[list[str]]:
        """rooms grouped by slot (all in one group on one Redis)."""
        groups: dict[int, list[str]] = {}
        for room in rooms:
            groups.setdefault(self.layout.slot_of(room), []).append(room)
        return list(groups.values())

    async def _each(self, jobs: Sequence[Callable[[], Awaitable[None]]]) -> list[StoreError | None]:
        """Run jobs (one per slot, or per room) concurrently; each one's StoreError, or
        None where it succeeded."""
        outcomes: list[StoreError | None] = [None] * len(jobs)
        limiter = anyio.CapacityLimiter(CALLS_AT_ONCE)

        async def run(at: int, job: Callable[[], Awaitable[None]]) -> None:
            async with limiter:
                try:
                    await job()
                except StoreError as error:
                    outcomes[at] = error

        if len(jobs) == 1:
            await run(0, jobs[0])
            return outcomes
        async with anyio.create_task_group() as tasks:
            for at, job in enumerate(jobs):
                tasks.start_soon(run, at, job)
        return outcomes

    async def _call(self, client: Any, command: list[str]) -> Any:
        """Run command (see _answer)."""
        return await self._answer(lambda: client.custom_command(command))

    async def _run(
        self, script: Any, keys: list[str], args: list[str], client: Any | None = None
    ) -> Any:
        """Run one of the Scripts by its SHA, with the keys it touches (see _answer)."""
        chosen = client or self._client
        return await self._answer(lambda: chosen.invoke_script(script, keys=keys, args=args))

    async def _answer(self, request: Callable[[], Awaitable[T]]) -> T:
        """Redis's answer to request; OutcomeUnknown when Redis may have run it without
        our hearing the answer (a timeout, a connection lost mid-request),
        StoreUnavailable when it surely did not (it answered with an error, or could
        not be asked). A request Redis says it did not run because its slot is moving
        or its node changed (TRYAGAIN, MOVED, ASK, CLUSTERDOWN), or that found no
        connection to send on, is sent again until the request timeout."""
        deadline = anyio.current_time() + REQUEST_TIMEOUT_MS / 1000
        pause = 0.01
        while True:
            try:
                return await request()
            except glide.GlideError as error:
                not_run = _not_run(error)
                if not_run and anyio.current_time() + pause < deadline:
                    await anyio.sleep(pause)
                    pause = min(2 * pause, 0.2)
                    continue
                if not not_run and isinstance(error, (glide.TimeoutError, glide.ConnectionError)):
                    raise OutcomeUnknown(self._sentence(_reason(error))) from None
                raise StoreUnavailable(self._sentence(_reason(error))) from None

    def _sentence(self, reason: str) -> str:
        what = "Redis Cluster" if self.address.cluster else "Redis"
        return f"{what} at {self.address.where}: {reason}"


async def _connect(
    address: RedisAddress, resolver: Callable[[str, int], tuple[str, int]] | None
) -> Any:
    """One glide client: a cluster client for a cluster, else a standalone one."""
    credentials = (
        glide.ServerCredentials(password=address.password, username=address.username)
        if address.password
        else None
    )
    nodes = [glide.NodeAddress(host, port) for host, port in address.nodes]
    # Reconnects every 100 ms doubling to 1.6 s, with jitter: a server that lost its
    # store notices it is back within a couple of seconds.
    reconnect = glide.BackoffStrategy(num_of_retries=4, factor=100, exponent_base=2,
                                      jitter_percent=20)  # fmt: skip
    if address.cluster:
        return await glide.GlideClusterClient.create(
            glide.GlideClusterClientConfiguration(
                nodes,
                use_tls=address.tls,
                credentials=credentials,
                request_timeout=REQUEST_TIMEOUT_MS,
                reconnect_strategy=reconnect,
                advanced_config=glide.AdvancedGlideClusterClientConfiguration(
                    tls_config=address.tls_config()
                ),
                address_resolver=resolver,
            )
        )
    return await glide.GlideClient.create(
        glide.GlideClientConfiguration(
            nodes,
            use_tls=address.tls,
            credentials=credentials,
            database_id=address.database,
            request_timeout=REQUEST_TIMEOUT_MS,
            reconnect_strategy=reconnect,
            advanced_config=glide.AdvancedGlideClientConfiguration(tls_config=address.tls_config()),
            address_resolver=resolver,
        )
    )


def _later(function: Callable[..., Awaitable[None]], *args: Any) -> Callable[[], Awaitable[None]]:
    """function(*args), called later."""
    return lambda: function(*args)


def _raise_first(outcomes: Sequence[StoreError | None]) -> None:
    for outcome in outcomes:
        if outcome is not None:
            raise outcome


def _server_of(holder: str) -> str:
    """The server a holder id ("server/number") belongs to."""
    return holder.rpartition("/")[0]


# What glide says when Redis did not run a command (its slot moved or is moving, the
# cluster is failing over) or glide had no connection to send it on: safe to resend.
_NOT_RUN = (
    "TryAgain",
    "TRYAGAIN",
    "Moved:",
    "MOVED ",
    "Ask:",
    "ASK ",
    "ClusterDown",
    "CLUSTERDOWN",
    "ConnectionNotFoundForRoute",
    "Requested connection not found",
)


def _not_run(error: Exception) -> bool:
    text = str(error)
    return any(mark in text for mark in _NOT_RUN)


def _reason(error: Exception) -> str:
    """glide's message, on one line, without the address purechat names itself."""
    text = " ".join(str(error).split())
    return re.sub(r"^Received error for address `[^`]*`: ", "", text) or type(error).__name__


def _entries(
    found: Iterable[Any], streams: dict[str, tuple[str, bool]], positions: dict[str, Position]
) -> list[LogEntry]:
    """LogEntries from XREAD answers, in the order they happened; a room whose log is
    not its position's (another epoch) gives an EpochChange instead of its entries."""
    entries: list[LogEntry] = []
    changed: dict[str, str] = {}
    for answer in found:
        for raw_key, logged in (answer or {}).items():
            room, is_log = streams[raw_key.decode()]
            for entry_id, fields in logged.items():
                if not is_log:
                    entries.append(_presence(room, entry_id, fields))
                    continue
                epoch = _fields(fields).get("epoch", "")
                if epoch and positions[room].epoch and epoch != positions[room].epoch:
                    changed[room] = epoch
                entries.append(_message(room, entry_id, fields))
    # A room whose log changed under the position is read again from its start.
    kept: list[LogEntry] = [e for e in entries if e.room not in changed]
    kept += [EpochChange(room, epoch) for room, epoch in changed.items()]
    return sorted(kept, key=_happened)


def _happened(entry: LogEntry) -> tuple[str, int, int, int]:
    """Sort key: a room's message n, then the joins and leaves logged after it."""
    if isinstance(entry, Message):
        return (entry.room, entry.seq, 0, 0)
    if isinstance(entry, EpochChange):
        return (entry.room, -1, 0, 0)
    return (entry.room, entry.id.seq, 1, entry.id.order)


def _fields(fields: list[list[bytes]]) -> dict[str, str]:
    return {key.decode(): value.decode() for key, value in fields}


def _presence(room: str, entry_id: bytes, fields: list[list[bytes]]) -> PresenceChange:
    values = _fields(fields)
    kind = EventKind.JOIN if values["kind"] == "join" else EventKind.LEAVE
    return PresenceChange(
        room, PresenceId.parse(entry_id.decode()), kind, values["user"], int(values["time"])
    )


def _message(room: str, entry_id: bytes, fields: Any, body: bytes = b"") -> Message:
    """A log entry as a Message: fields as XRANGE answers them (pairs) or as a script
    does (flat), with the message's body (text and revision) from `bodies`."""
    if fields and not isinstance(fields[0], list):
        fields = list(zip(fields[::2], fields[1::2], strict=True))
    values = _fields(fields)
    effects = values.get("effects")
    return _revised(
        Message(
            room,
            int(entry_id.decode().split("-")[0]),
            values["user"],
            values.get("text", ""),  # moderation entries, and messages from before bodies
            int(values["time"]),
            values["action"] == "1",
            kind=EntryKind(values.get("kind", "message")),
            data=values.get("data", ""),
            effects=tuple(Effect.from_list(e) for e in json.loads(effects)) if effects else (),
            reply_to=int(values.get("reply_to", 0)),
            target=int(values.get("target", 0)),
            account=values.get("account", ""),
        ),
        body,
    )


def _revised(message: Message, body: bytes) -> Message:
    """message with its body from `bodies` (none: as it is), as APPEND's revise left it.

    A message without a body was written before bodies were kept: its text is in its
    stream entry, where a delete could not remove it, so it is marked never to change."""
    if not body:
        if message.kind is EntryKind.MESSAGE and message.text:
            return replace(message, revision=Revision(fixed=True))
        return message
    kept = json.loads(body)
    reactions = kept.get("reactions")
    revision = Revision(
        edited_ms=int(kept.get("edited_ms", 0)),
        deleted=bool(kept.get("deleted", False)),
        deleted_by=str(kept.get("deleted_by", "")),
        # Lua's cjson writes an empty array as {}.
        reactions=tuple(
            Reaction(str(r[0]), tuple(str(u) for u in r[1]) if isinstance(r[1], list) else ())
            for r in (reactions if isinstance(reactions, list) else ())
        ),
    )
    return replace(
        message,
        text=str(kept.get("text", "")),
        revision=None if revision == Revision() else revision,
    )
