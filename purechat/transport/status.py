"""The wire's statuses: gRPC codes, and the sentences the transport ends calls with.

The transport knows nothing of chat; the chat's own outcomes are chosen in
`purechat.status`, the web page's close and HTTP codes in `purechat.web.codes`.
"""

from __future__ import annotations

from purerpc.grpclib.status import Status, StatusCode

__all__ = ["Status", "StatusCode"]

OK = Status(StatusCode.OK)
# The status of calls on a connection that closed before the peer sent anything:
# most likely a TLS port spoken to in plain text, or not a gRPC server at all.
NEVER_ANSWERED = "the server closed the connection without answering"


def connection_lost(*, heard_from_peer: bool = True) -> Status:
    return Status(StatusCode.UNAVAILABLE, "connection lost" if heard_from_peer else NEVER_ANSWERED)


def connection_closing() -> Status:
    return Status(StatusCode.UNAVAILABLE, "connection closing")


def cancelled_by_peer() -> Status:
    return Status(StatusCode.CANCELLED, "call cancelled by the peer")


def refused_by_peer() -> Status:
    return Status(StatusCode.UNAVAILABLE, "the server refused the call: it is closing")


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


def unimplemented(path: str) -> Status:
    return Status(StatusCode.UNIMPLEMENTED, f"method {path} is not implemented")


def undecodable(kind: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"could not decode the {kind} message")


def one_request_expected(method: str, request: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"{method} takes one {request}")
