"""Living messages: who may edit, delete or react to a message, and what that changes.

Decided here, once, for every door (a member's frame on purechat.v1 or the page, a
script's call), as moderation is (core/moderation.py): each decision takes who acts, the
message as the store has it now, and what is asked, and answers with the details of the
log entry to store, or a refusal (a sentence). The entry is numbered in the room's log
like a message, so every member sees it in its place, on resume too; each store applies
it to its target in the same transaction (or script) that numbers it (`revise` is the
rule, which the memory store runs and the others write in their own language), and a
store that finds the target deleted meanwhile applies nothing.

The rules:
- Only accounts edit, delete and react: a guest's name may be someone else's tomorrow,
  so a guest's message stays as it was sent (an operator may still delete it).
- An account edits its own messages, within the server's edit window; the earlier text
  is replaced, not kept.
- An account deletes its own messages, whenever; the room's operators and owner, and
  the server's admins, delete anyone's (the tombstone says by whom). The text is gone
  from the store, and so are the message's reactions.
- An account reacts with one emoji, once per kind per message, and may take it back;
  a message has at most MAX_REACTION_KINDS kinds. A deleted message takes none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

from purechat.core.events import CHANGES, EntryKind, Message, Reaction, Revision
from purechat.core.moderation import Actor, format_duration
from purechat.core.names import name_key
from purechat.errors import NotAllowed

# A member's typing is taken at most this often (faster signals are dropped), and a
# client shows it for at most this long after the frame that told it.
TYPING_EVERY_SECONDS = 3.0
TYPING_SHOWN_SECONDS = 6.0
# Kinds of emoji one message may carry, and the longest emoji taken (code points: a
# family of four with skin tones is 11).
MAX_REACTION_KINDS = 20
MAX_EMOJI_CODE_POINTS = 16
DEFAULT_EDIT_WINDOW = 24 * 3600.0


class ChangeRefused(NotAllowed):
    """An edit, delete or reaction that may not be done; str() is a sentence."""


@dataclass(frozen=True, slots=True)
class Change:
    """A decided change: the log entry's kind, target, text and details."""

    kind: EntryKind
    target: int
    text: str = ""
    data: str = ""


@dataclass(frozen=True, slots=True)
class ChangeAsk:
    """What a member (or a script) asks to do to message `seq`, from any door."""

    kind: EntryKind  # EDIT, DELETE or REACTION
    seq: int
    # EDIT: the new text.
    text: str = ""
    # REACTION: the emoji, and whether it is taken back.
    emoji: str = ""
    remove: bool = False


def decide_change(
    actor: Actor, role: str, ask: ChangeAsk, target: Message | None, *, now_ms: int, window: float
) -> Change:
    """Whether actor (its role in the room: "member", "operator", "owner") may do ask
    to target (message ask.seq as the store has it; None: not kept); ChangeRefused with
    the sentence when not."""
    if ask.kind is EntryKind.EDIT:
        return decide_edit(actor, target, ask.seq, ask.text, now_ms=now_ms, window=window)
    if ask.kind is EntryKind.DELETE:
        return decide_delete(actor, role, target, ask.seq)
    return decide_reaction(actor, target, ask.seq, ask.emoji, remove=ask.remove)


def reply_problem(reply_to: int, newest: int) -> str | None:
    """Why a message cannot answer message reply_to (the room's newest is `newest`):
    only a number the room has given may be answered. Whether it is still kept, or
    deleted since, is the quote's business, not the reply's."""
    if reply_to and not 0 < reply_to <= newest:
        return f"There is no message #{reply_to} here to reply to."
    return None


def decide_edit(
    actor: Actor, target: Message | None, seq: int, text: str, *, now_ms: int, window: float
) -> Change:
    """Whether actor may make message seq (`target`, as stored; None: not kept) say text."""
    if actor.account is None:
        raise ChangeRefused("Only members with an account can edit their messages: log in first.")
    if window <= 0:
        raise ChangeRefused("This server does not allow edits.")
    found = _message(target, seq)
    if _deleted(found):
        raise ChangeRefused(f"Message #{seq} was deleted: there is nothing to edit.")
    if found.account != actor.account:
        raise ChangeRefused("You can only edit your own messages.")
    if now_ms - found.time_ms > window * 1000:
        raise ChangeRefused(
            f"Message #{seq} is older than {format_duration(window)}: it can no longer be edited."
        )
    if text == found.text:
        raise ChangeRefused(f"Message #{seq} says that already.")
    return Change(EntryKind.EDIT, seq, text)


