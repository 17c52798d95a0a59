"""Presence across servers: names, member lists, joins and leaves kept in the shared store.

A joiner's name is bound in the store, so suffixes ("bob-2") are unique on every
server, and its join is logged there for every server's feed to announce. Leaves are
queued without waiting (a member's call is ending, often cancelled) and told to the
store by this server's presence task, which also sends the heartbeats that keep this
server's members listed and sweeps away the members of servers that stopped sending
theirs. A server that dies without a word thus has its members leave within about
`ttl` (plus one heartbeat interval) on every other server. Each heartbeat names the
rooms where this server holds seats, so that whoever sweeps it after a crash finds
them; one that finds this server being swept (it lost touch with the store for longer
than the TTL) waits for the sweep to end, then lists its members again.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

import anyio
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus

from purechat.core import EndReason, Hub, JoinRefused
from purechat.server.outage import Outage
from purechat.store import StoreError
from purechat.store.shared import Heartbeat, Joined, Seat, SharedStore, holder_id

log = logging.getLogger("purechat.server")

HEARTBEATS_PER_TTL = 3
# While another server sweeps this one, its heartbeat is tried again this often.
SWEPT_RETRY_SECONDS = 0.2
# How many names a join tries ("bob", "bob-2", ... "bob-100") before it is refused.
MAX_CANDIDATES = 100
# Seats per script: Redis runs one script at a time, so a mass disconnect is told in
# pieces rather than in one long script that holds every other server up.
MAX_SEATS_PER_CALL = 1000


class Presence:
    def __init__(
        self,
        hub: Hub,
        store: SharedStore,
        ttl: float,
        observe_swept: Callable[[int], None] = lambda count: None,
        clock: Callable[[], float] = time.time,
    ):
        self.hub = hub
        self.store = store
        self.ttl = ttl
        self._observe_swept = observe_swept
        self._clock = clock
        # Unique per run, so a restarted server never inherits a dead one's members.
        self.server = uuid.uuid4().hex
        self._holders = itertools.count(1)
        # Leaves not yet told to the store. Bounded by the members this server has
        # had: each is queued once, and a join needs the store, so none pile up
        # while it is away.
        self._leaving: list[Seat] = []
        self._wake = anyio.Event()
        self._outage = Outage("presence")
        # Another server is sweeping this one: beat again soon, not a TTL later.
        self._being_swept = False

    def new_holder(self) -> str:
        """An id for one member's hold on its name, unique among all servers."""
        return holder_id(self.server, next(self._holders))

    async def join(
        self,
        room: str,
        requested: str,
        holder: str,
        session: str,
        reserved: frozenset[str] = frozenset(),
    ) -> Joined:
        """Bind a name for requested in room on every server, held by holder, and log
        the join (unless a member of the same session held it: see Hub.claim_name).

        Shielded: once the store has bound a name the caller must learn it, or it would
        never be released. Bounded by the store's request timeout.
        """
        names = self.hub.candidate_names(requested, reserved)
        # An account's name is its own: no suffix (its session says it is one).
        exact = session.startswith("account:")
        candidates = list(itertools.islice(names, 1 if exact else MAX_CANDIDATES))
        with anyio.CancelScope(shield=True):
            joined = await self.store.join(room, candidates, holder, session, self._now_ms())
        if joined is None and exact:
            raise JoinRefused(
                f"Somebody else holds the name {candidates[0]} in {room} now; try again soon."
            )
        if joined is None:
            raise JoinRefused(
                f"Too many members of {room} are called {candidates[0]}; choose another name."
            )
        return joined

    def release(self, seat: Seat) -> None:
        """Queue a member's leave; the presence task tells the store."""
        self._leaving.append(seat)
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        """Heartbeats, sweeps and leaves until cancelled.

        Started after the first heartbeat, so other servers' sweeps leave this one's
        first members alone; or after one failed try: joins fail too while the store is
        away, and the heartbeats go on retrying.
        """
        await self._attempt(self._beat)
        task_status.started()
        interval = self.ttl / HEARTBEATS_PER_TTL
        next_beat = anyio.current_time() + interval
        while True:
            with anyio.move_on_after(max(0.0, next_beat - anyio.current_time())):
                await self._wake.wait()
            self._wake = anyio.Event()
            while self._leaving:
                await self._try(self._tell_leaves)
            if anyio.current_time() >= next_beat:
                await self._try(self._beat)
                soon = SWEPT_RETRY_SECONDS if self._being_swept else interval
                next_beat = anyio.current_time() + soon

    async def retire(self) -> None:
        """Remove every member of this server from the store (it is stopping)."""
        self._leaving.clear()
        await self.store.retire(self.server, self._now_ms())

    async def _try(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run step, retrying with backoff while the store is unreachable."""
        while not await self._attempt(step):
            await self._outage.pause()

    async def _attempt(self, step: Callable[[], Awaitable[None]]) -> bool:
        """Run step once; False (said once per outage, in the log) if the store failed."""
        try:
            await step()
        except StoreError as error:
            self._outage.failed(error)
            return False
        self._outage.recovered()
        return True

    async def _tell_leaves(self) -> None:
        leaving = self._leaving[:MAX_SEATS_PER_CALL]
        await self.store.leave(leaving, self._now_ms())
        del self._leaving[: len(leaving)]

    async def _beat(self) -> None:
        beat = await self.store.heartbeat(self.server, int(self.ttl * 1000), self._seated_rooms())
        self._being_swept = beat is Heartbeat.SWEEPING
        if self._being_swept:
            return
        if beat is Heartbeat.LAPSED:
            await self._restore()
        gone = await self.store.sweep(self._now_ms())
        if gone:
            self._observe_swept(gone)
            log.info("%d member(s) of servers that stopped answering removed", gone)

    def _seated_rooms(self) -> set[str]:
        """Rooms where this server holds seats, its leaves not yet told included."""
        rooms = {m.room.name for m in self.hub.named_members()}
        return rooms | {room for room, _, _ in self._leaving}

    async def _restore(self) -> None:
        """This server's heartbeats lapsed (the store was away): list its members again.

        A name somebody else took meanwhile cannot be given back: that member's stream
        ends, and its client reconnects under a new one.
        """
        leaving = set(self._leaving)
        held = [
            ((m.room.name, m.name, m.seat), m.session)
            for m in self.hub.named_members()
            if m.name is not None and (m.room.name, m.name, m.seat) not in leaving
        ]
        lost = []
        for start in range(0, len(held), MAX_SEATS_PER_CALL):
            chunk = held[start : start + MAX_SEATS_PER_CALL]
            lost += await self.store.restore(chunk, self._now_ms())
        for room, name, _ in lost:
            self.hub.remove_named(room, name, EndReason.NAME_LOST)
        if held:
            log.warning("listed %d member(s) again after losing touch with the store", len(held))

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)
