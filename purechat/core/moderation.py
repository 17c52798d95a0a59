"""Roles and moderation in a room, as data: who may do what, and what it changes.

Permissions are decided here, once, for every door (a member's frame on purechat.v1 or
the page, a script's call, the terminal): `decide` takes who acts, the command, the
room's state and the target, and answers with a refusal (a sentence) or a `Decision`.
A decision becomes an entry in the room's log, so every member on every server sees
it in its order with the messages, and it carries its `effects` on the room's state:
plain set and delete operations on (kind, key) pairs that each store applies in the
same transaction (or script) that numbers the entry, so the state and the log never
disagree, and every server applies the same effects to its copy when it delivers the
entry.

Accounts are compared by their name key (`names.name_key`), so an operator is the
same account whatever case or look-alike spelling names it. A guest (no account) is
kicked by name and banned by address (an IPv6 address by its /64).
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from purechat.errors import NotAllowed


class Action(enum.Enum):
    CLAIM = "claim"
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    MUTE = "mute"
    UNMUTE = "unmute"
    OP = "op"
    DEOP = "deop"
    TOPIC = "topic"
    MODE = "mode"
    INVITE = "invite"


# Actions that name another member.
TARGETED = frozenset(
    {
        Action.KICK,
        Action.BAN,
        Action.UNBAN,
        Action.MUTE,
        Action.UNMUTE,
        Action.OP,
        Action.DEOP,
        Action.INVITE,
    }
)
# Actions only the room's owner (or a server admin) may take.
OWNER_ONLY = frozenset({Action.OP, Action.DEOP})
# Actions that take a duration (none: for good).
TIMED = frozenset({Action.BAN, Action.MUTE})

MAX_REASON_CHARS = 200
MAX_TOPIC_CHARS = 300
# The longest ban or mute that is not for good: a year.
MAX_SECONDS = 366 * 24 * 3600


class ModerationRefused(NotAllowed):
    """A moderation command that may not be done; str() is a sentence."""


class StateKind(enum.Enum):
    """What a (kind, key) pair of a room's state holds."""

    OWNER = "owner"  # key "": the owner's account key
    OPERATOR = "op"  # key: an account key; value: its shown name
    TOPIC = "topic"  # key "": the topic
    MODE = "mode"  # key "": "invite-only" or absent
    INVITE = "invite"  # key: an account key; value: its shown name
    BAN = "ban"  # key: "account:KEY" or "address:PREFIX"; value: a Restriction as JSON
    MUTE = "mute"  # as BAN


@dataclass(frozen=True, slots=True)
class Effect:
    """One change to a room's state: set (kind, key) to value, or delete it."""

    kind: StateKind
    key: str
    value: str | None  # None: delete

    def as_list(self) -> list[str]:
        """For a store's script or row: [op, kind, key, value]."""
        return ["del" if self.value is None else "set", self.kind.value, self.key, self.value or ""]

    @classmethod
    def from_list(cls, parts: list[str]) -> Effect:
        op, kind, key, value = parts
        return cls(StateKind(kind), key, None if op == "del" else value)


@dataclass(frozen=True, slots=True)
class Restriction:
    """A ban or a mute: until when (0: for good), why and by whom."""

    until_ms: int
    reason: str
    by: str
    # The name it was given to, for lists and sentences.
    name: str = ""

    def active(self, now_ms: int) -> bool:
        return self.until_ms == 0 or now_ms < self.until_ms

    def to_json(self) -> str:
        return json.dumps(
            {"until_ms": self.until_ms, "reason": self.reason, "by": self.by, "name": self.name}
        )

    @classmethod
    def from_json(cls, text: str) -> Restriction:
        data = json.loads(text)
        return cls(int(data["until_ms"]), str(data["reason"]), str(data["by"]), str(data["name"]))


