"""A TCP proxy of the tests between one purechat server and its store, on loopback.

It forwards, adds latency, or black-holes: keeps every connection open and drops every
byte both ways, as a cut cable or a dead switch does (SIGSTOP is not that: a stopped
Redis still holds its sockets and queues what it is sent). A connection that lost bytes
cannot go on once the link is mended (the stream has a hole in it: a real one would
have been retransmitted or timed out), so mending closes those; new connections work.

The server's store reaches the proxy through glide's address resolver: every node
address the store is given or discovers is mapped to the proxy's port for it. The proxy
runs in a thread of its own, with its own trio loop: glide connects (and a server's
store opens) without yielding to the test's loop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import trio
import trio.lowlevel

READ_SIZE = 65536


@dataclass(eq=False)
class _Pair:
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    holed: bool = False  # bytes were dropped: the streams cannot go on after mending


class Link:
    def __init__(self, targets: Sequence[int]):
        self.targets = list(targets)
        # target port -> the proxy's port for it; written before the store opens, only
        # read after (glide calls resolve from threads of its own).
        self.ports: dict[int, int] = {}
        self.delay = 0.0
        self.cut = False
        self._open: set[_Pair] = set()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.CancelScope | None = None

    @contextmanager
    def running(self) -> Iterator[Link]:
        """The proxy, in its thread, for the block's time."""
        ready = threading.Event()
        thread = threading.Thread(target=trio.run, args=(self._main, ready), daemon=True)
        thread.start()
        ready.wait(10)
        try:
            yield self
        finally:
            if self._token is not None:
                self._token.run_sync_soon(self._shut)
            thread.join(10)

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        """glide's address resolver: a node's address to the proxy's."""
        return (host, self.ports.get(port, port))

    def black_hole(self) -> None:
        """Cut the link: connections stay open, no byte gets through either way."""
        self.cut = True

    def mend(self) -> None:
        """Let bytes through again; connections that lost some are closed first (in
        the proxy's loop, before any byte passes: a pump checks for cancellation before
        it sends)."""
        assert self._token is not None
        self._token.run_sync_soon(self._mend)

    async def _main(self, ready: threading.Event) -> None:
        self._token = trio.lowlevel.current_trio_token()
        with trio.CancelScope() as self._stop:
            async with trio.open_nursery() as nursery:
                for target in self.targets:
                    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
                    self.ports[target] = listeners[0].socket.getsockname()[1]
                    handler = partial(self._carry, target)
                    nursery.start_soon(trio.serve_listeners, handler, listeners)
                ready.set()

    def _shut(self) -> None:
        assert self._stop is not None
        self._stop.cancel()

    def _mend(self) -> None:
        for pair in list(self._open):
            if pair.holed:
                pair.scope.cancel()
        self.cut = False

    async def _carry(self, target: int, client: trio.SocketStream) -> None:
        async with client:
            try:
                upstream = await trio.open_tcp_stream("127.0.0.1", target)
            except OSError:
                return
            async with upstream:
                pair = _Pair()
                self._open.add(pair)
                try:
                    with pair.scope:
                        async with trio.open_nursery() as pumps:
                            pumps.start_soon(self._pump, pair, client, upstream)
                            pumps.start_soon(self._pump, pair, upstream, client)
                finally:
                    self._open.discard(pair)

    async def _pump(self, pair: _Pair, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        try:
            while data := await source.receive_some(READ_SIZE):
                if self.cut:
                    pair.holed = True
                    continue
                if self.delay:
                    await trio.sleep(self.delay)
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        pair.scope.cancel()  # one side is gone: so is the connection
