"""The chat server: the parts every port shares, and the listeners that use them.

`ChatServer` builds the core (hub, journal, pacer, feed and presence for a shared
store), then runs the gRPC listener, the web listener (with `--web-port`) and the
metrics endpoint (with `--metrics-port`) beside them in one task group, and stops
them in order. It sits above `purechat.server` and `purechat.web`, which know nothing
of each other.
"""

from __future__ import annotations

import json
import logging
from collections import Counter

import anyio
import anyio.abc
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus

from purechat import status as statuses
from purechat.core import EndReason, Hub, Message, ReadMarker, names
from purechat.core.conversations import peer_of
from purechat.core.events import ConversationNotice
from purechat.core.limits import DEFAULT_ROOM
from purechat.ops.health import HealthState
from purechat.ops.metrics import Metrics
from purechat.server.auth import Admitted
from purechat.server.config import ServerConfig
from purechat.server.delivery import DeliveryLimits
from purechat.server.feed import Feed
from purechat.server.grpc import CHAT_SERVICES, GrpcListener
from purechat.server.identity import Authenticator
from purechat.server.journal import Journal
from purechat.server.outage import Outage
from purechat.server.pacing import Pacer
from purechat.server.passwords import Passwords
from purechat.server.presence import Presence
from purechat.server.roster import HubRoster, Roster
from purechat.server.services import Services
from purechat.store import MemoryStore, Store, StoreError
from purechat.store.base import Records
from purechat.store.directory import AuditEntry, Directory
from purechat.store.shared import SharedStore
from purechat.transport import Flusher
from purechat.transport.addresses import AddressCounts
from purechat.web.listener import WebServer

# How often who is typing is told to rooms.
TYPING_FLUSH_SECONDS = 1.0

log = logging.getLogger("purechat.server")

# How often the store is asked whether it answers, for health, when nobody writes.
STORE_PROBE_SECONDS = 5.0
# How often the control records are read (an account's sessions ended on another server
# ends them here within this), and the server's bans and accounts read again anyway.
CONTROL_POLL_SECONDS = 0.5
BANS_REFRESH_SECONDS = 30.0
# Control records that only tell an account's sessions something: the bans and
# accounts are not read again for them (one comes with every direct message).
TOLD_ONLY = frozenset({"marker", "conversation"})
# A probe that has not answered this long marks the server NOT_SERVING meanwhile.
STORE_PROBE_TIMEOUT = 5.0


