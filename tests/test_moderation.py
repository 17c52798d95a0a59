"""Roles and moderation: decided once, in the core; seen by everyone, in order; kept.

The walk of a community: alice claims a room and ops bob, bob bans a spammer, mutes a
noisy guest, sets the topic; refusals are sentences; the rights survive a restart; an
action on one server reaches the members of another sharing Redis.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from purechat.core.moderation import (
    Action,
    Actor,
    Command,
    ModerationRefused,
    RoomState,
    Target,
    decide,
    parse_duration,
)
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import StatusCode
from purechat.store import SqliteStore
from tests.accounts import (
    accounts_config,
    login,
    member,
    moderate,
    next_moderation,
    refused_join,
    register,
    unary,
)
from tests.helpers import Harness
from tests.polling import settles

M = v1.ModerationCommand


async def _community(start_server, path: Path) -> tuple[Harness, dict[str, str]]:
    store = await SqliteStore.open(path)
    harness: Harness = await start_server(store=store, **accounts_config(admins=["root"]))
    await register(harness.server.directory, "alice", "bob", "spammer", "root")
    await settles(lambda: name_key("spammer") in harness.server.auth.account_keys)
    tokens = {name: await login(harness, name) for name in ("alice", "bob", "spammer", "root")}
    return harness, tokens


async def test_claim_op_ban_and_the_ban_holds_on_every_door(start_server, tmp_path: Path) -> None:
    harness, tokens = await _community(start_server, tmp_path / "chat.db")
    with trio.fail_after(20):
        alice = await member(harness, "alice", tokens["alice"])
        bob = await member(harness, "bob", tokens["bob"])
        spammer = await member(harness, "spammer", tokens["spammer"])
        # Not an operator yet: refused, with a sentence, and the stream goes on.
        refused = await moderate(bob, M.BAN, "spammer")
        assert refused.error.code == v1.Error.NOT_ALLOWED
        assert refused.error.message == "Only an operator of this room may ban."
        assert (await moderate(alice, M.CLAIM)).WhichOneof("frame") == "ack"
        assert (await moderate(alice, M.OP, "bob")).WhichOneof("frame") == "ack"
        banned = await moderate(bob, M.BAN, "spammer", seconds=3600, reason="spam")
        assert banned.WhichOneof("frame") == "ack"
        # Everyone sees the actions in the log's order, with their numbers.
        seen = [await next_moderation(alice) for _ in range(3)]
        assert [e.text for e in seen] == [
            "alice claimed the room and owns it now",
            "alice made bob an operator",
            "spammer was banned by bob for 1h: spam",
        ]
        assert seen[2].seq == banned.ack.seq and seen[2].moderation.reason == "spam"
        # The spammer's stream ends, saying why; it cannot come back by any door.
        await spammer.until_end()
        assert spammer.call.status is not None
        assert spammer.call.status.status_code is StatusCode.PERMISSION_DENIED
        assert spammer.call.status.status_message.startswith("You were banned from lobby by bob")
        status = await refused_join(harness, "anything", tokens["spammer"])
        assert status.status_code is StatusCode.PERMISSION_DENIED
        assert status.status_message.startswith("You are banned from this room (by bob")
        post = v1.PostRequest(room="lobby", text="buy now", client_msg_id="p1")
        with pytest.raises(Exception, match="banned"):
            await unary(
                harness, "purechat.v1.Chat", "Post", post, v1.PostResponse, token=tokens["spammer"]
            )
        # Elsewhere the spammer is welcome.
        assert (await member(harness, "x", tokens["spammer"], room="other")).welcome.name


async def test_refusals_protect_the_owner_admins_and_say_why(start_server, tmp_path: Path) -> None:
    harness, tokens = await _community(start_server, tmp_path / "chat.db")
    with trio.fail_after(20):
        alice = await member(harness, "alice", tokens["alice"])
        bob = await member(harness, "bob", tokens["bob"])
        await member(harness, "root", tokens["root"])
        await moderate(alice, M.CLAIM)
        await moderate(alice, M.OP, "bob")
        cases = [
            (bob, M.KICK, "alice", {}, "alice owns this room and cannot be kicked."),
            (alice, M.BAN, "root", {}, "root is a server admin and cannot be banned."),
            (alice, M.BAN, "nobody", {}, "There is nobody called nobody here."),
            (bob, M.OP, "spammer", {}, "Only the owner of this room may op."),
            (alice, M.MUTE, "bob", {"seconds": -5}, "A duration is from a second to a year"),
            (alice, M.MODE, "", {"text": "secret"}, "A room's mode is invite-only or open."),
        ]
        for actor, action, target, fields, sentence in cases:
            answer = await moderate(actor, action, target, **fields)
            assert answer.WhichOneof("frame") == "error", (action, target)
            assert answer.error.message.startswith(sentence), answer.error.message


async def test_a_muted_member_reads_on_and_its_sends_are_refused(
    start_server, tmp_path: Path
) -> None:
    harness, tokens = await _community(start_server, tmp_path / "chat.db")
    with trio.fail_after(20):
        alice = await member(harness, "alice", tokens["alice"])
        await moderate(alice, M.CLAIM)
        guest = await member(harness, "noisy")
        await moderate(alice, M.MUTE, "noisy", seconds=600)
        await guest.call.send("can you hear me", "g1")
        refused = (await guest.next_of("error")).error
        assert refused.code == v1.Error.NOT_ALLOWED
        assert refused.message.startswith("Message not sent: you are muted in this room (by alice")
        await alice.say("still reading?", "a1")
        assert (await guest.next_message()).text == "still reading?"
        await moderate(alice, M.UNMUTE, "noisy")
        assert (await guest.say("thanks", "g2")).seq > 0


async def test_topic_and_invite_only_rooms(start_server, tmp_path: Path) -> None:
    harness, tokens = await _community(start_server, tmp_path / "chat.db")
    with trio.fail_after(20):
        alice = await member(harness, "alice", tokens["alice"], room="den")
        await moderate(alice, M.CLAIM)
        await moderate(alice, M.TOPIC, text="where plans are made")
        await moderate(alice, M.MODE, text="invite-only")
        status = await refused_join(harness, "bob", tokens["bob"], room="den")
        assert status.status_code is StatusCode.PERMISSION_DENIED
        assert "invite-only" in status.status_message
        await moderate(alice, M.INVITE, "bob")
        bob = await member(harness, "bob", tokens["bob"], room="den")
        assert bob.welcome.topic == "where plans are made"
        assert bob.welcome.role == "member" and alice.welcome.role == "member"
        rooms = await unary(
            harness, "purechat.v1.Admin", "ListRooms", v1.ListRoomsRequest(), v1.ListRoomsResponse
        )
        assert [(r.name, r.topic) for r in rooms.rooms] == [("den", "where plans are made")]


async def test_an_operators_rights_survive_a_restart_and_the_audit_keeps_it_all(
    start_server, tmp_path: Path
) -> None:
    path = tmp_path / "chat.db"
    harness, tokens = await _community(start_server, path)
    with trio.fail_after(30):
        alice = await member(harness, "alice", tokens["alice"])
        await moderate(alice, M.CLAIM)
        await moderate(alice, M.OP, "bob")
        harness.server.shutdown()
        await harness.server.stopped()
        await harness.server.store.aclose()
        again: Harness = await start_server(
            store=await SqliteStore.open(path), **accounts_config(admins=["root"])
        )
        bob = await member(harness=again, name="bob", token=await login(again, "bob"))
        assert bob.welcome.role == "operator"
        await member(again, "spammer", await login(again, "spammer"))
        assert (await moderate(bob, M.KICK, "spammer", reason="rude")).WhichOneof("frame") == "ack"
        audit = await unary(
            again,
            "purechat.v1.Admin",
            "Audit",
            v1.AuditRequest(room="lobby"),
            v1.AuditResponse,
            token=await login(again, "root"),
        )
        assert [(e.actor, e.action, e.target) for e in audit.entries] == [
            ("alice", "claim", ""),
            ("alice", "op", "bob"),
            ("bob", "kick", "spammer"),
        ]
        with pytest.raises(Exception, match="Only the owner and operators of lobby"):
            await unary(
                again,
                "purechat.v1.Admin",
                "Audit",
                v1.AuditRequest(room="lobby"),
                v1.AuditResponse,
                token=await login(again, "spammer"),
            )


def test_the_core_decides_once_for_every_door() -> None:
    """The permission table itself, without any door."""
    state = RoomState()
    owner, guest = Actor("alice", "alice"), Actor("carol", None)
    bob = Target("bob", "bob", True)
    state.apply(decide(owner, Command(Action.CLAIM), state, None, 0).effects)
    assert state.owner == "alice"
    state.apply(decide(owner, Command(Action.OP, "bob"), state, bob, 0).effects)
    assert state.role("bob") == "operator"
    with pytest.raises(ModerationRefused, match="Only members with an account"):
        decide(guest, Command(Action.KICK, "bob"), state, bob, 0)
    with pytest.raises(ModerationRefused, match="only the owner can ban an operator"):
        other_op = Actor("dave", "dave")
        state.operators["dave"] = "dave"
        decide(other_op, Command(Action.BAN, "bob"), state, bob, 0)
    assert parse_duration("90m") == 5400
    with pytest.raises(ModerationRefused, match="not a duration"):
        parse_duration("soon")
