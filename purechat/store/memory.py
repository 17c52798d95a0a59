"""memory://: each room keeps its newest N messages in memory; nothing survives a restart."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice

from purechat.core import Message
from purechat.core.events import CHANGES, EntryKind
from purechat.core.living import as_kept, as_read, revise
from purechat.core.moderation import Effect
from purechat.store.base import (
    Appended,
    Head,
    SearchCursor,
    holds_words,
    new_epoch,
    state_key,
    state_space,
)

DEFAULT_HISTORY = 1000


@dataclass
class _RoomLog:
    last_seq: int = 0
    messages: deque[tuple[Message, tuple[str, str]]] = field(default_factory=deque)
    ids: dict[tuple[str, str], int] = field(default_factory=dict)


class MemoryStore:
    # A search scans every room it keeps.
    searches_everything = True
    # Edits, deletes and reactions are applied to their targets (see Store.append).
    keeps_changes = True

    def __init__(self, history: int = DEFAULT_HISTORY):
        self.history = max(1, history)
        self._rooms: dict[str, _RoomLog] = {}
        # The directory's primitives (see base.Records): spaces and streams.
        self._spaces: dict[str, dict[str, str]] = {}
        self._streams: dict[str, list[str]] = {}
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
            message.room,
            log.last_seq,
            message.user,
            message.text,
            message.time_ms,
            message.action,
            kind=message.kind,
            data=message.data,
            reply_to=message.reply_to,
            target=message.target,
            account=message.account,
        )
        self._apply(message.room, message.effects)
        revised = None
        if message.kind in CHANGES:
            kept = as_kept(kept)
            at = self._at(log, message.target)
            if at is not None:
                target, target_key = log.messages[at]
                revised = revise(target, message)
                log.messages[at] = (revised, target_key)
        log.messages.append((kept, key))
        if message.client_msg_id:
            log.ids[key] = log.last_seq
        if len(log.messages) > self.history:  # oldest first, and its id with it
            _, old_key = log.messages.popleft()
            log.ids.pop(old_key, None)
        return Appended(log.last_seq, duplicate=False, epoch=self.epoch, target=revised)

    async def sent(self, room: str, sender_key: str, client_msg_id: str) -> int | None:
        """The number a send with this id was stored under (None: not stored)."""
        log = self._rooms.get(room)
        return None if log is None else log.ids.get((sender_key, client_msg_id))

    @staticmethod
    def _at(log: _RoomLog, seq: int) -> int | None:
        """Where message seq is in a room's kept log (None: not kept)."""
        if not log.messages:
            return None
        at = seq - log.messages[0][0].seq
        return at if 0 <= at < len(log.messages) else None

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
        found = [message for message, _ in islice(log.messages, start, max(start, stop))]
        return [self._as_read(log, message) for message in found]

    def _as_read(self, log: _RoomLog, entry: Message) -> Message:
        if entry.kind not in CHANGES:
            return entry
        at = self._at(log, entry.target)
        return as_read(entry, None if at is None else log.messages[at][0])

    async def search(
        self,
        words: Sequence[str],
        rooms: Sequence[str] | None,
        limit: int,
        before: SearchCursor | None = None,
    ) -> list[Message]:
        """A scan of what is kept (memory keeps the newest --history of each room)."""
        found = [
            message
            for room in (rooms if rooms is not None else list(self._rooms))
            for message, _ in (self._rooms[room].messages if room in self._rooms else ())
            if message.kind is EntryKind.MESSAGE and holds_words(message.text, words)
        ]
        found.sort(key=_cursor, reverse=True)
        if before is not None:
            found = [m for m in found if _cursor(m) < before]
        return found[:limit]

    async def aclose(self) -> None:
        self._rooms.clear()

    # -- the directory's primitives ------------------------------------------------

    async def kv_get(self, space: str, key: str) -> str | None:
        return self._spaces.get(space, {}).get(key)

    async def kv_put(self, space: str, key: str, value: str, *, only_new: bool = False) -> bool:
        found = self._spaces.setdefault(space, {})
        if only_new and key in found:
            return False
        found[key] = value
        return True

    async def kv_delete(self, space: str, key: str) -> bool:
        return self._spaces.get(space, {}).pop(key, None) is not None

    async def kv_items(self, space: str) -> list[tuple[str, str]]:
        return sorted(self._spaces.get(space, {}).items())

    async def kv_present(self, space: str, keys: Sequence[str]) -> set[str]:
        found = self._spaces.get(space, {})
        return {key for key in keys if key in found}

    async def record(self, stream: str, value: str) -> int:
        found = self._streams.setdefault(stream, [])
        found.append(value)
        return len(found)

    async def records(self, stream: str, *, after: int = 0, last: int = 0) -> list[tuple[int, str]]:
        found = list(enumerate(self._streams.get(stream, []), start=1))
        return found[-last:] if last else found[after:]

    async def apply_effects(self, room: str, effects: Sequence[Effect]) -> None:
        self._apply(room, effects)

    def _apply(self, room: str, effects: Sequence[Effect]) -> None:
        if not effects:
            return
        space = self._spaces.setdefault(state_space(room), {})
        for effect in effects:
            if effect.value is None:
                space.pop(state_key(effect), None)
            else:
                space[state_key(effect)] = effect.value


def _cursor(message: Message) -> SearchCursor:
    return SearchCursor(message.time_ms, message.room, message.seq)