@dataclass
class RoomState:
    """A room's roles, settings and restrictions (see StateKind)."""

    owner: str = ""
    operators: dict[str, str] = field(default_factory=dict)
    topic: str = ""
    invite_only: bool = False
    invites: dict[str, str] = field(default_factory=dict)
    bans: dict[str, Restriction] = field(default_factory=dict)
    mutes: dict[str, Restriction] = field(default_factory=dict)

    @classmethod
    def from_items(cls, items: Iterable[tuple[str, str, str]]) -> RoomState:
        """From a store's (kind, key, value) rows."""
        state = cls()
        state.apply(Effect(StateKind(kind), key, value) for kind, key, value in items)
        return state

    def apply(self, effects: Iterable[Effect]) -> None:
        for effect in effects:
            self._apply(effect)

    def _apply(self, effect: Effect) -> None:
        kind, key, value = effect.kind, effect.key, effect.value
        if kind is StateKind.OWNER:
            self.owner = value or ""
        elif kind is StateKind.TOPIC:
            self.topic = value or ""
        elif kind is StateKind.MODE:
            self.invite_only = value == "invite-only"
        else:
            names = self.operators if kind is StateKind.OPERATOR else self.invites
            held = self.bans if kind is StateKind.BAN else self.mutes
            if kind in (StateKind.BAN, StateKind.MUTE):
                if value is None:
                    held.pop(key, None)
                else:
                    held[key] = Restriction.from_json(value)
            elif value is None:
                names.pop(key, None)
            else:
                names[key] = value

    def role(self, account: str | None) -> str:
        """'owner', 'operator' or 'member' for an account key (None: a guest)."""
        if account is not None and account == self.owner:
            return "owner"
        if account is not None and account in self.operators:
            return "operator"
        return "member"

    def banned(
        self, account: str | None, address: str, name: str, now_ms: int
    ) -> Restriction | None:
        """A ban that holds for a member: an account's, or a guest's by its name or
        its address (a guest could come back under another name)."""
        return _restricting(self.bans, restricted_keys(account, name, address), now_ms)

    def muted(
        self, account: str | None, address: str, name: str, now_ms: int
    ) -> Restriction | None:
        """A mute that holds for a member: an account's, or a guest's by its name (not
        its address: a mute is no defence, and others may share the address)."""
        return _restricting(self.mutes, restricted_keys(account, name, ""), now_ms)


def _restricting(table: dict[str, Restriction], keys: list[str], now_ms: int) -> Restriction | None:
    for key in keys:
        found = table.get(key)
        if found is not None and found.active(now_ms):
            return found
    return None


def restricted_keys(account: str | None, name: str, address: str) -> list[str]:
    """The keys a ban or mute of a member is kept under: its account's, or for a guest
    its name's and (when given) its address's. Accounts are never held by address."""
    if account is not None:
        return [f"account:{account}"]
    keys = [f"name:{name}"]
    if address:
        keys.append(f"address:{address_prefix(address)}")
    return keys


def address_prefix(address: str) -> str:
    """What a guest is banned by: its IPv4 address, or its IPv6 address's /64."""
    try:
        parsed = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who moderates: a member (or a script) with its account and server role."""

    name: str
    account: str | None  # name key of its account; None for a guest
    admin: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """Whom a command names, as the server found it."""

    name: str
    # Its account's name key; None for a guest (or an unknown name).
    account: str | None
    # A registered account, or a member present in the room now.
    known: bool
    admin: bool = False
    # Where a present guest connects from (bans a guest by address).
    address: str = ""


@dataclass(frozen=True, slots=True)
class Command:
    action: Action
    target: str = ""
    # Bans and mutes: how long (None: for good).
    seconds: float | None = None
    reason: str = ""
    # TOPIC: the new topic; MODE: "invite-only" or "open".
    text: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """A command that may be done: what it changes, what everyone is told, details."""

    command: Command
    effects: tuple[Effect, ...]
    sentence: str
    # For clients and the audit log (JSON-friendly).
    details: dict[str, object]


@dataclass(frozen=True, slots=True)
class _Case:
    """One command being decided: who, what, where, to whom, until when, why."""

    actor: Actor
    command: Command
    state: RoomState
    target: Target
    until_ms: int
    reason: str


def decide(
    actor: Actor, command: Command, state: RoomState, target: Target | None, now_ms: int
) -> Decision:
    """Whether actor may do command in a room in state; ModerationRefused with the
    sentence when not."""
    action = command.action
    if actor.account is None:
        raise ModerationRefused("Only members with an account can moderate: log in first.")
    role = state.role(actor.account)
    if action is Action.CLAIM:
        return _claim(actor, state)
    if action in TARGETED and (target is None or not target.known):
        raise ModerationRefused(f"There is nobody called {command.target or '…'} here.")
    may = actor.admin or role == "owner" or (role == "operator" and action not in OWNER_ONLY)
    if not may:
        needed = "the owner" if action in OWNER_ONLY else "an operator"
        raise ModerationRefused(f"Only {needed} of this room may {action.value}.")
    if action in TARGETED and target is not None:
        _protect(actor, action, state, target)
    case = _Case(
        actor,
        command,
        state,
        target or Target("", None, False),
        _until(command, now_ms),
        _reason(command.reason),
    )
    return _DECIDERS[action](case)


def _claim(actor: Actor, state: RoomState) -> Decision:
    assert actor.account is not None
    if state.owner == actor.account:
        raise ModerationRefused("You own this room already.")
    if state.owner:
        raise ModerationRefused("This room has an owner already.")
    return Decision(
        Command(Action.CLAIM),
        (Effect(StateKind.OWNER, "", actor.account),),
        f"{actor.name} claimed the room and owns it now",
        {"action": "claim", "by": actor.name},
    )


def _protect(actor: Actor, action: Action, state: RoomState, target: Target) -> None:
    """The refusals that protect someone, whatever the actor's role."""
    yourself = target.account is not None and target.account == actor.account
    if yourself and action in (Action.KICK, Action.BAN, Action.MUTE, Action.DEOP):
        raise ModerationRefused(f"You cannot {action.value} yourself.")
    if action in (Action.KICK, Action.BAN, Action.MUTE):
        if target.admin:
            raise ModerationRefused(
                f"{target.name} is a server admin and cannot be {_done(action)}."
            )
        if target.account is not None and target.account == state.owner:
            raise ModerationRefused(f"{target.name} owns this room and cannot be {_done(action)}.")
        if state.role(target.account) == "operator" and not (
            actor.admin or state.role(actor.account) == "owner"
        ):
            raise ModerationRefused(
                f"{target.name} is an operator: only the owner can {action.value} an operator."
            )
    if action in (Action.OP, Action.DEOP, Action.INVITE) and target.account is None:
        raise ModerationRefused(
            f"{target.name} has no account: only accounts can be {_done(action)}."
        )


