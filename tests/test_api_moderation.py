"""The Python API's accounts and moderation: `purechat.client.login`, a session saved by
`purechat login` used by `connect` without being told, the moderation methods on a
connected chat (done once, or SendRefused with the server's sentence), and moderation
events among the chat's events."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from purechat.client import LoginFailed, SendRefused, connect, login
from purechat.client.saved import Saved, SavedSessions
from purechat.client.session import Address, SessionError
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import StatusCode
from purechat.store import SqliteStore
from tests.accounts import PASSWORD, accounts_config, member, moderate, register
from tests.helpers import Harness
from tests.polling import settles


@pytest.fixture
async def server(start_server, tmp_path: Path) -> Harness:
    store = await SqliteStore.open(tmp_path / "chat.db")
    harness: Harness = await start_server(store=store, **accounts_config())
    await register(harness.server.directory, "alice", "bob", "spammer")
    await settles(lambda: name_key("spammer") in harness.server.auth.account_keys)
    return harness


async def test_a_bot_logs_in_moderates_and_hears_what_was_done(server: Harness) -> None:
    address = f"127.0.0.1:{server.port}"
    with trio.fail_after(30):
        with pytest.raises(LoginFailed, match=r"^Wrong name or password\.$"):
            await login(address, "alice", "not it")
        session = await login(address, "Alice", PASSWORD)
        assert session.account == "alice" and session.token.startswith("pcs_")
        spammer = await member(server, "spammer", (await login(address, "spammer", PASSWORD)).token)
        bob = await member(server, "bob", (await login(address, "bob", PASSWORD)).token)
        async with connect(address, name="ignored", room="lobby", token=session.token) as chat:
            assert (chat.name, chat.role) == ("alice", "member")
            with pytest.raises(SendRefused, match=r"^Only an operator of this room may ban\.$"):
                await chat.ban("spammer")
            assert (await chat.claim()).seq == 1
            assert chat.role == "owner"
            await chat.op("bob")
            await chat.set_topic("plans")
            assert chat.topic == "plans"
            banned = await chat.ban("spammer", for_="1h", reason="spam")
            with pytest.raises(ValueError, match="'soon' is not a duration"):
                await chat.mute("bob", for_="soon")
            refused = await moderate(bob, v1.ModerationCommand.KICK, "alice")
            assert refused.error.message == "alice owns this room and cannot be kicked."
            seen = []
            async for event in chat.events():
                if event.kind == "moderation":
                    seen.append(event)
                    if event.seq == banned.seq:
                        break
        assert [(e.moderation.action if e.moderation else "", e.text) for e in seen] == [
            ("claim", "alice claimed the room and owns it now"),
            ("op", "alice made bob an operator"),
            ("topic", "alice set the topic: plans"),
            ("ban", "spammer was banned by alice for 1h: spam"),
        ]
        await spammer.until_end()
        assert spammer.call.status is not None
        assert spammer.call.status.status_code is StatusCode.PERMISSION_DENIED


async def test_connect_uses_the_session_purechat_login_saved(
    server: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    address = Address("127.0.0.1", server.port)
    with trio.fail_after(30):
        session = await login(address, "bob", PASSWORD)
        SavedSessions().save(
            Saved(str(address), session.token, session.account, session.expires_ms), address
        )
        async with connect(str(address), name="whoever") as chat:
            assert chat.name == "bob"
        # An ended session says to log in again.
        await server.server.directory.end_sessions("bob", "logged out everywhere")
        with pytest.raises(SessionError, match="has expired or was ended: log in again"):
            async with connect(str(address), name="whoever", give_up_after=5):
                pass
        async with connect(str(address), name="guest", token="") as chat:
            assert chat.name == "guest"  # "": no token, the saved session left alone


async def test_a_refusal_left_uncaught_reaches_the_bot_as_itself(server: Harness) -> None:
    address = f"127.0.0.1:{server.port}"
    with trio.fail_after(30):
        token = (await login(address, "bob", PASSWORD)).token
        with pytest.raises(SendRefused, match=r"^Only an operator of this room may kick\.$"):
            async with connect(address, name="bob", token=token) as chat:
                await chat.kick("alice")
