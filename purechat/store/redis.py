"""redis:// and rediss://: every room's log as a Redis (or Valkey) Stream, shared by servers.

Several purechat servers pointed at one Redis are one chat. A message is numbered and
appended atomically by a Lua script (INCR the room's counter, XADD with that number as
the entry id, remember the client's message id), so numbers are per room, monotonic
and the same for every server; every server then delivers each room from the stream
(`tail`), so all members everywhere see the stream's one order.

Uses valkey-glide (its async client runs under trio and asyncio). Blocking reads use a
client of their own, since a blocking command holds its connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import glide

from purechat.core import Draft
from purechat.store.base import Appended, StoredMessage, StoreError

KEY_PREFIX = "purechat:room:"
REQUEST_TIMEOUT_MS = 2000

# ARGV: history, count, then per draft: room, user, text, time_ms, action, sender, id.
# Returns one number per draft: its seq, negative for a repeat of an earlier send.
APPEND = """
local history = tonumber(ARGV[1])
local out = {}
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  local room, user, text, time, action, sender, id =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  local key = 'purechat:room:' .. room
  local seq = false
  if id ~= '' then seq = redis.call('HGET', key .. ':ids', sender .. '|' .. id) end
  if seq then
    table.insert(out, -tonumber(seq))
  else
    seq = redis.call('INCR', key .. ':seq')
    redis.call('XADD', key .. ':log', 'MAXLEN', '~', history, seq .. '-0',
      'user', user, 'text', text, 'time', time, 'action', action)
    if id ~= '' then redis.call('HSET', key .. ':ids', sender .. '|' .. id, seq) end
    table.insert(out, seq)
  end
end
return out
"""


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    tls: bool
    password: str | None
    database: int

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise StoreError(f"{url!r} is not redis://HOST:PORT[/DB] or rediss://...")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise StoreError(f"{url!r}: the database must be a number")
        password = unquote(parts.password) if parts.password else None
        return cls(
            parts.hostname, parts.port or 6379, parts.scheme == "rediss", password, int(path or 0)
        )


class RedisStore:
    def __init__(self, address: RedisAddress, client: Any, reader: Any, history: int):
        self.address = address
        self._client = client
        self._reader = reader  # for blocking reads only
        self.history = history

    @classmethod
    async def open(cls, url: str, history: int) -> RedisStore:
        address = RedisAddress.parse(url)
        # glide's core logs reconnect attempts as coloured warnings on stderr; purechat's
        # own log already says, once, in a sentence, that Redis is gone and it retries.
        glide.Logger.set_logger_config(glide.LogLevel.ERROR)
        config = glide.GlideClientConfiguration(
            [glide.NodeAddress(address.host, address.port)],
            use_tls=address.tls,
            credentials=glide.ServerCredentials(password=address.password)
            if address.password
            else None,
            database_id=address.database,
            request_timeout=REQUEST_TIMEOUT_MS,
        )
        try:
            client = await glide.GlideClient.create(config)
            reader = await glide.GlideClient.create(config)
        except glide.GlideError as error:
            raise StoreError(
                f"cannot reach Redis at {address.host}:{address.port}: {error}"
            ) from None
        return cls(address, client, reader, history)

    @property
    def description(self) -> str:
        scheme = "rediss" if self.address.tls else "redis"
        where = f"{scheme}://{self.address.host}:{self.address.port}/{self.address.database}"
        return f"{where} (streams of the newest ~{self.history} messages per room)"

    async def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        args = [str(self.history), str(len(drafts))]
        for d in drafts:
            args += [
                d.room,
                d.user,
                d.text,
                str(d.time_ms),
                "1" if d.action else "0",
                d.sender_key,
                d.client_msg_id,
            ]
        numbers = await self._call(self._client, ["EVAL", APPEND, "0", *args])
        return [Appended(abs(int(n)), duplicate=int(n) < 0) for n in numbers]

    async def last_seq(self, room: str) -> int:
        value = await self._call(self._client, ["GET", f"{KEY_PREFIX}{room}:seq"])
        return int(value) if value is not None else 0

    async def read(self, room: str, *, after: int, upto: int) -> list[StoredMessage]:
        if upto <= after:
            return []
        entries = await self._call(
            self._client, ["XRANGE", f"{KEY_PREFIX}{room}:log", f"{after + 1}-0", f"{upto}-0"]
        )
        return [_message(room, entry_id, fields) for entry_id, fields in (entries or {}).items()]

    async def tail(self, positions: dict[str, int], block_ms: int) -> list[StoredMessage]:
        """What was appended to these rooms after each one's position, waiting up to block_ms."""
        if not positions:
            return []
        rooms = list(positions)
        command = ["XREAD", "BLOCK", str(block_ms), "STREAMS"]
        command += [f"{KEY_PREFIX}{room}:log" for room in rooms]
        command += [f"{positions[room]}-0" for room in rooms]
        found = await self._call(self._reader, command)
        messages = []
        for key, entries in (found or {}).items():
            room = key.decode().removeprefix(KEY_PREFIX).removesuffix(":log")
            messages += [_message(room, entry_id, fields) for entry_id, fields in entries.items()]
        return sorted(messages, key=lambda m: (m.room, m.seq))

    async def aclose(self) -> None:
        for client in (self._client, self._reader):
            with contextlib.suppress(glide.GlideError):
                await client.close()

    async def _call(self, client: Any, command: list[str]) -> Any:
        try:
            return await client.custom_command(command)
        except glide.GlideError as error:
            raise StoreError(f"Redis at {self.address.host}:{self.address.port}: {error}") from None


def _message(room: str, entry_id: bytes, fields: list[list[bytes]]) -> StoredMessage:
    values = {key.decode(): value.decode() for key, value in fields}
    return StoredMessage(
        room,
        int(entry_id.decode().split("-")[0]),
        values["user"],
        values["text"],
        int(values["time"]),
        values["action"] == "1",
    )
