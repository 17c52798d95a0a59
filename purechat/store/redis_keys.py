"""Where every Redis key of purechat lives: the one place key names are made.

Read this before adding a key (accounts, roles and moderation will add per-room and
per-server ones): the rules below are what lets the same scripts run on one Redis and
on a Redis Cluster, through failovers and while an operator moves slots.

Rules
-----
1. **A room's keys carry the room as their hash tag**: `purechat:room:{ROOM}:PART` on a
   cluster, so every key of a room sits in one slot (`redis-cli cluster keyslot ROOM`
   says where a room lives) and one script can touch all of them. A `{`, `}` or `%` in a
   room's name is written `%7B`, `%7D`, `%25` inside the tag, so no name can end the
   tag early or share another room's. On one Redis the tag is not needed and the names
   stay as they were before clusters (`purechat:room:ROOM:PART`), so an upgraded
   server finds the logs it had.
2. **Keys about servers live in one slot of their own**, tagged `{servers}`: which
   servers are alive, which rooms each may hold seats in, which are being swept. A
   server's seats *in a room* are a room key (`held(SERVER)`, rule 1), never a server
   key: a script that changes a room never needs another slot.
3. **One call, one slot.** A script or a multi-key command touches the keys of one room
   (or of rooms that happen to share a slot), or the servers' keys: never both. Work
   that spans rooms (a sweep, a retire, `purechat rooms`) is one call per slot, ordered
   so that a crash between calls leaves nothing unfindable (a room is listed for a
   server before the server takes a seat in it, and unlisted only after).
4. **Every key a script touches is passed in KEYS**, built here. Redis Cluster runs a
   script on the node that holds its KEYS' slot; a key built inside Lua that the node
   does not hold (it moved, or is moving) fails the script *halfway*, after its first
   writes. That is why retry ids are one hash and one list rather than buckets named
   from a counter, and why a server's earlier seats are found through room keys.
5. **Never touch a key again after a script may have emptied it.** While a slot is
   moving, Redis refuses (mid-script, as in rule 4) a command on a key it does not
   hold, and an emptied hash, set or list no longer exists. Streams stay when empty;
   the retry-id hash and list are filled before they are trimmed, so the append script
   never meets a missing key halfway. Presence scripts may (they are idempotent: a
   retry finishes the job), and say where.
6. **No TTLs on room keys.** A key that expires between a script's dispatch and its
   run would be missing halfway; liveness is a score checked against Redis's clock
   (`TIME`) instead (the servers' heartbeats, `behind`).

A new per-room key is a field of `RoomKeys` (and a line in the table below); a new
per-server key goes in `ServerKeys` with the `{servers}` tag. Scripts take keys in the
order the Python side lists them (see redis_scripts.py).

Per room (`RoomKeys`)
---------------------
=============  ======  ===========================================================
part           type    what
=============  ======  ===========================================================
seq            string  the newest number given (a counter: INCR)
log            stream  the messages, entry id `SEQ-0`; fields user, time, action,
                       epoch, reply_to, account (and kind, data, effects, target for
                       entries other than messages; text for moderation entries). A
                       message's text is not here but in `bodies`, so an edit can
                       replace it and a delete remove it. What readers see: `top`
                       is its newest id.
bodies         hash    SEQ -> a message's text and revision as JSON ({"text",
                       "edited_ms", "deleted", "deleted_by", "reactions": [[emoji,
                       [users], [account keys]]]}), rewritten by the script that
                       numbers an edit, delete or reaction of it; field `from`: the
                       oldest number whose body may remain (bodies of messages the
                       log trimmed are dropped after it; `from` keeps the hash from
                       ever being emptied, rule 5)
state          hash    KIND|KEY -> value: the room's roles, settings and
                       restrictions (core/moderation.py), changed by its moderation
                       entries' effects in the script that numbers them
staged         stream  with `?replicas=N`: messages numbered and not yet known to be
                       on N replicas; moved to `log` once Redis says they are
epoch          string  the log's epoch (purechat.store.base): gone with the log
writer        string  replication id of the node that last wrote the log: a node
                       promoted since (a failover) may have lost its newest entries
ids            hash    SENDER|CLIENT_MSG_ID -> seq, for retried sends
idq            list    `SEQ:SENDER|ID` in the order stored, to forget the oldest ids
members        hash    name -> holder (`SERVER/N`)
sessions       hash    name -> the client's session id
keys           hash    name_key -> name (names are unique by key: core/names.py)
key_of         hash    name -> name_key
presence       stream  joins and leaves, entry id `TOP-*` (after message TOP)
held:SERVER    set     JSON [name, holder] of SERVER's seats in the room
behind         zset    reader id -> until (ms, Redis clock): servers whose members in
                       the room are behind, so senders everywhere wait
news           (sharded pub/sub channel) something was logged: a cluster's feeds
                       read the room when told
typing         (pub/sub channel; sharded on a cluster) JSON {"from": reader id,
                       "users": [names]}: who typed on one server in the last
                       second, heard by the servers following the room; never kept
=============  ======  ===========================================================

Servers (`ServerKeys`, slot `{servers}`)
----------------------------------------
=========================  ====  ====================================================
key                        type  what
=========================  ====  ====================================================
purechat:{servers}:alive   zset  server -> its heartbeat's expiry (ms, Redis clock)
purechat:{servers}:sweep   hash  server -> until when a sweeper has claimed it
purechat:{servers}:rooms:S set   rooms where server S may hold seats
=========================  ====  ====================================================

The directory (store/directory.py)
----------------------------------
A key-value space is one hash, `purechat:kv:{SPACE}`, tagged by its own name (one key:
any slot does); a room's state space (`state:ROOM`) is the room's `state` key instead
(rule 1: its moderation entries change it in their append). A stream of records is
`purechat:records:{STREAM}:log` with its counter `...:count`, both tagged by the stream
so the script that numbers a record touches one slot.
"""

