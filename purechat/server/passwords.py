"""Passwords: hashed with argon2id (argon2-cffi), never on the event loop.

A hash takes tens of milliseconds of CPU and 64 MiB of memory on purpose (that is what
makes guessing expensive), so it runs on a worker thread, at most CONCURRENT at once;
past QUEUE waiting, a login is refused at once with a sentence rather than queued
without bound, so a burst of attempts costs bounded memory and never slows the event
loop for anyone else.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from purechat.errors import LimitReached

CONCURRENT = 2
QUEUE = 64
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 1024


class TooManyLogins(LimitReached):
    """Too many password checks wait already; str() is a sentence."""


@dataclass(frozen=True, slots=True)
class HashCost:
    """argon2id's parameters; the defaults are argon2-cffi's (RFC 9106's second choice)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 4


def password_problem(password: str) -> str | None:
    """Why a new password is not acceptable, as a sentence (None: it is)."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"A password is at least {MIN_PASSWORD_CHARS} characters."
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return f"A password is at most {MAX_PASSWORD_BYTES} bytes."
    return None


class Passwords:
    def __init__(self, cost: HashCost | None = None):
        cost = cost or HashCost()
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
        )
        self._limiter = anyio.CapacityLimiter(CONCURRENT)
        self._waiting = 0
        # What a check against no account is made against, so that an unknown name
        # takes as long to refuse as a wrong password; made on first need, in a worker
        # thread (a hash takes its 64 MiB for a moment: not at startup).
        self._decoy: str | None = None

    def hash_now(self, password: str) -> str:
        """For commands that run no event loop of others (`purechat account`)."""
        return self._hasher.hash(password)

    async def hash(self, password: str) -> str:
        async with self._queued():
            hashed: str = await anyio.to_thread.run_sync(
                self._hasher.hash, password, limiter=self._limiter
            )
            return hashed

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether password matches; a None hash (no such account) costs as much."""
        async with self._queued():
            right: bool = await anyio.to_thread.run_sync(
                self._check, password_hash, password, limiter=self._limiter
            )
            return right

    def _check(self, password_hash: str | None, password: str) -> bool:
        if password_hash is None and self._decoy is None:
            self._decoy = self._hasher.hash("not a password of anyone's")
        try:
            self._hasher.verify(password_hash or self._decoy or "", password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return password_hash is not None

    @contextlib.asynccontextmanager
    async def _queued(self) -> AsyncIterator[None]:
        if self._waiting >= QUEUE:
            raise TooManyLogins("Too many logins at once: try again in a moment.")
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
