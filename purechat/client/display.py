"""How events look: plain lines, JSON lines, colours; other people's text made harmless."""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

from purechat.core.living import is_one_emoji
from purechat.core.names import distinguishable

# 256-colour codes that read well on dark and light backgrounds.
_PALETTE = (33, 35, 37, 39, 41, 64, 66, 69, 97, 99, 125, 128, 130, 133, 136, 166, 168, 172)
_RESET = "\x1b[0m"
_MENTION = "\x1b[1;7m"  # bold, reverse video
# Public names for the same styles: found words in search results are marked like mentions.
MARK, RESET = _MENTION, _RESET
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True, slots=True)
class Moderation:
    """What a moderation event did (purechat.v1's `Moderation`): `action` ("claim",
    "kick", "ban", "unban", "mute", "unmute", "op", "deop", "topic", "mode",
    "invite"), `by` whom, to whom (`target`), why, until when (0: for good), and the
    new topic or mode."""

    action: str
    by: str = ""
    target: str = ""
    reason: str = ""
    until_ms: int = 0
    topic: str = ""
    mode: str = ""


@dataclass(frozen=True, slots=True)
class Revision:
    """What later changes made of a message (purechat.v1's `Revision`): when it was last
    edited (0: never), whether it is deleted and by whom (an operator; "" when by its
    author), and its reactions: (emoji, names of who gave it), in the order first given."""

    edited_ms: int = 0
    deleted: bool = False
    deleted_by: str = ""
    reactions: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True, slots=True)
class Shown:
    """One thing to show the person or the script: a message, presence, or a notice."""

    # "message", "join", "leave", "gap", "reset", "moderation", and the changes "edit",
    # "delete", "reaction" from the room; "typing" (who else is typing: `typing`, and
    # `more` others); "conversation" (`user` wrote message `seq` to this account in
    # conversation `room`, which this session is not in: `text` is its beginning);
    # "error" (a refused send or command), "status" (connection trouble) and "info"
    # (joined, the topic) from the client itself.
    kind: str
    room: str
    text: str
    user: str = ""
    seq: int = 0
    time_ms: int = 0
    action: bool = False
    history: bool = False
    # A moderation event's details (its `text` is the sentence everyone is told).
    moderation: Moderation | None = None
    # A message: the number of the one it answers (0: none).
    reply_to: int = 0
    # "edit", "delete", "reaction": the number of the message changed.
    target: int = 0
    # A message's (or a change's target's) state after later changes (None: unchanged).
    revision: Revision | None = None
    # "reaction": the emoji, and whether it was taken back.
    emoji: str = ""
    removed: bool = False
    # "typing": who (at most five), and how many others.
    typing: tuple[str, ...] = ()
    more: int = 0


