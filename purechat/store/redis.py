"""redis:// and rediss://: every room's log as a Redis (or Valkey) Stream, shared by servers.

Several purechat servers pointed at one Redis are one chat. A message is numbered and
appended atomically by a Lua script (INCR the room's counter, XADD with that number as
the entry id, remember the client's message id), so numbers are per room, monotonic
and the same for every server; every server then delivers each room from the stream
(`tail`), so all members everywhere see the stream's one order. Names, member lists,
joins and leaves are kept beside each log (see PRESENCE), with a heartbeat per server.

Uses valkey-glide (its async client runs under trio and asyncio). Blocking reads use a
client of their own, since a blocking command holds its connection. Scripts go by
their SHA (glide's Script: EVALSHA, and SCRIPT LOAD when Redis has forgotten them),
with the keys they touch as KEYS where the caller knows them (see "Every script").
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import glide

from purechat.core import EntryKind, EventKind, Message
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
    state_space,
)
from purechat.store.shared import (
    EpochChange,
    Joined,
    LogEntry,
    Position,
    PresenceChange,
    PresenceId,
    Seat,
)

KEY_PREFIX = "purechat:room:"
REQUEST_TIMEOUT_MS = 2000
# Retried sends are recognised among at least this many of a room's newest messages.
IDS_KEPT = 10_000
# Messages a search reads of each room, newest first (Redis keeps no index of words).
SEARCH_SCANNED = 5000
# Presence entries kept per room: enough for a server whose feed lags a little.
PRESENCE_KEPT = 1000

# Every script is sent by its SHA (EVALSHA; glide loads it again when Redis answers
# NOSCRIPT, as after a restart) and is given the keys it touches as KEYS, in the order
# the Python side lists them (`_room_keys` for a room's presence keys). A few key names
# are still built in Lua, each said where: what only the script can know (a room's
# retry-id buckets, the seats set of a member's earlier server) and what a script finds
# by walking Redis (SWEEP and RETIRE walk servers' seats, ROOMS walks the rooms). Redis
# Cluster (#28) will lay those out with hash tags; a single Redis needs nothing more.

ROOMS_KEY = "purechat:rooms"
SERVERS_KEY = "purechat:servers"
# A room's presence keys, in the order scripts take them (`room_at` in PRESENCE).
ROOM_KEYS = ("members", "sessions", "keys", "key_of", "presence", "seq")

# A room's epoch: created with its log (from a fresh candidate the caller passes), and
# gone with it when Redis loses the data (FLUSHALL, a restart without persistence).
EPOCH = """
local function epoch_of(epoch_key, candidate)
  local epoch = redis.call('GET', epoch_key)
  if not epoch then
    epoch = candidate
    redis.call('SET', epoch_key, epoch)
  end
  return epoch
end
"""

# KEYS: per room of the batch its seq, log, epoch and state. ARGV: history, ids bucket
# size, count, candidate epoch, then per draft: its room's place among the rooms (from
# 1), user, text, time_ms, action, sender, id, kind, data, effects (JSON, "" for none:
# a moderation entry's changes to its room's state, applied here with its numbering).
# Returns per draft its seq (negative for a repeat) and the epoch of its room's log.
# Client ids live in hashes of `size` numbers each; the newest two are consulted and
# older ones deleted, so a retry is recognised among the last `size` messages at least.
# Which buckets is known only here, from the counter: their names are built from
# the room's seq key (`<room>:ids:<bucket>`).
APPEND = (
    EPOCH
    + """
