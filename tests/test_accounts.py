"""Accounts: logging in, names kept for their accounts, sessions that end, guessing slowed.

Over purechat.v1 (our client's calls), the original contract (the tutorial's grpc-go
client with an account's token) and the admin calls, on SQLite, the default store.
"""

from __future__ import annotations

import logging
import os
import subprocess
from functools import partial
from pathlib import Path

import pytest
import trio
import trio.testing

from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import StatusCode
from purechat.store import SqliteStore
from tests.accounts import (
    PASSWORD,
    accounts_config,
    login,
    member,
    refused_join,
    refused_login,
    register,
    unary,
)
from tests.helpers import Harness
from tests.polling import settles
from tests.processes import Lines, send_lines


@pytest.fixture
async def sqlite_server(start_server, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A server on a SQLite file with accounts alice and bob (and admin root)."""

    async def start(**config: object) -> Harness:
        store = await SqliteStore.open(tmp_path / "chat.db")
        config = {**accounts_config(admins=["root"]), **config}
        harness: Harness = await start_server(store=store, **config)
        await register(harness.server.directory, "alice", "bob", "root")
        await settles(lambda: name_key("root") in harness.server.auth.account_keys)
        return harness

    return start


async def test_a_member_logged_in_is_its_account_whatever_name_it_asks_for(
    sqlite_server,
) -> None:
    harness: Harness = await sqlite_server()
    with trio.fail_after(10):
        token = await login(harness, "Alice")  # names are matched as names are
        alice = await member(harness, "somebody-else", token)
        assert (alice.welcome.name, alice.welcome.account) == ("alice", "alice")
        guest = await member(harness, "carol")
        assert (guest.welcome.name, guest.welcome.account) == ("carol", "")


async def test_a_guest_cannot_take_a_registered_name_or_a_look_alike(sqlite_server) -> None:
    harness: Harness = await sqlite_server()
    with trio.fail_after(10):
        for asked in ("alice", "ALICE", "\uff41lice", "\u0430lice"):  # fullwidth, Cyrillic
            guest = await member(harness, asked)
            assert name_key(guest.welcome.name) != name_key("alice"), asked
            guest.drop()


async def test_wrong_passwords_and_names_get_one_sentence_and_the_password_is_kept_nowhere(
    sqlite_server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    harness: Harness = await sqlite_server()
    with trio.fail_after(20), caplog.at_level(logging.DEBUG, "purechat"):
        wrong = await refused_login(harness, "alice", "not the password")
        unknown = await refused_login(harness, "nobody", PASSWORD)
        assert wrong == unknown == "Wrong name or password."
        token = await login(harness, "alice")
        await member(harness, "alice", token)
    assert PASSWORD not in caplog.text and token not in caplog.text
    await harness.server.store.aclose()
    files = await trio.to_thread.run_sync(_read_all, tmp_path)
    assert files and all(PASSWORD.encode() not in data for data in files.values())
    assert all(token.encode() not in data for data in files.values())


def _read_all(folder: Path) -> dict[Path, bytes]:
    """The store's files as bytes: the database, its WAL and shared memory."""
    return {path: path.read_bytes() for path in folder.glob("chat.db*")}


async def test_guessing_is_slowed_for_the_guesser_and_nobody_else(
    sqlite_server, mock_clock: trio.testing.MockClock
) -> None:
    # Virtual time, jumping only when nothing has moved for a moment of real time: a
    # password is checked on a worker thread, which an immediate jump would not wait for.
    mock_clock.autojump_threshold = 0.05
    harness: Harness = await sqlite_server()
    failures = harness.server.metrics.registry.get_sample_value
    alice = await member(harness, "alice", await login(harness, "alice"))
    answered: list[float] = []
    for _ in range(8):
        started = trio.current_time()
        await refused_login(harness, "bob", "guess")
        answered.append(trio.current_time() - started)
    # The first guesses are answered at once, then each waits longer than the last.
    assert answered[:3] == pytest.approx([0, 0, 0], abs=0.2)
    assert answered[3] < answered[4] < answered[5] < answered[6]
    assert failures("purechat_auth_failures_total", {"reason": "login"}) == 8
    # Meanwhile a member's messages are acknowledged without waiting.
    started = trio.current_time()
    await alice.say("still here", "c1")
    assert trio.current_time() - started < 0.2
    # A wrong token counts too, and is said as a sentence.
    status = await refused_join(harness, "x", token="pcs_not-a-session")
    assert status.status_code is StatusCode.UNAUTHENTICATED
    assert "not valid" in status.status_message


async def test_guests_can_be_kept_out(sqlite_server) -> None:
    harness: Harness = await sqlite_server(**accounts_config(guests=False))
    with trio.fail_after(10):
        status = await refused_join(harness, "carol")
        assert status.status_code is StatusCode.UNAUTHENTICATED
        assert "log in" in status.status_message
        alice = await member(harness, "alice", await login(harness, "alice"))
        assert alice.welcome.account == "alice"


async def test_ending_an_accounts_sessions_ends_its_open_streams(sqlite_server) -> None:
    harness: Harness = await sqlite_server()
    with trio.fail_after(10):
        token = await login(harness, "alice")
        alice = await member(harness, "alice", token)
        other = await member(harness, "alice", await login(harness, "alice"), room="other")
        # As `purechat account logout-all alice` does, from another process.
        assert await harness.server.directory.end_sessions("alice", "logged out everywhere") == 2
        for stream in (alice, other):
            await stream.until_end()
            assert stream.call.status is not None
            assert stream.call.status.status_code is StatusCode.UNAUTHENTICATED
            assert "logged out everywhere" in stream.call.status.status_message
        status = await refused_join(harness, "alice", token)
        assert status.status_code is StatusCode.UNAUTHENTICATED


async def test_a_new_password_ends_the_old_sessions(sqlite_server) -> None:
    harness: Harness = await sqlite_server()
    with trio.fail_after(10):
        alice = await member(harness, "alice", await login(harness, "alice"))
        await harness.server.directory.set_password("alice", "a new hash")
        await alice.until_end()
        assert alice.call.status is not None
        assert alice.call.status.status_code is StatusCode.UNAUTHENTICATED


async def test_registration_is_closed_unless_the_server_opens_it(sqlite_server) -> None:
    closed: Harness = await sqlite_server()
    request = v1.RegisterRequest(name="dave", password=PASSWORD)
    with trio.fail_after(10):
        with pytest.raises(Exception, match="does not let people register"):
            await unary(closed, "purechat.v1.Accounts", "Register", request, v1.RegisterResponse)
        closed.server.shutdown()
        await closed.server.stopped()


async def test_registration_open_lets_a_few_in_per_address(start_server) -> None:
    harness: Harness = await start_server(**accounts_config(registration=True))
    with trio.fail_after(10):
        for name in ("dave", "erin"):
            request = v1.RegisterRequest(name=name, password=PASSWORD)
            answer = await unary(
                harness, "purechat.v1.Accounts", "Register", request, v1.RegisterResponse
            )
            assert answer.account == name
        with pytest.raises(Exception, match="registered already"):
            await refused_registration(harness)
        with pytest.raises(Exception, match="at least 8 characters"):
            request = v1.RegisterRequest(name="frank", password="short")
            await unary(harness, "purechat.v1.Accounts", "Register", request, v1.RegisterResponse)
        request = v1.RegisterRequest(name="frank", password=PASSWORD)
        await unary(harness, "purechat.v1.Accounts", "Register", request, v1.RegisterResponse)
        with pytest.raises(Exception, match="Too many accounts"):
            request = v1.RegisterRequest(name="grace", password=PASSWORD)
            await unary(harness, "purechat.v1.Accounts", "Register", request, v1.RegisterResponse)
        assert (await member(harness, "x", await login(harness, "dave"))).welcome.name == "dave"


async def refused_registration(harness: Harness) -> None:
    request = v1.RegisterRequest(name="DAVE", password=PASSWORD)
    await unary(harness, "purechat.v1.Accounts", "Register", request, v1.RegisterResponse)


async def test_the_tutorials_go_client_joins_as_the_account_its_token_names(
    sqlite_server, nursery: trio.Nursery, go_client: Path
) -> None:
    harness: Harness = await sqlite_server()
    token = await login(harness, "alice")
    with trio.fail_after(20):
        go = await nursery.start(
            partial(
                trio.run_process,
                [str(go_client), f"127.0.0.1:{harness.port}", "whoever"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
                env={**os.environ, "PURECHAT_TOKEN": token},
            )
        )
        await send_lines(go, "hello from go")
        lines = Lines(go.stdout)
        while (line := await lines.next()) is not None and "\thello from go\t" not in line:
            pass
        assert line is not None and line.split("\t")[0] == "alice"  # not "whoever"
        await send_lines(go, "exit")
        await go.wait()
