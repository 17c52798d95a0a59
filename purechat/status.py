"""The one place that picks the gRPC status of every outcome purechat reports.

The transport, the chat services, health and reflection all end calls with statuses
made here, so a code and its sentence are chosen once. Statuses a *client* reads are
classified here too (`retryable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from purerpc.grpclib.status import Status, StatusCode

from purechat.errors import (
    LimitReached,
    PurechatError,
    Refusal,
    StoreError,
    TransportError,
)

if TYPE_CHECKING:
    from purechat.core.events import EndReason

__all__ = ["Status", "StatusCode"]

OK = Status(StatusCode.OK)
SHUTTING_DOWN = "server shutting down"
# The status of calls on a connection that closed before the peer sent anything:
# most likely a TLS port spoken to in plain text, or not a gRPC server at all.
NEVER_ANSWERED = "the server closed the connection without answering"

# -- the transport -------------------------------------------------------------


def connection_lost(*, heard_from_peer: bool = True) -> Status:
    return Status(StatusCode.UNAVAILABLE, "connection lost" if heard_from_peer else NEVER_ANSWERED)


def connection_closing() -> Status:
    return Status(StatusCode.UNAVAILABLE, "connection closing")


def cancelled_by_peer() -> Status:
    return Status(StatusCode.CANCELLED, "call cancelled by the peer")


def cancelled() -> Status:
    return Status(StatusCode.CANCELLED, "call cancelled")


def stream_closed(detail: str = "") -> Status:
    return Status(StatusCode.CANCELLED, f"stream closed: {detail}" if detail else "stream closed")


def too_many_in_flight() -> Status:
    return Status(StatusCode.RESOURCE_EXHAUSTED, "too many messages in flight")


def malformed_request(reason: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, reason)


def message_too_large(reason: str) -> Status:
    return Status(StatusCode.RESOURCE_EXHAUSTED, reason)


def internal() -> Status:
    return Status(StatusCode.INTERNAL, "internal server error")


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
}


def for_end(reason: EndReason) -> Status:
    """The status a member's stream ends with when the core ends it for reason."""
    code, message = _ENDINGS[reason.value]
    return Status(code, message)


def for_error(error: PurechatError) -> Status:
    """The status a call ends with when one of purechat's errors stops it."""
    if isinstance(error, LimitReached):
        return Status(StatusCode.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, Refusal):
        return Status(StatusCode.INVALID_ARGUMENT, str(error))
    if isinstance(error, StoreError):
        return store_unreachable()
    if isinstance(error, TransportError):
        return stream_closed(str(error))
    return internal()


def undecodable(kind: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"could not decode the {kind} message")


def text_too_long(limit: int) -> Status:
    return Status(
        StatusCode.INVALID_ARGUMENT, f"message text is longer than the limit of {limit} bytes"
    )


def store_unreachable() -> Status:
    return Status(StatusCode.UNAVAILABLE, "the server cannot reach its store right now")


def refused(reason: str) -> Status:
    """A request that breaks a rule (a name, a room, a text too long): a sentence why."""
    return Status(StatusCode.INVALID_ARGUMENT, reason)


def first_frame_not_join() -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, "the first frame of a stream must be a Join")


def unimplemented(path: str) -> Status:
    return Status(StatusCode.UNIMPLEMENTED, f"method {path} is not implemented")


def unauthenticated(how: str = "send 'authorization: Bearer TOKEN'") -> Status:
    return Status(StatusCode.UNAUTHENTICATED, f"a valid token is required ({how})")


def token_revoked() -> Status:
    return Status(StatusCode.UNAUTHENTICATED, "token revoked")


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


# -- the web page and its WebSocket (purechat/web) ----------------------------------

# A web member's session ends with a WebSocket close code chosen here: 1000 for OK,
# otherwise 4000 plus the gRPC code, so a page tells a final ending (4003, 4016) from
# one worth reconnecting after (4014) by the same rules as `purechat join`.
CLOSE_OK = 1000
CLOSE_PRIVATE_BASE = 4000
# An HTTP request the web listener refuses gets one of these codes, and the sentence.
_HTTP_CODES = {
    StatusCode.INVALID_ARGUMENT: 400,
    StatusCode.PERMISSION_DENIED: 403,
    StatusCode.NOT_FOUND: 404,
    StatusCode.UNIMPLEMENTED: 405,
    StatusCode.FAILED_PRECONDITION: 426,
    StatusCode.RESOURCE_EXHAUSTED: 429,
    StatusCode.UNAVAILABLE: 503,
}


def close_code(status: Status) -> int:
    """The WebSocket close code a web member's session ends with for status."""
    if status.status_code is StatusCode.OK:
        return CLOSE_OK
    return CLOSE_PRIVATE_BASE + int(status.status_code.value)


def http_code(status: Status) -> int:
    """The HTTP status of a refused web request."""
    return _HTTP_CODES.get(status.status_code, 500)


def foreign_origin(origin: str) -> Status:
    return Status(
        StatusCode.PERMISSION_DENIED,
        f"a page from {origin} may not open a chat session here: open the chat from this "
        "server's own page, or start the server with --web-origin for that page",
    )


def page_not_found(path: str) -> Status:
    return Status(StatusCode.NOT_FOUND, f"there is no page at {path}: the chat is at /")


def method_not_allowed(method: str) -> Status:
    return Status(StatusCode.UNIMPLEMENTED, f"{method} is not supported here: use GET")


def not_a_websocket_handshake(problem: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"not a WebSocket handshake: {problem}")


def websocket_version_unsupported() -> Status:
    return Status(StatusCode.FAILED_PRECONDITION, "only WebSocket version 13 is supported")


def no_join_in_time(seconds: float) -> Status:
    return Status(
        StatusCode.DEADLINE_EXCEEDED, f"no join arrived within {seconds:g} seconds of connecting"
    )


def undecodable_frame(why: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"could not decode a frame: {why}")


def binary_frame() -> Status:
    return Status(
        StatusCode.INVALID_ARGUMENT, "binary frames are not part of the protocol: send JSON text"
    )


# -- health ----------------------------------------------------------------------


def one_request_expected(method: str, request: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"{method} takes one {request}")


def unknown_service(service: str) -> Status:
    return Status(StatusCode.NOT_FOUND, f"unknown service {service!r}")