local history, size, candidate = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[4]
local out = {}
local i = 5
for _ = 1, tonumber(ARGV[3]) do
  local at = 4 * tonumber(ARGV[i]) - 3
  local user, text, time, action, sender, id =
    ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local kind, data, effects = ARGV[i + 7], ARGV[i + 8], ARGV[i + 9]
  i = i + 10
  local seq_key, log_key = KEYS[at], KEYS[at + 1]
  local ids = string.sub(seq_key, 1, -4) .. 'ids:'
  local epoch = epoch_of(KEYS[at + 2], candidate)
  local bucket = math.floor(tonumber(redis.call('GET', seq_key) or '0') / size)
  local retry = sender .. '|' .. id
  local seq = false
  if id ~= '' then
    seq = redis.call('HGET', ids .. bucket, retry)
      or redis.call('HGET', ids .. (bucket - 1), retry)
  end
  if seq then
    table.insert(out, -tonumber(seq))
  else
    seq = redis.call('INCR', seq_key)
    if kind == 'message' then
      redis.call('XADD', log_key, 'MAXLEN', '~', history, seq .. '-0',
        'user', user, 'text', text, 'time', time, 'action', action, 'epoch', epoch)
    else
      redis.call('XADD', log_key, 'MAXLEN', '~', history, seq .. '-0',
        'user', user, 'text', text, 'time', time, 'action', action, 'epoch', epoch,
        'kind', kind, 'data', data, 'effects', effects)
    end
    if effects ~= '' then
      for _, e in ipairs(cjson.decode(effects)) do
        if e[1] == 'set' then
          redis.call('HSET', KEYS[at + 3], e[2] .. '|' .. e[3], e[4])
        else
          redis.call('HDEL', KEYS[at + 3], e[2] .. '|' .. e[3])
        end
      end
    end
    local now = math.floor(seq / size)
    if now ~= bucket then redis.call('DEL', ids .. (now - 2)) end
    if id ~= '' then redis.call('HSET', ids .. now, retry, seq) end
    table.insert(out, seq)
  end
  table.insert(out, epoch)
end
return out
"""
)

# KEYS: per room its seq and epoch. ARGV: candidate epoch. Returns each room's newest
# number and epoch.
HEADS = (
    EPOCH
    + """
local out = {}
for at = 1, #KEYS, 2 do
  table.insert(out, redis.call('GET', KEYS[at]) or '0')
  table.insert(out, epoch_of(KEYS[at + 1], ARGV[1] .. '-' .. at))
end
return out
"""
)

# Presence: per room a hash name -> holder (server id "/" number), a hash name ->
# session, hashes name_key -> name and name -> name_key (names are unique by key: see
# purechat.core.names), and a stream of joins and leaves whose ids are
# `<newest message number>-*`, so they merge with the messages in the order they
# happened. Per server a set of its seats (JSON [room, name, holder]) and a key that
# lives while its heartbeats do; `purechat:servers` lists servers with seats,
# `purechat:rooms` rooms with members. `room_at(n)` takes a room's keys from KEYS[n]
# on (ROOM_KEYS' order); `room_named` and `seats_of` build them, for rooms and servers
# a script finds in Redis (a server's seats) rather than is given.
PRESENCE = f"""
local function room_at(at)
  return {{members = KEYS[at], sessions = KEYS[at + 1], keys = KEYS[at + 2],
    key_of = KEYS[at + 3], presence = KEYS[at + 4], seq = KEYS[at + 5]}}
end
local function room_named(room)
  local key = 'purechat:room:' .. room
  return {{members = key .. ':members', sessions = key .. ':sessions', keys = key .. ':keys',
    key_of = key .. ':key_of', presence = key .. ':presence', seq = key .. ':seq'}}
end
local function server_of(holder) return string.match(holder, '^(.*)/') end
local function seats_of(server) return 'purechat:server:' .. server .. ':seats' end
local function log(r, kind, name, time)
  return redis.call('XADD', r.presence, 'MAXLEN', '~', {PRESENCE_KEPT},
    (redis.call('GET', r.seq) or '0') .. '-*', 'kind', kind, 'user', name, 'time', time)
end
local function named(r, nkey, name)
  local holding = redis.call('HGET', r.keys, nkey)
  if holding and redis.call('HEXISTS', r.members, holding) == 1 then return holding end
  if redis.call('HEXISTS', r.members, name) == 1 then return name end
  return false
end
-- g: the rooms and servers lists; seats: the holder's server's seats.
local function hold(g, r, room, name, holder, session, nkey, seats)
  redis.call('HSET', r.members, name, holder)
  redis.call('HSET', r.keys, nkey, name)
  redis.call('HSET', r.key_of, name, nkey)
  if session ~= '' then redis.call('HSET', r.sessions, name, session) end
  redis.call('SADD', g.rooms, room)
  redis.call('SADD', seats, cjson.encode({{room, name, holder}}))
  redis.call('SADD', g.servers, server_of(holder))
