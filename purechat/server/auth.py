"""Tokens, and who is admitted: what revoking a token or an account ends.

A token file has one `TOKEN NAME [rate=N]` line per bot or service; `#` starts a
comment; `rate=N` lets that token send N messages a second (bursts of 2N) instead of
the server's --rate-limit (a bot posting build results, say). When tokens are on, every
call must carry `authorization: Bearer TOKEN` (or an account's session token), and the
name others see comes from the token, never from the client. Tokens are compared in
constant time and never logged; the file is read again on SIGHUP, and every open call
whose token that removed (or gave another name) ends with UNAUTHENTICATED "token
revoked" (see `Admitted`). A
reload never ends the server: a file it cannot read, decode or use is one logged
sentence, and the tokens loaded before stay.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from purechat import status as statuses
from purechat.core import EndReason, Limits
from purechat.core.hub import Identity
from purechat.core.moderation import address_prefix
from purechat.core.names import display_form, name_problem
from purechat.errors import ConfigurationError
from purechat.status import Status
from purechat.transport.stream import Metadata

log = logging.getLogger("purechat.server")

# A token file holds a line per person or bot; one this big is not a token file (a log,
# a device), and is refused rather than read into memory.
MAX_TOKEN_FILE_BYTES = 16 * 1024 * 1024


class TokenFileError(ConfigurationError):
    """The token file cannot be used; str() is a sentence."""


@dataclass(frozen=True, slots=True)
class TokenEntry:
    token: bytes
    name: str
    # Messages a second this token's calls may send (None: the server's rate).
    rate: float | None = None


class TokenBook:
    def __init__(self, path: Path, limits: Limits | None = None):
        self.path = path
        self._limits = limits or Limits()
        self._entries: list[TokenEntry] = []
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
            where = f"{self.path}, line {number}"
            if len(words) not in (2, 3):
                raise TokenFileError(f"{where}: expected TOKEN NAME [rate=N]")
            token, name = words[:2]
            if problem := name_problem(name, self._limits):
                raise TokenFileError(f"{where}: {problem}")
            rate = _rate(words[2], where) if len(words) == 3 else None
            entries.append(TokenEntry(token.encode(), display_form(name), rate))
        before, self._entries = self._entries, entries
        kept = {(entry.token, entry.name) for entry in entries}
        return frozenset(e.token for e in before if (e.token, e.name) not in kept)

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

    def lookup(self, presented_token: str) -> TokenEntry | None:
        """The entry of a token as presented (gRPC metadata, a web member's join), or
        None when it is not one of the file's."""
        presented = presented_token.strip().encode()
        found = None
        for entry in self._entries:  # no early exit: the time says nothing
            if hmac.compare_digest(entry.token, presented) and presented:
                found = entry
        return found


def presented_token(metadata: Metadata) -> str:
    """The bearer token a call's metadata carries ("" without one)."""
    presented = ""
    for key, value in metadata:
        if key.lower() == "authorization" and value.startswith("Bearer "):
            presented = value.removeprefix("Bearer ")
    return presented


def _rate(word: str, where: str) -> float:
    name, _, value = word.partition("=")
    try:
        rate = float(value) if name == "rate" else -1.0
    except ValueError:
        rate = -1.0
    if not 0 <= rate < float("inf"):
        raise TokenFileError(f"{where}: the third word is rate=N, N messages a second (0 or more)")
    return rate


class Revocable(Protocol):
    """A member's session that revoking can end: a gRPC call, a web socket."""

    def end(self, status: Status) -> None: ...


@dataclass(frozen=True, slots=True)
class _Held:
    identity: Identity
    # The token-file token it came with (a reload that removes it ends the call).
    token: bytes | None
    peer: str


class Admitted:
    """The open calls, with who each is, so that revoking ends them rather than leaving
    them talking: a token taken out of the token file, every session of an account
    (logged out everywhere, removed, its password changed), every connection from an
    address banned from the server. Tokens are held as in the TokenBook, never logged."""

    def __init__(self, book: TokenBook | None):
        self._calls: dict[Revocable, _Held] = {}
        if book is not None:
            book.on_revoked(self.revoke_tokens)

    @contextmanager
    def holding(
        self, call: Revocable, identity: Identity, token: bytes | None, peer: str
    ) -> Iterator[None]:
        """Within the block, revoking identity (its token, account or address) ends call."""
        self._calls[call] = _Held(identity, token, peer)
        try:
            yield
        finally:
            self._calls.pop(call, None)

    def revoke_tokens(self, tokens: frozenset[bytes]) -> int:
        """End every open call that came with one of tokens; how many."""
        return self._end(
            lambda held: held.token in tokens, statuses.token_revoked(), "token revoked"
        )

    def revoke_account(self, key: str, reason: str) -> int:
        """End every open call of the account with name key `key`; how many."""
        status = statuses.for_end(EndReason.REVOKED, _revoked_sentence(reason))
        return self._end(lambda held: held.identity.key == key, status, f"session ended: {reason}")

    def revoke_address(self, prefix: str, reason: str) -> int:
        """End every open call from an address with this prefix (see address_prefix)."""
        status = statuses.banned_from_server(reason)
        return self._end(
            lambda held: address_prefix(held.identity.address) == prefix,
            status,
            "address banned from the server",
        )

    def _end(self, which: Callable[[_Held], bool], status: Status, why: str) -> int:
        ended = [(call, held) for call, held in self._calls.items() if which(held)]
        for call, held in ended:
            del self._calls[call]
            who = held.identity.account or "a guest"
            log.warning("%s (%s): %s; call ended", who, held.peer, why)
            try:
                call.end(status)
            except Exception as error:  # a bug: the other calls are still ended
                log.error(
                    "%s (%s): ending the call failed (%s)", who, held.peer, _unexpected(error)
                )
                log.debug("ending a revoked call failed", exc_info=True)
        return len(ended)


def _revoked_sentence(reason: str) -> str:
    return f"your session was ended ({reason}): log in again (purechat login) to come back"


def _unexpected(error: Exception) -> str:
    """An unexpected error, said in the words of a log sentence."""
    said = f"unexpected {type(error).__name__}"
    return f"{said}: {error}" if str(error) else said
