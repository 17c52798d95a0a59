"""The metrics port as a scraper and an attacker see it: HTTP/1.1 through h11, with the
limits of the other listeners, and one connection's trouble kept to that connection."""

from __future__ import annotations

import gc
import itertools
import logging
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import h11
import pytest
import trio
import trio.testing
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from purechat.ops.metrics import MAX_HEAD_BYTES
from purechat.transport import TransportLimits
from tests.helpers import Harness, still_served


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str


class Scraper:
    """One client connection to the metrics port, read with h11's client side."""

    def __init__(self, sock: trio.SocketStream):
        self.sock = sock
        self.h11 = h11.Connection(h11.CLIENT)

    @classmethod
    async def connect(cls, port: int) -> Scraper:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def ask(
        self, target: str = "/metrics", method: str = "GET", headers: list | None = None
    ) -> Answer:
        request = h11.Request(
            method=method, target=target, headers=[("host", "metrics"), *(headers or [])]
        )
        await self.sock.send_all(self.h11.send(request) + self.h11.send(h11.EndOfMessage()))
        return await self.answer()

    async def answer(self) -> Answer:
        """The next response; its body empty for a HEAD."""
        response, body = None, b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(await receive(self.sock))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                headers = {k.decode(): v.decode() for k, v in response.headers}
                return Answer(response.status_code, headers, body.decode())
            else:
                raise AssertionError(f"no response, {event}")

    async def until_closed(self) -> None:
        """Read and drop what comes until the server closes the connection."""
        while await receive(self.sock):
            pass

    def next_cycle(self) -> None:
        self.h11.start_next_cycle()

    async def aclose(self) -> None:
        await self.sock.aclose()

    async def __aenter__(self) -> Scraper:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


async def receive(sock: trio.SocketStream) -> bytes:
    """What the server sent next; b"" once it closed (or reset) the connection."""
    try:
        return await sock.receive_some(65536)
    except trio.BrokenResourceError:
        return b""


async def scrape(port: int) -> Answer:
    async with await Scraper.connect(port) as scraper:
        return await scraper.ask()


async def test_a_scrape_is_the_exposition_over_http_1_1_with_keep_alive(start_server) -> None:
    harness: Harness = await start_server(metrics_port=0)
    port = harness.server.metrics_port
    assert port is not None and port != 0
    with trio.fail_after(10):
        await harness.v1("alice")
        async with await Scraper.connect(port) as scraper:
            first = await scraper.ask()
            scraper.next_cycle()
            head = await scraper.ask(method="HEAD")
            scraper.next_cycle()
            second = await scraper.ask("/metrics?name[]=purechat_members")
    assert first.status == 200 and second.status == 200
    assert first.headers["content-type"] == CONTENT_TYPE_LATEST
    assert "purechat_members 1.0" in first.body.splitlines()
    assert head.status == 200 and head.body == ""
    assert int(head.headers["content-length"]) > 0


async def test_a_real_http_client_reads_the_metrics(start_server) -> None:
    """What the README's curl line does, with the standard library's client."""
    harness: Harness = await start_server(metrics_port=0)
    url = f"http://127.0.0.1:{harness.server.metrics_port}/metrics"

    def fetch() -> tuple[int, str]:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()

    with trio.fail_after(10):
        status, text = await trio.to_thread.run_sync(fetch)
    assert status == 200
    assert any(line.startswith("purechat_members ") for line in text.splitlines())


async def test_other_paths_and_methods_are_answered_with_a_sentence(start_server) -> None:
    harness: Harness = await start_server(metrics_port=0)
    port = harness.server.metrics_port
    assert port is not None
    with trio.fail_after(10):
        async with await Scraper.connect(port) as scraper:
            missing = await scraper.ask("/")
            scraper.next_cycle()
            still = await scraper.ask()  # a 404 keeps the connection
        async with await Scraper.connect(port) as scraper:
            posted = await scraper.ask(method="POST")
    assert (missing.status, missing.body) == (404, "Nothing here: the metrics are at /metrics.\n")
    assert still.status == 200
    assert posted.status == 405
    assert posted.body == "POST is not supported here: use GET.\n"
    assert posted.headers["allow"] == "GET, HEAD"


