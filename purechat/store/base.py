"""The store interface: every room's ordered log, behind one Protocol.

The broadcast core never sees which store it runs on. A store numbers messages
(per room, from 1, never reusing a number), answers a repeated send with the number
it already gave it, and hands back ranges of the log for history and resume.

Every room's log carries an epoch, created with it: numbers are only comparable
within one epoch. A store that loses a log (Redis flushed or restarted empty, a
SQLite file replaced, a memory:// server restarted) starts a new one with a new
epoch, and servers and clients that see the epoch change know their positions are
meaningless rather than waiting for numbers that will never come.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from purechat.core import Message
from purechat.core.moderation import Effect
from purechat.errors import OutcomeUnknown, StoreDamaged, StoreError, StoreUnavailable

__all__ = [
    "Appended",
    "Head",
    "OutcomeUnknown",
    "SearchCursor",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoreUnavailable",
]


def state_space(room: str) -> str:
    """The key-value space a room's state lives in (see Records)."""
    return f"state:{room}"


def state_key(effect: Effect) -> str:
    """Where one effect on a room's state is kept in its space: "kind|key"."""
    return f"{effect.kind.value}|{effect.key}"


def new_epoch() -> str:
    """A fresh epoch id: random, short, printable."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True, order=True)
class SearchCursor:
    """Where a page of search results ended: the last message's time, room and number
    (results come newest first, in this order)."""

    time_ms: int
    room: str
    seq: int


@dataclass(frozen=True, slots=True)
class Head:
    """Where a room's log stands: which log it is (its epoch) and its newest number."""

    epoch: str
    seq: int


@dataclass(frozen=True, slots=True)
class Appended:
    """Where a message landed: its number, whether it was a repeat of an earlier send,
    and the epoch of the log it is in."""

    seq: int
    duplicate: bool
    epoch: str
    # An EDIT, DELETE or REACTION newly stored: its target as the store now has it
    # (None: not kept), what members are told with it (core/living.as_delivered).
    target: Message | None = None


@runtime_checkable
class Store(Protocol):
    @property
    def description(self) -> str:
        """Where history is kept, for the startup line."""
        ...

    async def append(self, messages: Sequence[Message]) -> list[Appended]:
        """Number and keep messages, in order; when this returns they are durable.

        An EDIT, DELETE or REACTION (core/living.py) is applied to its target in the
        same transaction (`living.revise` is the rule): an edit replaces the target's
        text (in the search index too), a delete removes it, reactions are kept as the
        target's aggregate. The change's own entry keeps no text.

        A message whose (room, sender_key, client_msg_id) was stored before, with a
        non-empty id, is not stored again: its Appended carries the original number.
        StoreUnavailable when nothing was stored; OutcomeUnknown when the store did not
        answer and the messages may or may not have been stored.
        """
        ...

    async def head(self, room: str) -> Head:
        """The room's epoch and newest number (0 for a room never written to)."""
        ...

    async def read(self, room: str, *, after: int, upto: int) -> list[Message]:
        """The kept messages numbered in (after, upto], oldest first: messages as they
        are now (latest text, tombstone, reactions: `revision`), changes carrying their
        target as it is now (`living.as_delivered`).

        Numbers are consecutive, so a missing number means the message is no longer kept.
        """
        ...

    async def search(
        self,
        words: Sequence[str],
        rooms: Sequence[str] | None,
        limit: int,
        before: SearchCursor | None = None,
    ) -> list[Message]:
        """Kept messages (not moderation entries) whose text holds every word (as a
        word, case and accents aside), in rooms (None: every room), newest first, at
        most limit, older than before."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Records(Protocol):
    """What a store keeps besides the rooms' logs, as two primitives the directory
    (store/directory.py) builds accounts, sessions, room state, audit and control on.

    Spaces of keys and values: `state:ROOM` is a room's state, changed by the effects
    of its moderation entries in the same transaction (or script) as their append.
    Streams of records, numbered from 1 in the order they were added.
    """

    async def kv_get(self, space: str, key: str) -> str | None: ...

    async def kv_put(self, space: str, key: str, value: str, *, only_new: bool = False) -> bool:
        """Set key (only when absent, with only_new); whether it was set."""
        ...

    async def kv_delete(self, space: str, key: str) -> bool:
        """Whether it was there."""
        ...

    async def kv_items(self, space: str) -> list[tuple[str, str]]: ...

    async def kv_present(self, space: str, keys: Sequence[str]) -> set[str]:
        """Which of keys are in space (one round trip for many)."""
        ...

    async def record(self, stream: str, value: str) -> int:
        """Add a record; its number."""
        ...

    async def records(self, stream: str, *, after: int = 0, last: int = 0) -> list[tuple[int, str]]:
        """The records after number `after`, oldest first; or, with last, the newest
        `last` of them."""
        ...

    async def apply_effects(self, room: str, effects: Sequence[Effect]) -> None:
        """Change a room's state outside a log entry (what one server alone knew)."""
        ...


def query_words(text: str) -> list[str]:
    """The words a search asks for, case folded (each store folds accents its way)."""
    return re.findall(r"\w+", unicodedata.normalize("NFC", text.casefold()))


def words_of(text: str) -> list[str]:
    """The words of a text as a scan compares them: case folded, accents off."""
    plain = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return re.findall(r"\w+", plain)


def holds_words(text: str, words: Sequence[str]) -> bool:
    """Whether text holds every one of words (query_words), accents aside both ways."""
    found = set(words_of(text))
    return all(folded in found for word in words for folded in words_of(word))
