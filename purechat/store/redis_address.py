"""--store URLs for Redis: one Redis, or a Redis Cluster, and how durable a send must be."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import glide

from purechat.errors import StoreError

SINGLE_SCHEMES = ("redis", "rediss")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
# A send waits for at most this many replicas (a shard of more is unusual).
MOST_REPLICAS = 5


@dataclass(frozen=True)
class RedisAddress:
    """redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS, where
    ?ssl_ca_certs=FILE (as redis-py spells it) names the CA to trust instead of the
    system's; redis+cluster://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...] (rediss+cluster://
    for TLS) for a Redis Cluster, found from any of its nodes. ?replicas=N (both kinds):
    a message is acknowledged only once N replicas have it (WAIT N)."""

    nodes: tuple[tuple[str, int], ...]
    tls: bool
    password: str | None
    database: int
    username: str | None = None
    ca_file: Path | None = None
    cluster: bool = False
    replicas: int = 0

    @property
    def host(self) -> str:
        return self.nodes[0][0]

    @property
    def port(self) -> int:
        return self.nodes[0][1]

    @property
    def where(self) -> str:
        """The nodes as an operator wrote them, for sentences."""
        return ",".join(f"{_bracketed(host)}:{port}" for host, port in self.nodes)

    @property
    def scheme(self) -> str:
        return ("rediss" if self.tls else "redis") + ("+cluster" if self.cluster else "")

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """The parts of a Redis URL; StoreError with a sentence when it is malformed."""
        shown = _hide_password(url)  # errors name the URL, but never its password
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in SINGLE_SCHEMES + CLUSTER_SCHEMES:
            raise StoreError(
                f"{shown!r} is not redis://HOST:PORT[/DB], rediss://..., "
                "redis+cluster://HOST:PORT[,HOST:PORT...] or rediss+cluster://..."
            )
        cluster = scheme in CLUSTER_SCHEMES
        head, _, query_text = rest.partition("?")
        netloc, _, path = head.partition("/")
        credentials, at, hosts = netloc.rpartition("@")
        username, password = (None, None)
        if at:
            user, colon, secret = credentials.partition(":")
            username = unquote(user) if user else None
            password = unquote(secret) if colon and secret else None
        nodes = tuple(_node(part, shown, cluster) for part in hosts.split(","))
        if not cluster and len(nodes) > 1:
            raise StoreError(f"{shown!r}: several nodes are for redis+cluster:// only")
        path = path.strip("/")
        if path and not path.isdigit():
            raise StoreError(f"{shown!r}: the database must be a number")
        if cluster and path not in ("", "0"):
            raise StoreError(f"{shown!r}: a Redis Cluster has database 0 only")
        query = parse_qs(query_text, keep_blank_values=True)
        if set(query) - {"ssl_ca_certs", "replicas"}:
            raise StoreError(
                f"{shown!r}: the only options a Redis URL takes are ssl_ca_certs and replicas"
            )
        tls = scheme.startswith("rediss")
        if "ssl_ca_certs" in query and not tls:
            raise StoreError(f"{shown!r}: ssl_ca_certs needs rediss://")
        replicas = query.get("replicas", ["0"])[-1]
        if not replicas.isdigit() or int(replicas) > MOST_REPLICAS:
            raise StoreError(
                f"{shown!r}: replicas must be a number from 0 to {MOST_REPLICAS} (how many "
                "replicas must have a message before it is acknowledged)"
            )
        return cls(
            nodes,
            tls,
            password,
            int(path or 0),
            username,
            Path(query["ssl_ca_certs"][-1]) if "ssl_ca_certs" in query else None,
            cluster,
            int(replicas),
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


def _node(text: str, shown: str, cluster: bool) -> tuple[str, int]:
    """(host, port) of one HOST[:PORT] (an IPv6 address in brackets)."""
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port
    except ValueError as error:  # an unclosed [IPv6 bracket, or a port out of range
        if "bracket" in str(error) or "IPv6" in str(error):
            raise StoreError(
                f"{shown!r} is not a Redis URL: an IPv6 address goes in brackets, as in "
                "redis://[::1]:6379/0"
            ) from None
        port = -1
    if not parts.hostname:
        raise StoreError(f"{shown!r}: a node is missing its host ({text!r})")
    if port is not None and not 0 < port <= 65535:
        raise StoreError(f"{shown!r}: the port must be a number from 1 to 65535")
    if cluster and port is None:
        raise StoreError(f"{shown!r}: every cluster node needs its port ({text!r})")
    return parts.hostname, port or 6379


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _hide_password(url: str) -> str:
    """url with its password (between the first ':' after '//' and '@') shown as ***."""
    scheme, sep, rest = url.partition("//")
    credentials, at, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}{sep}{user}:***@{host}" if at and colon else url
