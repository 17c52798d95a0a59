"""The gRPC port: a listener, its connections, and which service answers each call.

`GrpcListener` knows the chat's gRPC services and nothing of the other ports: the
server that owns it (`purechat.app.ChatServer`) builds the parts they share and runs
every listener beside it.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from functools import partial

import anyio
import anyio.abc
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from anyio.streams.stapled import MultiListener
from anyio.streams.tls import TLSStream

from purechat import status as statuses
from purechat.core import Identity
from purechat.errors import ConfigurationError, StoreError, TransportError, Unauthenticated
from purechat.ops.health import HEALTH_SERVICE, HealthState
from purechat.ops.health import check as health_check
from purechat.ops.health import watch as health_watch
from purechat.ops.reflection import VERSIONS as REFLECTION_VERSIONS
from purechat.ops.reflection import Reflection
from purechat.server.accounts import ACCOUNTS_SERVICE, serve_accounts
from purechat.server.admin import ADMIN_SERVICE, AdminService
from purechat.server.auth import Admitted, presented_token
from purechat.server.config import ServerConfig
from purechat.server.identity import Authenticator
from purechat.server.members import serve_legacy, serve_v1
from purechat.server.post import PostService
from purechat.server.reads import READS, serve_read
from purechat.server.roster import Roster
from purechat.server.services import Services
from purechat.status import Status
from purechat.transport import Connection, FirstHeaderBlocks, GrpcProtocol, Stream
from purechat.transport.accept import accept_forever, remote_of
from purechat.transport.addresses import AddressCounts

log = logging.getLogger("purechat.server")

LEGACY_SERVICE = "chat.ChatService"
V1_SERVICE = "purechat.v1.Chat"
CHAT_SERVICES = frozenset({LEGACY_SERVICE, V1_SERVICE, ACCOUNTS_SERVICE, ADMIN_SERVICE})
REFLECTION_SERVICES = frozenset(f"{version}.ServerReflection" for version in REFLECTION_VERSIONS)


class ServeError(ConfigurationError):
    """The server cannot start; str() is a sentence for a person."""


class _HandshakeFailed(TransportError):
    """A new connection did not get as far as HTTP/2."""


class GrpcListener:
    """Serves chat.ChatService, purechat.v1, health and reflection on one port.

    `port = await task_group.start(listener.serve)`; `close()` stops accepting and
    closes every connection gracefully once its calls have ended.
    """

    def __init__(
        self,
        config: ServerConfig,
        services: Services,
        *,
        health: HealthState,
        roster: Roster,
        addresses: AddressCounts,
        auth: Authenticator,
        admitted: Admitted,
        on_cut_off: Callable[[str], None],
    ):
        self.config = config
        self._services = services
        self._health = health
        self._admin = AdminService(services, roster)
        self._auth = auth
        self._admitted = admitted
        self._addresses = addresses
        self._on_cut_off = on_cut_off
        self._first_header_blocks = FirstHeaderBlocks()
        self._reflection = Reflection(
            [LEGACY_SERVICE, V1_SERVICE, ACCOUNTS_SERVICE, ADMIN_SERVICE, HEALTH_SERVICE]
            + [f"{version}.ServerReflection" for version in REFLECTION_VERSIONS]
        )
        self._posts = PostService(services)
        self._connections: set[Connection] = set()
        self._accepting: anyio.CancelScope | None = None
        self._closing = False
        self._all_closed = anyio.Event()

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    async def serve(
        self,
        connections: anyio.abc.TaskGroup,
        *,
        task_status: TaskStatus[int] = TASK_STATUS_IGNORED,
    ) -> None:
        """Accept until close(), each connection a task of `connections`; reports the
        bound port through task_status."""
        listener = await self._listen()
        async with listener:
            with anyio.CancelScope() as self._accepting:
                if self._closing:
                    self._accepting.cancel()
                async with anyio.create_task_group() as acceptors:
                    for sub in listener.listeners:
                        accept = partial(accept_forever, what="gRPC")
                        acceptors.start_soon(accept, sub, connections, self._serve_connection)
                    task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))

    def close(self, status: Status) -> None:
        """Stop accepting; end every call with status and close each connection once
        its calls have ended."""
        self._closing = True
        if self._accepting is not None:
            self._accepting.cancel()
        for connection in list(self._connections):
            connection.end_calls(status)
            connection.close_gracefully()
        if not self._connections:
            self._all_closed.set()

    async def closed(self) -> None:
        """Wait until every connection is over (after close())."""
        await self._all_closed.wait()

    async def keep_alive(self) -> None:
        """Ping silent connections; drop those that do not answer (one task for all).

        Nothing here waits on anything but the clock: a slow store never delays it.
        """
        idle, timeout = self.config.keepalive_idle, self.config.keepalive_timeout
        while True:
            await anyio.sleep(min(idle, timeout) / 2)
            now = anyio.current_time()
            for connection in list(self._connections):
                connection.keepalive(now, idle, timeout)

    # -- connections -------------------------------------------------------------------

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
        handler = self._handle_call
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
            stream,
            protocol,
            self._services.flusher,
            peer=peer,
            address=remote_of(sock)[0],
            on_cut_off=self._on_cut_off,
        )
        self._connections.add(connection)
        log.debug("%s connected", connection.peer)
        try:
            if self._closing:
                connection.close_gracefully()
            await connection.run(handler)
        finally:
            self._connections.discard(connection)
            log.debug("%s disconnected", connection.peer)
            if not self._connections and self._closing:
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
            return await serve_health(stream, self._health)
        if service in REFLECTION_SERVICES and method == "ServerReflectionInfo":
            return await self._reflection.serve(stream, service.rpartition(".")[0])
        if service == ACCOUNTS_SERVICE:
            return await serve_accounts(stream, method, self._auth)
        services = self._services
        try:
            admission = await self._auth.identify(
                presented_token(stream.metadata), stream.connection.address
            )
        except Unauthenticated as refused:
            return statuses.for_error(refused)
        except StoreError as error:
            services.store_failed(error, "a call's session check")
            return statuses.for_error(error)
        identity, peer = admission.identity, stream.connection.peer
        with self._admitted.holding(stream, identity, admission.token, peer):
            return await self._route(stream, service, method, identity)

    async def _route(self, stream: Stream, service: str, method: str, identity: Identity) -> Status:
        if (service, method) == (LEGACY_SERVICE, "JoinChat"):
            return await serve_legacy(stream, self._services, identity)
        if (service, method) == (V1_SERVICE, "Connect"):
            return await serve_v1(stream, self._services, identity)
        if (service, method) == (V1_SERVICE, "Post"):
            return await self._posts.serve(stream, identity)
        if (service, method) == (V1_SERVICE, "Moderate"):
            return await self._posts.serve_moderate(stream, identity)
        if service == V1_SERVICE and method in ("Edit", "Delete", "React"):
            return await self._posts.serve_change(stream, identity, method)
        if service == V1_SERVICE and method in READS:
            return await serve_read(stream, method, self._services, identity)
        if service == ADMIN_SERVICE:
            return await self._admin.serve(stream, method, identity)
        return statuses.unimplemented(f"/{service}/{method}")

    async def _refuse_crowded(self, stream: Stream) -> Status:
        stream.connection.close_gracefully()
        return statuses.too_many_connections(self.config.max_conns_per_addr)
