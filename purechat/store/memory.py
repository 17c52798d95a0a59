"""memory://: each room keeps its newest N messages in memory; nothing survives a restart."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

from purechat.core import Draft
from purechat.store.base import Appended, StoredMessage

DEFAULT_HISTORY = 1000


@dataclass
class _RoomLog:
    last_seq: int = 0
    messages: deque[tuple[StoredMessage, tuple[str, str]]] = field(default_factory=deque)
    ids: dict[tuple[str, str], int] = field(default_factory=dict)


class MemoryStore:
    def __init__(self, history: int = DEFAULT_HISTORY):
        self.history = max(1, history)
        self._rooms: dict[str, _RoomLog] = {}

    @property
    def description(self) -> str:
        return f"memory (the newest {self.history} messages of each room, lost on restart)"

    async def append(self, drafts: Sequence[Draft]) -> list[Appended]:
        return [self._append(draft) for draft in drafts]

    def _append(self, draft: Draft) -> Appended:
        log = self._rooms.setdefault(draft.room, _RoomLog())
        key = (draft.sender_key, draft.client_msg_id)
        if draft.client_msg_id and (seq := log.ids.get(key)) is not None:
            return Appended(seq, duplicate=True)
        log.last_seq += 1
        message = StoredMessage(
            draft.room, log.last_seq, draft.user, draft.text, draft.time_ms, draft.action
        )
        log.messages.append((message, key))
        if draft.client_msg_id:
            log.ids[key] = log.last_seq
        if len(log.messages) > self.history:  # oldest first, and its id with it
            _, old_key = log.messages.popleft()
            log.ids.pop(old_key, None)
        return Appended(log.last_seq, duplicate=False)

    async def last_seq(self, room: str) -> int:
        log = self._rooms.get(room)
        return log.last_seq if log else 0

    async def read(self, room: str, *, after: int, upto: int) -> list[StoredMessage]:
        log = self._rooms.get(room)
        if log is None or not log.messages:
            return []
        first_kept = log.messages[0][0].seq
        start = max(after + 1, first_kept) - first_kept
        stop = min(upto, log.last_seq) - first_kept + 1
        return [message for message, _ in islice(log.messages, start, max(start, stop))]

    async def aclose(self) -> None:
        self._rooms.clear()
