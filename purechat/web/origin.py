"""Which pages may open a chat session: the page's own origin, and those allowed by flag.

A browser sends `Origin` with every WebSocket handshake, and it is the only thing that
tells a session opened by the chat's own page from one a foreign page opened with the
member's cookies and address (cross-site WebSocket hijacking). So the handshake is
accepted only from the origin the page was served from — the scheme of this listener
with the request's `Host` — or from an origin given with `--web-origin`. A handshake
without `Origin` does not come from a browser page, which always sends one, and has no
member to hijack: it is accepted, as tools and tests make it.

A listener on a loopback address also insists that its own origin name a loopback
host (127.0.0.1, [::1], localhost): otherwise a foreign site could point a name of its
own at 127.0.0.1 (DNS rebinding) and be its own origin.

Origins are compared as RFC 6454 serialises them: lower-case scheme and host, the port
left out when it is the scheme's default.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from purechat.errors import ConfigurationError

_DEFAULT_PORTS = {"http": 80, "https": 443}


class OriginError(ConfigurationError):
    """An origin given on the command line that cannot be one; str() is a sentence."""


def normalise(origin: str) -> str | None:
    """origin as a browser serialises it (scheme://host[:port]), or None when it is not
    an http(s) origin (a path, a query, "null", garbage)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if ":" in host:  # IPv6 literal: brackets are part of the serialisation
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def allowed_origins(values: list[str]) -> tuple[str, ...]:
    """--web-origin values, normalised; OriginError for one that is not an origin."""
    found = []
    for value in values:
        origin = normalise(value)
        if origin is None:
            raise OriginError(
                f"--web-origin {value!r} is not an origin: give scheme://host[:port], "
                "for example https://chat.example.org"
            )
        found.append(origin)
    return tuple(found)


def own_origin(host_header: str, *, tls: bool) -> str | None:
    """The origin of a page this listener served to a request with this Host header."""
    scheme = "https" if tls else "http"
    return normalise(f"{scheme}://{host_header}")


def is_loopback(host: str) -> bool:
    """A host name or address that can only mean this machine."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_allowed(
    origin: str | None,
    host_header: str,
    *,
    tls: bool,
    allowed: tuple[str, ...],
    loopback_only: bool = False,
) -> bool:
    """May a page from origin open a session on this listener? (None: no Origin sent.)

    loopback_only: the listener is on a loopback address, so its own pages come from a
    loopback host.
    """
    if origin is None:
        return True
    presented = normalise(origin)
    if presented is None:
        return False
    if presented in allowed:
        return True
    own = own_origin(host_header, tls=tls)
    if own is None or presented != own:
        return False
    return not loopback_only or is_loopback(urlsplit(own).hostname or "")
