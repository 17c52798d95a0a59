"""TLS contexts for the server and the client, with ALPN h2 as gRPC requires."""

from __future__ import annotations

import ssl
from pathlib import Path

from purechat.errors import ConfigurationError


class TlsSetupError(ConfigurationError):
    """Certificates that cannot be used; str() is a sentence."""


def server_context(cert: Path, key: Path, *, alpn: str = "h2") -> ssl.SSLContext:
    """alpn: h2 for gRPC; http/1.1 for the web page, whose browsers would pick h2."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        raise TlsSetupError(f"cannot use certificate {cert} with key {key}: {reason}") from None
    context.set_alpn_protocols([alpn])
    return context


def client_context(ca: Path | None = None) -> ssl.SSLContext:
    """Verify the server against ca, or the system's roots when ca is None."""
    try:
        context = ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as error:
        reason = getattr(error, "strerror", None) or getattr(error, "reason", None) or error
        raise TlsSetupError(f"cannot use {ca} as certificate authority: {reason}") from None
    context.set_alpn_protocols(["h2"])
    return context