end
local function leave(g, r, room, name, holder, time, seats)
  redis.call('SREM', seats, cjson.encode({{room, name, holder}}))
  if redis.call('HGET', r.members, name) ~= holder then return 0 end
  redis.call('HDEL', r.members, name)
  redis.call('HDEL', r.sessions, name)
  local nkey = redis.call('HGET', r.key_of, name)
  if nkey then
    redis.call('HDEL', r.key_of, name)
    if redis.call('HGET', r.keys, nkey) == name then
      redis.call('HDEL', r.keys, nkey)
    end
  end
  if redis.call('HLEN', r.members) == 0 then redis.call('SREM', g.rooms, room) end
  log(r, 'leave', name, time)
  return 1
end
-- The rooms of a server's seats are found in its seats set: their keys are built here.
local function retire(g, server, seats, alive, time)
  local gone = 0
  for _, seat in ipairs(redis.call('SMEMBERS', seats)) do
    local held = cjson.decode(seat)
    gone = gone + leave(g, room_named(held[1]), held[1], held[2], held[3], time, seats)
  end
  redis.call('DEL', seats, alive)
  redis.call('SREM', g.servers, server)
  return gone
end
"""

# KEYS: the room's keys (ROOM_KEYS), its epoch, the joining holder's server's seats,
# the rooms list, the servers list. ARGV: room, holder, session, time, candidate
# epoch, candidate names each with its name_key. Returns nil when all are taken (a
# name is taken when a name with its key is), else {name, newest message number,
# presence id before the join, members, epoch}. The seats set of a server that held
# the name before (another stream of the same client) is named here: found only now.
JOIN = (
    PRESENCE
    + EPOCH
    + """
local r, g = room_at(1), {rooms = KEYS[9], servers = KEYS[10]}
local room, holder, session, time, candidate = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV, 2 do
  local nkey = ARGV[i + 1]
  local name = named(r, nkey, ARGV[i]) or ARGV[i]
  local earlier = redis.call('HGET', r.members, name)
  if not earlier
    or (session ~= '' and redis.call('HGET', r.sessions, name) == session) then
    local newest = redis.call('XREVRANGE', r.presence, '+', '-', 'COUNT', 1)
    local before = '0-0'
    if #newest > 0 then before = newest[1][1] end
    if earlier then
      -- The same client, back: the name moves to its new stream, unannounced.
      redis.call('SREM', seats_of(server_of(earlier)), cjson.encode({room, name, earlier}))
    end
    hold(g, r, room, name, holder, session, nkey, KEYS[8])
    if not earlier then log(r, 'join', name, time) end
    return {name, redis.call('GET', r.seq) or '0', before,
      redis.call('HKEYS', r.members), epoch_of(KEYS[7], candidate)}
  end
end
return false
"""
)

# KEYS: the room's presence, seq and epoch. ARGV: candidate epoch. Returns {newest
# message number, newest presence id, epoch}.
POSITION = (
    EPOCH
    + """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = '0-0'
if #newest > 0 then last = newest[1][1] end
return {redis.call('GET', KEYS[2]) or '0', last, epoch_of(KEYS[3], ARGV[1])}
"""
)

# KEYS: the rooms list, the servers list, then per seat its room's keys (ROOM_KEYS)
# and its holder's server's seats. ARGV: time, then room, name and holder per seat. An
# empty name stands for whatever name the holder holds in the room (a join whose
# answer was lost).
LEAVE = (
    PRESENCE
    + """
local g = {rooms = KEYS[1], servers = KEYS[2]}
local at = 3
for i = 2, #ARGV, 3 do
  local r, seats = room_at(at), KEYS[at + 6]
  at = at + 7
  local room, name, holder = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if name == '' then
    local held = redis.call('HGETALL', r.members)
    for j = 1, #held, 2 do if held[j + 1] == holder then name = held[j] end end
  end
  if name ~= '' then leave(g, r, room, name, holder, ARGV[1], seats) end
