"""Prometheus metrics, served over HTTP/1.1 (h11) on --metrics-port.

A registry of the server's own (prometheus-client's default registry is process-wide
state). Hub counters are read when scraped, so the hot path only adds to integers.

The port is held to the rules of the other listeners: each connection is a task of
the listener's own task group, accepted by `accept_forever`; an address may hold
`--max-conns-per-addr` connections (counted apart from the chat's, see `serve`); a
whole request must come within the handshake timeout, between keep-alive requests
too, and its head within MAX_HEAD_BYTES; and whatever goes wrong in one connection (a
collector that raises) is logged and answered 500 there, while the server and the
other scrapes go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from http import HTTPStatus

import anyio
import anyio.abc
import h11
from anyio import TASK_STATUS_IGNORED
from anyio.abc import TaskStatus
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from purechat import status as statuses
from purechat.core import Hub
from purechat.errors import ConfigurationError
from purechat.transport import streams
from purechat.transport.accept import accept_forever, remote_of
from purechat.transport.addresses import AddressCounts

log = logging.getLogger("purechat.server")

METRICS_PATH = "/metrics"
# Reads are this small so that the head bound holds exactly: h11 refuses a head once
# more than max_incomplete_event_size of it waits for the rest, and one read adds at
# most READ_SIZE, so no head over MAX_HEAD_BYTES gets through. A scraper's is a few
# hundred bytes.
READ_SIZE = 4096
MAX_HEAD_BYTES = 16 * 1024
# After a last answer, how long the connection is read and dropped before it closes, so
# that a request the peer is still sending does not turn our close into a reset that
# loses the answer (RFC 9112, section 9.6), and at most how much.
LINGER_SECONDS = 1.0
LINGER_BYTES = 64 * 1024
_ALLOWED_METHODS = "GET, HEAD"


class Metrics:
    def __init__(self, hub: Hub):
        self.registry = CollectorRegistry()
        self.store_write_seconds = Histogram(
            "purechat_store_write_seconds",
            "Time to store one batch of messages.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.catch_up_messages = Histogram(
            "purechat_resume_catch_up_messages",
            "Messages replayed to a member resuming after a drop.",
            buckets=(0, 1, 10, 100, 1000, 10000),
            registry=self.registry,
        )
        self.auth_failures = _ReasonCounter(
            Counter(
                "purechat_auth_failures",
                "Wrong tokens and failed logins, by what was wrong (they are slowed down).",
                ["reason"],
                registry=self.registry,
            )
        )
        self.presence_swept = Counter(
            "purechat_presence_swept",
            "Members of servers sharing the store that stopped answering, removed by this "
            "server's sweeps.",
            registry=self.registry,
        )
        self._collector = _HubCollector(hub)
        self.registry.register(self._collector)

    def count_by_reason(self, evictions: Mapping[str, int], cut_offs: Mapping[str, int]) -> None:
        """Counters kept elsewhere (by reason), read when scraped."""
        self._collector.evictions = evictions
        self._collector.cut_offs = cut_offs

    def scrape(self) -> bytes:
        return generate_latest(self.registry)

    async def serve(
        self,
        host: str,
        port: int,
        addresses: AddressCounts,
        request_timeout: float,
        *,
        task_status: TaskStatus[int] = TASK_STATUS_IGNORED,
    ) -> None:
        """Serve GET /metrics until cancelled; reports the bound port (port 0 picks one).

        addresses: the open connections per host this port allows and counts. The chat
        server gives the metrics port counts of its own, with the chat's limit: a host
        whose chat connections reach the limit (a busy proxy, the machine the monitoring
        runs on) must still be scraped, above all then, and a scraper must not use up a
        host's chat connections; sharing would buy no protection either, since a
        scrape costs a few KiB for at most request_timeout.
        request_timeout: how long a connection has to send a whole request (the first,
        and each next one on a kept-alive connection) and take its answer.

        MetricsPortError, a sentence, when the port cannot be listened on.
        """
        try:
            listener = await anyio.create_tcp_listener(
                local_host=host, local_port=port, reuse_port=False
            )
        except OSError as error:
            reason = error.strerror or str(error)
            raise MetricsPortError(f"cannot serve metrics on {host}:{port}: {reason}") from None
        serve = partial(self._serve_connection, addresses, request_timeout)
        async with listener, anyio.create_task_group() as connections:
            for sub in listener.listeners:
                connections.start_soon(
                    partial(accept_forever, what="metrics"), sub, connections, serve
                )
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))

    async def _serve_connection(
        self, addresses: AddressCounts, request_timeout: float, sock: anyio.abc.SocketStream
    ) -> None:
        host, address = remote_of(sock)
        scrapes = _Scrapes(sock, f"metrics {address}", self.scrape, request_timeout)
        try:
            with addresses.holding(host) as within_limit:
                await scrapes.run(None if within_limit else addresses.limit)
        finally:
            await anyio.aclose_forcefully(sock)


class _Scrapes:
    """One connection to the metrics port: requests answered in turn, with h11."""

    def __init__(
        self,
        sock: anyio.abc.SocketStream,
        peer: str,
        scrape: Callable[[], bytes],
        timeout: float,
    ):
        self._sock = sock
        self._peer = peer
        self._scrape = scrape
        self._timeout = timeout
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES - READ_SIZE)

    async def run(self, crowded: int | None) -> None:
        """Answer requests until the peer is done, breaks the rules, or is too slow; or,
        when its address holds more than `crowded` connections, refuse it at once.

        The guard of this connection: whatever else goes wrong here (a collector that
        raises, a bug) is logged and answered 500 when an answer can still be sent; the
        listener and the other connections are not told. Cancellation passes.
        """
        try:
            if crowded is None:
                await self._answer_requests()
            else:
                log.warning("%s: more than %d connections from this address", self._peer, crowded)
                status = statuses.too_many_connections(crowded)
                await self._last_answer(429, status.status_message or "too many connections")
        except Exception:
            log.exception("%s: a scrape failed; answered 500", self._peer)
            await self._last_answer(
                500, "the metrics could not be collected: the server's log says why"
            )
        if self._h11.our_state in (h11.DONE, h11.MUST_CLOSE):
            await self._linger()  # we answered last: let the answer arrive

    async def _answer_requests(self) -> None:
        while True:
            with anyio.move_on_after(self._timeout):
                request = await self._next_request()
                if request is None:
                    return
                await self._answer(request)
                if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                    return
                self._h11.start_next_cycle()
                continue
            log.debug("%s: no whole request in time", self._peer)
            return

    async def _next_request(self) -> h11.Request | None:
        """The next request, its body (if any) read and dropped; None when the peer
        closed or broke the protocol (then answered)."""
        request = None
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as error:
                await self._refuse_malformed(error)
                return None
            if event is h11.NEED_DATA:
                data = await self._receive()
                if not data:
                    return None  # closed, or reset; whatever it sent goes unanswered
                self._h11.receive_data(data)
            elif isinstance(event, h11.Request):
                if event.method not in (b"GET", b"HEAD"):
                    return event  # answered at once, then closed: no body is read
                request = event
            elif isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
                return request
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _answer(self, request: h11.Request) -> None:
        method = request.method.decode("ascii", "replace")
        if method not in ("GET", "HEAD"):
            sentence = f"{method} is not supported here: use GET"
            await self._last_answer(405, sentence, extra=[("allow", _ALLOWED_METHODS)])
            return
        head_only = method == "HEAD"
        path = request.target.decode("ascii", "replace").partition("?")[0]
        if path != METRICS_PATH:
            body = _sentence_line(f"nothing here: the metrics are at {METRICS_PATH}")
            await self._respond(404, body, "text/plain; charset=utf-8", head_only=head_only)
            return
        body = self._scrape()
        await self._respond(200, body, CONTENT_TYPE_LATEST, head_only=head_only)

    async def _refuse_malformed(self, error: h11.RemoteProtocolError) -> None:
        if error.error_status_hint == 431:
            sentence = f"the request's head is over {MAX_HEAD_BYTES} bytes"
        else:
            sentence = f"the request is not HTTP/1.1: {error}"
        log.info("%s: %s", self._peer, sentence)
        await self._last_answer(error.error_status_hint, sentence)

    async def _last_answer(
        self, code: int, sentence: str, *, extra: list[tuple[str, str]] | None = None
    ) -> None:
        """Answer with a sentence and close, if an answer can still be sent; at most
        within the timeout."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        with anyio.move_on_after(self._timeout):
            body = _sentence_line(sentence)
            await self._respond(
                code,
                body,
                "text/plain; charset=utf-8",
                extra=[*(extra or []), ("connection", "close")],
            )

    async def _respond(
        self,
        code: int,
        body: bytes,
        content_type: str,
        *,
        extra: list[tuple[str, str]] | None = None,
        head_only: bool = False,
    ) -> None:
        headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            ("x-content-type-options", "nosniff"),
            ("cache-control", "no-store"),
            *(extra or []),
        ]
        reason = HTTPStatus(code).phrase.encode()
        data = self._h11.send(h11.Response(status_code=code, headers=headers, reason=reason))
        data = data or b""
        if not head_only:
            data += self._h11.send(h11.Data(data=body)) or b""
        data += self._h11.send(h11.EndOfMessage()) or b""
        try:
            await streams.send(self._sock, data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            self._h11.send_failed()

    async def _receive(self) -> bytes:
        try:
            return await streams.receive(self._sock, READ_SIZE)
        except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
            return b""

    async def _linger(self) -> None:
        """Say we are done sending, then read and drop what the peer still sends, for a
        moment, before the connection closes (see LINGER_SECONDS)."""
        try:
            await streams.send_eof(self._sock)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return
        dropped = 0
        with anyio.move_on_after(LINGER_SECONDS):
            while dropped <= LINGER_BYTES and (data := await self._receive()):
                dropped += len(data)


def _sentence_line(text: str) -> bytes:
    """text as a sentence on a line of its own: capital first, full stop last."""
    text = text.strip()
    text = text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")
    return (text + "\n").encode()


class _ReasonCounter:
    """A counter by reason, called with the reason (a callback for the authenticator)."""

    def __init__(self, counter: Counter):
        self._counter = counter

    def labels(self, reason: str) -> None:
        self._counter.labels(reason).inc()


class MetricsPortError(ConfigurationError):
    """The metrics port cannot be listened on; str() is a sentence."""


class _HubCollector(Collector):
    def __init__(self, hub: Hub):
        self._hub = hub
        self.evictions: Mapping[str, int] = {}
        self.cut_offs: Mapping[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        hub, stats = self._hub, self._hub.stats
        yield GaugeMetricFamily("purechat_members", "Members connected.", hub.member_count())
        yield GaugeMetricFamily("purechat_rooms", "Rooms with members.", len(hub.room_names()))
        yield CounterMetricFamily(
            "purechat_messages_received", "Messages stored and broadcast.", stats.messages
        )
        yield CounterMetricFamily(
            "purechat_deliveries", "Events offered to members.", stats.deliveries
        )
        yield CounterMetricFamily(
            "purechat_evictions", "Members removed for being too slow.", stats.evictions
        )
        yield _by_reason(
            "purechat_evictions_by_reason",
            "Members removed for being too slow: backlog over budget, or stalled.",
            self.evictions,
        )
        yield _by_reason(
            "purechat_connections_cut_off",
            "Connections closed for misbehaving (floods, protocol errors, no handshake).",
            self.cut_offs,
        )
        yield _by_reason("purechat_rejected_messages", "Sends refused, by reason.", stats.rejected)


def _by_reason(name: str, documentation: str, counts: Mapping[str, int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=["reason"])
    for reason, count in sorted(counts.items()):
        family.add_metric([reason], count)
    return family
