"""Policies the core enforces, and the validation of rooms and session ids (names:
see names.py)."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

DEFAULT_ROOM = "lobby"


@dataclass(frozen=True, slots=True)
class Limits:
    max_text_bytes: int = 4096
    max_name_chars: int = 32
    max_room_chars: int = 64
    # Messages a second per member, with bursts of twice that; 0 turns it off.
    rate_limit: float = 10.0
    max_members_per_room: int = 50_000
    # How long after sending an account may edit a message, in seconds (0: no edits).
    edit_window: float = 24 * 3600.0


def has_control_characters(text: str) -> bool:
    """True when text holds control or format characters (escapes, bidi overrides...)."""
    return any(unicodedata.category(ch)[0] == "C" for ch in text)


# A session id is the client's random token (purechat join sends 32 hex digits).
MAX_SESSION_CHARS = 64


def session_problem(session: str) -> str | None:
    """Why a client's session id is unacceptable, as a sentence, or None."""
    if len(session) > MAX_SESSION_CHARS or has_control_characters(session):
        return f"A session id is at most {MAX_SESSION_CHARS} printable characters."
    return None


def room_problem(room: str, limits: Limits) -> str | None:
    """Why a room name is unacceptable, as a sentence, or None when it is fine."""
    if not room:
        return "Room names cannot be empty."
    if len(room) > limits.max_room_chars:
        return f"Room names are at most {limits.max_room_chars} characters."
    if has_control_characters(room) or any(ch.isspace() for ch in room):
        return "Room names cannot contain spaces or control characters."
    return None