end
return 0
"""
)

# KEYS: the server's heartbeat key, the servers list. ARGV: server, ttl in ms. Returns
# 1 when the server's key was still there.
HEARTBEAT = """
local alive = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return alive
"""

# KEYS: as LEAVE's. ARGV: time, then room, name, holder, session and name_key per seat.
# Returns the seats others took meanwhile (the name or a look-alike of it), flattened.
RESTORE = (
    PRESENCE
    + """
local g = {rooms = KEYS[1], servers = KEYS[2]}
local lost = {}
local at = 3
for i = 2, #ARGV, 5 do
  local r, seats = room_at(at), KEYS[at + 6]
  at = at + 7
  local room, name, holder = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local session, nkey = ARGV[i + 3], ARGV[i + 4]
  local owner = redis.call('HGET', r.members, name)
  local other = named(r, nkey, name)
  if other and other ~= name then
    for _, part in ipairs({room, name, holder}) do table.insert(lost, part) end
  elseif not owner then
    hold(g, r, room, name, holder, session, nkey, seats)
    log(r, 'join', name, ARGV[1])
  elseif owner == holder then
    hold(g, r, room, name, holder, session, nkey, seats)
  else
    for _, part in ipairs({room, name, holder}) do table.insert(lost, part) end
  end
end
return lost
"""
)

# ARGV: time. Retires every server whose heartbeat expired; returns members removed.
# It walks the servers list, so every key it touches is named here (no KEYS).
SWEEP = (
    PRESENCE
    + """
local g = {rooms = 'purechat:rooms', servers = 'purechat:servers'}
local gone = 0
for _, server in ipairs(redis.call('SMEMBERS', g.servers)) do
  local alive = 'purechat:server:' .. server
  if redis.call('EXISTS', alive) == 0 then
    gone = gone + retire(g, server, seats_of(server), alive, ARGV[1])
  end
end
return gone
"""
)

# KEYS: the rooms list, the servers list, the server's seats, its heartbeat key.
# ARGV: server, time.
RETIRE = (
    PRESENCE
    + """
return retire({rooms = KEYS[1], servers = KEYS[2]}, ARGV[1], KEYS[3], KEYS[4], ARGV[2])
"""
)

# KEYS: the rooms list. Returns room, member count, newest number for every room with
# members (each room's keys named here: the rooms are found in the list).
ROOMS = """
local out = {}
for _, room in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = 'purechat:room:' .. room
  table.insert(out, {room, redis.call('HLEN', key .. ':members'),
    redis.call('GET', key .. ':seq') or '0'})
end
return out
"""


@dataclass(frozen=True)
class RedisAddress:
    """redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS, where
    ?ssl_ca_certs=FILE (as redis-py spells it) names the CA to trust instead of the
    system's."""

    host: str
    port: int
    tls: bool
    password: str | None
    database: int
    username: str | None = None
    ca_file: Path | None = None

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """The parts of a Redis URL; StoreError with a sentence when it is malformed."""
        try:
            parts = urlsplit(url)
        except ValueError:  # urllib's only complaint here is an unclosed [IPv6 bracket
            raise StoreError(
                f"{_hide_password(url)!r} is not a Redis URL: an IPv6 address goes in "
                "brackets, as in redis://[::1]:6379/0"
            ) from None
        url = _hide_password(url)  # errors name the URL, but never its password
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise StoreError(f"{url!r} is not redis://HOST:PORT[/DB] or rediss://...")
        try:
            port = parts.port
        except ValueError:  # not a number, or above 65535
            port = -1
        if port is not None and not 0 < port <= 65535:
            raise StoreError(f"{url!r}: the port must be a number from 1 to 65535")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise StoreError(f"{url!r}: the database must be a number")
        query = parse_qs(parts.query)
        if set(query) - {"ssl_ca_certs"}:
            raise StoreError(f"{url!r}: the only option a Redis URL takes is ssl_ca_certs")
        tls = parts.scheme == "rediss"
        if "ssl_ca_certs" in query and not tls:
            raise StoreError(f"{url!r}: ssl_ca_certs needs rediss://")
        return cls(
            parts.hostname,
            port or 6379,
            tls,
            unquote(parts.password) if parts.password else None,
            int(path or 0),
            unquote(parts.username) if parts.username else None,
            Path(query["ssl_ca_certs"][-1]) if "ssl_ca_certs" in query else None,
        )

    def tls_config(self) -> Any:
        """glide's advanced TLS settings: the CA file's certificates, when one is named."""
        if self.ca_file is None:
            return None
        try:
            certificates = self.ca_file.read_bytes()
        except OSError as error:
            raise StoreError(f"cannot read {self.ca_file}: {error.strerror}") from None
        return glide.TlsAdvancedConfiguration(root_pem_cacerts=certificates)


