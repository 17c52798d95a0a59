"""The directory: accounts, sessions, room state, the audit log and control records.

Written once over a store's two primitives (`Records`: key-value spaces and numbered
streams), so memory://, SQLite and Redis keep them alike:

- space `accounts`: name key -> the account (its shown name, password hash, created);
- space `sessions`: the SHA-256 of a session token -> its account and expiry (the token
  itself is never kept), and `sessions-of:KEY` -> the account's sessions, to end them;
- space `state:ROOM`: the room's roles, settings and restrictions (core/moderation.py;
  changed by its moderation entries, in the same transaction as their append);
- space `server-bans`: addresses banned from the whole server;
- stream `audit`: every moderation action and admin act, for `purechat audit`;
- stream `control`: what every server sharing the store must act on at once (an
  account's sessions ended, an address banned, a read marker moved, a direct message
  stored), polled by each of them.

Passwords are hashed by the caller (server/passwords.py); nothing here sees one.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from purechat.core.moderation import Restriction, RoomState, address_prefix
from purechat.core.names import display_form, name_key
from purechat.errors import Refusal
from purechat.store.base import Records, state_space

ACCOUNTS = "accounts"
SESSIONS = "sessions"
SERVER_BANS = "server-bans"
AUDIT = "audit"
CONTROL = "control"
# How much of a direct message its notice carries (enough for a notification).
NOTICE_TEXT = 100
# A session token's prefix: tells it from a token-file token at a glance, in logs too.
TOKEN_PREFIX = "pcs_"


class AccountRefused(Refusal):
    """An account operation that cannot be done (taken, unknown); str() is a sentence."""


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    password_hash: str
    created_ms: int

    @property
    def key(self) -> str:
        return name_key(self.name)

    def to_json(self) -> str:
        return json.dumps(
            {"name": self.name, "hash": self.password_hash, "created_ms": self.created_ms}
        )

    @classmethod
    def from_json(cls, text: str) -> Account:
        data = json.loads(text)
        return cls(str(data["name"]), str(data["hash"]), int(data["created_ms"]))


@dataclass(frozen=True, slots=True)
class Session:
    """A session as the directory keeps it (identified by its token's hash)."""

    token_hash: str
    account: str  # the account's name key
    created_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time_ms: int
    actor: str
    action: str
    room: str = ""
    target: str = ""
    detail: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "time_ms": self.time_ms,
                "actor": self.actor,
                "action": self.action,
                "room": self.room,
                "target": self.target,
                "detail": self.detail,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> AuditEntry:
        data = json.loads(text)
        return cls(
            int(data["time_ms"]),
            str(data["actor"]),
            str(data["action"]),
            str(data.get("room", "")),
            str(data.get("target", "")),
            str(data.get("detail", "")),
        )


@dataclass(frozen=True, slots=True)
class Control:
    """Something every server must act on: `kind` 'account' (end every session of the
    account `subject`), 'address' (end every connection from the prefix `subject`) or
    'accounts' (an account was added or removed: the names reserved change)."""

    kind: str
    subject: str
    reason: str = ""
    # 'marker': the account read `room` up to `seq` (its sessions are told).
    # 'conversation': `peer` wrote message `seq` (`text`: its start) in the account's
    # conversation `room` (its sessions elsewhere are told).
    room: str = ""
    seq: int = 0
    peer: str = ""
    text: str = ""

    def to_json(self) -> str:
        data: dict[str, str | int] = {
            "kind": self.kind,
            "subject": self.subject,
            "reason": self.reason,
            "room": self.room,
            "seq": self.seq,
        }
        if self.peer or self.text:
            data.update(peer=self.peer, text=self.text)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Control:
        data = json.loads(text)
        return cls(
            str(data["kind"]),
            str(data["subject"]),
            str(data.get("reason", "")),
            str(data.get("room", "")),
            int(data.get("seq", 0)),
            str(data.get("peer", "")),
            str(data.get("text", "")),
        )


def token_hash(token: str) -> str:
    """What is kept of a session token: its SHA-256 (tokens are random and long, so a
    plain hash is enough; a leaked store yields no usable token)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Directory:
    """See the module docstring. `clock` gives the time in seconds (tests pin it)."""

    def __init__(self, records: Records, clock: Callable[[], float] = time.time):
        self.records = records
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- accounts -------------------------------------------------------------------

    async def account(self, name: str) -> Account | None:
        found = await self.records.kv_get(ACCOUNTS, name_key(name))
        return None if found is None else Account.from_json(found)

    async def add_account(self, name: str, password_hash: str) -> Account:
        account = Account(display_form(name), password_hash, self._now_ms())
        if not await self.records.kv_put(ACCOUNTS, account.key, account.to_json(), only_new=True):
            raise AccountRefused(f"The name {name} is registered already (or one like it).")
        await self.records.record(CONTROL, Control("accounts", account.key).to_json())
        await self.audit(AuditEntry(account.created_ms, "server", "account-add", target=name))
        return account

    async def set_password(self, name: str, password_hash: str) -> Account:
        account = await self._existing(name)
        changed = Account(account.name, password_hash, account.created_ms)
        await self.records.kv_put(ACCOUNTS, account.key, changed.to_json())
        await self.end_sessions(account.name, "its password was changed")
        await self.audit(AuditEntry(self._now_ms(), "server", "passwd", target=account.name))
        return changed

    async def remove_account(self, name: str) -> Account:
        account = await self._existing(name)
        await self.end_sessions(account.name, "the account was removed")
        await self.records.kv_delete(ACCOUNTS, account.key)
        await self.records.record(CONTROL, Control("accounts", account.key).to_json())
        await self.audit(AuditEntry(self._now_ms(), "server", "account-remove", target=name))
        return account

    async def accounts(self) -> list[Account]:
        found = [Account.from_json(value) for _, value in await self.records.kv_items(ACCOUNTS)]
        return sorted(found, key=lambda account: account.key)

    async def registered(self, keys: Iterable[str]) -> frozenset[str]:
        """Which of these name keys are registered accounts' (reserved for them)."""
        return frozenset(await self.records.kv_present(ACCOUNTS, list(dict.fromkeys(keys))))

    async def account_keys(self) -> set[str]:
        """Every registered account's name key (a server keeps them to reserve names
        without asking the store on every join; 'accounts' control records say when to
        read them again)."""
        return {key for key, _ in await self.records.kv_items(ACCOUNTS)}

    async def _existing(self, name: str) -> Account:
        account = await self.account(name)
        if account is None:
            raise AccountRefused(f"There is no account called {name}.")
        return account

    # -- sessions ---------------------------------------------------------------------

    async def start_session(self, account: Account, ttl: float) -> tuple[str, Session]:
        """A new session for account, valid for ttl seconds: its token (shown once,
        never kept) and what is kept of it."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = self._now_ms()
        session = Session(token_hash(token), account.key, now, now + int(ttl * 1000))
        value = json.dumps(
            {"account": session.account, "created_ms": now, "expires_ms": session.expires_ms}
        )
        await self.records.kv_put(SESSIONS, session.token_hash, value)
        await self.records.kv_put(_sessions_of(account.key), session.token_hash, value)
        return token, session

    async def session(self, token: str) -> tuple[Session, Account] | None:
        """The live session a token stands for, and its account; None for a token that
        is unknown, expired, or whose account is gone."""
        hashed = token_hash(token)
        found = await self.records.kv_get(SESSIONS, hashed)
        if found is None:
            return None
        data = json.loads(found)
        session = Session(hashed, data["account"], data["created_ms"], data["expires_ms"])
        if session.expires_ms <= self._now_ms():
            await self._forget(session)
            return None
        account = await self.records.kv_get(ACCOUNTS, session.account)
        if account is None:
            await self._forget(session)
            return None
        return session, Account.from_json(account)

    async def end_session(self, token: str) -> None:
        found = await self.session(token)
        if found is not None:
            await self._forget(found[0])

    async def sessions(self, name: str) -> list[Session]:
        key = name_key(name)
        found = []
        for hashed, value in await self.records.kv_items(_sessions_of(key)):
            data = json.loads(value)
            found.append(Session(hashed, key, data["created_ms"], data["expires_ms"]))
        now = self._now_ms()
        return [session for session in found if session.expires_ms > now]

    async def end_sessions(self, name: str, reason: str) -> int:
        """End every session of the account, on every server (a control record tells
        the others, whose members of this account are ended at once)."""
        key = name_key(name)
        ended = 0
        for hashed, _ in await self.records.kv_items(_sessions_of(key)):
            await self.records.kv_delete(SESSIONS, hashed)
            await self.records.kv_delete(_sessions_of(key), hashed)
            ended += 1
        await self.records.record(CONTROL, Control("account", key, reason).to_json())
        return ended

    async def _forget(self, session: Session) -> None:
        await self.records.kv_delete(SESSIONS, session.token_hash)
        await self.records.kv_delete(_sessions_of(session.account), session.token_hash)

    # -- rooms ------------------------------------------------------------------------

    async def room_state(self, room: str) -> RoomState:
        rows = []
        for kind_key, value in await self.records.kv_items(state_space(room)):
            kind, _, key = kind_key.partition("|")
            rows.append((kind, key, value))
        return RoomState.from_items(rows)

    # -- conversations and read markers -----------------------------------------------

    async def note_conversation(self, room: str, one: Account, other: Account) -> None:
        """Both accounts have this conversation (their lists show it from now on)."""
        await self.records.kv_put(_conversations_of(one.key), room, other.name)
        await self.records.kv_put(_conversations_of(other.key), room, one.name)

    async def conversations(self, account_key: str) -> dict[str, str]:
        """The account's conversations: room -> the other account's name."""
        return dict(await self.records.kv_items(_conversations_of(account_key)))

    async def mark_read(self, account_key: str, room: str, seq: int) -> int:
        """The account has read room up to seq (a marker never goes back); where it
        stands now. Every server tells the account's sessions (a control record)."""
        space = _read_of(account_key)
        found = await self.records.kv_get(space, room)
        if found is not None and int(found) >= seq:
            return int(found)
        await self.records.kv_put(space, room, str(seq))
        await self.records.record(
            CONTROL, Control("marker", account_key, room=room, seq=seq).to_json()
        )
        return seq

    async def tell_conversation(
        self, account_key: str, room: str, seq: int, peer: str, text: str
    ) -> None:
        """Message seq from peer was stored in the account's conversation room: every
        server tells the account's sessions elsewhere (a control record, carrying the
        first NOTICE_TEXT characters of the text for a notification)."""
        control = Control(
            "conversation", account_key, room=room, seq=seq, peer=peer, text=text[:NOTICE_TEXT]
        )
        await self.records.record(CONTROL, control.to_json())

    async def read_markers(self, account_key: str) -> dict[str, int]:
        return {room: int(seq) for room, seq in await self.records.kv_items(_read_of(account_key))}

    # -- the server's own bans -------------------------------------------------------

    async def ban_address(self, address: str, restriction: Restriction) -> str:
        prefix = address_prefix(address)
        await self.records.kv_put(SERVER_BANS, prefix, restriction.to_json())
        await self.records.record(CONTROL, Control("address", prefix, restriction.reason).to_json())
        return prefix

    async def unban_address(self, address: str) -> bool:
        return await self.records.kv_delete(SERVER_BANS, address_prefix(address))

    async def server_bans(self) -> dict[str, Restriction]:
        now = self._now_ms()
        bans = {
            prefix: Restriction.from_json(value)
            for prefix, value in await self.records.kv_items(SERVER_BANS)
        }
        return {prefix: ban for prefix, ban in bans.items() if ban.active(now)}

    async def address_banned(self, address: str) -> Restriction | None:
        found = await self.records.kv_get(SERVER_BANS, address_prefix(address))
        if found is None:
            return None
        ban = Restriction.from_json(found)
        return ban if ban.active(self._now_ms()) else None

    # -- audit and control ------------------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        await self.records.record(AUDIT, entry.to_json())

    async def audit_log(self, room: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The newest entries, oldest first (of one room, with room)."""
        found = [AuditEntry.from_json(value) for _, value in await self.records.records(AUDIT)]
        if room is not None:
            found = [entry for entry in found if entry.room == room]
        return found[-limit:]

    async def controls(self, after: int) -> list[tuple[int, Control]]:
        """Control records after number `after` (0: from the start)."""
        return [
            (number, Control.from_json(value))
            for number, value in await self.records.records(CONTROL, after=after)
        ]

    async def newest_control(self) -> int:
        found = await self.records.records(CONTROL, last=1)
        return found[0][0] if found else 0


def _conversations_of(account_key: str) -> str:
    return f"conversations-of:{account_key}"


def _read_of(account_key: str) -> str:
    return f"read-of:{account_key}"


def _sessions_of(account_key: str) -> str:
    return f"sessions-of:{account_key}"