def neutralise(text: str) -> str:
    """Show control and format characters as escapes instead of obeying them.

    Escape sequences, backspaces, bells and bidi overrides in someone else's name or text
    would otherwise clear the screen, move the cursor, retitle the window or hide text.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)


def shown_name(name: str) -> str:
    """A name as shown: look-alikes marked (`names.distinguishable`), then control
    characters made visible (`neutralise`)."""
    return neutralise(distinguishable(name))


def _escape(ch: str) -> str:
    if unicodedata.category(ch) == "Zs":
        return " "
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def colour_of(name: str) -> int:
    """A colour per name, the same in every session."""
    return _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]


def local_clock(time_ms: int, today: date | None = None) -> str:
    """HH:MM:SS, with the date in front for a moment before today."""
    when = datetime.fromtimestamp(time_ms / 1000).astimezone()
    today = today or datetime.now().astimezone().date()
    return when.strftime("%H:%M:%S" if when.date() == today else "%Y-%m-%d %H:%M:%S")


def _name_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)", re.IGNORECASE)


def mentions(text: str, name: str) -> bool:
    """Whether text names `name` as a word (case aside): `@alice`, `alice:`, `Alice,`."""
    return bool(name) and _name_pattern(name).search(text) is not None


def plain_line(item: Shown, *, colour: bool = False, me: str = "", quote: str = "") -> str:
    """`[HH:MM:SS] name: text`, `* name joined`; coloured names when colour is set.

    A message of several lines goes on several lines, each after the first indented
    under the text's start; every other control character is shown, not obeyed. With
    `me` (and colour), the places that name me stand out. A reply is shown under the
    quote of what it answers (quote: see `quoted`), or with the number alone.
    """
    user = shown_name(item.user)
    if colour and user:
        user = f"\x1b[38;5;{colour_of(item.user)}m{user}{_RESET}"
    if item.kind == "join":
        return f"* {user} joined"
    if item.kind == "leave":
        return f"* {user} left"
    text = neutralise(item.text)
    if item.kind == "info":
        return f"-- {text}"
    if item.kind in ("error", "status", "gap", "reset"):
        return f"! {text}"
    stamp = f"[{local_clock(item.time_ms)}] " if item.time_ms else ""
    marker = "(history) " if item.history else ""
    if item.kind == "moderation":  # "* bob was banned by alice for 1h: spam"
        return f"{stamp}{marker}* {text}"
    if item.kind in CHANGE_KINDS:
        return f"{stamp}{marker}* {change_words(item, user)}"
    if item.kind == "typing":
        return f"-- {typing_words(item)}"
    if item.kind == "conversation":
        return f"-- {user} wrote to you (#{item.seq}): {text}  (/dm {user} to answer)"
    head = f"{stamp}{marker}* {user} " if item.action else f"{stamp}{marker}{user}: "
    width = len(_ANSI.sub("", head))
    revision = item.revision
    if revision is not None and revision.deleted:
        return head + tombstone(revision)
    lines = [neutralise(line) for line in item.text.split("\n")]
    if colour and me and item.user != me:
        lines = [_highlight(line, me) for line in lines]
    if revision is not None and revision.edited_ms:
        lines[-1] += " (edited)"
    if revision is not None and revision.reactions:
        lines[-1] += f"  [{reaction_words(revision.reactions)}]"
    said = head + ("\n" + " " * width).join(lines)
    if item.reply_to and quote:
        return f"{' ' * width}↳ {quote}\n{said}"
    if item.reply_to:
        return f"{said}  (↳ #{item.reply_to})"
    return said


# The kinds of event that change an earlier message.
CHANGE_KINDS = frozenset({"edit", "delete", "reaction"})
# How much of an answered message a reply's quote shows.
QUOTED = 40


def quoted(user: str, seq: int, text: str, revision: Revision | None = None) -> str:
    """A reply's quote of the message it answers: `bob #12: the deploy is …`."""
    if revision is not None and revision.deleted:
        return f"#{seq}: {tombstone(revision)}"
    first = text.split("\n", 1)[0]
    if len(first) > QUOTED or "\n" in text:
        cut = first[:QUOTED]
        if len(first) > QUOTED and " " in cut[QUOTED // 2 :]:
            cut = cut.rsplit(" ", 1)[0]  # at a word's end
        first = cut.rstrip() + " …"
    return f"{shown_name(user)} #{seq}: {neutralise(first)}"


def tombstone(revision: Revision) -> str:
    """What stands in place of a deleted message."""
    by = f" by {shown_name(revision.deleted_by)}" if revision.deleted_by else ""
    return f"(message deleted{by})"


def shown_emoji(emoji: str) -> str:
    """An emoji as shown: one the server checked is drawn as it is (its joiners and
    tags included); anything else has its control characters made visible."""
    return emoji if is_one_emoji(emoji) else neutralise(emoji)


def reaction_words(reactions: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    """`👍 2 bob, carol · 🎉 1 dave`: each emoji, its count and who gave it."""
    return " · ".join(
        f"{shown_emoji(emoji)} {len(users)} {', '.join(shown_name(u) for u in users)}"
        for emoji, users in reactions
    )


def change_words(item: Shown, user: str) -> str:
    """An edit, delete or reaction as a line: what happened to which message."""
    revision = item.revision or Revision()
    if item.kind == "edit":
        lines = [neutralise(line) for line in item.text.split("\n")]
        return f"{user} edited #{item.target}: " + "\n  ".join(lines) + " (edited)"
    if item.kind == "delete":
        by = f" by {shown_name(revision.deleted_by)}" if revision.deleted_by else ""
        return f"message #{item.target} deleted{by}"
    did = "took back" if item.removed else "reacted"
    now = reaction_words(revision.reactions) or "no reactions"
    return f"{user} {did} {shown_emoji(item.emoji)} on #{item.target}: {now}"


def typing_words(item: Shown) -> str:
    """`bob is typing…`, `bob and carol are typing…`, `bob, carol and 3 others are…`."""
    names = [shown_name(name) for name in item.typing]
    if item.more:
        names.append(f"{item.more} other{'s' if item.more > 1 else ''}")
    if not names:
        return ""
    said = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{said} {'is' if len(names) == 1 and not item.more else 'are'} typing…"


def _highlight(line: str, name: str) -> str:
    return _name_pattern(name).sub(lambda m: f"{_MENTION}{m.group(0)}{_RESET}", line)


def json_line(item: Shown) -> str:
    """One JSON object; valid whatever the text holds (non-ASCII is escaped)."""
    extra: dict[str, object] = {}
    if item.moderation is not None:
        extra["moderation"] = asdict(item.moderation)
    if item.reply_to:
        extra["reply_to"] = item.reply_to
    if item.target:
        extra["target"] = item.target
    if item.revision is not None:
        revision = item.revision
        extra["revision"] = {
            "edited": _iso(revision.edited_ms) if revision.edited_ms else None,
            "deleted": revision.deleted,
            "deleted_by": revision.deleted_by,
            "reactions": [{"emoji": e, "users": list(users)} for e, users in revision.reactions],
        }
    if item.kind == "reaction":
        extra["reaction"] = {"emoji": item.emoji, "removed": item.removed}
    if item.kind == "typing":
        extra["typing"] = {"users": list(item.typing), "more": item.more}
    return json.dumps(
        {
            "kind": item.kind,
            "room": item.room,
            "seq": item.seq,
            "user": item.user,
            "text": item.text,
            "time": _iso(item.time_ms) if item.time_ms else None,
            "action": item.action,
            "history": item.history,
            **extra,
        }
    )


def _iso(time_ms: int) -> str:
    when = datetime.fromtimestamp(time_ms / 1000, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
