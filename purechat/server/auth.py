"""Tokens: who may connect, and under which name.

A token file has one `TOKEN NAME` pair per line; `#` starts a comment. When tokens are
on, every call must carry `authorization: Bearer TOKEN`, and the name others see comes
from the token, never from the client. Tokens are compared in constant time and never
logged; the file is read again on SIGHUP.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path

from purechat.core import Limits
from purechat.core.names import name_problem
from purechat.transport.connection import Metadata

log = logging.getLogger("purechat.server")


class TokenFileError(Exception):
    """The token file cannot be used; str() is a sentence."""


class TokenBook:
    def __init__(self, path: Path, limits: Limits | None = None):
        self.path = path
        self._limits = limits or Limits()
        self._entries: list[tuple[bytes, str]] = []
        self.load()

    def load(self) -> None:
        """Read the file; on any problem keep what was loaded before and raise."""
        try:
            text = self.path.read_text()
        except OSError as error:
            raise TokenFileError(
                f"cannot read the token file {self.path}: {error.strerror}"
            ) from None
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
            entries.append((token.encode(), name))
        self._entries = entries

    def reload(self) -> None:
        """Read the file again (SIGHUP); a broken file is logged and the old tokens stay."""
        try:
            self.load()
        except TokenFileError as error:
            log.error("%s; keeping the tokens loaded before", error)
        else:
            log.info("token file reloaded: %d token(s)", len(self._entries))

    def name_for(self, metadata: Metadata) -> str | None:
        """The name a call's bearer token stands for, or None without a valid one."""
        presented = b""
        for key, value in metadata:
            if key.lower() == "authorization" and value.startswith("Bearer "):
                presented = value.removeprefix("Bearer ").strip().encode()
        found = None
        for token, name in self._entries:  # no early exit: the time says nothing
            if hmac.compare_digest(token, presented) and presented:
                found = name
        return found
