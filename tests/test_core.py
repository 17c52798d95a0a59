"""The core alone: rooms, names, numbering and the slow-member policy, driven without I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from purechat.core import (
    Ack,
    BoundName,
    EndReason,
    ErrorCode,
    EventKind,
    Hub,
    JoinRefused,
    Limits,
    Member,
    Message,
    Notice,
    Welcome,
)
from tests.fakes import FakeOutbox


def hub(**limits: int) -> Hub:
    return Hub(Limits(**limits), clock=lambda: 1_700_000_000.5)


def say(h: Hub, member: Member, text: str, client_msg_id: str = "") -> int:
    """Post and publish as the journal would, numbering after the room's newest."""
    posted = h.post(member, text, client_msg_id)
    assert isinstance(posted, Message), posted
    seq = member.room.last_seq + 1
    h.publish(replace(posted, seq=seq), duplicate=False, sender=member)
    return seq


def test_welcome_lists_members_and_join_is_announced() -> None:
    h = hub()
    alice_box, bob_box = FakeOutbox(), FakeOutbox()
    h.join("lobby", "alice", alice_box)
    bob = h.join("lobby", "bob", bob_box, last_seq=0)
    # With the rate it will be held to: the default, 10 a second.
    assert bob.welcome == Welcome("lobby", "bob", ("alice", "bob"), 0, rate_limit=10)
    assert [(e.kind, e.user) for e in alice_box.events()] == [
        (EventKind.JOIN, "alice"),
        (EventKind.JOIN, "bob"),
    ]


def test_with_shared_presence_joins_and_leaves_come_only_from_the_shared_log() -> None:
    h = Hub(Limits(), clock=lambda: 1.0, shared_presence=True)
    alice_box, bob_box, slow_box = FakeOutbox(), FakeOutbox(), FakeOutbox(capacity=0)
    h.join("lobby", "alice", alice_box, bound=BoundName("alice", ("alice",), (0, 0)))
    bob = h.join(
        "lobby", "bob", bob_box, bound=BoundName("bob-2", ("alice", "bob", "bob-2"), (3, 1))
    )
    h.join("lobby", "slow", slow_box, bound=BoundName("slow", ("slow",), (3, 0)))
    assert alice_box.events() == []  # nothing announced by this server on its own
    h.announce("lobby", EventKind.JOIN, "bob-2", 5, at=(3, 2))  # news to alice and bob
    assert slow_box.ended is EndReason.TOO_SLOW  # evicted, without a leave of its own
    h.announce("lobby", EventKind.JOIN, "carol", 6, at=(3, 1))  # logged before bob joined
    h.leave(bob)
    assert bob.welcome == Welcome("lobby", "bob-2", ("alice", "bob", "bob-2"), 0, rate_limit=10)
    assert [(e.kind, e.user) for e in alice_box.events()] == [
        (EventKind.JOIN, "bob-2"),
        (EventKind.JOIN, "carol"),
    ]
    assert [(e.kind, e.user) for e in bob_box.events()] == [(EventKind.JOIN, "bob-2")]


def test_a_same_session_join_takes_the_name_over_silently() -> None:
    h = hub()
    watcher_box, old_box, new_box = FakeOutbox(), FakeOutbox(), FakeOutbox()
    h.join("lobby", "watcher", watcher_box)
    old = h.join("lobby", "sam", old_box, session="s1")
    new = h.join("lobby", "sam", new_box, session="s1")
    with pytest.raises(JoinRefused, match="session id is at most 64"):
        h.join("lobby", "sam", FakeOutbox(), session="x" * 65)
    assert (old.present, old_box.ended) == (False, EndReason.REPLACED)
    assert new.name == "sam" and h.members_of("lobby") == ("watcher", "sam")
    assert [(e.kind, e.user) for e in watcher_box.events()] == [
        (EventKind.JOIN, "watcher"),
        (EventKind.JOIN, "sam"),
    ]


def test_messages_are_numbered_per_room_and_reach_everyone_in_order() -> None:
    h = hub()
    a, b, other = FakeOutbox(), FakeOutbox(), FakeOutbox()
    alice = h.join("lobby", "alice", a)
    bob = h.join("lobby", "bob", b)
    h.join("elsewhere", "carol", other)
    say(h, alice, "one")
    say(h, bob, "two")
    say(h, alice, "three")
    for box in (a, b):
        assert box.texts() == ["one", "two", "three"]
        assert [m.seq for m in box.messages()] == [1, 2, 3]
    assert other.texts() == []
    assert all(e.time_ms == 1_700_000_000_500 for e in a.events())


