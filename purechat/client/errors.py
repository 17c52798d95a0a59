"""What a failed connection (or a refused token) means, in a sentence for a person.

Pure functions of the error the socket, DNS or TLS layer raised: nothing here connects.
A sentence names what the person can change, in the client's own words (its options
and variables), never the wire's (headers, frames).
A certificate error's errno is OpenSSL's, not the operating system's, and a DNS error's
is getaddrinfo's (negative), so `os.strerror` on them says "operation not permitted"
or "unknown error -2"; each failure is told by what it is instead.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from enum import Enum

from purechat.status import TOKEN_REQUIRED, TOKEN_REVOKED

# Where `purechat join`, `post`, `rooms` and `who` take a token from.
TOKEN_OPTIONS = "--token or PURECHAT_TOKEN"

# OpenSSL's X509_V_ERR_* codes that mean "this certificate is for another name".
_NAME_MISMATCH = frozenset({62, 63, 64})  # hostname, email, IP address mismatch
_EXPIRED = frozenset({9, 10})  # not yet valid, expired
# TLS record content types (change_cipher_spec, alert, handshake, application_data).
_TLS_RECORD_TYPES = frozenset({0x14, 0x15, 0x16, 0x17})


class Failure(Enum):
    """What kind of failure a connection attempt met."""

    UNTRUSTED = "certificate not trusted"
    NAME_MISMATCH = "certificate for another name"
    EXPIRED = "certificate expired"
    NOT_FOUND = "host not found"
    LOOKUP_FAILED = "host name lookup failed"
    REFUSED = "connection refused"
    TIMED_OUT = "timed out"
    RESET = "connection reset"
    NOT_TLS = "no TLS there"
    TLS = "TLS failed"
    OTHER = "connection failed"


@dataclass(frozen=True, slots=True)
class Diagnosis:
    failure: Failure
    # The lower-level words, for the sentence (OpenSSL's, the resolver's, the OS's).
    detail: str


def diagnose(error: BaseException) -> Diagnosis:
    """What failed, from the exception a connect (or TLS handshake, or read) raised.

    anyio wraps the per-address failures of a connect in one OSError whose cause is
    the first failure (or an ExceptionGroup of them), and a TLS stream's failures in
    BrokenResourceError; the innermost one says what happened.
    """
    error = _innermost(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        detail = error.verify_message or "certificate verify failed"
        if error.verify_code in _NAME_MISMATCH:
            return Diagnosis(Failure.NAME_MISMATCH, detail)
        if error.verify_code in _EXPIRED:
            return Diagnosis(Failure.EXPIRED, detail)
        return Diagnosis(Failure.UNTRUSTED, detail)
    if isinstance(error, ssl.SSLError):
        reason = str(error.reason or error.strerror or "").replace("_", " ").lower()
        if error.reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
            return Diagnosis(Failure.NOT_TLS, reason)
        if isinstance(error, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return Diagnosis(Failure.RESET, "closed during the TLS handshake")
        return Diagnosis(Failure.TLS, reason or "handshake failed")
    if isinstance(error, socket.gaierror):
        detail = (error.strerror or str(error)).lower()
        if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return Diagnosis(Failure.NOT_FOUND, detail)
        return Diagnosis(Failure.LOOKUP_FAILED, detail)
    if isinstance(error, TimeoutError):
        return Diagnosis(Failure.TIMED_OUT, "timed out")
    if isinstance(error, ConnectionRefusedError):
        return Diagnosis(Failure.REFUSED, "connection refused")
    if isinstance(error, ConnectionResetError | ConnectionAbortedError | BrokenPipeError):
        return Diagnosis(Failure.RESET, "connection reset")
    if isinstance(error, OSError) and error.strerror:
        return Diagnosis(Failure.OTHER, error.strerror.lower())
    return Diagnosis(Failure.OTHER, (str(error) or type(error).__name__).lower())


def _innermost(error: BaseException) -> BaseException:
    for _ in range(8):  # causes chain a few levels deep at most
        cause = error.__cause__ or (error.__context__ if not isinstance(error, OSError) else None)
        if isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
        if cause is None or isinstance(error, ssl.SSLError | socket.gaierror):
            return error
        error = cause
    return error


def failure_reason(error: BaseException) -> str:
    """A few lower-case words for "cannot reach the server at X (...)": "connection
    refused", "host not found", "certificate not trusted", ..."""
    return diagnose(error).failure.value


