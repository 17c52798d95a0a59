"""The web listener: the page and its WebSocket on their own port, in the chat server.

`WebServer.serve` runs in the chat server's task group (`task_group.start(...)` reports
the bound port) and each connection is a child task: TLS when the server has it (the
same certificate, with ALPN http/1.1), HTTP/1.1 for the page (http.py), then, once
upgraded, the WebSocket (socket.py) carrying one web member (member.py) through the
server's own hub, journal, pacer and token book. Limits are the server's: connections
per address, the handshake timeout (for TLS, each request and the join), message
sizes, keepalive, flood rules, and the slow-member rules through the member's delivery.

A connection's objects are freed by reference counting the moment it ends, whatever
the collector's thresholds (the server raises them): the accepted socket is read and
written through `AcyclicStream`, which breaks the one reference cycle a cancelled read
or write makes (see there), so no traceback keeps a socket, wsproto's buffers or a
session alive after its connection.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from anyio.streams.tls import TLSStream

from purechat import status as statuses
from purechat.core import EndReason
from purechat.errors import ConfigurationError
from purechat.server.auth import Admitted
from purechat.server.identity import Authenticator
from purechat.server.services import Services
from purechat.status import Status
from purechat.transport.accept import accept_forever, remote_of
from purechat.transport.addresses import AddressCounts
from purechat.transport.guard import SingleWriter
from purechat.transport.streams import AcyclicStream
from purechat.web.frames import web_encoder
from purechat.web.http import HttpConnection, Pages, UpgradeRules
from purechat.web.member import WebMembers, serve_web_member
from purechat.web.origin import is_loopback
from purechat.web.socket import SocketLimits, WebSocket

if TYPE_CHECKING:
    from purechat.server.config import ServerConfig

log = logging.getLogger("purechat.web")


class WebPortError(ConfigurationError):
    """The web port cannot be listened on; str() is a sentence."""


class WebServer:
    """See the module docstring."""

    def __init__(
        self,
        config: ServerConfig,
        services: Services,
        *,
        auth: Authenticator,
        admitted: Admitted,
        addresses: AddressCounts,
        on_cut_off: Callable[[str], None],
    ):
        """addresses: the server's connection counts per host, which this shares."""
        assert config.web_port is not None
        self._config = config
        self._addresses = addresses
        self._on_cut_off = on_cut_off
        self._pages = Pages()
        self._members = WebMembers(
            services=services,
            encode=web_encoder(config.limits.max_text_bytes),
            auth=auth,
            admitted=admitted,
            join_timeout=config.transport.handshake_timeout,
        )
        self._limits = SocketLimits(
            max_message_bytes=config.transport.max_message_bytes,
            write_timeout=config.transport.write_timeout,
            keepalive_idle=config.keepalive_idle,
            keepalive_timeout=config.keepalive_timeout,
            max_control_frames=config.transport.max_control_frames,
        )
        self._rules = UpgradeRules(
            tls=config.web_ssl_context is not None,
            allowed_origins=config.web_origins,
            loopback_only=_is_loopback_address(config.host),
            refusing=self._refusing,
            on_refused=on_cut_off,
        )
        self._sockets: set[WebSocket] = set()
        # Connections not (yet) a WebSocket: TLS, page requests, keep-alive waits.
        self._talking: set[anyio.CancelScope] = set()
        self._connections = 0
        self._closing = False
        self._accepting: anyio.CancelScope | None = None
        self._idle = anyio.Event()
        self._idle.set()

    @property
    def connection_count(self) -> int:
        return self._connections

    async def serve(self, *, task_status: TaskStatus[int] = TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; reports the bound port through task_status."""
        host, port = self._config.host, self._config.web_port
        assert port is not None
        try:
            listener = await anyio.create_tcp_listener(
                local_host=host, local_port=port, reuse_port=False
            )
        except OSError as error:
            reason = error.strerror or str(error)
            raise WebPortError(f"cannot serve the web page on {host}:{port}: {reason}") from None
        async with listener, anyio.create_task_group() as connections:
            with anyio.CancelScope() as self._accepting:
                async with anyio.create_task_group() as acceptors:
                    for sub in listener.listeners:
                        acceptors.start_soon(
                            partial(accept_forever, what="web"),
                            sub,
                            connections,
                            self._serve_connection,
                        )
                    task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await anyio.sleep_forever()

    def close_all(self) -> None:
        """Stop accepting, and end every session (members were ended by the hub)."""
        self._closing = True
        if self._accepting is not None:
            self._accepting.cancel()
        for socket in list(self._sockets):
            socket.end(statuses.for_end(EndReason.SHUTTING_DOWN))
        for scope in self._talking:
            scope.cancel()

    async def closed(self) -> None:
        """Wait until every connection is over."""
        await self._idle.wait()

    # -- connections ---------------------------------------------------------------

    def _refusing(self) -> Status | None:
        return statuses.for_end(EndReason.SHUTTING_DOWN) if self._closing else None

    async def _serve_connection(self, sock: anyio.abc.SocketStream) -> None:
        host, address = remote_of(sock)
        peer = f"web {address}"
        self._connections += 1
        self._idle = anyio.Event() if self._idle.is_set() else self._idle
        try:
            with self._addresses.holding(host) as within_limit:
                await self._serve_accepted(sock, peer, within_limit, host)
        except Exception:
            log.exception("%s: web connection failed", peer)
        finally:
            await anyio.aclose_forcefully(sock)
            self._connections -= 1
            if not self._connections:
                self._idle.set()

    async def _serve_accepted(
        self, sock: anyio.abc.SocketStream, peer: str, within_limit: bool, host: str
    ) -> None:
        """HTTP until the connection is a WebSocket (cancelled when shutdown begins),
        then the WebSocket."""
        upgraded = None
        with anyio.CancelScope() as talking:
            self._talking.add(talking)
            if self._closing:
                talking.cancel()
            try:
                upgraded = await self._talk(sock, peer, within_limit)
            finally:
                self._talking.discard(talking)
        if upgraded is not None:
            await self._run_socket(*upgraded, peer, host)

    async def _talk(
        self, sock: anyio.abc.SocketStream, peer: str, within_limit: bool
    ) -> tuple[anyio.abc.ByteStream, bytes, SingleWriter] | None:
        """TLS and HTTP until the connection becomes a WebSocket (its stream, the bytes
        after the handshake and its writer's guard), or is done (None)."""
        stream: anyio.abc.ByteStream = AcyclicStream(sock)
        if self._config.web_ssl_context is not None:
            tls = await self._tls(stream, peer)
            if tls is None:
                return None
            stream = tls
        guard = SingleWriter()
        http = HttpConnection(
            stream,
            peer=peer,
            pages=self._pages,
            rules=self._rules,
            request_timeout=self._config.transport.handshake_timeout,
            guard=guard,
        )
        if not within_limit:
            limit = self._addresses.limit
            log.warning("%s: more than %d connections from this address", peer, limit)
            await http.refuse(statuses.too_many_connections(limit))
            return None
        trailing = await http.serve()
        return None if trailing is None else (stream, trailing, guard)

    async def _run_socket(
        self,
        stream: anyio.abc.ByteStream,
        trailing: bytes,
        guard: SingleWriter,
        peer: str,
        host: str,
    ) -> None:
        socket = WebSocket(
            stream,
            peer=peer,
            address=host,
            limits=self._limits,
            trailing_data=trailing,
            on_cut_off=self._on_cut_off,
            guard=guard,
        )
        self._sockets.add(socket)
        log.debug("%s: WebSocket open", peer)
        try:
            await socket.run(lambda opened: serve_web_member(opened, self._members))
        finally:
            self._sockets.discard(socket)
            log.debug("%s: WebSocket closed", peer)

    async def _tls(self, sock: anyio.abc.ByteStream, peer: str) -> TLSStream | None:
        """The TLS handshake, within the handshake timeout; None when it failed."""
        context = self._config.web_ssl_context
        assert context is not None
        try:
            with anyio.fail_after(self._config.transport.handshake_timeout):
                return await TLSStream.wrap(
                    sock, server_side=True, ssl_context=context, standard_compatible=False
                )
        except TimeoutError:
            log.info("%s: no TLS handshake in time", peer)
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as error:
            log.info("%s: TLS handshake failed: %s", peer, error)
        return None


def _is_loopback_address(host: str) -> bool:
    """The listener is bound to loopback only (127.0.0.1, ::1, localhost)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return is_loopback(host)
