"""Moderation commands as people type them and scripts give them, made into
purechat.v1's `ModerationCommand`.

`/ban spammer 1h spam` in `purechat join`, `purechat mod ban --room den spammer --for 1h
--reason spam` from a script and `chat.ban("spammer", for_="1h", reason="spam")` in
Python all become the same command. Only its shape is checked here (a name where one is
needed, a duration that is one), so a slip is a usage sentence at once; whether it may
be done is the server's to decide, once, for every door (core/moderation.py), and it
answers with a sentence too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from purechat.core.moderation import ModerationRefused, parse_duration
from purechat.errors import ClientError
from purechat.pb import purechat_v1_pb2 as v1

__all__ = ["ACTIONS", "USAGE", "CommandUsage", "command", "seconds_of", "typed"]

ACTIONS = {
    "claim": v1.ModerationCommand.CLAIM,
    "kick": v1.ModerationCommand.KICK,
    "ban": v1.ModerationCommand.BAN,
    "unban": v1.ModerationCommand.UNBAN,
    "mute": v1.ModerationCommand.MUTE,
    "unmute": v1.ModerationCommand.UNMUTE,
    "op": v1.ModerationCommand.OP,
    "deop": v1.ModerationCommand.DEOP,
    "topic": v1.ModerationCommand.TOPIC,
    "mode": v1.ModerationCommand.MODE,
    "invite": v1.ModerationCommand.INVITE,
}
# action -> (how it is typed, what it does), for /help and usage sentences.
USAGE = {
    "claim": ("/claim", "own this room (one without an owner; it takes an account)"),
    "kick": ("/kick NAME [REASON]", "put a member out of the room (it may come back)"),
    "ban": ("/ban NAME [DURATION] [REASON]", "put out and keep out (e.g. /ban bob 1h spam)"),
    "unban": ("/unban NAME", "lift a ban"),
    "mute": ("/mute NAME [DURATION] [REASON]", "the member reads on; its messages are refused"),
    "unmute": ("/unmute NAME", "lift a mute"),
    "op": ("/op NAME", "make an account an operator of this room (the owner only)"),
    "deop": ("/deop NAME", "an operator no more (the owner only)"),
    "topic": ("/topic [TEXT]", "show the topic, or set it (/topic - clears it)"),
    "mode": ("/mode invite-only|open", "let in only the invited, or everyone"),
    "invite": ("/invite NAME", "let an account into an invite-only room"),
}
MODES = ("invite-only", "open")
# Actions whose whole argument is one name (which may hold spaces).
_NAME_ONLY = frozenset({"unban", "unmute", "op", "deop", "invite"})
# Actions that take a duration after the name.
_TIMED = frozenset({"ban", "mute"})
# A word meant as a duration: it starts with a digit ("1h", "30m", "2y" to be refused).
_LOOKS_TIMED = re.compile(r"^\d")


class CommandUsage(ClientError):
    """A command typed or given in a shape it does not take; str() is a sentence."""


def command(
    action: str,
    target: str = "",
    *,
    seconds: float | None = None,
    reason: str = "",
    text: str = "",
) -> v1.ModerationCommand:
    """The command for action ("ban", ...); CommandUsage for one that is not one."""
    if action not in ACTIONS:
        raise CommandUsage(f"{action!r} is not a moderation command: {', '.join(ACTIONS)}.")
    made = v1.ModerationCommand(action=ACTIONS[action], target=target, reason=reason, text=text)
    if seconds is not None:
        made.seconds = seconds
    return made


def seconds_of(duration: float | str | None) -> float | None:
    """A duration as seconds: a number of seconds, or "30m", "2h", "7d"; CommandUsage
    with a sentence for one that is not a duration."""
    if duration is None or isinstance(duration, int | float):
        return None if duration is None else float(duration)
    try:
        return parse_duration(duration)
    except ModerationRefused as wrong:
        raise CommandUsage(str(wrong)) from None


def typed(action: str, argument: str, members: Iterable[str] = ()) -> v1.ModerationCommand:
    """A command as typed after its slash (`typed("ban", "spammer 1h spam")`); members,
    the names in the room, tell where a name with spaces ends. CommandUsage with a
    sentence (the usage, or what is wrong) when it does not fit."""
    argument = argument.strip()
    usage = f"usage: {USAGE[action][0]}"
    if action == "claim":
        if argument:
            raise CommandUsage(f"{usage} (it takes nothing after it)")
        return command("claim")
    if action == "topic":
        return command("topic", text="" if argument == "-" else argument)
    if action == "mode":
        if argument not in MODES:
            raise CommandUsage(usage)
        return command("mode", text=argument)
    if not argument:
        raise CommandUsage(usage)
    if action in _NAME_ONLY:
        name, rest = _unquoted(argument), ""
    else:
        name, rest = _name_and_rest(argument, members)
    if not name:
        raise CommandUsage(usage)
    seconds = None
    if action in _TIMED and rest:
        first, _, after = rest.partition(" ")
        if _LOOKS_TIMED.match(first):
            seconds, rest = seconds_of(first), after.strip()
    return command(action, name, seconds=seconds, reason=rest)


def _unquoted(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].strip()
    return text


def _name_and_rest(argument: str, members: Iterable[str]) -> tuple[str, str]:
    """Where the name ends: a quoted name ("Mary Ann"), the longest member's name the
    argument starts with (names may hold spaces), else the first word."""
    if argument.startswith('"'):
        name, quote, rest = argument[1:].partition('"')
        if not quote:
            raise CommandUsage('a quoted name needs its closing quote: /kick "Mary Ann" REASON')
        return name.strip(), rest.strip()
    folded = argument.casefold()
    spaced = sorted((name for name in members if " " in name), key=len, reverse=True)
    for name in spaced:
        if folded.startswith(name.casefold()) and argument[len(name) : len(name) + 1] in ("", " "):
            return argument[: len(name)], argument[len(name) :].strip()
    name, _, rest = argument.partition(" ")
    return name, rest.strip()
