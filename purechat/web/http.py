"""One HTTP/1.1 connection of the web listener, with h11: the page, and the upgrade.

The page is a few static files shipped in the package, served with a Content-Security-
Policy that allows scripts and styles from this origin only (no inline script, no
`eval`, no plugins, no framing), and `/ws` turns the connection into a WebSocket when
the handshake is well formed and comes from an allowed origin (see origin.py). Anything
else gets a status and a sentence. h11 parses; nothing here reads HTTP by hand. A
connection that has not sent a whole request within the handshake timeout (between
requests too) is closed, so idle or dribbling peers hold nothing for long. What is
read is bounded too: a request head by MAX_HEAD_BYTES (h11 refuses a longer one), a
request body not at all (a GET or HEAD that announces one is refused; any other
method is refused before its body is read), and after a refusal nothing more. Every
write goes through the connection's SingleWriter, which the WebSocket then inherits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import anyio
import anyio.abc
import h11
from wsproto.utilities import generate_accept_token

from purechat.transport import status as statuses
from purechat.transport.guard import SingleWriter
from purechat.transport.status import Status
from purechat.web import codes
from purechat.web.codes import http_code
from purechat.web.origin import origin_allowed

log = logging.getLogger("purechat.web")

READ_SIZE = 65536
# Largest request head h11 buffers: a browser's request is a few hundred bytes.
MAX_HEAD_BYTES = 16 * 1024
WEBSOCKET_PATH = "/ws"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cache-control", "no-cache"),
)


class Pages:
    """The static files of the page, read once from the package."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        static = resources.files("purechat.web") / "static"
        for entry in static.iterdir():
            content_type = _CONTENT_TYPES.get("." + entry.name.rpartition(".")[2])
            if content_type is not None:
                path = "/" if entry.name == "index.html" else f"/{entry.name}"
                self._files[path] = (entry.read_bytes(), content_type)

    def get(self, path: str) -> tuple[bytes, str] | None:
        return self._files.get(path)


@dataclass(frozen=True)
class UpgradeRules:
    """Who may turn a request into a chat session."""

    tls: bool
    # --web-origin values, normalised.
    allowed_origins: tuple[str, ...]
    # The listener is on a loopback address: its own pages come from a loopback host.
    loopback_only: bool
    # Why no session can open now (the server is stopping), as a status, or None.
    refusing: Callable[[], Status | None]
    on_refused: Callable[[str], None]