def test_sender_gets_an_ack_after_its_own_message() -> None:
    h = hub()
    box = FakeOutbox()
    alice = h.join("lobby", "alice", box)
    assert say(h, alice, "hi", "id-1") == 1
    assert isinstance(box.items[-2], Message) and box.items[-1] == Ack("id-1", 1, False)


def test_nothing_is_broadcast_before_the_store_has_it() -> None:
    h = hub()
    box = FakeOutbox()
    alice = h.join("lobby", "alice", box)
    posted = h.post(alice, "pending")
    assert isinstance(posted, Message) and box.texts() == []
    h.publish(replace(posted, seq=1), duplicate=False, sender=alice)
    assert box.texts() == ["pending"]


def test_a_room_opened_here_continues_the_stores_numbering() -> None:
    h = hub()
    box = FakeOutbox()
    alice = h.join("ops", "alice", box, last_seq=41)
    assert alice.welcome is not None and alice.welcome.last_seq == 41
    assert say(h, alice, "next") == 42


def test_a_number_the_room_already_has_is_not_broadcast_again() -> None:
    h = hub()
    box = FakeOutbox()
    alice = h.join("ops", "alice", box, last_seq=5)  # the store had 5 when the room opened
    posted = h.post(alice, "committed just before the room opened")
    assert isinstance(posted, Message)
    h.publish(replace(posted, seq=5), duplicate=False, sender=alice)
    assert box.texts() == [] and box.items[-1] == Ack("", 5, False)


def test_a_retry_is_acked_with_the_original_number_and_not_broadcast() -> None:
    h = hub()
    box = FakeOutbox()
    alice = h.join("lobby", "alice", box)
    say(h, alice, "deploy done", "abc")
    retry = h.post(alice, "deploy done", "abc")
    assert isinstance(retry, Message)
    h.publish(replace(retry, seq=1), duplicate=True, sender=alice)
    assert box.texts() == ["deploy done"]
    assert box.items[-1] == Ack("abc", 1, True)


def test_a_store_refusal_is_a_notice_or_the_end_for_original_clients() -> None:
    h = hub()
    v1_box, legacy_box = FakeOutbox(), FakeOutbox()
    alice = h.join("lobby", "alice", v1_box)
    old = h.attach("lobby", legacy_box)
    h.claim_name(old, "old")
    notice = Notice(ErrorCode.STORE_UNAVAILABLE, "Message not sent.", "m1")
    h.refuse(alice, notice, generation=0)
    h.refuse(old, notice, generation=0)
    assert v1_box.items[-2] == notice
    assert legacy_box.ended is EndReason.STORE_UNAVAILABLE
    assert h.members_of("lobby") == ("alice",)


def test_after_a_store_failure_a_sender_must_send_the_failed_message_again_first() -> None:
    h = hub()
    box = FakeOutbox()
    alice = h.join("lobby", "alice", box)
    unknown = Notice(ErrorCode.OUTCOME_UNKNOWN, "Perhaps stored.", "m1")
    h.refuse(alice, unknown, generation=0)
    assert alice.send_generation == 1  # anything posted before this is not stored
    h.refuse(alice, Notice(ErrorCode.OUTCOME_UNKNOWN, "Perhaps stored.", "m2"), generation=0)
    assert alice.awaiting_retry == "m1"  # the first failure is the one to send again
    later = h.post(alice, "third", "m3")
    assert isinstance(later, Notice) and later.code is ErrorCode.STORE_UNAVAILABLE
    again = h.post(alice, "first", "m1")
    assert isinstance(again, Message) and alice.awaiting_retry is None
    assert isinstance(h.post(alice, "second", "m2"), Message)


def test_an_original_client_whose_message_may_not_be_stored_is_ended_saying_so() -> None:
    h = hub()
    box = FakeOutbox()
    old = h.attach("lobby", box)
    h.claim_name(old, "old")
    h.refuse(old, Notice(ErrorCode.OUTCOME_UNKNOWN, "Perhaps stored.", ""), generation=0)
    assert box.ended is EndReason.OUTCOME_UNKNOWN


def test_a_room_whose_log_was_lost_tells_its_members_and_numbers_again() -> None:
    h = hub()
    box = FakeOutbox()
    alice = h.join("lobby", "alice", box, last_seq=40, epoch="e1")
    assert alice.welcome is not None and alice.welcome.epoch == "e1"
    assert not h.reset("lobby", "e1")
    assert h.reset("lobby", "e2")
    assert [(e.kind, e.epoch) for e in box.events(EventKind.RESET)] == [(EventKind.RESET, "e2")]
    assert say(h, alice, "first of the new log") == 1


