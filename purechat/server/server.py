"""The chat server: a listener, its connections, and an orderly shutdown."""

from __future__ import annotations

import logging
import ssl
from collections import Counter
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from anyio.streams.stapled import MultiListener
from anyio.streams.tls import TLSStream

from purechat import status as statuses
from purechat.core import EndReason, Hub, names
from purechat.core.limits import DEFAULT_ROOM
from purechat.errors import ConfigurationError, TransportError
from purechat.ops.health import HEALTH_SERVICE, HealthState
from purechat.ops.health import check as health_check
from purechat.ops.health import watch as health_watch
from purechat.ops.metrics import Metrics
from purechat.ops.reflection import VERSIONS as REFLECTION_VERSIONS
from purechat.ops.reflection import Reflection
from purechat.server.addresses import AddressCounts
from purechat.server.admin import ADMIN_SERVICE, HubRoster, Roster, list_members, list_rooms
from purechat.server.auth import Bearers
from purechat.server.config import ServerConfig
from purechat.server.delivery import DeliveryLimits
from purechat.server.feed import Feed
from purechat.server.journal import Journal
from purechat.server.members import serve_legacy, serve_v1
from purechat.server.membership import Services
from purechat.server.pacing import Pacer
from purechat.server.post import PostService
from purechat.server.presence import Presence
from purechat.status import Status
from purechat.store import MemoryStore, Store, StoreError
from purechat.store.shared import SharedStore
from purechat.transport import Connection, FirstHeaderBlocks, Flusher, GrpcProtocol, Stream
from purechat.transport.accept import accept_forever, remote_of

if TYPE_CHECKING:
    from purechat.web.listener import WebServer

log = logging.getLogger("purechat.server")

LEGACY_SERVICE = "chat.ChatService"
V1_SERVICE = "purechat.v1.Chat"
REFLECTION_SERVICES = frozenset(f"{version}.ServerReflection" for version in REFLECTION_VERSIONS)


class ServeError(ConfigurationError):
    """The server cannot start; str() is a sentence for a person."""


class _HandshakeFailed(TransportError):
    """A new connection did not get as far as HTTP/2."""