class HttpConnection:
    """Serves requests until the connection closes or becomes a WebSocket."""

    def __init__(
        self,
        stream: anyio.abc.ByteStream,
        *,
        peer: str,
        pages: Pages,
        rules: UpgradeRules,
        request_timeout: float,
        guard: SingleWriter,
    ):
        """guard: the connection's one-writer guard (its WebSocket's too, once upgraded)."""
        self._stream = stream
        self._peer = peer
        self._pages = pages
        self._rules = rules
        self._timeout = request_timeout
        self._guard = guard
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)

    async def serve(self) -> bytes | None:
        """Answer requests; the bytes after the handshake once upgraded to a WebSocket,
        None when the connection is done."""
        while True:
            with anyio.move_on_after(self._timeout):
                request = await self._next_request()
                if request is None:
                    return None
                trailing = await self._answer(request)
                if trailing is not None:
                    return trailing
                if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                    return None
                self._h11.start_next_cycle()
                continue
            return None  # no whole request in time

    async def _next_request(self) -> h11.Request | None:
        """The next request, read to its end (GET and HEAD have no body to speak of)."""
        request: h11.Request | None = None
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                await self._refuse_bad(error)
                return None
            if event is h11.NEED_DATA:
                try:
                    data = await self._stream.receive(READ_SIZE)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    data = b""
                self._h11.receive_data(data)
                if not data and request is None:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
                if event.method not in (b"GET", b"HEAD"):
                    return event  # answered without reading a body, then closed
                if _has_body(event):
                    method = event.method.decode("latin-1")
                    await self._refuse(codes.request_with_a_body(method), close=True)
                    return None
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _answer(self, request: h11.Request) -> bytes | None:
        path = request.target.decode("latin-1").partition("?")[0]
        method = request.method.decode("latin-1")
        if method not in ("GET", "HEAD"):
            await self._refuse(codes.method_not_allowed(method), close=True)
            return None
        headers = _headers(request)
        if path == WEBSOCKET_PATH:
            return await self._upgrade(request, headers)
        if "upgrade" in headers.get("connection", "").lower():
            await self._refuse(codes.page_not_found(path), close=True)
            return None
        page = self._pages.get(path)
        if page is None:
            await self._refuse(codes.page_not_found(path))
            return None
        body, content_type = page
        await self._respond(200, body, content_type, head_only=method == "HEAD")
        return None

    async def _upgrade(self, request: h11.Request, headers: dict[str, str]) -> bytes | None:
        refusal, extra = self._upgrade_refusal(request, headers)
        if refusal is not None:
            await self._refuse(refusal, extra=extra, close=True)
            return None
        accept = generate_accept_token(headers["sec-websocket-key"].encode()).decode()
        response = h11.InformationalResponse(
            status_code=101,
            headers=[
                ("upgrade", "websocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-accept", accept),
            ],
            reason=b"Switching Protocols",
        )
        await self._send(self._h11.send(response))
        trailing, _ = self._h11.trailing_data
        return bytes(trailing)

    def _upgrade_refusal(
        self, request: h11.Request, headers: dict[str, str]
    ) -> tuple[Status | None, list[tuple[str, str]]]:
        rules = self._rules
        connection = {token.strip().lower() for token in headers.get("connection", "").split(",")}
        if "upgrade" not in connection or headers.get("upgrade", "").lower() != "websocket":
            return codes.not_a_websocket_handshake("it asks for no upgrade to websocket"), []
        if headers.get("sec-websocket-version") != "13":
            return codes.websocket_version_unsupported(), [("sec-websocket-version", "13")]
        if not headers.get("sec-websocket-key"):
            return codes.not_a_websocket_handshake("Sec-WebSocket-Key is missing"), []
        origin = headers.get("origin")
        allowed = origin_allowed(
            origin,
            headers.get("host", ""),
            tls=rules.tls,
            allowed=rules.allowed_origins,
            loopback_only=rules.loopback_only,
        )
        if not allowed:
            log.warning("%s: WebSocket from a page of %s refused", self._peer, origin)
            rules.on_refused("web_foreign_origin")
            return codes.foreign_origin(str(origin)), []
        return rules.refusing(), []

    # -- responses -------------------------------------------------------------------

    async def refuse(self, status: Status) -> None:
        """Refuse the connection at once (too many from one address), then close."""
        await self._refuse(status, close=True)

    async def _refuse(
        self, status: Status, *, extra: list[tuple[str, str]] | None = None, close: bool = False
    ) -> None:
        body = (_sentence(status.status_message or "refused") + "\n").encode()
        await self._respond(
            http_code(status), body, "text/plain; charset=utf-8", extra=extra, close=close
        )

    async def _refuse_bad(self, error: h11.RemoteProtocolError) -> None:
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = statuses.malformed_request(f"the request is not HTTP/1.1: {error}")
            with contextlib.suppress(h11.LocalProtocolError):
                await self._refuse(status, close=True)

    async def _respond(
        self,
        code: int,
        body: bytes,
        content_type: str,
        *,
        extra: list[tuple[str, str]] | None = None,
        close: bool = False,
        head_only: bool = False,
    ) -> None:
        headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            *_SECURITY_HEADERS,
            *(extra or []),
        ]
        if close:
            headers.append(("connection", "close"))
        data = self._h11.send(h11.Response(status_code=code, headers=headers)) or b""
        if not head_only:
            data += self._h11.send(h11.Data(data=body)) or b""
        data += self._h11.send(h11.EndOfMessage()) or b""
        await self._send(data)

    async def _send(self, data: bytes) -> None:
        try:
            with self._guard:
                await self._stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self._h11.send_failed()


def _headers(request: h11.Request) -> dict[str, str]:
    """Request headers by lower-case name (h11 gives them so); repeats joined by commas."""
    found: dict[str, str] = {}
    for name, value in request.headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        found[key] = f"{found[key]}, {text}" if key in found else text
    return found


def _has_body(request: h11.Request) -> bool:
    """The request announces a body (h11 would read it as the request's Data)."""
    headers = _headers(request)
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0"


def _sentence(text: str) -> str:
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
