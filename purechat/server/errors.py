"""The one place that picks gRPC status codes for what happens in purechat."""

from __future__ import annotations

from purechat.core import EndReason
from purechat.transport import Status, StatusCode

SHUTTING_DOWN = "server shutting down"


def status_for_end(reason: EndReason) -> Status:
    if reason is EndReason.TOO_SLOW:
        return Status(
            StatusCode.RESOURCE_EXHAUSTED,
            "you were removed from the room: too slow to receive messages",
        )
    if reason is EndReason.STORE_UNAVAILABLE:
        return Status(StatusCode.UNAVAILABLE, "the server cannot store messages right now")
    if reason is EndReason.REPLACED:
        return Status(
            StatusCode.ABORTED, "replaced: the same client joined again on a newer stream"
        )
    if reason is EndReason.NAME_LOST:
        return Status(
            StatusCode.UNAVAILABLE,
            "the server lost touch with the others and your name went to somebody else; join again",
        )
    return Status(StatusCode.UNAVAILABLE, SHUTTING_DOWN)


def undecodable(kind: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"could not decode the {kind} message")


def text_too_long(limit: int) -> Status:
    return Status(
        StatusCode.INVALID_ARGUMENT, f"message text is longer than the limit of {limit} bytes"
    )


def store_unreachable() -> Status:
    return Status(StatusCode.UNAVAILABLE, "the server cannot reach its store right now")


def join_refused(reason: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, reason)


def first_frame_not_join() -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, "the first frame of a stream must be a Join")


def unimplemented(path: str) -> Status:
    return Status(StatusCode.UNIMPLEMENTED, f"method {path} is not implemented")


def unauthenticated() -> Status:
    return Status(
        StatusCode.UNAUTHENTICATED,
        "a valid token is required (send 'authorization: Bearer TOKEN')",
    )


def token_revoked() -> Status:
    return Status(StatusCode.UNAUTHENTICATED, "token revoked")


def too_many_connections(limit: int) -> Status:
    return Status(
        StatusCode.RESOURCE_EXHAUSTED,
        f"too many connections from your address (at most {limit})",
    )


def room_full(reason: str) -> Status:
    return Status(StatusCode.RESOURCE_EXHAUSTED, reason)


def rate_limited(rate: float) -> Status:
    return Status(
        StatusCode.RESOURCE_EXHAUSTED,
        f"too many messages: at most {rate:g} a second (bursts of {2 * rate:g})",
    )


OK = Status(StatusCode.OK)
