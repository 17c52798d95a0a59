"""The web page's codes: WebSocket close codes, HTTP statuses, and the web's own refusals.

A web member's session ends with a close code chosen here from the gRPC status the
chat chose (`purechat.status`), so a page tells a final ending from one worth
reconnecting after by the same rules as `purechat join`.
"""

from __future__ import annotations

from purechat.transport.status import Status, StatusCode

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


def control_frame_flood(limit: int, seconds: float) -> Status:
    """A page cut off for pinging (as a gRPC peer is, with RESOURCE_EXHAUSTED's code)."""
    return Status(
        StatusCode.RESOURCE_EXHAUSTED,
        f"too many pings: more than {limit} in {seconds:g} seconds while nothing was sent to you",
    )


def message_in_too_many_frames(limit: int) -> Status:
    return Status(
        StatusCode.RESOURCE_EXHAUSTED, f"a message came in more than {limit} frames: send it whole"
    )


def request_with_a_body(method: str) -> Status:
    return Status(StatusCode.INVALID_ARGUMENT, f"a {method} request carries no body here")


def binary_frame() -> Status:
    return Status(
        StatusCode.INVALID_ARGUMENT, "binary frames are not part of the protocol: send JSON text"
    )


def too_many_logins(attempts: int) -> Status:
    return Status(
        StatusCode.RESOURCE_EXHAUSTED,
        f"more than {attempts} logins on one connection: reload the page to try again",
    )
