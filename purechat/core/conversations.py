"""Conversations: direct messages between two accounts, as rooms only they may enter.

A conversation is a room like any other — the same log, numbering, exactly once, resume,
history and search, on every store and across servers — whose name is made from its
two accounts' name keys (`@dm:KEY:KEY`, in order). Who may enter it, read it, page it
or search it is decided here: its two accounts, and nobody else, server admins
included (they moderate rooms, not private words; an operator who needs a
conversation's content reads the store, which the README says). Guests have no
account, so no conversations.
"""

from __future__ import annotations

from purechat.core.names import name_key
from purechat.errors import NotAllowed

PREFIX = "@dm:"


class ConversationRefused(NotAllowed):
    """A conversation that may not be had or read; str() is a sentence."""


def conversation_room(one: str, other: str) -> str:
    """The room of the conversation between two accounts (by name or key)."""
    first, second = sorted((name_key(one), name_key(other)))
    return f"{PREFIX}{first}:{second}"


def is_conversation(room: str) -> bool:
    return room.startswith(PREFIX)


def participants(room: str) -> tuple[str, str] | None:
    """The two accounts' name keys of a conversation's room (None: not one)."""
    if not is_conversation(room):
        return None
    first, sep, second = room.removeprefix(PREFIX).partition(":")
    return (first, second) if sep and first and second else None


def may_enter(room: str, account_key: str | None) -> str | None:
    """Why an account (None: a guest) may not enter or read a conversation's room, as a
    sentence; None when it may (or the room is not a conversation)."""
    pair = participants(room)
    if pair is None and not is_conversation(room):
        return None
    if account_key is None:
        return "Direct messages are between accounts: log in to have conversations."
    if pair is None or account_key not in pair:
        return "That conversation is not yours."
    return None


def peer_of(room: str, account_key: str) -> str | None:
    """The other account's name key in a conversation (None: not one of its two)."""
    pair = participants(room)
    if pair is None or account_key not in pair:
        return None
    return pair[1] if pair[0] == account_key else pair[0]
