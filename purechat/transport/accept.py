"""Accepting connections: the loop every listener runs, and who is on the other end."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import anyio.abc

log = logging.getLogger("purechat.transport")

# How long to wait before accepting again after accept failed (out of descriptors).
ACCEPT_RETRY_SECONDS = 0.1


async def accept_forever(
    listener: anyio.abc.Listener[anyio.abc.SocketStream],
    connections: anyio.abc.TaskGroup,
    serve: Callable[[anyio.abc.SocketStream], Coroutine[Any, Any, None]],
    *,
    what: str,
) -> None:
    """Serve each accepted connection in its own task of `connections`, until cancelled.

    A failed accept (out of file descriptors and the like) is logged and retried after
    a moment rather than ending the listener; `what` names it in that log line.
    """
    while True:
        try:
            sock = await listener.accept()  # type: ignore[attr-defined]
        except OSError as error:
            log.warning("%s: accept failed: %s", what, error)
            await anyio.sleep(ACCEPT_RETRY_SECONDS)
            continue
        connections.start_soon(serve, sock)


def remote_of(sock: anyio.abc.ByteStream) -> tuple[str, str]:
    """The peer's host (what per-address limits count) and how logs name the peer
    (host:port, or [host]:port for IPv6); ("unknown", "peer") when it has no address."""
    try:
        address = sock.extra(anyio.abc.SocketAttribute.remote_address)
    except anyio.TypedAttributeLookupError:
        return "unknown", "peer"
    if isinstance(address, tuple) and address:
        host, port = str(address[0]), address[1]
        return host, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return str(address), str(address)