class ChatServer:
    """One chat server: its gRPC port, and its web and metrics ports when configured.

    Start it with `port = await task_group.start(server.serve)` (the gRPC port);
    `shutdown()` ends it gracefully, cancelling the task that runs `serve` at once.
    """

    def __init__(self, config: ServerConfig | None = None, store: Store | None = None):
        self.config = config or ServerConfig()
        self.store = store or MemoryStore()
        shared = self.store if isinstance(self.store, SharedStore) else None
        self.hub = Hub(self.config.limits, shared_presence=shared is not None)
        pacer = Pacer(self.hub)
        self.hub.on_caught_up = pacer.caught_up
        self.cut_offs: Counter[str] = Counter()
        self.health = HealthState(CHAT_SERVICES)
        self.metrics = Metrics(self.hub)
        self.metrics_port: int | None = None
        self.web_port: int | None = None
        # A store shared with other servers delivers through the feed, in its log's order,
        # and keeps who is where.
        feed = Feed(self.hub, shared, pacer) if shared else None
        self._presence = (
            Presence(self.hub, shared, self.config.presence_ttl, self.metrics.presence_swept.inc)
            if shared
            else None
        )
        records = self.store if isinstance(self.store, Records) else MemoryStore()
        # Accounts, sessions, room state, audit and control (a store's stand-in in a
        # test that keeps none: in memory).
        self.directory = Directory(records)
        self._journal = Journal(
            self.hub,
            self.store,
            self._store_answered,
            feed,
            audit=self._audit,
            tell_peer=self._tell_peer,
        )
        self.auth = Authenticator(
            self.config.accounts,
            self.config.tokens,
            self.directory,
            Passwords(self.config.password_cost),
            self.config.limits,
            on_failure=self.metrics.auth_failures.labels,
        )
        # The calls open and who each is: revoking a token, an account or an address
        # ends them.
        self._admitted = Admitted(self.config.tokens)
        roster: Roster = shared or HubRoster(self.hub)
        self._services = Services(
            hub=self.hub,
            store=self.store,
            journal=self._journal,
            pacer=pacer,
            legacy_history=self.config.legacy_history,
            observe_catch_up=self.metrics.catch_up_messages.observe,
            delivery_limits=DeliveryLimits(
                budget=self.config.slow_member_bytes,
                stall_timeout=self.config.slow_member_timeout,
            ),
            flusher=Flusher(),
            feed=feed,
            presence=self._presence,
            directory=self.directory,
            auth=self.auth,
            admitted=self._admitted,
            roster=roster,
        )
        self.metrics.count_by_reason(self._services.evictions, self.cut_offs)
        # Open connections per host, counted across both listeners.
        addresses = AddressCounts(self.config.max_conns_per_addr)
        self._grpc = GrpcListener(
            self.config,
            self._services,
            health=self.health,
            roster=roster,
            addresses=addresses,
            auth=self.auth,
            admitted=self._admitted,
            on_cut_off=self._count_cut_off,
        )
        self._web = (
            WebServer(
                self.config,
                self._services,
                auth=self.auth,
                admitted=self._admitted,
                addresses=addresses,
                on_cut_off=self._count_cut_off,
            )
            if self.config.web_port is not None
            else None
        )
        self._shutdown_requested = anyio.Event()
        self._stopped = anyio.Event()

    @property
    def presence_id(self) -> str | None:
        """This server's id in a shared store's presence (None without one)."""
        return self._presence.server if self._presence else None

    @property
    def connection_count(self) -> int:
        """Open gRPC connections."""
        return self._grpc.connection_count

    def shutdown(self) -> None:
        """Stop accepting, end every member's session with UNAVAILABLE, then return from
        serve."""
        self._shutdown_requested.set()

    async def _tell_typing(self) -> None:
        """Who typed is told once a flush, not once a signal: a room where 500 type
        costs each member one small frame a second, not 500 (see Hub.flush_typing).
        With a shared store, who typed on the other servers is told with it, and who
        typed here goes to them (see Feed.hear_typing)."""
        feed = self._services.feed
        while True:
            await anyio.sleep(TYPING_FLUSH_SECONDS)
            if feed is not None:
                feed.hear_typing()
            typed = self._services.hub.flush_typing()
            if feed is not None:
                feed.tell_typing(typed)

    async def stopped(self) -> None:
        """Wait until serve() has returned."""
        await self._stopped.wait()

    async def serve(self, *, task_status: TaskStatus[int] = TASK_STATUS_IGNORED) -> None:
        """Listen and serve until shutdown(); reports the gRPC port through task_status."""
        names.prepare()
        services = self._services
        try:
            with self._journal:
                async with anyio.create_task_group() as tasks:
                    port = await tasks.start(self._grpc.serve, tasks)
                    tasks.start_soon(self._journal.run)
                    if services.feed is not None:
                        tasks.start_soon(services.feed.run)
                    if self._presence is not None:
                        await tasks.start(self._presence.run)
                    assert services.flusher is not None
                    tasks.start_soon(services.flusher.run)
                    tasks.start_soon(self._grpc.keep_alive)
                    tasks.start_soon(self._tell_typing)
                    tasks.start_soon(self._watch_store)
                    await tasks.start(self._watch_controls)
                    if self.config.metrics_port is not None:
                        # Counts of its own, with the same limit: see Metrics.serve.
                        self.metrics_port = await tasks.start(
                            self.metrics.serve,
                            self.config.host,
                            self.config.metrics_port,
                            AddressCounts(self.config.max_conns_per_addr),
                            self.config.transport.handshake_timeout,
                        )
                    if self._web is not None:
                        self.web_port = await tasks.start(self._web.serve)
                    task_status.started(port)
                    await self._shutdown_requested.wait()
                    await self._close_everything()
                    await self._retire()
                    tasks.cancel_scope.cancel()
        finally:
            self._stopped.set()

    def _count_cut_off(self, reason: str) -> None:
        self.cut_offs[reason] += 1

    def _store_answered(self, ok: bool, seconds: float) -> None:
        self.health.store_answered(ok)
        if ok:
            self.metrics.store_write_seconds.observe(seconds)

    async def _watch_store(self) -> None:
        """Health follows the store also when nobody writes to it: a probe every
        STORE_PROBE_SECONDS, in this task of its own, so a slow store delays nothing
        else (keepalives and cut-offs wait on the clock only). A probe that has not
        answered within STORE_PROBE_TIMEOUT counts as a failure while it goes on."""
        while True:
            await anyio.sleep(STORE_PROBE_SECONDS)
            answered = anyio.Event()
            async with anyio.create_task_group() as probing:
                probing.start_soon(self._probe_store, answered)
                with anyio.move_on_after(STORE_PROBE_TIMEOUT):
                    await answered.wait()
                if not answered.is_set():
                    self.health.store_answered(False)

    async def _probe_store(self, answered: anyio.Event) -> None:
        try:
            await self.store.head(DEFAULT_ROOM)
        except StoreError:
            self.health.store_answered(False)
        else:
            self.health.store_answered(True)
        answered.set()

    async def _watch_controls(self, *, task_status: TaskStatus[None] = TASK_STATUS_IGNORED) -> None:
        """Act on what any server (or `purechat account`) asked of all of them: end an
        account's sessions, an address's connections; tell an account's sessions where
        it has read and that someone wrote to it; keep the server's bans current."""
        outage = Outage("control")
        seen = 0
        while True:
            try:
                seen = seen or await self.directory.newest_control()
                self.auth.server_bans = await self.directory.server_bans()
                self.auth.account_keys = await self.directory.account_keys()
                break
            except StoreError as error:
                outage.failed(error)
                await outage.pause()
        task_status.started()
        refreshed = anyio.current_time()
        while True:
            await anyio.sleep(CONTROL_POLL_SECONDS)
            try:
                found = await self.directory.controls(seen)
                changed = any(control.kind not in TOLD_ONLY for _, control in found)
                if changed or anyio.current_time() - refreshed > BANS_REFRESH_SECONDS:
                    self.auth.server_bans = await self.directory.server_bans()
                    self.auth.account_keys = await self.directory.account_keys()
                    refreshed = anyio.current_time()
            except StoreError as error:
                outage.failed(error)
                await outage.pause()
                continue
            outage.recovered()
            for number, control in found:
                seen = number
                if control.kind == "account":
                    self._admitted.revoke_account(control.subject, control.reason)
                elif control.kind == "marker":
                    self.hub.tell_account(control.subject, ReadMarker(control.room, control.seq))
                elif control.kind == "conversation":
                    notice = ConversationNotice(
                        control.room, control.peer, control.seq, control.text
                    )
                    self.hub.tell_conversation(control.subject, notice)
                elif control.kind == "address":
                    self._admitted.revoke_address(control.subject, control.reason)

    async def _tell_peer(self, message: Message) -> None:
        """A message stored in a conversation: its other account's sessions, on every
        server, are told (a control record; a failure is logged, the message stands)."""
        peer = peer_of(message.room, message.account)
        if peer is None or peer == message.account:
            return  # a conversation with oneself: nobody else to tell
        try:
            await self.directory.tell_conversation(
                peer, message.room, message.seq, message.user, message.text
            )
        except StoreError as error:
            log.error("%s; %s is not told of message %d", error, peer, message.seq)

    async def _audit(self, entry: Message) -> None:
        """A moderation entry stored: into the audit log (a failure is logged, the entry
        stands)."""
        details = json.loads(entry.data or "{}")
        try:
            await self.directory.audit(
                AuditEntry(
                    entry.time_ms,
                    entry.user,
                    str(details.get("action", "")),
                    entry.room,
                    str(details.get("target", "")),
                    entry.text,
                )
            )
        except StoreError as error:
            log.error("%s; the audit log misses: %s", error, entry.text)

    async def _close_everything(self) -> None:
        """End every member with UNAVAILABLE and give the statuses time to be delivered."""
        self.health.shutting_down()
        self.hub.end_all(EndReason.SHUTTING_DOWN)
        self._grpc.close(statuses.for_end(EndReason.SHUTTING_DOWN))
        if self._web is not None:
            self._web.close_all()
        with anyio.move_on_after(self.config.shutdown_grace):
            await self._grpc.closed()
            if self._web is not None:
                await self._web.closed()

    async def _retire(self) -> None:
        """Tell the other servers this one's members have left, rather than let them
        wait for its heartbeat to expire."""
        if self._presence is None:
            return
        with anyio.move_on_after(self.config.retire_timeout):
            try:
                await self._presence.retire()
            except StoreError as error:
                log.warning("%s; other servers list this one's members until they expire", error)