def decide_delete(actor: Actor, role: str, target: Message | None, seq: int) -> Change:
    """Whether actor (with its role in the room: "member", "operator", "owner") may
    delete message seq."""
    if actor.account is None:
        raise ChangeRefused("Only members with an account can delete messages: log in first.")
    found = _message(target, seq)
    if _deleted(found):
        raise ChangeRefused(f"Message #{seq} is deleted already.")
    own = bool(found.account) and found.account == actor.account
    if not own and not (actor.admin or role in ("operator", "owner")):
        raise ChangeRefused(
            "You can only delete your own messages (an operator can delete anyone's)."
        )
    details = {"author": found.user, "by": actor.name, "moderated": not own}
    return Change(EntryKind.DELETE, seq, data=json.dumps(details))


def decide_reaction(
    actor: Actor, target: Message | None, seq: int, emoji: str, *, remove: bool
) -> Change:
    """Whether actor may add (or take back) emoji on message seq."""
    if actor.account is None:
        raise ChangeRefused("Only members with an account can react: log in first.")
    if not is_one_emoji(emoji):
        raise ChangeRefused("A reaction is one emoji, like 👍.")
    found = _message(target, seq)
    if _deleted(found):
        raise ChangeRefused(f"Message #{seq} was deleted: there is nothing to react to.")
    reactions = found.revision.reactions if found.revision else ()
    mine = {r.emoji for r in reactions if any(name_key(u) == actor.account for u in r.users)}
    if remove and emoji not in mine:
        raise ChangeRefused(f"You have not reacted {emoji} to #{seq}.")
    if not remove and emoji in mine:
        raise ChangeRefused(f"You reacted {emoji} to #{seq} already.")
    kinds = {r.emoji for r in reactions}
    if not remove and emoji not in kinds and len(kinds) >= MAX_REACTION_KINDS:
        raise ChangeRefused(
            f"Message #{seq} has {MAX_REACTION_KINDS} kinds of reaction already: "
            "add yours to one of them."
        )
    details = {"emoji": emoji, "removed": remove, "key": actor.account}
    return Change(EntryKind.REACTION, seq, data=json.dumps(details, ensure_ascii=False))


def reaction_of(entry: Message) -> tuple[str, bool, str]:
    """A REACTION entry's emoji, whether it was taken back, and whose account key."""
    details = json.loads(entry.data or "{}")
    return str(details.get("emoji", "")), bool(details.get("removed")), str(details.get("key", ""))


def deleted_by(entry: Message) -> str:
    """Who a DELETE entry's tombstone names: the deleter, when not the author."""
    details = json.loads(entry.data or "{}")
    return entry.user if details.get("moderated") else ""


def revise(target: Message, entry: Message) -> Message:
    """target (a MESSAGE as stored) after entry (an EDIT, DELETE or REACTION of it): the
    rule every store keeps. A deleted target stays as it is; so does a reaction an
    account already has (or no longer has), or one kind too many."""
    revision = target.revision or Revision()
    if revision.deleted:
        return target
    if entry.kind is EntryKind.EDIT:
        return replace(target, text=entry.text, revision=replace(revision, edited_ms=entry.time_ms))
    if entry.kind is EntryKind.DELETE:
        gone = Revision(deleted=True, deleted_by=deleted_by(entry))
        return replace(target, text="", revision=gone)
    emoji, removed, key = reaction_of(entry)
    reactions = list(revision.reactions)
    at = next((i for i, r in enumerate(reactions) if r.emoji == emoji), None)
    users = list(reactions[at].users) if at is not None else []
    has = any(name_key(user) == key for user in users)
    if removed and has:
        users = [user for user in users if name_key(user) != key]
    elif not removed and not has and (at is not None or len(reactions) < MAX_REACTION_KINDS):
        users.append(entry.user)
    else:
        return target
    if at is None:
        reactions.append(Reaction(emoji, tuple(users)))
    elif users:
        reactions[at] = Reaction(emoji, tuple(users))
    else:
        del reactions[at]
    return replace(target, revision=replace(revision, reactions=tuple(reactions)))


def as_delivered(entry: Message, target: Message) -> Message:
    """A change entry as members get it: carrying its target's revision (and an EDIT
    the target's text), so applying it twice, or late, shows the same."""
    text = target.text if entry.kind is EntryKind.EDIT else ""
    return replace(entry, text=text, revision=target.revision or Revision())


def as_kept(entry: Message) -> Message:
    """What a store keeps of a change entry: no text (an EDIT's lives in its target
    only, so a later delete removes it everywhere)."""
    return replace(entry, text="") if entry.kind is EntryKind.EDIT else entry


def as_read(entry: Message, target: Message | None) -> Message:
    """A change entry read back from a store, with its target as it is now (None: no
    longer kept): what history and resume give."""
    if target is None or entry.kind not in CHANGES:
        return entry
    return as_delivered(entry, target)


