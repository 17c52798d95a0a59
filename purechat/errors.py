"""The one root of purechat's errors, and its families.

Every error purechat raises on purpose derives from `PurechatError`, and its str() is a
sentence a person can act on. Callers catch a family, not a list of unrelated classes;
the gRPC status a chat error becomes is chosen in one place (`purechat.status`).
"""

from __future__ import annotations


class PurechatError(Exception):
    """Root of purechat's own errors; str() is a sentence for a person."""


class ConfigurationError(PurechatError):
    """A setting, file or certificate that cannot be used: the program cannot start."""


class StoreError(PurechatError):
    """The store cannot do what was asked."""


class StoreUnavailable(StoreError):
    """The store refused or could not be asked: nothing was done."""


class StoreDamaged(StoreUnavailable):
    """The store's data is damaged (a SQLite file SQLite calls malformed): what was
    asked fails, and will until its operator repairs it. `where` names the damaged file
    for the sentence a member is told."""

    def __init__(self, sentence: str, where: str):
        super().__init__(sentence)
        self.where = where


class OutcomeUnknown(StoreError):
    """The store did not answer in time: what was asked may or may not have been done."""


class Refusal(PurechatError):
    """A request that breaks a rule (a name, a room, a limit); trying again will not help."""


class NotAllowed(Refusal):
    """Not for this member: a ban, a missing role, a mute; str() is a sentence."""


class Unauthenticated(Refusal):
    """No valid credentials (a wrong token or password, guests not let in).

    `missing`: no credentials were given (rather than wrong ones), so a door can say
    how to give them in its own words."""

    def __init__(self, sentence: str, *, missing: bool = False):
        super().__init__(sentence)
        self.missing = missing


class LimitReached(Refusal):
    """A limit is reached (a full room, too many connections, too many messages)."""


class TransportError(PurechatError):
    """The connection or the call cannot go on."""


class ClientError(PurechatError):
    """The client cannot do what the person asked (reach the server, stay in the room)."""