def _done(action: Action) -> str:
    return {
        Action.KICK: "kicked",
        Action.BAN: "banned",
        Action.MUTE: "muted",
        Action.OP: "made an operator",
        Action.DEOP: "made an operator",
        Action.INVITE: "invited",
    }.get(action, action.value)


def _until(command: Command, now_ms: int) -> int:
    if command.seconds is None:
        return 0
    if command.action not in TIMED:
        raise ModerationRefused(f"{command.action.value} takes no duration.")
    if not 0 < command.seconds <= MAX_SECONDS:
        raise ModerationRefused("A duration is from a second to a year, like 30m, 2h or 7d.")
    return now_ms + int(command.seconds * 1000)


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON_CHARS:
        raise ModerationRefused(f"A reason is at most {MAX_REASON_CHARS} characters.")
    return reason


def _restrict(case: _Case) -> Decision:
    command, target = case.command, case.target
    kind = StateKind.BAN if command.action is Action.BAN else StateKind.MUTE
    restriction = Restriction(case.until_ms, case.reason, case.actor.name, target.name).to_json()
    address = target.address if kind is StateKind.BAN else ""
    keys = restricted_keys(target.account, target.name, address)
    effects = tuple(Effect(kind, key, restriction) for key in keys)
    verb = "banned" if kind is StateKind.BAN else "muted"
    sentence = f"{target.name} was {verb} by {case.actor.name}"
    if command.seconds is not None:
        sentence += f" for {format_duration(command.seconds)}"
    if case.reason:
        sentence += f": {case.reason}"
    return Decision(command, effects, sentence, _details(case))


def _lift(case: _Case) -> Decision:
    command, target, state = case.command, case.target, case.state
    unban = command.action is Action.UNBAN
    kind, table = (StateKind.BAN, state.bans) if unban else (StateKind.MUTE, state.mutes)
    keys = [key for key in restricted_keys(target.account, target.name, "") if key in table]
    keys += [key for key, held in table.items() if held.name == target.name and key not in keys]
    if not keys:
        raise ModerationRefused(f"{target.name} is not {'banned' if unban else 'muted'} here.")
    verb = "unbanned" if unban else "unmuted"
    return Decision(
        command,
        tuple(Effect(kind, key, None) for key in keys),
        f"{target.name} was {verb} by {case.actor.name}",
        _details(case),
    )


def _kick(case: _Case) -> Decision:
    sentence = f"{case.target.name} was kicked by {case.actor.name}"
    if case.reason:
        sentence += f": {case.reason}"
    return Decision(case.command, (), sentence, _details(case))


def _operator(case: _Case) -> Decision:
    target, state, actor = case.target, case.state, case.actor
    assert target.account is not None
    if case.command.action is Action.OP:
        if target.account in state.operators or target.account == state.owner:
            raise ModerationRefused(f"{target.name} is an operator already.")
        effect = Effect(StateKind.OPERATOR, target.account, target.name)
        sentence = f"{actor.name} made {target.name} an operator"
    else:
        if target.account not in state.operators:
            raise ModerationRefused(f"{target.name} is not an operator.")
        effect = Effect(StateKind.OPERATOR, target.account, None)
        sentence = f"{actor.name} took operator from {target.name}"
    return Decision(case.command, (effect,), sentence, _details(case))