def revision_json(revision: Revision | None) -> str:
    """A message's revision as stores keep it ("" for one never changed)."""
    if revision is None or revision == Revision():
        return ""
    kept: dict[str, object] = {}
    if revision.edited_ms:
        kept["edited_ms"] = revision.edited_ms
    if revision.deleted:
        kept["deleted"] = True
        kept["deleted_by"] = revision.deleted_by
    if revision.reactions:
        kept["reactions"] = [[r.emoji, list(r.users)] for r in revision.reactions]
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":"))


def revision_of(kept: str) -> Revision | None:
    """A revision as revision_json wrote it."""
    if not kept:
        return None
    found = json.loads(kept)
    return Revision(
        edited_ms=int(found.get("edited_ms", 0)),
        deleted=bool(found.get("deleted", False)),
        deleted_by=str(found.get("deleted_by", "")),
        reactions=tuple(Reaction(str(e), tuple(users)) for e, users in found.get("reactions", ())),
    )


def _message(target: Message | None, seq: int) -> Message:
    if target is None or target.kind is not EntryKind.MESSAGE or target.seq != seq:
        raise ChangeRefused(f"There is no message #{seq} here.")
    if target.revision is not None and target.revision.fixed:
        raise ChangeRefused(
            f"Message #{seq} was stored before this server kept edits, deletes and "
            "reactions: it cannot be changed."
        )
    return target


def _deleted(message: Message) -> bool:
    return message.revision is not None and message.revision.deleted


# -- emoji ------------------------------------------------------------------------------

# Unicode's Extended_Pictographic code points (emoji-data.txt, UTS #51), as ranges: the
# characters that can stand as an emoji, alone or joined by ZWJ.
_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049),
    (0x2122, 0x2122), (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA),
    (0x231A, 0x231B), (0x2328, 0x2328), (0x2388, 0x2388), (0x23CF, 0x23CF),
    (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2), (0x25AA, 0x25AB),
    (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2605),
    (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712),
    (0x2714, 0x2714), (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721),
    (0x2728, 0x2728), (0x2733, 0x2734), (0x2744, 0x2744), (0x2747, 0x2747),
    (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755), (0x2757, 0x2757),
    (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0),
    (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C),
    (0x2B50, 0x2B50), (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D),
    (0x3297, 0x3297), (0x3299, 0x3299), (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F),
    (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171), (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E),
    (0x1F191, 0x1F19A), (0x1F1AD, 0x1F1E5), (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A),
    (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A), (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA),
    (0x1F400, 0x1F53D), (0x1F546, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F),
    (0x1F7D5, 0x1F7FF), (0x1F80C, 0x1F80F), (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F),
    (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF), (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945),
    (0x1F947, 0x1FAFF), (0x1FC00, 0x1FFFD),
)  # fmt: skip
_ZWJ = 0x200D
_VS16 = 0xFE0F
_KEYCAP = 0x20E3
_TAG_END = 0xE007F


def _pictographic(cp: int) -> bool:
    return any(low <= cp <= high for low, high in _PICTOGRAPHIC)


def _modifier(cp: int) -> bool:
    return 0x1F3FB <= cp <= 0x1F3FF


def _regional(cp: int) -> bool:
    return 0x1F1E6 <= cp <= 0x1F1FF


def _tag(cp: int) -> bool:
    return 0xE0020 <= cp <= 0xE007E


def is_one_emoji(text: str) -> bool:
    """Whether text is exactly one emoji (one grapheme that is one): a pictograph with
    its presentation selector or skin tone, a keycap, a flag, a tag sequence (🏴 and a
    region's tags), or such elements joined by ZWJ (👨‍👩‍👧)."""
    cps = [ord(ch) for ch in text]
    if not cps or len(cps) > MAX_EMOJI_CODE_POINTS:
        return False
    if len(cps) == 2 and all(_regional(cp) for cp in cps):
        return True  # a flag
    if text[0] in "0123456789#*" and cps[1:] in ([_VS16, _KEYCAP], [_KEYCAP]):
        return True  # a keycap
    at = 0
    while True:
        at = _element(cps, at)
        if at < 0:
            return False
        if at == len(cps):
            return True
        if cps[at] != _ZWJ:
            return False
        at += 1


def _element(cps: list[int], at: int) -> int:
    """Where one emoji element starting at `at` ends (-1: none starts there)."""
    if at >= len(cps) or not _pictographic(cps[at]):
        return -1
    at += 1
    if at < len(cps) and cps[at] == _VS16:
        at += 1
    if at < len(cps) and _modifier(cps[at]):
        at += 1
    if at < len(cps) and _tag(cps[at]):
        while at < len(cps) and _tag(cps[at]):
            at += 1
        if at == len(cps) or cps[at] != _TAG_END:
            return -1
        at += 1
    return at