# The directory's records (store/directory.py). KEYS: the stream's counter and the
# stream. ARGV: the record. Returns its number.
RECORD = """
local number = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], number .. '-0', 'value', ARGV[1])
return number
"""

# A room's state changed outside a log entry. KEYS: the room's state. ARGV: effects
# (JSON, as APPEND's).
EFFECTS = """
for _, e in ipairs(cjson.decode(ARGV[1])) do
  if e[1] == 'set' then
    redis.call('HSET', KEYS[1], e[2] .. '|' .. e[3], e[4])
  else
    redis.call('HDEL', KEYS[1], e[2] .. '|' .. e[3])
  end
end
return 0
"""


def _script(code: str) -> Any:
    return glide.Script(code)  # type: ignore[no-untyped-call]  # glide's is untyped


class Scripts:
    """The Lua scripts, kept while the store is open: glide sends each by its SHA
    (EVALSHA), loading it (SCRIPT LOAD) when Redis does not know it, as after a
    restart; each script's text is sent once, not with every call."""

    def __init__(self) -> None:
        self.append = _script(APPEND)
        self.heads = _script(HEADS)
        self.join = _script(JOIN)
        self.position = _script(POSITION)
        self.leave = _script(LEAVE)
        self.heartbeat = _script(HEARTBEAT)
        self.restore = _script(RESTORE)
        self.sweep = _script(SWEEP)
        self.retire = _script(RETIRE)
        self.rooms = _script(ROOMS)
        self.record = _script(RECORD)
        self.effects = _script(EFFECTS)


