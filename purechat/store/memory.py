"""memory://: each room keeps its newest N messages in memory; nothing survives a restart."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

from purechat.core import Message
from purechat.store.base import Appended, Head, new_epoch

DEFAULT_HISTORY = 1000


@dataclass
class _RoomLog:
    last_seq: int = 0
    messages: deque[tuple[Message, tuple[str, str]]] = field(default_factory=deque)
    ids: dict[tuple[str, str], int] = field(default_factory=dict)


class MemoryStore:
    def __init__(self, history: int = DEFAULT_HISTORY):
        self.history = max(1, history)
        self._rooms: dict[str, _RoomLog] = {}
        # One epoch for every room: a restart loses every log at once.
        self.epoch = new_epoch()

    @property
    def description(self) -> str:
        return f"memory (the newest {self.history} messages of each room, lost on restart)"

    async def append(self, messages: Sequence[Message]) -> list[Appended]:
        return [self._append(message) for message in messages]

    def _append(self, message: Message) -> Appended:
        log = self._rooms.setdefault(message.room, _RoomLog())
        key = (message.sender_key, message.client_msg_id)
        if message.client_msg_id and (seq := log.ids.get(key)) is not None:
            return Appended(seq, duplicate=True, epoch=self.epoch)
        log.last_seq += 1
        # What history gives back: numbered, without the sender's retry identity.
        kept = Message(
            message.room, log.last_seq, message.user, message.text, message.time_ms, message.action
        )
        log.messages.append((kept, key))
        if message.client_msg_id:
            log.ids[key] = log.last_seq
        if len(log.messages) > self.history:  # oldest first, and its id with it
            _, old_key = log.messages.popleft()
            log.ids.pop(old_key, None)
        return Appended(log.last_seq, duplicate=False, epoch=self.epoch)

    async def head(self, room: str) -> Head:
        log = self._rooms.get(room)
        return Head(self.epoch, log.last_seq if log else 0)

    async def read(self, room: str, *, after: int, upto: int) -> list[Message]:
        log = self._rooms.get(room)
        if log is None or not log.messages:
            return []
        first_kept = log.messages[0][0].seq
        start = max(after + 1, first_kept) - first_kept
        stop = min(upto, log.last_seq) - first_kept + 1
        return [message for message, _ in islice(log.messages, start, max(start, stop))]

    async def aclose(self) -> None:
        self._rooms.clear()
