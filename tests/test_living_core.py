"""core/living.py's decisions, without a server: who may edit, delete and react, what
each refusal says, and what a change makes of its target (the rule every store keeps)."""

from __future__ import annotations

import json

import pytest

from purechat.core import EntryKind, Message
from purechat.core.events import Reaction, Revision
from purechat.core.living import (
    MAX_REACTION_KINDS,
    ChangeAsk,
    ChangeRefused,
    decide_change,
    is_one_emoji,
    reply_problem,
    revise,
    revision_json,
    revision_of,
)
from purechat.core.moderation import Actor

T0 = 1_700_000_000_000
HOUR = 3600.0
ALICE = Actor("alice", "alice")
BOB = Actor("bob", "bob")
GUEST = Actor("carol", None)
ADMIN = Actor("root", "root", admin=True)


def message(
    seq: int = 1, *, account: str = "alice", text: str = "hello", **more: object
) -> Message:
    return Message("lobby", seq, account or "guest", text, T0, account=account, **more)  # type: ignore[arg-type]


def decide(actor: Actor, ask: ChangeAsk, target: Message | None, role: str = "member",
           *, now_ms: int = T0 + 1000, window: float = 24 * HOUR) -> object:  # fmt: skip
    return decide_change(actor, role, ask, target, now_ms=now_ms, window=window)


def refusal(actor: Actor, ask: ChangeAsk, target: Message | None, **more: object) -> str:
    with pytest.raises(ChangeRefused) as refused:
        decide(actor, ask, target, **more)  # type: ignore[arg-type]
    return str(refused.value)


EDIT = ChangeAsk(EntryKind.EDIT, 1, text="hello, world")
DELETE = ChangeAsk(EntryKind.DELETE, 1)


def thumbs(remove: bool = False) -> ChangeAsk:
    return ChangeAsk(EntryKind.REACTION, 1, emoji="👍", remove=remove)


def test_an_account_edits_its_own_message_within_the_window() -> None:
    change = decide(ALICE, EDIT, message())
    assert change.kind is EntryKind.EDIT and change.target == 1  # type: ignore[attr-defined]
    assert refusal(BOB, EDIT, message()) == "You can only edit your own messages."
    assert "log in" in refusal(GUEST, EDIT, message(account=""))
    late = refusal(ALICE, EDIT, message(), now_ms=T0 + int(25 * HOUR * 1000))
    assert late == "Message #1 is older than 1d: it can no longer be edited."
    assert refusal(ALICE, EDIT, message(), window=0) == "This server does not allow edits."
    assert refusal(ALICE, EDIT, message(text="hello, world")) == "Message #1 says that already."
    assert refusal(ALICE, EDIT, None) == "There is no message #1 here."


def test_a_moderation_entry_is_no_message_to_change() -> None:
    entry = message(kind=EntryKind.MODERATION)
    assert refusal(ALICE, EDIT, entry) == "There is no message #1 here."


def test_only_the_author_or_an_operator_or_an_admin_deletes() -> None:
    own = decide(ALICE, DELETE, message())
    assert json.loads(own.data) == {"author": "alice", "by": "alice", "moderated": False}  # type: ignore[attr-defined]
    assert "only delete your own" in refusal(BOB, DELETE, message())
    for actor, role in ((BOB, "operator"), (BOB, "owner"), (ADMIN, "member")):
        moderated = decide(actor, DELETE, message(), role)
        assert json.loads(moderated.data)["moderated"]  # type: ignore[attr-defined]
    # A guest's message stays as sent, but an operator may still delete it.
    assert json.loads(decide(BOB, DELETE, message(account=""), "operator").data)["moderated"]  # type: ignore[attr-defined]
    gone = message(revision=Revision(deleted=True))
    assert refusal(ALICE, DELETE, gone) == "Message #1 is deleted already."
    assert "nothing to edit" in refusal(ALICE, EDIT, gone)
    assert "nothing to react to" in refusal(BOB, thumbs(), gone)