from __future__ import annotations

from dataclasses import dataclass

ROOM_PREFIX = "purechat:room:"
SERVERS_TAG = "{servers}"


def room_tag(room: str, *, cluster: bool) -> str:
    """The part of a room's key names that names the room (rule 1)."""
    if not cluster:
        return room
    escaped = room.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{" + escaped + "}"


@dataclass(frozen=True, slots=True)
class RoomKeys:
    """Every key of one room; built by Layout.room."""

    room: str
    base: str  # "purechat:room:{ROOM}:" (or without the braces on one Redis)

    @property
    def seq(self) -> str:
        return self.base + "seq"

    @property
    def log(self) -> str:
        return self.base + "log"

    @property
    def staged(self) -> str:
        return self.base + "staged"

    @property
    def epoch(self) -> str:
        return self.base + "epoch"

    @property
    def state(self) -> str:
        return self.base + "state"

    @property
    def writer(self) -> str:
        return self.base + "writer"

    @property
    def bodies(self) -> str:
        return self.base + "bodies"

    @property
    def ids(self) -> str:
        return self.base + "ids"

    @property
    def idq(self) -> str:
        return self.base + "idq"

    @property
    def members(self) -> str:
        return self.base + "members"

    @property
    def sessions(self) -> str:
        return self.base + "sessions"

    @property
    def keys(self) -> str:
        return self.base + "keys"

    @property
    def key_of(self) -> str:
        return self.base + "key_of"

    @property
    def presence(self) -> str:
        return self.base + "presence"

    @property
    def behind(self) -> str:
        return self.base + "behind"

    @property
    def news(self) -> str:
        """The room's sharded pub/sub channel (in the room's slot, like its keys)."""
        return self.base + "news"

    @property
    def typing(self) -> str:
        """The room's typing channel: sharded on a cluster (in the room's slot), plain
        on one Redis. Nothing is kept: who types is worth nothing a moment later."""
        return self.base + "typing"

    def held(self, server: str) -> str:
        """The set of server's seats in this room."""
        return f"{self.base}held:{server}"

    # The orders scripts take them in (redis_scripts.py says which script takes which).
    def for_append(self) -> list[str]:
        return [
            self.seq,
            self.log,
            self.staged,
            self.epoch,
            self.writer,
            self.ids,
            self.idq,
            self.behind,
            self.presence,
            self.state,
            self.bodies,
        ]

    def for_presence(self, server: str) -> list[str]:
        return [
            self.members,
            self.sessions,
            self.keys,
            self.key_of,
            self.presence,
            self.log,
            self.held(server),
        ]


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """The servers' keys, all in the `{servers}` slot (rule 2)."""

    alive: str = f"purechat:{SERVERS_TAG}:alive"
    sweep: str = f"purechat:{SERVERS_TAG}:sweep"

    def rooms(self, server: str) -> str:
        return f"purechat:{SERVERS_TAG}:rooms:{server}"


@dataclass(frozen=True, slots=True)
class Layout:
    """Key names for one Redis (`cluster=False`) or a Redis Cluster."""

    cluster: bool

    def room(self, room: str) -> RoomKeys:
        return RoomKeys(room, f"{ROOM_PREFIX}{room_tag(room, cluster=self.cluster)}:")

    @property
    def servers(self) -> ServerKeys:
        return ServerKeys()

    def space(self, space: str) -> str:
        """The hash of a key-value space of the directory (a room's state: its own)."""
        kind, _, room = space.partition(":")
        if kind == "state" and room:
            return self.room(room).state
        return f"purechat:kv:{room_tag(space, cluster=True)}"

    def records(self, stream: str) -> tuple[str, str]:
        """A stream of records and its counter, in one slot."""
        tag = room_tag(f"records:{stream}", cluster=True)
        return f"purechat:{tag}:log", f"purechat:{tag}:count"

    def slot_of(self, room: str) -> int:
        """The cluster slot a room's keys hash to (0 on one Redis: one group)."""
        return key_slot(room_tag(room, cluster=True)) if self.cluster else 0


def key_slot(key: str) -> int:
    """Redis Cluster's slot of a key: CRC16 (XMODEM) of its hash tag, mod 16384."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    crc = 0
    for byte in data:
        crc = _CRC16[((crc >> 8) ^ byte) & 0xFF] ^ ((crc << 8) & 0xFFFF)
    return crc % 16384


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16 = _crc16_table()
