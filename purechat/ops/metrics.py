"""Prometheus metrics, served over plain HTTP on --metrics-port.

A registry of the server's own (prometheus-client's default registry is process-wide
state). Hub counters are read when scraped, so the hot path only adds to integers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

import anyio
import anyio.abc
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

from purechat.core import Hub
from purechat.errors import ConfigurationError

log = logging.getLogger("purechat.server")
MAX_REQUEST = 8192
REQUEST_TIMEOUT = 5.0


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
        self, host: str, port: int, *, task_status: TaskStatus[int] = TASK_STATUS_IGNORED
    ) -> None:
        """GET /metrics over HTTP/1.0 until cancelled; reports the bound port.

        MetricsPortError, a sentence, when the port cannot be listened on.
        """
        try:
            listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        except OSError as error:
            reason = error.strerror or str(error)
            raise MetricsPortError(f"cannot serve metrics on {host}:{port}: {reason}") from None
        async with listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._answer)

    async def _answer(self, client: anyio.abc.SocketStream) -> None:
        async with client:
            request = b""
            with anyio.move_on_after(REQUEST_TIMEOUT):
                while b"\r\n\r\n" not in request and len(request) < MAX_REQUEST:
                    try:
                        request += await client.receive(MAX_REQUEST)
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
            first = request.split(b"\r\n", 1)[0].split()
            if first[:2] == [b"GET", b"/metrics"]:
                body, status, kind = self.scrape(), b"200 OK", CONTENT_TYPE_LATEST.encode()
            else:
                body, status, kind = b"not found\n", b"404 Not Found", b"text/plain"
            head = b"HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            try:
                await client.send(head % (status, kind, len(body)) + body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return


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
