"""The one place that picks the gRPC status of every chat outcome purechat reports.

The chat services end calls with statuses made here, so a code and its sentence are
chosen once; the transport's own statuses (a lost connection, a malformed request) are
in `purechat.transport.status`, the web page's close and HTTP codes in
`purechat.web.codes`. Sentences a *client* recognises are defined here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from purechat.errors import (
    LimitReached,
    NotAllowed,
    PurechatError,
    Refusal,
    StoreDamaged,
    StoreError,
    TransportError,
    Unauthenticated,
)
from purechat.transport.status import (
    NEVER_ANSWERED,
    OK,
    Status,
    StatusCode,
    internal,
    stream_closed,
    undecodable,
    unimplemented,
)

if TYPE_CHECKING:
    from purechat.core.events import EndReason

__all__ = [
    "NEVER_ANSWERED",
    "OK",
    "Status",
    "StatusCode",
    "internal",
    "undecodable",
    "unimplemented",
]

SHUTTING_DOWN = "server shutting down"
# How a member hears that the store's file is damaged: a client that reads a stream's
# end starting with this stops retrying (only the server's operator can repair it).
STORE_DAMAGED = "the server's message store is damaged"

# -- chat ------------------------------------------------------------------------

_ENDINGS = {
    "too_slow": (
        StatusCode.RESOURCE_EXHAUSTED,
        "you were removed from the room: too slow to receive messages",
    ),
    "store_unavailable": (StatusCode.UNAVAILABLE, "the server cannot store messages right now"),
    "outcome_unknown": (
        StatusCode.UNAVAILABLE,
        "the server could not tell whether your last message was stored",
    ),
    "replaced": (StatusCode.ABORTED, "replaced: the same client joined again on a newer stream"),
    "name_lost": (
        StatusCode.UNAVAILABLE,
        "the server lost touch with the others and your name went to somebody else; join again",
    ),
    "shutting_down": (StatusCode.UNAVAILABLE, SHUTTING_DOWN),
    "kicked": (StatusCode.PERMISSION_DENIED, "you were kicked out of the room"),
    "banned": (StatusCode.PERMISSION_DENIED, "you are banned from the room"),
    "revoked": (
        StatusCode.UNAUTHENTICATED,
        "your session was ended: log in again (purechat login) to come back",
    ),
    "store_damaged": (
        StatusCode.UNAVAILABLE,
        f"{STORE_DAMAGED}: nothing can be stored until its operator repairs it",
    ),
}


def for_end(reason: EndReason, detail: str = "") -> Status:
    """The status a member's stream ends with when the core ends it for reason (detail,
    when given, is the sentence: who banned it and why, say)."""
    code, message = _ENDINGS[reason.value]
    return Status(code, detail or message)


def for_error(error: PurechatError) -> Status:
    """The status a call ends with when one of purechat's errors stops it."""
    if isinstance(error, LimitReached):
        return Status(StatusCode.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, NotAllowed):
        return Status(StatusCode.PERMISSION_DENIED, str(error))
    if isinstance(error, Unauthenticated):
        return Status(StatusCode.UNAUTHENTICATED, str(error))
    if isinstance(error, Refusal):
        return Status(StatusCode.INVALID_ARGUMENT, str(error))
    if isinstance(error, StoreDamaged):
        return store_damaged(error.where)
    if isinstance(error, StoreError):
        return store_unreachable()
    if isinstance(error, TransportError):
        return stream_closed(str(error))
    return internal()


def text_too_long(limit: int) -> Status:
    return Status(
        StatusCode.INVALID_ARGUMENT, f"message text is longer than the limit of {limit} bytes"
    )


def store_unreachable() -> Status:
    return Status(StatusCode.UNAVAILABLE, "the server cannot reach its store right now")


def store_damaged(where: str) -> Status:
    """UNAVAILABLE, as for any store failure (other clients retry), with a sentence that
    starts with STORE_DAMAGED and names the file, so purechat's clients stop."""
    return Status(StatusCode.UNAVAILABLE, f"{STORE_DAMAGED} ({where})")


def refused(reason: str) -> Status:
    """A request that breaks a rule (a name, a room, a text too long): a sentence why."""
    return Status(StatusCode.INVALID_ARGUMENT, reason)


def first_frame_not_join() -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, "the first frame of a stream must be a Join")


# How a call without a token the server knows ends, and one whose token a reload
# removed: clients say these in their own words (their options), not the wire's.
TOKEN_REQUIRED = "a valid token is required"
TOKEN_REVOKED = "token revoked"


def unauthenticated(how: str = "send 'authorization: Bearer TOKEN'") -> Status:
    return Status(StatusCode.UNAUTHENTICATED, f"{TOKEN_REQUIRED} ({how})")


def banned_from_server(reason: str) -> Status:
    tail = f": {reason}" if reason else ""
    return Status(StatusCode.PERMISSION_DENIED, f"your address is banned from this server{tail}")


def token_revoked() -> Status:
    return Status(StatusCode.UNAUTHENTICATED, TOKEN_REVOKED)


def too_many_connections(limit: int) -> Status:
    return Status(
        StatusCode.RESOURCE_EXHAUSTED,
        f"too many connections from your address (at most {limit})",
    )


def flooding(rate: float) -> Status:
    return Status(
        StatusCode.RESOURCE_EXHAUSTED,
        f"too many messages: at most {rate:g} a second (bursts of {2 * rate:g})",
    )
