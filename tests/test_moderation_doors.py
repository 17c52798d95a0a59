"""Moderation at the client's doors, without a network: commands read as people type
them, a command that is a line of the session (sent once, in its place, again after a
reconnect, refused with a sentence), moderation events shown and followed, and what
the terminal, the pipe and --json show of them."""

from __future__ import annotations

import json

import pytest

from purechat.client.display import Moderation, Shown, json_line, plain_line
from purechat.client.machine import (
    NO_MODERATION,
    GiveUp,
    SessionMachine,
    Settled,
    Show,
    Transmit,
)
from purechat.client.moderation import CommandUsage, typed
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import Status, StatusCode

M = v1.ModerationCommand


@pytest.mark.parametrize(
    ("action", "argument", "expected"),
    [
        (
            "ban",
            "spammer 1h spam and more",
            M(action=M.BAN, target="spammer", seconds=3600, reason="spam and more"),
        ),
        ("ban", "spammer for spam", M(action=M.BAN, target="spammer", reason="for spam")),
        ("kick", "Mary Ann rude", M(action=M.KICK, target="Mary Ann", reason="rude")),
        ("kick", '"Mary Ann" rude', M(action=M.KICK, target="Mary Ann", reason="rude")),
        ("mute", "bob 10m", M(action=M.MUTE, target="bob", seconds=600)),
        ("op", "Mary Ann", M(action=M.OP, target="Mary Ann")),
        ("topic", "plans, not spam", M(action=M.TOPIC, text="plans, not spam")),
        ("topic", "-", M(action=M.TOPIC, text="")),
        ("mode", "invite-only", M(action=M.MODE, text="invite-only")),
        ("claim", "", M(action=M.CLAIM)),
    ],
)
def test_commands_are_read_as_people_type_them(
    action: str, argument: str, expected: v1.ModerationCommand
) -> None:
    assert typed(action, argument, members=["Mary Ann", "bob"]) == expected


@pytest.mark.parametrize(
    ("action", "argument", "said"),
    [
        ("ban", "", "usage: /ban NAME [DURATION] [REASON]"),
        ("mode", "secret", "usage: /mode invite-only|open"),
        ("claim", "now", "usage: /claim (it takes nothing after it)"),
        ("mute", "bob 3y", "'3y' is not a duration: give a number and a unit"),
        ("ban", "bob 400d", "A duration is from a second to a year"),
        ("kick", '"Mary Ann rude', "a quoted name needs its closing quote"),
    ],
)
def test_a_command_in_the_wrong_shape_is_a_sentence_and_nothing_is_sent(
    action: str, argument: str, said: str
) -> None:
    with pytest.raises(CommandUsage) as wrong:
        typed(action, argument)
    assert str(wrong.value).startswith(said)


def _joined() -> SessionMachine:
    ids = iter(f"id{n}" for n in range(100))
    machine = SessionMachine(name="alice", room="den", new_id=lambda: next(ids))
    machine.connected(0)
    welcome = v1.Welcome(room="den", name="alice", members=["alice", "bob"], role="member")
    machine.received(v1.ServerFrame(welcome=welcome), 0)
    return machine


def _sent(actions: list) -> list[v1.ClientFrame]:
    return [action.frame for action in actions if isinstance(action, Transmit)]


