"""Tokens: who may connect, and under which name.

A token file has one `TOKEN NAME` pair per line; `#` starts a comment. When tokens are
on, every call must carry `authorization: Bearer TOKEN`, and the name others see comes
from the token, never from the client. Tokens are compared in constant time and never
logged; the file is read again on SIGHUP, and every open call whose token that removed
(or gave another name) ends with UNAUTHENTICATED "token revoked" (see `Bearers`). A
reload never ends the server: a file it cannot read, decode or use is one logged
sentence, and the tokens loaded before stay.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from purechat import status as statuses
from purechat.core import Limits
from purechat.core.names import display_form, name_problem
from purechat.errors import ConfigurationError
from purechat.status import Status
from purechat.transport import Stream
from purechat.transport.connection import CallHandler
from purechat.transport.stream import Metadata

log = logging.getLogger("purechat.server")

# A token file holds a line per person or bot; one this big is not a token file (a log,
# a device), and is refused rather than read into memory.
MAX_TOKEN_FILE_BYTES = 16 * 1024 * 1024


class TokenFileError(ConfigurationError):
    """The token file cannot be used; str() is a sentence."""


class TokenBook:
    def __init__(self, path: Path, limits: Limits | None = None):
        self.path = path
        self._limits = limits or Limits()
        self._entries: list[tuple[bytes, str]] = []
        # Told the tokens a reload revoked or renamed (see Bearers).
        self._revoked_listeners: list[Callable[[frozenset[bytes]], object]] = []
        self.load()

    def on_revoked(self, listener: Callable[[frozenset[bytes]], object]) -> None:
        """Have listener told, after every reload, the tokens it revoked or renamed."""
        self._revoked_listeners.append(listener)

    def load(self) -> frozenset[bytes]:
        """Read the file; on any problem keep what was loaded before and raise
        TokenFileError, a sentence naming the file (and the line).

        Returns the tokens that no longer stand for the name they stood for (removed,
        or given another name).
        """
        text = self._decode(self._read())
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            if len(words) != 2:
                raise TokenFileError(f"{self.path}, line {number}: expected TOKEN NAME")
            token, name = words
            if problem := name_problem(name, self._limits):
                raise TokenFileError(f"{self.path}, line {number}: {problem}")
            entries.append((token.encode(), display_form(name)))
        before, self._entries = self._entries, entries
        kept = set(entries)
        return frozenset(token for token, name in before if (token, name) not in kept)

    def _read(self) -> bytes:
        try:
            with self.path.open("rb") as file:
                data = file.read(MAX_TOKEN_FILE_BYTES + 1)
        except OSError as error:
            reason = error.strerror or str(error)
            raise TokenFileError(f"cannot read the token file {self.path}: {reason}") from None
        if len(data) > MAX_TOKEN_FILE_BYTES:
            raise TokenFileError(
                f"the token file {self.path} is over {MAX_TOKEN_FILE_BYTES // 2**20} MiB: "
                "is it the right file?"
            )
        return data

    def _decode(self, data: bytes) -> str:
        """The file's text: UTF-8 (a byte order mark, as some editors write, is dropped)."""
        try:
            return data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError as error:
            # Numbered as load() numbers lines: all before the bad byte decodes, and
            # the "x" stands for the line it is on.
            before = data[: error.start].decode("utf-8")
            number = len((before + "x").splitlines())
            raise TokenFileError(f"{self.path}, line {number}: not UTF-8 text") from None

    def reload(self) -> frozenset[bytes]:
        """Read the file again (SIGHUP). Never raises: a file that
        cannot be read, decoded or used, or any other failure, is one logged sentence,
        and the tokens loaded before stay.

        Listeners (`on_revoked`) are told the tokens revoked or renamed, also returned;
        one that fails is logged and the others are still told.
        """
        try:
            revoked = self.load()
        except TokenFileError as error:
            log.error("%s; keeping the tokens loaded before", error)
            return frozenset()
        except Exception as error:  # a bug: it must not end the server
            log.error(
                "the token file %s could not be reloaded (%s); keeping the tokens loaded before",
                self.path,
                _unexpected(error),
            )
            log.debug("the token file's reload failed", exc_info=True)
            return frozenset()
        log.info(
            "token file reloaded: %d token(s), %d revoked or renamed",
            len(self._entries),
            len(revoked),
        )
        for listener in self._revoked_listeners:
            try:
                listener(revoked)
            except Exception as error:  # a bug: the other listeners are still told
                log.error(
                    "the token file was reloaded, but ending the sessions of the tokens it "
                    "revoked failed (%s)",
                    _unexpected(error),
                )
                log.debug("a revocation failed", exc_info=True)
        return revoked

    def name_for(self, metadata: Metadata) -> str | None:
        """The name a call's bearer token stands for, or None without a valid one."""
        bearer = self.bearer(metadata)
        return bearer[1] if bearer else None

    def bearer(self, metadata: Metadata) -> tuple[bytes, str] | None:
        """The valid token a call carries and the name it stands for, or None."""
        presented = ""
        for key, value in metadata:
            if key.lower() == "authorization" and value.startswith("Bearer "):
                presented = value.removeprefix("Bearer ")
        return self.lookup(presented)

    def lookup(self, presented_token: str) -> tuple[bytes, str] | None:
        """A token as presented (gRPC metadata, a web member's join) and the name it
        stands for, or None when it is not valid."""
        presented = presented_token.strip().encode()
        found = None
        for token, name in self._entries:  # no early exit: the time says nothing
            if hmac.compare_digest(token, presented) and presented:
                found = (token, name)
        return found


