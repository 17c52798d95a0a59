"""How events look: plain lines, JSON lines, colours; other people's text made harmless."""

from __future__ import annotations

import json
import re
import unicodedata
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

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
class Shown:
    """One thing to show the person or the script: a message, presence, or a notice."""

    # "message", "join", "leave", "gap", "reset", "moderation" from the room; "error"
    # (a refused send or command), "status" (connection trouble) and "info" (joined,
    # the topic) from the client itself.
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


def plain_line(item: Shown, *, colour: bool = False, me: str = "") -> str:
    """`[HH:MM:SS] name: text`, `* name joined`; coloured names when colour is set.

    A message of several lines goes on several lines, each after the first indented
    under the text's start; every other control character is shown, not obeyed. With
    `me` (and colour), the places that name me stand out.
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
    head = f"{stamp}{marker}* {user} " if item.action else f"{stamp}{marker}{user}: "
    width = len(_ANSI.sub("", head))
    lines = [neutralise(line) for line in item.text.split("\n")]
    if colour and me and item.user != me:
        lines = [_highlight(line, me) for line in lines]
    return head + ("\n" + " " * width).join(lines)


def _highlight(line: str, name: str) -> str:
    return _name_pattern(name).sub(lambda m: f"{_MENTION}{m.group(0)}{_RESET}", line)


def json_line(item: Shown) -> str:
    """One JSON object; valid whatever the text holds (non-ASCII is escaped)."""
    when = datetime.fromtimestamp(item.time_ms / 1000, UTC) if item.time_ms else None
    extra = {"moderation": asdict(item.moderation)} if item.moderation is not None else {}
    return json.dumps(
        {
            "kind": item.kind,
            "room": item.room,
            "seq": item.seq,
            "user": item.user,
            "text": item.text,
            "time": when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            if when
            else None,
            "action": item.action,
            "history": item.history,
            **extra,
        }
    )
