"""The token file and its reload, in process: what a file can hold, and a reload that
meets a failure it did not expect still keeps the server and says so in one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from purechat.core import Identity
from purechat.server import auth
from purechat.server.auth import (
    MAX_TOKEN_FILE_BYTES,
    Admitted,
    TokenBook,
    TokenEntry,
    TokenFileError,
)
from purechat.status import Status


def _book(tmp_path: Path, text: str) -> TokenBook:
    path = tmp_path / "tokens"
    path.write_text(text)
    return TokenBook(path)


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


def test_a_byte_order_mark_is_not_part_of_the_first_token(tmp_path: Path) -> None:
    book = _book(tmp_path, "\ufefffirst alice\nsecond bob\n")
    assert book.lookup("first") == TokenEntry(b"first", "alice")


def test_the_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_bytes("# é\r\nok alice\rbad b\xf6b\n".encode("latin-1"))
    with pytest.raises(TokenFileError, match=r"tokens, line 1: not UTF-8 text$"):
        TokenBook(path)
    path.write_bytes(b"# \xc3\xa9\r\nok alice\rbad b\xf6b\n")
    with pytest.raises(TokenFileError, match=r"tokens, line 3: not UTF-8 text$"):
        TokenBook(path)


def test_a_file_far_too_big_to_be_a_token_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_bytes(b"# padding\n" * (MAX_TOKEN_FILE_BYTES // 10 + 1))
    with pytest.raises(TokenFileError, match="is over 16 MiB: is it the right file"):
        TokenBook(path)


def test_an_unexpected_failure_while_reading_keeps_the_old_tokens(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = _book(tmp_path, "first alice\n")
    book.path.write_text("second bob\n")

    def broken(name: str, limits: object) -> str | None:
        raise RuntimeError("a bug in the name rules")

    monkeypatch.setattr(auth, "name_problem", broken)
    assert book.reload() == frozenset()
    assert book.lookup("first") == TokenEntry(b"first", "alice")
    assert book.lookup("second") is None
    [error] = _errors(caplog)
    assert error.getMessage() == (
        f"the token file {book.path} could not be reloaded (unexpected RuntimeError: a bug "
        "in the name rules); keeping the tokens loaded before"
    )
    assert error.exc_info is None  # the sentence at error; the traceback at debug only


class _Call:
    def __init__(self, fails: bool = False):
        self.fails = fails
        self.ended: Status | None = None

    def end(self, status: Status) -> None:
        if self.fails:
            raise RuntimeError("a bug in ending")
        self.ended = status


def test_a_revocation_that_fails_leaves_the_others_to_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    book = _book(tmp_path, "t-alice alice\nt-bob bob\n")
    told: list[frozenset[bytes]] = []

    def failing_listener(tokens: frozenset[bytes]) -> None:
        raise RuntimeError("a listener's bug")

    book.on_revoked(failing_listener)
    bearers = Admitted(book)
    book.on_revoked(told.append)
    broken, alice, bob = _Call(fails=True), _Call(), _Call()
    with (
        bearers.holding(broken, Identity("alice"), b"t-alice", "peer 1"),
        bearers.holding(alice, Identity("alice"), b"t-alice", "peer 2"),
        bearers.holding(bob, Identity("bob"), b"t-bob", "peer 3"),
    ):
        book.path.write_text("t-bob bob\n")
        assert book.reload() == {b"t-alice"}
    assert told == [{b"t-alice"}]  # told after the listener before it failed
    assert alice.ended is not None and alice.ended.status_message == "token revoked"
    assert bob.ended is None
    messages = [record.getMessage() for record in _errors(caplog)]
    assert messages == [
        "the token file was reloaded, but ending the sessions of the tokens it revoked "
        "failed (unexpected RuntimeError: a listener's bug)",
        "alice (peer 1): ending the call failed (unexpected RuntimeError: a bug in ending)",
    ]