class Revocable(Protocol):
    """A member's session that a revoked token ends: a gRPC call, a web socket."""

    def end(self, status: Status) -> None: ...


class Bearers:
    """The open calls that came with a valid token, so that revoking the token (a
    reload that removes it or gives it another name) ends them rather than leaving
    them talking. Tokens are held here as in the TokenBook, never logged."""

    def __init__(self, book: TokenBook | None):
        self._book = book
        # Each call's token, the name it stands for, and the peer (for the log).
        self._calls: dict[Revocable, tuple[bytes, str, str]] = {}
        if book is not None:
            book.on_revoked(self.revoke)

    def guard(self, handler: CallHandler) -> CallHandler:
        """handler, with each call that carries a valid token listed while it runs."""
        book = self._book
        if book is None:
            return handler

        async def guarded(stream: Stream) -> Status:
            bearer = book.bearer(stream.metadata)
            with self.holding(stream, bearer, stream.connection.peer):
                return await handler(stream)  # without a bearer: refused there, or open

        return guarded

    @contextmanager
    def holding(
        self, call: Revocable, bearer: tuple[bytes, str] | None, peer: str
    ) -> Iterator[None]:
        """Within the block, revoking bearer's token ends call (no bearer: nothing)."""
        if bearer is None:
            yield
            return
        self._calls[call] = (*bearer, peer)
        try:
            yield
        finally:
            self._calls.pop(call, None)

    def revoke(self, tokens: frozenset[bytes]) -> int:
        """End every open call that came with one of tokens; how many."""
        ended = [
            (call, name, peer)
            for call, (token, name, peer) in self._calls.items()
            if token in tokens
        ]
        for call, name, peer in ended:
            del self._calls[call]
            log.warning("%s (%s): token revoked; call ended", name, peer)
            try:
                call.end(statuses.token_revoked())
            except Exception as error:  # a bug: the other calls are still ended
                log.error("%s (%s): ending the call failed (%s)", name, peer, _unexpected(error))
                log.debug("ending a revoked call failed", exc_info=True)
        return len(ended)


def _unexpected(error: Exception) -> str:
    """An unexpected error, said in the words of a log sentence."""
    said = f"unexpected {type(error).__name__}"
    return f"{said}: {error}" if str(error) else said
