"""The journal: drafts go to the store in batches, and are published once stored.

One task owns the store's write side. Drafts that arrive while a commit is running
wait and go together in the next one, so under load many messages share one commit,
while a lone message is committed at once. Publishing happens in commit order, which
is number order, so every member sees one order.
"""

from __future__ import annotations

import logging

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from purechat.core import Draft, ErrorCode, Hub, Member, Notice
from purechat.store import Store, StoreError

log = logging.getLogger("purechat.server")

# Drafts waiting for the store; senders wait (and so are slowed by flow control)
# beyond this.
QUEUE_SIZE = 4096
MAX_BATCH = 1024


class Journal:
    def __init__(self, hub: Hub, store: Store):
        self.hub = hub
        self.store = store
        self._send: MemoryObjectSendStream[tuple[Draft, Member]]
        self._receive: MemoryObjectReceiveStream[tuple[Draft, Member]]
        self._send, self._receive = anyio.create_memory_object_stream[tuple[Draft, Member]](
            QUEUE_SIZE
        )

    async def submit(self, draft: Draft, sender: Member) -> None:
        """Queue a draft; its sender gets an ack (or a refusal) once the store answers.

        Without yielding while there is room: a reader that yielded per message would
        hand the journal one message per scheduler pass, and every member's writer
        would wake once per message instead of once per batch.
        """
        try:
            self._send.send_nowait((draft, sender))
        except anyio.WouldBlock:
            await self._send.send((draft, sender))

    async def run(self) -> None:
        """Commit and publish until cancelled."""
        with self._send, self._receive:
            async for first in self._receive:
                batch = [first]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._receive.receive_nowait())
                    except anyio.WouldBlock:
                        break
                await self._commit(batch)

    async def _commit(self, batch: list[tuple[Draft, Member]]) -> None:
        try:
            results = await self.store.append([draft for draft, _ in batch])
        except StoreError as error:
            log.error("%s; %d message(s) refused", error, len(batch))
            for draft, sender in batch:
                notice = Notice(
                    ErrorCode.STORE_UNAVAILABLE,
                    "Message not sent: the server cannot store messages right now.",
                    draft.client_msg_id,
                )
                self.hub.refuse(sender, notice)
            return
        for (draft, sender), result in zip(batch, results, strict=True):
            self.hub.publish(draft, result.seq, duplicate=result.duplicate, sender=sender)