class ChatServer:
    """Serves chat.ChatService and purechat.v1 on one port.

    Start it with `port = await task_group.start(server.serve)`; `shutdown()` ends it
    gracefully, cancelling the task that runs `serve` ends it at once.
    """

    def __init__(self, config: ServerConfig | None = None, store: Store | None = None):
        self.config = config or ServerConfig()
        self.store = store or MemoryStore()
        shared = self.store if isinstance(self.store, SharedStore) else None
        self.hub = Hub(self.config.limits, shared_presence=shared is not None)
        self._pacer = Pacer(self.hub)
        self.hub.on_caught_up = self._pacer.caught_up
        self.cut_offs: Counter[str] = Counter()
        self.health = HealthState(frozenset({LEGACY_SERVICE, V1_SERVICE, ADMIN_SERVICE}))
        self.metrics = Metrics(self.hub)
        self.metrics_port: int | None = None
        # A store shared with other servers delivers through the feed, in its log's order,
        # and keeps who is where.
        self._feed = Feed(self.hub, shared) if shared else None
        self._presence = (
            Presence(self.hub, shared, self.config.presence_ttl, self.metrics.presence_swept.inc)
            if shared
            else None
        )
        self._journal = Journal(self.hub, self.store, self._store_answered, self._feed)
        self._flusher = Flusher()
        self._first_header_blocks = FirstHeaderBlocks()
        self._roster: Roster = shared or HubRoster(self.hub)
        self._reflection = Reflection(
            [LEGACY_SERVICE, V1_SERVICE, ADMIN_SERVICE, HEALTH_SERVICE]
            + [f"{version}.ServerReflection" for version in REFLECTION_VERSIONS]
        )
        self._services = Services(
            hub=self.hub,
            store=self.store,
            journal=self._journal,
            pacer=self._pacer,
            legacy_history=self.config.legacy_history,
            observe_catch_up=self.metrics.catch_up_messages.observe,
            delivery_limits=DeliveryLimits(
                budget=self.config.slow_member_bytes,
                stall_timeout=self.config.slow_member_timeout,
            ),
            flusher=self._flusher,
            feed=self._feed,
            presence=self._presence,
        )
        self.metrics.count_by_reason(self._services.evictions, self.cut_offs)
        self._posts = PostService(self._services)
        self._connections: set[Connection] = set()
        self._bearers = Bearers(self.config.tokens)  # calls a token reload may revoke
        # Open connections per host, shared with the web listener.
        self._addresses = AddressCounts(self.config.max_conns_per_addr)
        self._shutdown_requested = anyio.Event()
        self._all_closed = anyio.Event()
        self._stopped = anyio.Event()
        self.web_port: int | None = None
        self._web: WebServer | None = None
        if self.config.web_port is not None:
            # purechat.web builds on this package's parts: imported here, when asked for.
            from purechat.web.listener import WebServer  # noqa: PLC0415

            self._web = WebServer(
                self.config, self._services, self._bearers, self._addresses, self._count_cut_off
            )

    @property
    def presence_id(self) -> str | None:
        """This server's id in a shared store's presence (None without one)."""
        return self._presence.server if self._presence else None

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def shutdown(self) -> None:
        """Stop accepting, end every member's stream with UNAVAILABLE, then return from serve."""
        self._shutdown_requested.set()

    async def serve(self, *, task_status: TaskStatus[int] = TASK_STATUS_IGNORED) -> None:
        """Listen and serve until shutdown(); reports the bound port through task_status."""
        names.prepare()
        try:
            listener = await self._listen()
            with self._journal:
                await self._serve_on(listener, task_status)
        finally:
            self._stopped.set()

    async def _serve_on(
        self, listener: MultiListener[anyio.abc.SocketStream], task_status: TaskStatus[int]
    ) -> None:
        async with listener, anyio.create_task_group() as connections:
            connections.start_soon(self._journal.run)
            if self._feed is not None:
                connections.start_soon(self._feed.run)
            if self._presence is not None:
                await connections.start(self._presence.run)
            connections.start_soon(self._flusher.run)
            connections.start_soon(self._keep_alive)
            if self.config.metrics_port is not None:
                self.metrics_port = await connections.start(
                    self.metrics.serve, self.config.host, self.config.metrics_port
                )
            if self._web is not None:
                self.web_port = await connections.start(self._web.serve)
            async with anyio.create_task_group() as acceptors:
                for sub in listener.listeners:
                    serve = self._serve_connection
                    accept = partial(accept_forever, what="gRPC")
                    acceptors.start_soon(accept, sub, connections, serve)
                task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
                await self._shutdown_requested.wait()
                acceptors.cancel_scope.cancel()
            await self._close_everything()
            await self._retire()
            connections.cancel_scope.cancel()

    async def stopped(self) -> None:
        """Wait until serve() has returned."""
        await self._stopped.wait()

    async def _listen(self) -> MultiListener[anyio.abc.SocketStream]:
        host, port = self.config.host, self.config.port
        try:
            # No SO_REUSEPORT (purerpc sets it): a second server on a taken port must fail.
            return await anyio.create_tcp_listener(
                local_host=host, local_port=port, reuse_port=False
            )
        except OSError as error:
            reason = error.strerror or str(error)
            raise ServeError(f"cannot listen on {host}:{port}: {reason}") from None

    async def _serve_connection(self, sock: anyio.abc.SocketStream) -> None:
        host, peer = remote_of(sock)
        with self._addresses.holding(host) as within_limit:
            try:
                await self._serve_accepted(sock, peer, within_limit)
            except _HandshakeFailed as failure:
                log.info("%s: %s", peer, failure)
                await anyio.aclose_forcefully(sock)
            except Exception:
                log.exception("%s: connection failed", peer)

    async def _serve_accepted(
        self, sock: anyio.abc.SocketStream, peer: str, within_limit: bool
    ) -> None:
        stream: anyio.abc.ByteStream = sock
        if self.config.ssl_context is not None:
            stream = await self._tls(sock)
        handler = self._bearers.guard(self._handle_call)
        if not within_limit:
            limit = self._addresses.limit
            log.warning("%s: more than %d connections from this address", peer, limit)
            handler = self._refuse_crowded
        protocol = GrpcProtocol(
            client_side=False,
            limits=self.config.transport,
            first_header_blocks=self._first_header_blocks,
        )
        connection = Connection(
            stream, protocol, self._flusher, peer=peer, on_cut_off=self._count_cut_off
        )
        self._connections.add(connection)
        log.debug("%s connected", connection.peer)
        try:
            await connection.run(handler)
        finally:
            self._connections.discard(connection)
            log.debug("%s disconnected", connection.peer)
            if not self._connections and self._shutdown_requested.is_set():
                self._all_closed.set()

    async def _tls(self, sock: anyio.abc.SocketStream) -> anyio.abc.ByteStream:
        """The TLS handshake, within the handshake timeout."""
        assert self.config.ssl_context is not None
        try:
            with anyio.fail_after(self.config.transport.handshake_timeout):
                return await TLSStream.wrap(
                    sock,
                    server_side=True,
                    ssl_context=self.config.ssl_context,
                    standard_compatible=False,
                )
        except TimeoutError:
            raise _HandshakeFailed("no TLS handshake in time") from None
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as error:
            raise _HandshakeFailed(f"TLS handshake failed: {error}") from None

    async def _handle_call(self, stream: Stream) -> Status:
        request = stream.request
        assert request is not None
        service, method = request.service_name, request.method_name
        # Probes and discovery are open; chat and admin need a token when tokens are on.
        if service == HEALTH_SERVICE and method in ("Check", "Watch"):
            serve_health = health_check if method == "Check" else health_watch
            return await serve_health(stream, self.health)
        if service in REFLECTION_SERVICES and method == "ServerReflectionInfo":
            return await self._reflection.serve(stream, service.rpartition(".")[0])
        identity = None
        if self.config.tokens is not None:
            identity = self.config.tokens.name_for(stream.metadata)
            if identity is None:
                return statuses.unauthenticated()
        if (service, method) == (LEGACY_SERVICE, "JoinChat"):
            return await serve_legacy(stream, self._services, identity)
        if (service, method) == (V1_SERVICE, "Connect"):
            return await serve_v1(stream, self._services, identity)
        if (service, method) == (V1_SERVICE, "Post"):
            return await self._posts.serve(stream, identity)
        if (service, method) == (ADMIN_SERVICE, "ListRooms"):
            return await list_rooms(stream, self._roster)
        if (service, method) == (ADMIN_SERVICE, "ListMembers"):
            return await list_members(stream, self._roster)
        return statuses.unimplemented(f"/{service}/{method}")

    def _count_cut_off(self, reason: str) -> None:
        self.cut_offs[reason] += 1

    def _store_answered(self, ok: bool, seconds: float) -> None:
        self.health.store_answered(ok)
        if ok:
            self.metrics.store_write_seconds.observe(seconds)

    async def _refuse_crowded(self, stream: Stream) -> Status:
        stream.connection.close_gracefully()
        return statuses.too_many_connections(self.config.max_conns_per_addr)

    async def _keep_alive(self) -> None:
        """Ping silent connections; drop those that do not answer (one task for all)."""
        idle, timeout = self.config.keepalive_idle, self.config.keepalive_timeout
        while True:
            await anyio.sleep(min(idle, timeout) / 2)
            now = anyio.current_time()
            for connection in list(self._connections):
                connection.keepalive(now, idle, timeout)
            await self._probe_store()

    async def _probe_store(self) -> None:
        """Health follows the store also when no one is writing to it."""
        try:
            await self.store.head(DEFAULT_ROOM)
        except StoreError:
            self.health.store_answered(False)
        else:
            self.health.store_answered(True)

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

    async def _close_everything(self) -> None:
        """End every member with UNAVAILABLE and give the statuses time to be delivered."""
        self.health.shutting_down()
        self.hub.end_all(EndReason.SHUTTING_DOWN)
        if self._web is not None:
            self._web.close_all()
        for connection in list(self._connections):
            connection.end_calls(statuses.for_end(EndReason.SHUTTING_DOWN))
            connection.close_gracefully()
        with anyio.move_on_after(self.config.shutdown_grace):
            if self._connections:
                await self._all_closed.wait()
            if self._web is not None:
                await self._web.closed()