def test_taken_names_get_a_distinct_name() -> None:
    h = hub()
    first, second = h.attach("lobby", FakeOutbox()), h.attach("lobby", FakeOutbox())
    assert h.claim_name(first, "GoClient") == "GoClient"
    assert h.claim_name(second, "GoClient") == "GoClient-2"
    assert h.members_of("lobby") == ("GoClient", "GoClient-2")


def test_messages_carry_the_bound_name_not_what_the_client_claims() -> None:
    h = hub()
    box = FakeOutbox()
    h.join("lobby", "alice", FakeOutbox())
    mallory = h.attach("lobby", box)
    h.claim_name(mallory, "alice")
    say(h, mallory, "I am alice")
    assert [m.user for m in box.messages()] == ["alice-2"]


def test_unnamed_members_receive_but_are_not_announced() -> None:
    h = hub()
    listener_box, box = FakeOutbox(), FakeOutbox()
    listener = h.attach("lobby", listener_box)
    alice = h.join("lobby", "alice", box)
    say(h, alice, "hello")
    h.leave(listener)
    assert listener_box.texts() == ["hello"]
    assert box.events(EventKind.LEAVE) == []
    assert h.members_of("lobby") == ("alice",)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("x" * 4097, ErrorCode.TEXT_TOO_LONG),
        ("   \t", ErrorCode.EMPTY_TEXT),
        ("", ErrorCode.EMPTY_TEXT),
    ],
)
def test_bad_text_is_refused_to_the_sender_only(text: str, code: ErrorCode) -> None:
    h = hub()
    sender_box, other_box = FakeOutbox(), FakeOutbox()
    sender = h.join("lobby", "alice", sender_box)
    h.join("lobby", "bob", other_box)
    outcome = h.post(sender, text, "id-9")
    assert isinstance(outcome, Notice) and outcome.code is code
    assert isinstance(sender_box.items[-1], Notice) and sender_box.items[-1].client_msg_id == "id-9"
    assert other_box.texts() == [] and sender_box.texts() == []


def test_text_limit_counts_bytes_not_characters() -> None:
    h = hub(max_text_bytes=4)
    alice = h.join("lobby", "alice", FakeOutbox())
    assert isinstance(h.post(alice, "éé"), Message)
    assert isinstance(h.post(alice, "ééé"), Notice)


def test_a_full_outbox_evicts_that_member_and_the_room_goes_on() -> None:
    h = hub()
    fast, slow = FakeOutbox(), FakeOutbox(capacity=3)
    alice = h.join("lobby", "alice", fast)
    h.join("lobby", "snail", slow)  # welcome + join = 2 items
    for n in range(5):
        say(h, alice, f"m{n}")
    assert slow.ended is EndReason.TOO_SLOW
    assert fast.texts() == [f"m{n}" for n in range(5)]
    assert [e.user for e in fast.events(EventKind.LEAVE)] == ["snail"]
    assert h.members_of("lobby") == ("alice",)


def test_eviction_cascades_without_recursion() -> None:
    h = hub()
    keeper = FakeOutbox()
    h.join("lobby", "keeper", keeper)
    boxes = [FakeOutbox(capacity=1) for _ in range(50)]
    for n, box in enumerate(boxes):
        h.attach("lobby", box).name = None
        h.claim_name(h.attach("lobby", FakeOutbox(capacity=10_000)), f"ok{n}")
    say(h, h.join("lobby", "talker", FakeOutbox(capacity=10_000)), "x")
    assert all(box.ended is EndReason.TOO_SLOW for box in boxes)
    assert keeper.texts() == ["x"]


def test_end_all_ends_everyone_without_leave_storms() -> None:
    h = hub()
    boxes = [FakeOutbox() for _ in range(3)]
    for n, box in enumerate(boxes):
        h.join("lobby", f"m{n}", box)
    h.end_all(EndReason.SHUTTING_DOWN)
    assert all(b.ended is EndReason.SHUTTING_DOWN for b in boxes)
    assert all(b.events(EventKind.LEAVE) == [] for b in boxes)
    assert h.member_count() == 0


@pytest.mark.parametrize(
    ("room", "name"),
    [("lob by", "alice"), ("lobby", "al\x1b[2Jice"), ("x" * 65, "alice"), ("lobby", "a" * 33)],
)
def test_bad_names_and_rooms_are_refused_with_a_sentence(room: str, name: str) -> None:
    with pytest.raises(JoinRefused, match=r"\.$"):
        hub().join(room, name, FakeOutbox())


def test_original_contract_names_are_cleaned_not_refused() -> None:
    h = hub()
    member = h.attach("lobby", FakeOutbox())
    assert h.claim_name(member, "\x1b]0;pwned\x07bob") == "]0;pwnedbob"
    assert h.claim_name(h.attach("lobby", FakeOutbox()), "   ") == "guest"
