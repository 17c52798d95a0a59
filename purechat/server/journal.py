"""The journal: drafts go to the store in batches, and are published once stored.

One task owns the store's write side. Drafts that arrive while a commit is running
wait and go together in the next one, so under load many messages share one commit,
while a lone message is committed at once. Publishing happens in commit order, which
is number order, so every member sees one order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat.core import Draft, ErrorCode, Hub, Member, Notice
from purechat.server.feed import Feed
from purechat.store import Appended, Store, StoreError

log = logging.getLogger("purechat.server")

# Drafts waiting for the store; senders wait (and so are slowed by flow control)
# beyond this.
QUEUE_SIZE = 4096
_Entry = tuple[Draft, Member, "InFlight"]
MAX_BATCH = 1024


class InFlight:
    """One member's drafts that the store has not answered yet.

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

    async def submit(self, draft: Draft, sender: Member, in_flight: InFlight) -> None:
        """Queue a draft; its sender gets an ack (or a refusal) once the store answers.

        Without yielding while there is room: a reader that yielded per message would
        hand the journal one message per scheduler pass, and every member's writer
        would wake once per message instead of once per batch.
        """
        in_flight.add()
        try:
            self._send.send_nowait((draft, sender, in_flight))
        except anyio.WouldBlock:
            await self._send.send((draft, sender, in_flight))

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._send.close()
        self._receive.close()

    async def run(self) -> None:
        """Commit and publish until cancelled (within `with journal:`)."""
        async for first in self._receive:
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._receive.receive_nowait())
                except anyio.WouldBlock:
                    break
            await self._commit(batch)

    async def _commit(self, batch: list[_Entry]) -> None:
        started = time.perf_counter()
        try:
            results = await self.store.append([draft for draft, _, _ in batch])
        except StoreError as error:
            self._observe(False, time.perf_counter() - started)
            log.error("%s; %d message(s) refused", error, len(batch))
            for draft, sender, in_flight in batch:
                notice = Notice(
                    ErrorCode.STORE_UNAVAILABLE,
                    "Message not sent: the server cannot store messages right now.",
                    draft.client_msg_id,
                )
                self.hub.refuse(sender, notice)
                in_flight.done()
            return
        self._observe(True, time.perf_counter() - started)
        for (draft, sender, in_flight), result in zip(batch, results, strict=True):
            if self._feed is None:
                self.hub.publish(draft, result.seq, duplicate=result.duplicate, sender=sender)
                in_flight.done()
            else:
                self._feed.when_delivered(
                    draft.room,
                    result.seq,
                    partial(self._ack, sender, draft.client_msg_id, result, in_flight),
                )

    def _ack(
        self, sender: Member, client_msg_id: str, result: Appended, in_flight: InFlight
    ) -> None:
        self.hub.acknowledge(sender, client_msg_id, result.seq, duplicate=result.duplicate)
        in_flight.done()