_HUGE_HEAD = [("x-padding", "a" * 1000)] * (MAX_HEAD_BYTES // 1000 + 1)


async def test_a_request_head_over_the_bound_is_refused(start_server) -> None:
    harness: Harness = await start_server(metrics_port=0)
    port = harness.server.metrics_port
    assert port is not None
    with trio.fail_after(10):
        async with await Scraper.connect(port) as scraper:
            refused = await scraper.ask(headers=_HUGE_HEAD)
            await scraper.until_closed()
        after = await scrape(port)
    assert refused.status == 431
    assert refused.body == f"The request's head is over {MAX_HEAD_BYTES} bytes.\n"
    assert after.status == 200


async def test_bytes_that_are_not_http_are_refused_and_the_port_goes_on(start_server) -> None:
    harness: Harness = await start_server(metrics_port=0)
    port = harness.server.metrics_port
    assert port is not None
    with trio.fail_after(10):
        async with await trio.open_tcp_stream("127.0.0.1", port) as sock:
            await sock.send_all(b"\x16\x03\x01 not http at all\r\n\r\n")
            reply = b""
            while data := await receive(sock):
                reply += data
        after = await scrape(port)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert after.status == 200


class _FailsOnce(Collector):
    def __init__(self) -> None:
        self.failed = False

    def collect(self) -> Iterator[Metric]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a collector's bug")
        yield GaugeMetricFamily("purechat_test_gauge", "A gauge for the test.", 1)


async def test_a_collector_that_raises_is_a_500_and_the_next_scrape_works(
    start_server, caplog: pytest.LogCaptureFixture
) -> None:
    harness: Harness = await start_server(metrics_port=0)
    harness.server.metrics.registry.register(_FailsOnce())
    port = harness.server.metrics_port
    assert port is not None
    with trio.fail_after(10):
        alice = await harness.v1("alice")
        failed = await scrape(port)
        after = await scrape(port)
        await still_served(alice, "the server is still up")
    assert failed.status == 500
    assert failed.body == "The metrics could not be collected: the server's log says why.\n"
    assert after.status == 200
    assert "purechat_test_gauge 1.0" in after.body.splitlines()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].getMessage().endswith("a scrape failed; answered 500")
    assert errors[0].exc_info is not None  # a bug: its traceback is for the operator's log


async def dribble(sock: trio.SocketStream, data: Iterable[int], every: float) -> int | None:
    """Send data a byte every `every` seconds until the server answers or closes the
    connection: how many bytes went out by then, None if it did neither."""
    for sent, byte in enumerate(data):
        try:
            await sock.send_all(bytes([byte]))
        except trio.BrokenResourceError:
            return sent
        with trio.move_on_after(every):
            await receive(sock)  # an answer, or the end of the connection
            return sent + 1
    return None


async def test_a_request_must_come_whole_within_the_handshake_timeout(
    start_server, autojump_clock: trio.testing.MockClock
) -> None:
    harness: Harness = await start_server(
        metrics_port=0, transport=TransportLimits(handshake_timeout=2.0)
    )
    port = harness.server.metrics_port
    assert port is not None
    request_line = b"GET /metrics HTTP/1.1\r\n"
    with trio.fail_after(30):
        # Each byte comes well within the timeout, the whole request line never does.
        async with await trio.open_tcp_stream("127.0.0.1", port) as dribbler:
            sent = await dribble(dribbler, request_line, every=0.5)
        assert sent is not None and sent < len(request_line)
        async with await Scraper.connect(port) as idle:
            assert (await idle.ask()).status == 200
            idle.next_cycle()
            await idle.until_closed()  # no next request in time: closed