class RedisStore:
    def __init__(
        self, address: RedisAddress, client: Any, reader: Any, history: int, ids_kept: int
    ):
        self.address = address
        self._client = client
        self._reader = reader  # for blocking reads only
        self.history = history
        self.ids_kept = ids_kept
        self._scripts = Scripts()

    @classmethod
    async def open(cls, url: str, history: int, ids_kept: int = IDS_KEPT) -> RedisStore:
        address = RedisAddress.parse(url)
        # glide's core logs reconnect attempts as coloured warnings on stderr; purechat's
        # own log already says, once, in a sentence, that Redis is gone and it retries.
        glide.Logger.set_logger_config(glide.LogLevel.ERROR)
        config = glide.GlideClientConfiguration(
            [glide.NodeAddress(address.host, address.port)],
            use_tls=address.tls,
            credentials=glide.ServerCredentials(
                password=address.password, username=address.username
            )
            if address.password
            else None,
            database_id=address.database,
            request_timeout=REQUEST_TIMEOUT_MS,
            advanced_config=glide.AdvancedGlideClientConfiguration(tls_config=address.tls_config()),
        )
        try:
            client = await glide.GlideClient.create(config)
            reader = await glide.GlideClient.create(config)
        except glide.GlideError as error:
            raise StoreError(
                f"cannot reach Redis at {address.host}:{address.port}: {_reason(error)}"
            ) from None
        return cls(address, client, reader, history, max(history, ids_kept))

    @property
    def description(self) -> str:
        scheme = "rediss" if self.address.tls else "redis"
        where = f"{scheme}://{self.address.host}:{self.address.port}/{self.address.database}"
        return f"{where} (streams of the newest ~{self.history} messages per room)"

    async def append(self, messages: Sequence[Message]) -> list[Appended]:
        rooms = {
            room: place for place, room in enumerate(dict.fromkeys(d.room for d in messages), 1)
        }
        parts = ("seq", "log", "epoch", "state")
        keys = [f"{KEY_PREFIX}{room}:{part}" for room in rooms for part in parts]
        args = [str(self.history), str(self.ids_kept), str(len(messages)), new_epoch()]
        for d in messages:
            args += [
                str(rooms[d.room]),
                d.user,
                d.text,
                str(d.time_ms),
                "1" if d.action else "0",
                d.sender_key,
                d.client_msg_id,
                d.kind.value,
                d.data,
                json.dumps([e.as_list() for e in d.effects]) if d.effects else "",
            ]
        out = await self._run(self._scripts.append, keys, args)
        return [
            Appended(abs(int(n)), duplicate=int(n) < 0, epoch=epoch.decode())
            for n, epoch in zip(out[::2], out[1::2], strict=True)
        ]

    async def head(self, room: str) -> Head:
        seq, epoch = await self._run(self._scripts.heads, _heads_keys([room]), [new_epoch()])
        return Head(epoch.decode(), int(seq))

    async def epochs(self, rooms: Sequence[str]) -> dict[str, str]:
        if not rooms:
            return {}
        out = await self._run(self._scripts.heads, _heads_keys(rooms), [new_epoch()])
        return {room: epoch.decode() for room, epoch in zip(rooms, out[1::2], strict=True)}

    async def read(self, room: str, *, after: int, upto: int) -> list[Message]:
        if upto <= after:
            return []
        entries = await self._call(
            self._client, ["XRANGE", f"{KEY_PREFIX}{room}:log", f"{after + 1}-0", f"{upto}-0"]
        )
        return [_message(room, entry_id, fields) for entry_id, fields in (entries or {}).items()]

    async def tail(self, positions: dict[str, Position], block_ms: int) -> list[LogEntry]:
        if not positions:
            return []
        rooms = list(positions)
        command = ["XREAD", "BLOCK", str(block_ms), "STREAMS"]
        command += [f"{KEY_PREFIX}{room}:log" for room in rooms]
        command += [f"{KEY_PREFIX}{room}:presence" for room in rooms]
        command += [f"{positions[room].seq}-0" for room in rooms]
        command += [str(positions[room].presence) for room in rooms]
        found = await self._call(self._reader, command)
        entries: list[LogEntry] = []
        changed: dict[str, str] = {}
        for raw_key, logged in (found or {}).items():
            room, _, stream = raw_key.decode().removeprefix(KEY_PREFIX).rpartition(":")
            for entry_id, fields in logged.items():
                if stream != "log":
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

    async def position(self, room: str) -> Position:
        keys = [f"{KEY_PREFIX}{room}:{part}" for part in ("presence", "seq", "epoch")]
        seq, presence, epoch = await self._run(self._scripts.position, keys, [new_epoch()])
        return Position(int(seq), PresenceId.parse(presence.decode()), epoch.decode())

    async def join(
        self, room: str, candidates: Sequence[str], holder: str, session: str, time_ms: int
    ) -> Joined | None:
        keyed = [part for name in candidates for part in (name, name_key(name))]
        keys = [*_room_keys(room), f"{KEY_PREFIX}{room}:epoch", _seats_key(holder)]
        keys += [ROOMS_KEY, SERVERS_KEY]
        args = [room, holder, session, str(time_ms), new_epoch(), *keyed]
        answer = await self._run(self._scripts.join, keys, args)
        if answer is None:
            return None
        name, seq, before, members, epoch = answer
        position = Position(int(seq), PresenceId.parse(before.decode()), epoch.decode())
        return Joined(name.decode(), position, tuple(sorted(m.decode() for m in members)))

    async def leave(self, seats: Sequence[Seat], time_ms: int) -> None:
        flat = [part for seat in seats for part in seat]
        keys = _seats_keys(seat for seat in seats)
        await self._run(self._scripts.leave, keys, [str(time_ms), *flat])

    async def heartbeat(self, server: str, ttl_ms: int) -> bool:
        keys = [_server_key(server), SERVERS_KEY]
        alive = await self._run(self._scripts.heartbeat, keys, [server, str(ttl_ms)])
        return bool(alive)

    async def restore(self, held: Sequence[tuple[Seat, str]], time_ms: int) -> list[Seat]:
        flat = [part for seat, session in held for part in (*seat, session, name_key(seat[1]))]
        keys = _seats_keys(seat for seat, _ in held)
        lost = await self._run(self._scripts.restore, keys, [str(time_ms), *flat])
        parts = [value.decode() for value in lost]
        return list(zip(parts[::3], parts[1::3], parts[2::3], strict=True))

    async def sweep(self, time_ms: int) -> int:
        return int(await self._run(self._scripts.sweep, [], [str(time_ms)]))

    async def retire(self, server: str, time_ms: int) -> None:
        keys = [ROOMS_KEY, SERVERS_KEY, _seats_of(server), _server_key(server)]
        await self._run(self._scripts.retire, keys, [server, str(time_ms)])

    async def members(self, room: str) -> tuple[str, ...]:
        names = await self._call(self._client, ["HKEYS", f"{KEY_PREFIX}{room}:members"])
        return tuple(sorted(name.decode() for name in names))

    async def rooms(self) -> list[tuple[str, int, int]]:
        found = await self._run(self._scripts.rooms, [ROOMS_KEY], [])
        return sorted((name.decode(), int(count), int(seq)) for name, count, seq in found)

    async def aclose(self) -> None:
        for client in (self._client, self._reader):
            with contextlib.suppress(glide.GlideError):
                await client.close()

    async def search(
        self,
        words: Sequence[str],
        rooms: Sequence[str] | None,
        limit: int,
        before: SearchCursor | None = None,
    ) -> list[Message]:
        """A bounded scan of each room's kept stream (its newest --history messages;
        SEARCH_SCANNED at most per room): Redis keeps no index of words."""
        found: list[Message] = []
        for room in rooms or []:
            entries = await self._call(
                self._client,
                ["XREVRANGE", f"{KEY_PREFIX}{room}:log", "+", "-", "COUNT", str(SEARCH_SCANNED)],
            )
            for entry_id, fields in (entries or {}).items():
                message = _message(room, entry_id, fields)
                cursor = SearchCursor(message.time_ms, room, message.seq)
                older = before is None or cursor < before
                if message.kind is EntryKind.MESSAGE and older and holds_words(message.text, words):
                    found.append(message)
        found.sort(key=lambda m: SearchCursor(m.time_ms, m.room, m.seq), reverse=True)
        return found[:limit]

    # -- the directory's primitives (see store/directory.py) ---------------------------

    async def kv_get(self, space: str, key: str) -> str | None:
        found = await self._call(self._client, ["HGET", _space_key(space), key])
        return None if found is None else str(found.decode())

    async def kv_put(self, space: str, key: str, value: str, *, only_new: bool = False) -> bool:
        verb = "HSETNX" if only_new else "HSET"
        done = await self._call(self._client, [verb, _space_key(space), key, value])
        return bool(done) or not only_new

    async def kv_delete(self, space: str, key: str) -> bool:
        return bool(await self._call(self._client, ["HDEL", _space_key(space), key]))

    async def kv_items(self, space: str) -> list[tuple[str, str]]:
        found = await self._call(self._client, ["HGETALL", _space_key(space)])
        return sorted((k.decode(), v.decode()) for k, v in (found or {}).items())

    async def kv_present(self, space: str, keys: Sequence[str]) -> set[str]:
        if not keys:
            return set()
        found = await self._call(self._client, ["HMGET", _space_key(space), *keys])
        return {key for key, value in zip(keys, found, strict=True) if value is not None}

    async def record(self, stream: str, value: str) -> int:
        keys = [f"purechat:records:{stream}:count", f"purechat:records:{stream}"]
        return int(await self._run(self._scripts.record, keys, [value]))

    async def records(self, stream: str, *, after: int = 0, last: int = 0) -> list[tuple[int, str]]:
        key = f"purechat:records:{stream}"
        if last:
            found = await self._call(self._client, ["XREVRANGE", key, "+", "-", "COUNT", str(last)])
            entries = list(reversed(list((found or {}).items())))
        else:
            found = await self._call(self._client, ["XRANGE", key, f"{after + 1}-0", "+"])
            entries = list((found or {}).items())
        return [
            (int(entry_id.decode().split("-")[0]), _fields(fields)["value"])
            for entry_id, fields in entries
        ]

    async def apply_effects(self, room: str, effects: Sequence[Effect]) -> None:
        if effects:
            value = json.dumps([e.as_list() for e in effects])
            await self._run(self._scripts.effects, [_space_key(state_space(room))], [value])

    async def _call(self, client: Any, command: list[str]) -> Any:
        """Run command (see _answer)."""
        return await self._answer(client.custom_command(command))

    async def _run(self, script: Any, keys: list[str], args: list[str]) -> Any:
        """Run one of the Scripts by its SHA, with the keys it touches (see _answer)."""
        return await self._answer(self._client.invoke_script(script, keys=keys, args=args))

    async def _answer(self, request: Awaitable[Any]) -> Any:
        """Redis's answer to request; OutcomeUnknown when Redis may have run it without
        our hearing the answer (a timeout, a connection lost mid-request),
        StoreUnavailable when it surely did not (it answered with an error, or could
        not be asked)."""
        try:
            return await request
        except (glide.TimeoutError, glide.ConnectionError) as error:
            raise OutcomeUnknown(self._sentence(error)) from None
        except glide.GlideError as error:
            raise StoreUnavailable(self._sentence(error)) from None

    def _sentence(self, error: Exception) -> str:
        return f"Redis at {self.address.host}:{self.address.port}: {_reason(error)}"


