"""The journal: messages go to the store in batches, and are published once stored.

One task owns the store's write side. Messages that arrive while a commit is running
wait and go together in the next one, so under load many messages share one commit,
while a lone message is committed at once. Publishing happens in commit order, which
is number order, so every member sees one order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat.core import ErrorCode, Hub, Member, Message, Notice
from purechat.server.feed import Feed
from purechat.store import Appended, Store, StoreError

log = logging.getLogger("purechat.server")

# Messages waiting for the store; senders wait (and so are slowed by flow control)
# beyond this many, or beyond this many bytes of text.
QUEUE_SIZE = 4096
QUEUE_BYTES = 1024 * 1024
# One commit takes at most this many messages, or this many bytes of text: no single
# batch hands a member more than a small part of its backlog budget.
MAX_BATCH = 1024
MAX_BATCH_BYTES = 256 * 1024
_Entry = tuple[Message, Member, "InFlight"]


class InFlight:
    """One member's messages that the store has not answered yet.

    A client that half-closes after sending is owed its own messages back: the call
    ends only once these are published.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle: anyio.Event | None = None

    def add(self) -> None:
        self.count += 1

    def done(self) -> None:
        self.count -= 1
        if not self.count and self._idle is not None:
            self._idle.set()

    async def wait_idle(self) -> None:
        while self.count:
            self._idle = anyio.Event()
            await self._idle.wait()


StoreObserver = Callable[[bool, float], None]


class Journal:
    def __init__(
        self,
        hub: Hub,
        store: Store,
        observe: StoreObserver | None = None,
        feed: Feed | None = None,
    ):
        """observe(ok, seconds) hears how every store write went (health, metrics).

        With a feed (a store shared by several servers), the journal only stores and
        acks: broadcasting is the feed's, in the shared log's order.
        """
        self.hub = hub
        self.store = store
        self._observe = observe or (lambda ok, seconds: None)
        self._feed = feed
        self._send: MemoryObjectSendStream[_Entry]
        self._receive: MemoryObjectReceiveStream[_Entry]
        self._send, self._receive = anyio.create_memory_object_stream[_Entry](QUEUE_SIZE)
        self._queued_bytes = 0
        self._drained: anyio.Event | None = None

    async def submit(self, message: Message, sender: Member, in_flight: InFlight) -> None:
        """Queue a message; its sender gets an ack (or a refusal) once the store answers.

        Without yielding while there is room: a reader that yielded per message would
        hand the journal one message per scheduler pass, and every member's writer
        would wake once per message instead of once per batch.
        """
        while self._queued_bytes > QUEUE_BYTES:
            self._drained = self._drained or anyio.Event()
            await self._drained.wait()
        in_flight.add()
        self._queued_bytes += len(message.text)
        try:
            self._send.send_nowait((message, sender, in_flight))
        except anyio.WouldBlock:
            await self._send.send((message, sender, in_flight))

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._send.close()
        self._receive.close()

    async def run(self) -> None:
        """Commit and publish until cancelled (within `with journal:`)."""
        async for first in self._receive:
            batch = [first]
            size = len(first[0].text)
            while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
                try:
                    entry = self._receive.receive_nowait()
                except anyio.WouldBlock:
                    break
                batch.append(entry)
                size += len(entry[0].text)
            self._queued_bytes -= size
            if self._drained is not None and self._queued_bytes <= QUEUE_BYTES:
                self._drained.set()
                self._drained = None
            await self._commit(batch)

    async def _commit(self, batch: list[_Entry]) -> None:
        started = time.perf_counter()
        try:
            results = await self.store.append([message for message, _, _ in batch])
        except StoreError as error:
            self._observe(False, time.perf_counter() - started)
            log.error("%s; %d message(s) refused", error, len(batch))
            for message, sender, in_flight in batch:
                notice = Notice(
                    ErrorCode.STORE_UNAVAILABLE,
                    "Message not sent: the server cannot store messages right now.",
                    message.client_msg_id,
                )
                self.hub.refuse(sender, notice)
                in_flight.done()
            return
        self._observe(True, time.perf_counter() - started)
        for (message, sender, in_flight), result in zip(batch, results, strict=True):
            if self._feed is None:
                stored = replace(message, seq=result.seq)
                self.hub.publish(stored, duplicate=result.duplicate, sender=sender)
                in_flight.done()
            else:
                self._feed.when_delivered(
                    message.room,
                    result.seq,
                    partial(self._ack, sender, message.client_msg_id, result, in_flight),
                )

    def _ack(
        self, sender: Member, client_msg_id: str, result: Appended, in_flight: InFlight
    ) -> None:
        self.hub.acknowledge(sender, client_msg_id, result.seq, duplicate=result.duplicate)
        in_flight.done()