def test_a_command_is_a_line_sent_once_in_its_place_and_again_after_a_drop() -> None:
    machine = _joined()
    first = machine.send("hello", 1)
    ban = machine.moderate(typed("ban", "bob 1m"), "/ban bob 1m", 1)
    assert _sent(first)[0].send.client_msg_id == "id0"
    assert _sent(ban)[0].moderate == M(action=M.BAN, target="bob", seconds=60, client_msg_id="id1")
    machine.ended(Status(StatusCode.UNAVAILABLE, "server shutting down"), 2)
    machine.connected(3)
    again = machine.received(v1.ServerFrame(welcome=v1.Welcome(room="den", name="alice")), 3)
    frames = _sent(again)
    assert [f.WhichOneof("frame") for f in frames] == ["send", "moderate"]
    assert [frames[0].send.client_msg_id, frames[1].moderate.client_msg_id] == ["id0", "id1"]
    machine.received(v1.ServerFrame(ack=v1.Ack(client_msg_id="id0", seq=1)), 4)
    refusal = v1.Error(
        code=v1.Error.NOT_ALLOWED,
        message="Only an operator of this room may ban.",
        client_msg_id="id1",
    )
    answered = machine.received(v1.ServerFrame(error=refusal), 4)
    assert Show(Shown("error", "den", "Only an operator of this room may ban.")) in answered
    assert Settled("id1", failure="Only an operator of this room may ban.") in answered
    assert machine.undelivered == 0


def test_against_the_original_contract_a_command_is_refused_with_a_sentence() -> None:
    machine = SessionMachine(name="alice", room="lobby")
    machine.connected(0)
    machine.ended(Status(StatusCode.UNIMPLEMENTED, ""), 0)
    machine.connected(1)
    answered = machine.moderate(typed("kick", "bob"), "/kick bob", 1)
    assert not _sent(answered)
    assert any(isinstance(a, Settled) and a.failure for a in answered)
    assert NO_MODERATION in machine.failures


def test_moderation_events_are_shown_numbered_and_keep_the_topic_and_my_role() -> None:
    machine = _joined()
    assert (machine.role, machine.topic) == ("member", "")

    def event(seq: int, sentence: str, **details: str) -> list:
        moderation = v1.Moderation(**details)
        frame = v1.Event(
            kind=v1.Event.MODERATION, room="den", seq=seq, text=sentence, moderation=moderation
        )
        return machine.received(v1.ServerFrame(event=frame), 5)

    (shown,) = event(1, "carol made alice an operator", action="op", by="carol", target="alice")
    assert isinstance(shown, Show) and shown.item.kind == "moderation"
    assert shown.item.moderation == Moderation("op", "carol", "alice")
    assert machine.role == "operator" and machine.last_seq == 1
    event(2, "carol set the topic: plans", action="topic", by="carol", topic="plans")
    assert machine.topic == "plans"
    event(3, "carol made alice an operator no more", action="deop", by="carol", target="alice")
    assert machine.role == "member"


def test_the_terminal_the_pipe_and_json_show_a_moderation_event() -> None:
    details = Moderation("ban", "alice", "bob", "spam", 1_700_003_600_000)
    item = Shown(
        "moderation",
        "den",
        "bob was banned by alice for 1h: spam",
        user="alice",
        seq=7,
        time_ms=1_700_000_000_000,
        moderation=details,
    )
    assert plain_line(item).endswith("] * bob was banned by alice for 1h: spam")
    shown = json.loads(json_line(item))
    assert (shown["kind"], shown["seq"], shown["text"]) == (
        "moderation",
        7,
        "bob was banned by alice for 1h: spam",
    )
    assert shown["moderation"] == {
        "action": "ban",
        "by": "alice",
        "target": "bob",
        "reason": "spam",
        "until_ms": 1_700_003_600_000,
        "topic": "",
        "mode": "",
    }
    # Names and reasons from others are shown, never obeyed.
    hostile = Shown("moderation", "den", "x was kicked by y: \x1b[2J", time_ms=1)
    assert "\x1b" not in plain_line(hostile)


def test_a_seat_taken_over_by_the_accounts_other_client_is_given_up_not_fought_for() -> None:
    machine = _joined()
    machine.account = "alice"
    ended = machine.ended(
        Status(StatusCode.ABORTED, "replaced: the same client joined again on a newer stream"), 5
    )
    assert ended == [
        GiveUp(
            "Another client of alice joined den and has the seat now (an account has one "
            "seat in a room)."
        )
    ]
