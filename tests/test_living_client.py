"""Living messages at the client's doors: the Python API against an in-process server
(replies, edits, deletes, reactions and typing, refusals as the server's sentences),
and how each is shown by the terminal's and the pipe's lines, without a network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from purechat.client import SendRefused, connect
from purechat.client.display import Revision, Shown, json_line, plain_line
from purechat.client.living import Held
from purechat.client.machine import Phase, SessionMachine, Show, Transmit
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.store import SqliteStore
from tests.accounts import accounts_config, login, register
from tests.helpers import Harness
from tests.polling import settles


@pytest.fixture
async def server(start_server, tmp_path: Path) -> Harness:
    store = await SqliteStore.open(tmp_path / "chat.db")
    harness: Harness = await start_server(store=store, **accounts_config())
    await register(harness.server.directory, "alice", "bob")
    await settles(lambda: name_key("bob") in harness.server.auth.account_keys)
    return harness


async def _next(events, *kinds: str):  # type: ignore[no-untyped-def]
    async for event in events:
        if event.kind in kinds:
            return event
    raise AssertionError(f"the session ended before a {kinds} event")


async def test_a_bot_replies_edits_reacts_deletes_and_hears_each(server: Harness) -> None:
    address = f"127.0.0.1:{server.port}"
    with trio.fail_after(30):
        alice_token, bob_token = await login(server, "alice"), await login(server, "bob")
        async with (
            connect(address, name="alice", token=alice_token) as alice,
            connect(address, name="bob", token=bob_token) as bob,
        ):
            heard = bob.events()
            said = await alice.send("the deploy is done")
            reply = await bob.send("great", reply_to=said.seq)
            with pytest.raises(SendRefused, match=r"^You can only edit your own messages\.$"):
                await bob.edit(said.seq, "mine now")
            with pytest.raises(SendRefused, match=r"^A reaction is one emoji, like 👍\.$"):
                await bob.react(said.seq, "ok")
            edited = await alice.edit(said.seq, "the rollout is done")
            reacted = await bob.react(said.seq, "👍")
            taken_back = await bob.react(said.seq, "👍", remove=True)
            deleted = await alice.delete(said.seq)
            assert said.seq < reply.seq < edited.seq < reacted.seq < taken_back.seq < deleted.seq

            message = await _next(heard, "message")
            assert (message.seq, message.text) == (said.seq, "the deploy is done")
            answer = await _next(heard, "message")
            assert answer.reply_to == said.seq
            edit = await _next(heard, "edit", "delete", "reaction")
            assert (edit.kind, edit.target, edit.text) == ("edit", said.seq, "the rollout is done")
            assert edit.revision is not None and edit.revision.edited_ms
            reaction = await _next(heard, "edit", "delete", "reaction")
            assert (reaction.kind, reaction.emoji, reaction.removed) == ("reaction", "👍", False)
            assert reaction.revision is not None
            assert reaction.revision.reactions == (("👍", ("bob",)),)
            removal = await _next(heard, "edit", "delete", "reaction")
            assert removal.removed and removal.revision is not None
            assert removal.revision.reactions == ()
            tombstone = await _next(heard, "edit", "delete", "reaction")
            assert tombstone.kind == "delete" and tombstone.revision is not None
            assert tombstone.revision.deleted and tombstone.user == "alice"

            with pytest.raises(SendRefused, match="deleted"):
                await bob.react(said.seq, "🎉")
            # History gives the tombstone in place of the text.
            page = await bob.history()
            kept = next(event for event in page.events if event.seq == said.seq)
            assert kept.text == "" and kept.revision is not None and kept.revision.deleted

            # Typing: alice's reaches bob as an event, never stored.
            alice.typing()
            typing = await _next(heard, "typing")
            assert typing.typing == ("alice",)
            assert all(event.kind != "typing" for event in (await bob.history()).events)


def _joined(*, observe: bool = False) -> SessionMachine:
    machine = SessionMachine(name="alice", room="lobby", observe=observe)
    machine.connected(0.0)
    machine.received(
        v1.ServerFrame(welcome=v1.Welcome(room="lobby", name="alice", members=["alice"])), 0.0
    )
    assert machine.phase is Phase.JOINED
    return machine


def test_typing_goes_out_at_most_every_three_seconds_and_never_from_a_listener() -> None:
    machine = _joined()
    sent = [
        now
        for now in (0.0, 1.0, 2.9, 3.0, 3.5, 6.1)
        if any(isinstance(a, Transmit) for a in machine.typing(now))
    ]
    assert sent == [0.0, 3.0, 6.1]
    assert _joined(observe=True).typing(0.0) == []


def test_typing_from_others_is_shown_and_not_my_own_name() -> None:
    machine = _joined()
    frame = v1.ServerFrame(typing=v1.Typing(room="lobby", users=["bob", "alice"], more=2))
    (shown,) = machine.received(frame, 1.0)
    assert isinstance(shown, Show)
    assert (shown.item.kind, shown.item.typing, shown.item.more) == ("typing", ("bob",), 2)


def _message(seq: int, user: str, text: str, **fields: object) -> Shown:
    return Shown("message", "lobby", text, user=user, seq=seq, **fields)  # type: ignore[arg-type]


def test_a_reply_is_quoted_from_what_is_held_as_it_is_now() -> None:
    held = Held()
    held.saw(_message(12, "bob", "the deploy is done and the dashboards are all green again"))
    assert held.quote(12) == "bob #12: the deploy is done and the dashboards …"
    assert held.quote(3) == "#3 (not shown here)"
    held.saw(Shown("edit", "lobby", "rolled back", user="bob", seq=13, target=12))
    assert held.quote(12) == "bob #12: rolled back"
    gone = Revision(deleted=True, deleted_by="carol")
    held.saw(Shown("delete", "lobby", "", user="carol", seq=14, target=12, revision=gone))
    assert held.quote(12) == "#12: (message deleted by carol)"
    held.saw(Shown("message", "den", "another room", user="dave", seq=1))
    reply = _message(15, "alice", "ok", reply_to=12)
    assert plain_line(reply, quote=held.quote(12)).split("\n") == [
        "       ↳ #12 (not shown here)",
        "alice: ok",
    ]


def test_changes_read_as_sentences_in_the_terminal_and_the_pipe() -> None:
    edited = Revision(edited_ms=5)
    reactions = Revision(reactions=(("👍", ("bob", "carol")), ("👨‍👩‍👧", ("dave",))))
    reacted = Shown(
        "reaction", "lobby", "", user="bob", seq=8, target=2, emoji="👍", revision=reactions
    )
    lines = [
        plain_line(Shown("edit", "lobby", "new", user="bob", seq=5, target=2, revision=edited)),
        plain_line(Shown("delete", "lobby", "", user="bob", seq=6, target=2, revision=Revision())),
        plain_line(
            Shown(
                "delete",
                "lobby",
                "",
                user="op",
                seq=7,
                target=3,
                revision=Revision(deleted=True, deleted_by="op"),
            )
        ),
        plain_line(reacted),
        plain_line(_message(2, "bob", "old", revision=Revision(edited_ms=1))),
        plain_line(_message(3, "bob", "", revision=Revision(deleted=True))),
        plain_line(_message(4, "bob", "great", reply_to=2)),
        plain_line(Shown("typing", "lobby", "", typing=("bob", "carol"), more=1)),
    ]
    assert lines == [
        "* bob edited #2: new (edited)",
        "* message #2 deleted",
        "* message #3 deleted by op",
        "* bob reacted 👍 on #2: 👍 2 bob, carol · 👨‍👩‍👧 1 dave",
        "bob: old (edited)",
        "bob: (message deleted)",
        "bob: great  (↳ #2)",
        "-- bob, carol and 1 other are typing…",
    ]
    as_json = json.loads(json_line(reacted))
    assert as_json["target"] == 2 and as_json["reaction"] == {"emoji": "👍", "removed": False}
    assert as_json["revision"]["reactions"][0] == {"emoji": "👍", "users": ["bob", "carol"]}
    assert json.loads(json_line(_message(4, "bob", "great", reply_to=2)))["reply_to"] == 2
