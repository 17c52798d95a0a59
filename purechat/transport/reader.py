"""Reads one connection's bytes, waiting for the socket before reading it.

A receiving member's connection is mostly quiet, but a gRPC client answers what it
receives: grpc-go sends a BDP PING and WINDOW_UPDATEs as data arrives. So a busy room
means one small read per delivery on every connection. A stream's `receive` tries the
socket first and waits only when it is empty, which on a quiet socket is a failed
`recv` (and trio's two extra scheduling points around it) before every wait. On plain
TCP this reader waits for readiness first unless the last read filled its buffer (then
more is likely waiting), which makes a small read one system call instead of two.
TLS keeps its stream's own `receive`, since ready bytes on the socket are not ready
plaintext, and so does any event loop but trio's (asyncio's socket streams watch their
socket themselves, and a second watcher would fight them).
"""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import anyio.lowlevel
import sniffio

from purechat.transport import streams


class SocketReader:
    """`receive` for a connection: the next bytes, or EndOfStream / BrokenResourceError."""

    def __init__(self, sock: anyio.abc.ByteStream, raw: socket.socket | None, size: int):
        """raw: sock's own socket when sock is plain TCP, else None."""
        self._sock = sock
        self._size = size
        self._raw = raw if sniffio.current_async_library() == "trio" else None
        # The last read filled the buffer, so the socket probably holds more.
        self._more_likely = False

    async def receive(self) -> bytes:
        raw = self._raw
        if raw is None:
            return await streams.receive(self._sock, self._size)
        if self._more_likely:
            # Read at once, but let everyone else run first, as waiting would.
            await anyio.lowlevel.checkpoint()
        else:
            await anyio.wait_readable(raw)
        while True:
            try:
                data = raw.recv(self._size)
            except BlockingIOError:
                await anyio.wait_readable(raw)
                continue
            except OSError as error:
                raise anyio.BrokenResourceError from error
            if not data:
                raise anyio.EndOfStream
            self._more_likely = len(data) == self._size
            return data