def _invite(case: _Case) -> Decision:
    target = case.target
    assert target.account is not None
    return Decision(
        case.command,
        (Effect(StateKind.INVITE, target.account, target.name),),
        f"{case.actor.name} invited {target.name}",
        _details(case),
    )


def _topic(case: _Case) -> Decision:
    topic = " ".join(case.command.text.split())
    if len(topic) > MAX_TOPIC_CHARS:
        raise ModerationRefused(f"A topic is at most {MAX_TOPIC_CHARS} characters.")
    name = case.actor.name
    sentence = f"{name} set the topic: {topic}" if topic else f"{name} cleared the topic"
    return Decision(
        case.command,
        (Effect(StateKind.TOPIC, "", topic or None),),
        sentence,
        {"action": "topic", "by": name, "topic": topic},
    )


def _mode(case: _Case) -> Decision:
    mode = case.command.text.strip().lower()
    if mode not in ("invite-only", "open"):
        raise ModerationRefused("A room's mode is invite-only or open.")
    invite_only = mode == "invite-only"
    name = case.actor.name
    sentence = f"{name} made the room {'invite-only' if invite_only else 'open to all'}"
    return Decision(
        case.command,
        (Effect(StateKind.MODE, "", "invite-only" if invite_only else None),),
        sentence,
        {"action": "mode", "by": name, "mode": mode},
    )


_DECIDERS = {
    Action.KICK: _kick,
    Action.BAN: _restrict,
    Action.MUTE: _restrict,
    Action.UNBAN: _lift,
    Action.UNMUTE: _lift,
    Action.OP: _operator,
    Action.DEOP: _operator,
    Action.INVITE: _invite,
    Action.TOPIC: _topic,
    Action.MODE: _mode,
}


def _details(case: _Case) -> dict[str, object]:
    details: dict[str, object] = {
        "action": case.command.action.value,
        "by": case.actor.name,
        "target": case.target.name,
    }
    if case.target.account is not None:
        details["account"] = case.target.account
    if case.reason:
        details["reason"] = case.reason
    if case.until_ms:
        details["until_ms"] = case.until_ms
    return details


def refusal_to_join(
    state: RoomState, account: str | None, address: str, name: str, now_ms: int, *, admin: bool
) -> str | None:
    """Why a member may not join a room in state, as a sentence (None: it may)."""
    if admin:
        return None
    banned = state.banned(account, address, name, now_ms)
    if banned is not None:
        return "You are banned from this room" + _restriction_tail(banned, now_ms) + "."
    if state.invite_only and (
        account is None
        or (
            account not in state.invites
            and account != state.owner
            and account not in state.operators
        )
    ):
        return "This room is invite-only: ask one of its operators for an invite."
    return None


def _restriction_tail(restriction: Restriction, now_ms: int) -> str:
    tail = f" (by {restriction.by}"
    if restriction.until_ms:
        tail += f", for {format_duration(max(1, (restriction.until_ms - now_ms) / 1000))} more"
    tail += ")"
    if restriction.reason:
        tail += f": {restriction.reason}"
    return tail


def muted_sentence(restriction: Restriction, now_ms: int) -> str:
    return (
        "Message not sent: you are muted in this room"
        + _restriction_tail(restriction, now_ms)
        + "."
    )


def command_from(
    action: str, target: str = "", seconds: float | None = None, reason: str = "", text: str = ""
) -> Command:
    """A command as a door received it (the action by name: "ban"); ModerationRefused
    with a sentence for an action that is not one."""
    try:
        known = Action(action.strip().lower())
    except ValueError:
        names = ", ".join(a.value for a in Action)
        raise ModerationRefused(f"{action!r} is not a moderation command: {names}.") from None
    return Command(known, target.strip(), seconds, reason, text)


# -- durations ------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(text: str) -> float:
    """'30m', '2h', '7d' as seconds; ModerationRefused with a sentence when not one."""
    found = _DURATION.match(text.strip().lower())
    if found is None:
        raise ModerationRefused(
            f"{text!r} is not a duration: give a number and a unit, like 30s, 10m, 2h, 7d or 1w."
        )
    seconds = int(found.group(1)) * _UNITS[found.group(2)]
    if not 0 < seconds <= MAX_SECONDS:
        raise ModerationRefused("A duration is from a second to a year, like 30m, 2h or 7d.")
    return float(seconds)


def format_duration(seconds: float) -> str:
    """A duration as people say it: 45s, 10m, 2h, 3d (the largest unit that fits)."""
    seconds = round(seconds)
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60}m"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