def _room_keys(room: str) -> list[str]:
    """A room's presence keys, in the order PRESENCE's `room_at` takes them."""
    return [f"{KEY_PREFIX}{room}:{part}" for part in ROOM_KEYS]


def _heads_keys(rooms: Iterable[str]) -> list[str]:
    return [f"{KEY_PREFIX}{room}:{part}" for room in rooms for part in ("seq", "epoch")]


def _server_key(server: str) -> str:
    """The key that lives while server's heartbeats do."""
    return f"purechat:server:{server}"


def _seats_of(server: str) -> str:
    """The set of server's seats (PRESENCE's `seats_of`)."""
    return f"{_server_key(server)}:seats"


def _seats_key(holder: str) -> str:
    """The seats set of the server a holder id ("server/number") belongs to."""
    return _seats_of(holder.rpartition("/")[0])


def _seats_keys(seats: Iterable[Seat]) -> list[str]:
    """KEYS for LEAVE and RESTORE: the lists, then per seat its room's keys and its
    holder's seats set."""
    keys = [ROOMS_KEY, SERVERS_KEY]
    for room, _, holder in seats:
        keys += [*_room_keys(room), _seats_key(holder)]
    return keys


def _space_key(space: str) -> str:
    """The hash a key-value space lives in: a room's state beside its log."""
    kind, _, room = space.partition(":")
    if kind == "state":
        return f"{KEY_PREFIX}{room}:state"
    return f"purechat:kv:{space}"


def _hide_password(url: str) -> str:
    """url with its password (between the first ':' after '//' and '@') shown as ***."""
    scheme, sep, rest = url.partition("//")
    credentials, at, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}{sep}{user}:***@{host}" if at and colon else url


def _reason(error: Exception) -> str:
    """glide's message, on one line, without the address purechat names itself."""
    text = " ".join(str(error).split())
    return re.sub(r"^Received error for address `[^`]*`: ", "", text) or type(error).__name__


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


def _message(room: str, entry_id: bytes, fields: list[list[bytes]]) -> Message:
    values = _fields(fields)
    effects = values.get("effects")
    return Message(
        room,
        int(entry_id.decode().split("-")[0]),
        values["user"],
        values["text"],
        int(values["time"]),
        values["action"] == "1",
        kind=EntryKind(values.get("kind", "message")),
        data=values.get("data", ""),
        effects=tuple(Effect.from_list(e) for e in json.loads(effects)) if effects else (),
    )