def failure_sentence(error: BaseException, host: str, port: int) -> str:
    """One sentence for a person: what failed connecting to host:port, and what to do."""
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    diagnosis = diagnose(error)
    detail = diagnosis.detail
    match diagnosis.failure:
        case Failure.UNTRUSTED:
            return (
                f"The certificate of the server at {address} is not trusted ({detail}); "
                "if the server uses a private certificate authority, pass its "
                "certificate with --tls-ca FILE."
            )
        case Failure.NAME_MISMATCH:
            return (
                f"The certificate of the server at {address} is not for {host} ({detail}); "
                "connect with --server NAME:PORT using a name the certificate is for."
            )
        case Failure.EXPIRED:
            return f"The certificate of the server at {address} is not valid now ({detail})."
        case Failure.NOT_FOUND:
            return f"The host {host} was not found: check the name in --server."
        case Failure.LOOKUP_FAILED:
            return f"The host name {host} could not be looked up ({detail})."
        case Failure.REFUSED:
            return (
                f"Nothing is listening at {address} (connection refused): is the server "
                "running, on that port?"
            )
        case Failure.TIMED_OUT:
            return f"The server at {address} did not answer in time."
        case Failure.RESET:
            return f"The server at {address} reset the connection ({detail})."
        case Failure.NOT_TLS:
            return (
                f"The server at {address} does not speak TLS ({detail}): is it a plaintext "
                "port? try without --tls."
            )
        case Failure.TLS:
            return f"TLS with {address} failed ({detail})."
    return f"Cannot reach the server at {address} ({detail})."


def looks_like_tls(first_bytes: bytes) -> bool:
    """True when a server's first bytes are a TLS record header (an alert, most often):
    type 20-23, then version 3.x."""
    return (
        len(first_bytes) >= 3
        and first_bytes[0] in _TLS_RECORD_TYPES
        and first_bytes[1] == 3
        and first_bytes[2] <= 4
    )


def tls_hint(first_bytes: bytes) -> bool:
    """Whether a plaintext client whose server closed before answering should be told
    "try --tls": when the server's bytes were TLS, or when it sent none (TLS servers,
    purechat's included, close on a plaintext HTTP/2 preface without a word); not when
    it sent something else (an HTTP/1 server's 400, an SSH banner)."""
    return not first_bytes or looks_like_tls(first_bytes)


def token_sentence(
    message: str,
    *,
    given: bool,
    where: str = TOKEN_OPTIONS,
    server: str = "",
    saved: bool = False,
) -> str:
    """An UNAUTHENTICATED ending (the server's `message`) for a person: whether a token
    is missing, not accepted or revoked, and where to give one (`where`: the client's
    options, or the Python API's argument). A session saved by `purechat login` for
    `server` (saved) that the server no longer takes is told to log in again; a server
    for members with accounts, to log in first. Any other sentence the server had for
    it is its own, and is kept."""
    log_in = f"purechat login --server {server} NAME" if server else "purechat login NAME"
    wire_worded = not message or message.startswith(TOKEN_REQUIRED) or message == TOKEN_REVOKED
    if not wire_worded:
        return message
    if saved:
        return (
            f"your session on {server or 'the server'} has expired or was ended: log in "
            f"again ({log_in})"
        )
    if message == TOKEN_REVOKED:
        return f"the server revoked this token: pass a valid one with {where}"
    if given:
        return f"the server does not accept this token: pass a valid one with {where}"
    if "log in" in message:  # a server for members with an account (--guests deny)
        return (
            f"the server is for members with an account: log in first ({log_in}), or pass "
            f"a token with {where}"
        )
    return f"the server requires a token: pass one with {where}"