async def test_past_the_limit_per_address_a_connection_is_refused_and_chat_is_not_counted(
    start_server,
) -> None:
    harness: Harness = await start_server(metrics_port=0, max_conns_per_addr=2)
    port = harness.server.metrics_port
    assert port is not None
    with trio.fail_after(10):
        held = [await Scraper.connect(port) for _ in range(2)]
        for scraper in held:  # answered: both are surely counted by now
            assert (await scraper.ask()).status == 200
            scraper.next_cycle()
        async with await Scraper.connect(port) as crowded:
            refused = await crowded.answer()
        # The metrics port counts on its own: the chat ports still take this address.
        alice = await harness.v1("alice")
        bob = await harness.v1("bob")
        await still_served(alice, "metrics scrapes do not use up the chat's connections")
        await bob.next_message()
        for scraper in held:
            await scraper.aclose()
    assert refused.status == 429
    assert refused.body == "Too many connections from your address (at most 2).\n"


@pytest.mark.parametrize("per_address", [64, 0], ids=["limited per address", "no limit"])
async def test_a_slowloris_of_300_leaves_scrapes_and_chat_working(
    start_server, autojump_clock: trio.testing.MockClock, per_address: int
) -> None:
    harness: Harness = await start_server(metrics_port=0, max_conns_per_addr=per_address)
    port = harness.server.metrics_port
    assert port is not None
    held_now = held_most = turned_away = 0
    head = b"GET /metrics HTTP/1.1\r\nhost: metrics\r\nx-slow: "

    async def slowloris(task_status: trio.TaskStatus[None]) -> None:
        """A byte a second, never a whole request, from another address than the
        scrapes; connects again when cut off."""
        nonlocal held_now, held_most, turned_away
        while True:
            sock = await trio.open_tcp_stream("127.0.0.1", port, local_address="127.0.0.2")
            async with sock:
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                if await dribble(sock, head[:1], every=1) is None:  # the server holds it
                    held_now += 1
                    held_most = max(held_most, held_now)
                    rest = itertools.chain(head[1:], itertools.repeat(ord("z")))
                    await dribble(sock, rest, every=1)
                    held_now -= 1
                    await trio.sleep(1)
                else:
                    turned_away += 1
                    await trio.sleep(5)

    with trio.fail_after(120):
        alice = await harness.v1("alice")
        bob = await harness.v1("bob")
        async with trio.open_nursery() as attack:
            for _ in range(300):
                await attack.start(slowloris)
            for round_ in range(4):  # across several handshake timeouts (10 s)
                answer = await scrape(port)
                assert answer.status == 200, answer
                assert "purechat_members 2.0" in answer.body.splitlines()
                await alice.say(f"still talking {round_}")
                assert (await bob.next_message()).text == f"still talking {round_}"
                await trio.sleep(7)
            attack.cancel_scope.cancel()
    if per_address:
        assert held_most == per_address
        assert turned_away >= 300 - per_address  # the rest turned away at once
    else:
        assert held_most == 300
        assert turned_away == 0


async def test_scrapes_leave_no_cyclic_garbage(start_server) -> None:
    """A connection's objects are freed by reference counting when it ends, answered or
    refused, so a server scraped all day does not wait on the collector."""
    harness: Harness = await start_server(metrics_port=0)
    harness.server.metrics.registry.register(_FailsOnce())
    port = harness.server.metrics_port
    assert port is not None
    with trio.fail_after(10):
        await scrape(port)  # the collector's one failure, and whatever a first scrape makes
        gc.collect()
        gc.disable()
        try:
            harness.server.metrics.registry.register(_FailsOnce())
            asked = []
            for target, headers in [
                ("/metrics", []),
                ("/metrics", []),
                ("/", []),
                ("/", _HUGE_HEAD),
            ]:
                async with await Scraper.connect(port) as scraper:
                    answer = await scraper.ask(target, headers=[*headers, ("connection", "close")])
                    asked.append(answer.status)
                    await scraper.until_closed()  # the server is done with it
            garbage = gc.collect()
        finally:
            gc.enable()
    assert asked == [500, 200, 404, 431]
    assert garbage == 0