def test_a_reaction_is_one_emoji_once_per_account_and_may_be_taken_back() -> None:
    assert refusal(BOB, ChangeAsk(EntryKind.REACTION, 1, emoji="ok"), message()) == (
        "A reaction is one emoji, like 👍."
    )
    reacted = message(revision=Revision(reactions=(Reaction("👍", ("bob",)),)))
    assert refusal(BOB, thumbs(), reacted) == "You reacted 👍 to #1 already."
    assert refusal(ALICE, thumbs(remove=True), reacted) == "You have not reacted 👍 to #1."
    decide(BOB, thumbs(remove=True), reacted)
    full = message(
        revision=Revision(
            reactions=tuple(
                Reaction(chr(0x1F600 + n), ("alice",)) for n in range(MAX_REACTION_KINDS)
            )
        )
    )
    assert "kinds of reaction already" in refusal(BOB, thumbs(), full)
    decide(BOB, ChangeAsk(EntryKind.REACTION, 1, emoji=chr(0x1F600)), full)  # an existing kind


def test_a_redis_message_from_before_bodies_is_read_but_never_changed() -> None:
    """An earlier purechat kept a message's text in its Redis stream entry, where a
    delete could only hide it: such a message is refused every change, with why."""
    from purechat.store.redis import _message  # noqa: PLC0415

    fields = [b"user", b"alice", b"text", b"old words", b"time", str(T0).encode(),
              b"action", b"0", b"epoch", b"e1"]  # fmt: skip
    old = _message("lobby", b"1-0", fields)
    assert old.text == "old words" and old.revision == Revision(fixed=True)
    why = "Message #1 was stored before this server kept edits, deletes and reactions"
    for ask, role in ((DELETE, "member"), (DELETE, "operator"), (thumbs(), "member")):
        assert refusal(ALICE, ask, old, role=role).startswith(why)
    # One written since has a body: it may change.
    body = json.dumps({"text": "new words"}).encode()
    kept = _message("lobby", b"1-0", [*fields[:2], *fields[4:]], body)
    assert kept.text == "new words" and not (kept.revision and kept.revision.fixed)


@pytest.mark.parametrize(
    ("text", "one"),
    [("👍", True), ("👍🏽", True), ("❤️", True), ("👨‍👩‍👧", True), ("🇫🇷", True), ("1️⃣", True),
     ("🏴󠁧󠁢󠁳󠁣󠁴󠁿", True), ("", False), ("a", False), ("👍👍", False), ("👍 ", False),
     ("🇫", False), ("‍👍", False)],
)  # fmt: skip
def test_one_emoji_is_one_grapheme_that_is_an_emoji(text: str, one: bool) -> None:
    assert is_one_emoji(text) is one


def test_a_reply_names_a_number_the_room_has_given() -> None:
    assert reply_problem(0, 0) is None and reply_problem(3, 3) is None
    assert reply_problem(4, 3) == "There is no message #4 here to reply to."
    assert reply_problem(-1, 3) is not None


def _entry(kind: EntryKind, by: str = "bob", text: str = "", **data: object) -> Message:
    return Message("lobby", 9, by, text, T0 + 5000, kind=kind, target=1,
                   data=json.dumps(data, ensure_ascii=False))  # fmt: skip


def test_revise_replaces_deletes_and_aggregates_as_every_store_must() -> None:
    edited = revise(message(), _entry(EntryKind.EDIT, "alice", "new words"))
    assert edited.text == "new words" and edited.revision == Revision(edited_ms=T0 + 5000)
    first = revise(edited, _entry(EntryKind.REACTION, emoji="👍", removed=False, key="bob"))
    both = revise(
        first, _entry(EntryKind.REACTION, "alice", emoji="👍", removed=False, key="alice")
    )
    assert both.revision is not None
    assert both.revision.reactions == (Reaction("👍", ("bob", "alice")),)
    assert revise(both, _entry(EntryKind.REACTION, emoji="👍", removed=False, key="bob")) is both
    back = revise(both, _entry(EntryKind.REACTION, emoji="👍", removed=True, key="bob"))
    assert back.revision is not None and back.revision.reactions == (Reaction("👍", ("alice",)),)
    gone = revise(back, _entry(EntryKind.DELETE, "root", author="alice", moderated=True))
    assert gone.text == "" and gone.revision == Revision(deleted=True, deleted_by="root")
    # Nothing changes a deleted message, and its reactions went with its text.
    assert revise(gone, _entry(EntryKind.EDIT, "alice", "again")) is gone
    assert revision_of(revision_json(gone.revision)) == gone.revision
    assert revision_of(revision_json(both.revision)) == both.revision
    assert revision_json(Revision()) == "" and revision_of("") is None
