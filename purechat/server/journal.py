"""The journal: messages go to the store in batches, and are published once stored.

One task owns the store's write side. Messages that arrive while a commit is running
wait and go together in the next one, so under load many messages share one commit,
while a lone message is committed at once. Publishing happens in commit order, which
is number order, so every member sees one order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat.core import EndReason, EntryKind, ErrorCode, Hub, Member, Message, Notice, Published
from purechat.core.conversations import is_conversation
from purechat.core.living import as_delivered
from purechat.server.feed import Feed
from purechat.store import Appended, OutcomeUnknown, Store, StoreDamaged, StoreError

log = logging.getLogger("purechat.server")

# Messages waiting for the store; senders wait (and so are slowed by flow control)
# beyond this many, or beyond this many bytes of text (the memory stream's own bound
# is never reached: submit waits for room first).
QUEUE_SIZE = 4096
QUEUE_BYTES = 1024 * 1024
# One commit takes at most this many messages, or this many bytes of text: no single
# batch hands a member more than a small part of its backlog budget.
MAX_BATCH = 1024
MAX_BATCH_BYTES = 256 * 1024


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


@dataclass(frozen=True, slots=True)
class _Entry:
    message: Message
    sender: Member
    in_flight: InFlight
    # The sender's send generation when it posted the message (see Member).
    generation: int


_NOT_STORED = "Message not sent: the server cannot store messages right now."
_STALE = "Message not sent: an earlier message was not stored; send them again in order."
_UNKNOWN = (
    "The server could not tell whether this message was stored; send it again with the "
    "same id to find out."
)


class Journal:
    def __init__(
        self,
        hub: Hub,
        store: Store,
        observe: StoreObserver | None = None,
        feed: Feed | None = None,
        *,
        audit: Callable[[Message], Awaitable[None]] | None = None,
        tell_peer: Callable[[Message], Awaitable[None]] | None = None,
    ):
        """observe(ok, seconds) hears how every store write went (health, metrics).

        With a feed (a store shared by several servers), the journal only stores and
        acks: broadcasting is the feed's, in the shared log's order.
        """
        self.hub = hub
        self.store = store
        self._observe = observe or (lambda ok, seconds: None)
        self._feed = feed
        # Hears every moderation entry once stored (the audit log).
        self._audit = audit
        # Hears every message stored in a conversation, numbered (its peer is told).
        self._tell_peer = tell_peer
        self._send: MemoryObjectSendStream[_Entry]
        self._receive: MemoryObjectReceiveStream[_Entry]
        self._send, self._receive = anyio.create_memory_object_stream[_Entry](QUEUE_SIZE)
        self._queued_bytes = 0
        self._drained: anyio.Event | None = None

    async def submit(self, message: Message, sender: Member, in_flight: InFlight) -> None:
        """Queue a message; its sender gets an ack (or a refusal) once the store answers.

        Without yielding while there is room: a reader that yielded per message would
        hand the journal one message per scheduler pass, and every member's writer
        would wake once per message instead of once per batch. It waits only for room,
        before counting anything, so a reader cancelled while it waits (its client
        reset, or it was evicted) leaves every count as it found it; from the moment
        there is room, counting and queueing happen together, with no await between.
        """
        while self._full():
            self._drained = self._drained or anyio.Event()
            await self._drained.wait()
        self._send.send_nowait(_Entry(message, sender, in_flight, sender.send_generation))
        in_flight.add()
        self._queued_bytes += len(message.text)

    def _full(self) -> bool:
        return (
            self._queued_bytes > QUEUE_BYTES
            or self._send.statistics().current_buffer_used >= QUEUE_SIZE
        )

    @property
    def queued_bytes(self) -> int:
        """Bytes of text waiting for the store (for tests and metrics)."""
        return self._queued_bytes

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._send.close()
        self._receive.close()

    async def run(self) -> None:
        """Commit and publish until cancelled (within `with journal:`)."""
        async for first in self._receive:
            await self._commit(self._batch_from(first))
            del first  # not held while waiting: a departed sender goes at once

    def _batch_from(self, first: _Entry) -> list[_Entry]:
        """first and what else is queued, up to a batch's bounds; room made for senders."""
        batch = [first]
        size = len(first.message.text)
        while len(batch) < MAX_BATCH and size < MAX_BATCH_BYTES:
            try:
                entry = self._receive.receive_nowait()
            except anyio.WouldBlock:
                break
            batch.append(entry)
            size += len(entry.message.text)
        self._queued_bytes -= size
        if self._drained is not None and not self._full():
            self._drained.set()
            self._drained = None
        return batch

    async def _commit(self, batch: list[_Entry]) -> None:
        # Posted before one of their sender's messages failed: storing them now would
        # put them ahead of it. The sender sends them again, after it.
        fresh = [e for e in batch if e.generation == e.sender.send_generation]
        for entry in batch:
            if entry.generation != entry.sender.send_generation:
                self._refuse(entry, ErrorCode.STORE_UNAVAILABLE, _STALE)
        if not fresh:
            return
        started = time.perf_counter()
        try:
            results = await self.store.append([entry.message for entry in fresh])
        except StoreError as error:
            self._observe(False, time.perf_counter() - started)
            unknown = isinstance(error, OutcomeUnknown)
            what = "may not have been stored" if unknown else "were refused"
            log.error("%s; %d message(s) %s", error, len(fresh), what)
            for entry in fresh:
                if isinstance(error, StoreDamaged):
                    # Retrying cannot help: the sender is told so and stops.
                    self.hub.evict(entry.sender, EndReason.STORE_DAMAGED)
                    entry.in_flight.done()
                elif unknown:
                    self._refuse(entry, ErrorCode.OUTCOME_UNKNOWN, _UNKNOWN)
                else:
                    self._refuse(entry, ErrorCode.STORE_UNAVAILABLE, _NOT_STORED)
            return
        self._observe(True, time.perf_counter() - started)
        if self._audit is not None:
            for entry, result in zip(fresh, results, strict=True):
                if entry.message.kind is EntryKind.MODERATION and not result.duplicate:
                    await self._audit(entry.message)
        if self._feed is None:
            self._publish(fresh, results)
        else:
            for entry, result in zip(fresh, results, strict=True):
                message, sender, in_flight = entry.message, entry.sender, entry.in_flight
                self._feed.saw_epoch(message.room, result.epoch)
                self._feed.when_delivered(
                    message.room,
                    result.seq,
                    partial(self._ack, sender, message.client_msg_id, result, in_flight),
                )
        if self._tell_peer is not None:
            # After publishing: the senders' acks do not wait for it.
            for entry, result in zip(fresh, results, strict=True):
                message = entry.message
                if (
                    message.kind is EntryKind.MESSAGE
                    and is_conversation(message.room)
                    and not result.duplicate
                ):
                    await self._tell_peer(message.numbered(result.seq))

    def _publish(self, fresh: list[_Entry], results: Sequence[Appended]) -> None:
        """Without a feed this server is the only one: publish the batch at once."""
        published: list[Published] = []
        for entry, result in zip(fresh, results, strict=True):
            room = entry.message.room
            if self.hub.lost_log(room, result.epoch):
                # What was stored before the store lost the log goes out first.
                self.hub.publish_all(published)
                published = []
            if self.hub.reset(room, result.epoch):
                log.error("the store lost the log of room %s; numbering starts again", room)
            stored = entry.message.numbered(result.seq)
            if result.target is not None:
                stored = as_delivered(stored, result.target)
            published.append(Published(stored, result.duplicate, entry.sender))
        self.hub.publish_all(published)
        for entry in fresh:
            entry.in_flight.done()

    def _refuse(self, entry: _Entry, code: ErrorCode, text: str) -> None:
        notice = Notice(code, text, entry.message.client_msg_id)
        self.hub.refuse(entry.sender, notice, entry.generation)
        entry.in_flight.done()

    def _ack(
        self, sender: Member, client_msg_id: str, result: Appended, in_flight: InFlight
    ) -> None:
        self.hub.acknowledge(sender, client_msg_id, result.seq, duplicate=result.duplicate)
        in_flight.done()
