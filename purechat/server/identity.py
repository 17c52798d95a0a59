"""Who a caller is: a guest, a bot of the token file, or an account with a session.

Every door asks here, with the token it was given (a gRPC call's `authorization:
Bearer TOKEN`, a web page's join frame) and the address it comes from:

- no token: a guest, when the server lets guests in (`--guests`; by default it does,
  unless it has a token file: then every call needs a token, as before accounts);
- a token of the token file: the bot or service it names (with its own rate, if any);
- a session token (`pcs_…`, from `Login`): the account it was given to, while the
  session lasts (`--session-ttl`) and is not ended.

A wrong token or password counts against the address (and, for a login, the account):
the next attempts wait, longer and longer (server/throttle.py); each is logged and
counted. Passwords are checked off the event loop (server/passwords.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from purechat.core.hub import Identity
from purechat.core.limits import Limits
from purechat.core.moderation import Restriction, address_prefix
from purechat.core.names import name_key, name_problem
from purechat.errors import NotAllowed, Refusal, Unauthenticated
from purechat.server.auth import TokenBook
from purechat.server.passwords import Passwords, password_problem
from purechat.server.throttle import Throttle
from purechat.status import TOKEN_REQUIRED
from purechat.store.directory import TOKEN_PREFIX, Account, Directory, Session

log = logging.getLogger("purechat.server")

DEFAULT_SESSION_TTL = 30 * 24 * 3600.0
# Accounts one address may register in REGISTRATION_WINDOW seconds.
REGISTRATIONS_PER_ADDRESS = 3
REGISTRATION_WINDOW = 3600.0


@dataclass(frozen=True)
class AccountsConfig:
    """How a server lets people in (the `serve` options of the same names)."""

    # Guests (no token) may join; None: yes, unless the server has a token file.
    guests: bool | None = None
    # Anyone may register an account (`Register`), a few per address.
    registration: bool = False
    # Name keys of the server's admins.
    admins: frozenset[str] = frozenset()
    session_ttl: float = DEFAULT_SESSION_TTL


@dataclass(frozen=True, slots=True)
class Admission:
    identity: Identity
    # The token-file token it came with (revoked by a reload that removes it).
    token: bytes | None = None


class Authenticator:
    def __init__(
        self,
        config: AccountsConfig,
        tokens: TokenBook | None,
        directory: Directory,
        passwords: Passwords,
        limits: Limits,
        *,
        on_failure: Callable[[str], None] = lambda reason: None,
    ):
        self.config = config
        self._tokens = tokens
        self.directory = directory
        self.passwords = passwords
        self._limits = limits
        self._on_failure = on_failure
        self.guests = config.guests if config.guests is not None else tokens is None
        self._throttle = Throttle(anyio.current_time)
        self._registrations = Throttle(anyio.current_time)
        # Addresses banned from the whole server, and every registered account's name
        # key (reserved for it), kept current by the control watcher.
        self.server_bans: dict[str, Restriction] = {}
        self.account_keys: set[str] = set()

    @property
    def has_token_file(self) -> bool:
        return self._tokens is not None

    def is_admin(self, name: str) -> bool:
        return name_key(name) in self.config.admins

    async def identify(self, presented: str, address: str) -> Admission:
        """Who a caller with this token (or none: "") is; Unauthenticated with a
        sentence for a wrong token, or a guest where guests are not let in."""
        presented = presented.strip()
        banned = self.server_bans.get(address_prefix(address))
        if banned is not None and banned.active(int(time.time() * 1000)):
            tail = f": {banned.reason}" if banned.reason else ""
            raise NotAllowed(f"Your address is banned from this server{tail}.")
        if not presented:
            if not self.guests:
                raise Unauthenticated(self._guests_refused(), missing=True)
            return Admission(Identity(address=address))
        await self._wait_out(address)
        entry = self._tokens.lookup(presented) if self._tokens is not None else None
        if entry is not None:
            identity = Identity(entry.name, self.is_admin(entry.name), address, entry.rate)
            return Admission(identity, entry.token)
        if presented.startswith(TOKEN_PREFIX):
            found = await self.directory.session(presented)
            if found is not None:
                _, account = found
                return Admission(Identity(account.name, self.is_admin(account.name), address))
        self._failed("token", address)
        raise Unauthenticated(
            f"{TOKEN_REQUIRED} (this one is not valid: it may have expired or been ended; "
            "log in again, or give the token you were given)"
        )

    async def login(self, name: str, password: str, address: str) -> tuple[str, Session, Account]:
        """A new session for the account (its token, shown once); Unauthenticated with
        one sentence for an unknown name and a wrong password alike."""
        key = f"account:{name_key(name)}" if name else "account:"
        await self._wait_out(address, key)
        account = await self.directory.account(name) if name else None
        right = await self.passwords.verify(account.password_hash if account else None, password)
        if account is None or not right:
            self._failed("login", address, key)
            raise Unauthenticated("Wrong name or password.")
        self._throttle.succeeded(key)
        token, session = await self.directory.start_session(account, self.config.session_ttl)
        log.info("%s logged in from %s", account.name, address)
        return token, session, account

    async def register(self, name: str, password: str, address: str) -> Account:
        """A new account (when registration is open), a few per address an hour."""
        if not self.config.registration:
            raise NotAllowed(
                "This server does not let people register: ask its admin for an account."
            )
        if self._too_many_registrations(address):
            raise NotAllowed("Too many accounts were registered from your address: try later.")
        if problem := name_problem(name, self._limits) or password_problem(password):
            raise Refusal(problem)
        account = await self.directory.add_account(name, await self.passwords.hash(password))
        self._registrations.failed(address)  # counts registrations, not failures
        log.info("%s registered from %s", account.name, address)
        return account

    async def logout(self, presented: str) -> None:
        await self.directory.end_session(presented.strip())

    # -- internals --------------------------------------------------------------------

    def _too_many_registrations(self, address: str) -> bool:
        return self._registrations.count(address, REGISTRATION_WINDOW) >= REGISTRATIONS_PER_ADDRESS

    async def _wait_out(self, *keys: str) -> None:
        """Guessing is slowed: after failures, the next attempt waits before its answer."""
        delay = self._throttle.delay(*keys)
        if delay:
            await anyio.sleep(delay)

    def _failed(self, what: str, address: str, *keys: str) -> None:
        self._throttle.failed(address, *keys)
        self._on_failure(what)
        log.warning("%s: a wrong %s", address, "password or name" if what == "login" else what)

    def _guests_refused(self) -> str:
        if self._tokens is not None and self.config.guests is None:
            return f"{TOKEN_REQUIRED} (give the token you were given)"
        return f"{TOKEN_REQUIRED} (this server is for members with an account: log in first)"
