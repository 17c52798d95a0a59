"""What a server is told to be: addresses, limits, TLS, tokens, the web port.

Its own module so that the parts a server starts (the web listener) can read it
without importing the server.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from purechat.core import Limits
from purechat.server.auth import TokenBook
from purechat.server.delivery import DEFAULT_BUDGET, DEFAULT_STALL_TIMEOUT
from purechat.server.identity import AccountsConfig
from purechat.server.passwords import HashCost
from purechat.transport import TransportLimits


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    limits: Limits = field(default_factory=Limits)
    transport: TransportLimits = field(default_factory=TransportLimits)
    # When a member is too slow: no progress on its backlog for this long, or a
    # backlog over this many bytes (and 1/64 of that makes its room lag).
    slow_member_timeout: float = DEFAULT_STALL_TIMEOUT
    slow_member_bytes: int = DEFAULT_BUDGET
    # How long shutdown waits for members to receive their final status.
    shutdown_grace: float = 3.0
    # Recent lobby messages sent to an original-contract client when it arrives.
    legacy_history: int = 20
    # TLS for every connection when set (with ALPN h2, as gRPC clients require).
    ssl_context: ssl.SSLContext | None = None
    # Bearer tokens every call must carry, when set; names come from them.
    tokens: TokenBook | None = None
    # Connections one client address may hold at once; 0 for no limit.
    max_conns_per_addr: int = 64
    # A connection silent this long is pinged; one that does not answer in
    # keepalive_timeout more is removed, so a vanished peer goes within a minute.
    keepalive_idle: float = 30.0
    keepalive_timeout: float = 20.0
    # Prometheus metrics over HTTP on this port (0 picks one), when set.
    metrics_port: int | None = None
    # With a store shared by several servers: how long a server that stopped without
    # a word keeps its members listed (it renews that three times as often).
    presence_ttl: float = 15.0
    # How long a stopping server waits for the shared store to hear its members left.
    retire_timeout: float = 3.0
    # The web page and its WebSocket on this port (0 picks one), when set (purechat/web),
    # with TLS when set (the server's certificate, ALPN http/1.1), and the origins
    # besides the page's own whose pages may open sessions (--web-origin, normalised).
    web_port: int | None = None
    web_ssl_context: ssl.SSLContext | None = None
    web_origins: tuple[str, ...] = ()
    # Accounts: guests, registration, admins, how long a login lasts; the cost of a
    # password hash (tests make it cheap).
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    password_cost: HashCost = field(default_factory=HashCost)
