"""Stores for room logs: memory:// and sqlite:///PATH, chosen by URL."""

from __future__ import annotations

from pathlib import Path

from purechat.store.base import (
    Appended,
    Head,
    OutcomeUnknown,
    SearchCursor,
    Store,
    StoreDamaged,
    StoreError,
    StoreUnavailable,
)
from purechat.store.memory import DEFAULT_HISTORY, MemoryStore
from purechat.store.sqlite import SqliteStore

DEFAULT_STORE_URL = "sqlite:///purechat.db"

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_STORE_URL",
    "Appended",
    "Head",
    "MemoryStore",
    "OutcomeUnknown",
    "SearchCursor",
    "SqliteStore",
    "Store",
    "StoreDamaged",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


async def open_store(url: str, *, history: int = DEFAULT_HISTORY) -> Store:
    """Open the store a --store URL names; StoreError with a sentence when it cannot.

    memory:// keeps `history` messages per room. sqlite:///PATH follows SQLAlchemy's
    form: three slashes and a relative path, four for an absolute one. redis:// (or
    rediss:// for TLS) shares the rooms with every server using the same Redis, and
    redis+cluster:// (rediss+cluster://) with every server using the same Redis Cluster.
    """
    if url == "memory://":
        return MemoryStore(history)
    if url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return await SqliteStore.open(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("redis://", "rediss://", "redis+cluster://", "rediss+cluster://")):
        from purechat.store.redis import RedisStore  # noqa: PLC0415 -- only when asked for

        return await RedisStore.open(url, history)
    raise StoreUnavailable(
        f"unknown store {url!r}: use memory://, sqlite:///PATH (sqlite:////PATH for an "
        "absolute path), redis://HOST:PORT[/DB] or redis+cluster://HOST:PORT[,HOST:PORT...]"
    )
