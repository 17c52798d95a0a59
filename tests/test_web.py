"""The web listener's bridge, without a browser: a wsproto client speaks its JSON frames.

The page's own behaviour is tested in a real browser (test_web_browser.py); here is
everything a page could not make the server do, or could not see it do.
"""

from __future__ import annotations

import logging
import ssl
import subprocess
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing
import trustme
from wsproto.events import BytesMessage

from purechat.core import Limits
from purechat.server.auth import TokenBook
from purechat.store import MemoryStore
from purechat.tls import server_context
from purechat.transport import TransportLimits
from purechat.web.listener import WebServer
from purechat.web.origin import allowed_origins, normalise, origin_allowed
from tests.helpers import Harness
from tests.polling import settles
from tests.processes import Lines, send_lines
from tests.webclient import Refused, WebClient, http_get


@pytest.fixture
async def clients() -> AsyncIterator[list[WebClient]]:
    """The test's web clients, closed when it ends."""
    opened: list[WebClient] = []
    try:
        yield opened
    finally:
        for client in opened:
            await client.sock.aclose()


@pytest.fixture
def web_server(start_server) -> Any:
    """Start a server with its web listener; returns the harness and the web port."""

    async def start(**config: object) -> tuple[Harness, int]:
        harness: Harness = await start_server(web_port=0, **config)
        port = harness.server.web_port
        assert port is not None
        return harness, port

    return start


@pytest.fixture
def connect(clients: list[WebClient]) -> Any:
    """Open a session as a page would (from its own origin, unless told otherwise)."""

    async def open_session(
        port: int,
        *,
        origin: str | None = "",
        host: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> WebClient:
        if origin == "":
            origin = f"http://127.0.0.1:{port}"
        client = await WebClient.connect(port, origin=origin, host=host, ssl_context=ssl_context)
        clients.append(client)
        return client

    return open_session


# -- the page ------------------------------------------------------------------------


async def test_the_page_is_served_with_a_policy_that_forbids_inline_scripts(
    web_server, connect
) -> None:
    _, port = await web_server()
    with trio.fail_after(10):
        status, headers, body = await http_get(port, "/")
        assert status == 200
        assert headers["content-type"] == "text/html; charset=utf-8"
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert "unsafe" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert b'<script type="module" src="/app.mjs">' in body
        for path, kind in [("/app.mjs", "text/javascript"), ("/style.css", "text/css")]:
            status, headers, _ = await http_get(port, path)
            assert (status, headers["content-type"].split(";")[0]) == (200, kind)
        status, _, body = await http_get(port, "/../../etc/passwd")
        assert status == 404
        assert body == b"There is no page at /../../etc/passwd: the chat is at /.\n"
        status, _, body = await http_get(port, "/ws")
        assert status == 400
        assert body.startswith(b"Not a WebSocket handshake")


# -- the same chat -----------------------------------------------------------------------


async def test_web_and_grpc_members_share_a_room_and_one_order(
    web_server, connect, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="purechat")
    harness, port = await web_server()
    with trio.fail_after(10):
        web = await connect(port)
        welcome = await web.join("alice", "den", session="s1")
        assert welcome["name"] == "alice" and welcome["members"] == ["alice"]
        assert welcome["max_text_bytes"] == Limits().max_text_bytes
        grpc = await harness.v1("bob", "den")
        assert sorted(grpc.welcome.members) == ["alice", "bob"]
        joins = [(await web.next_of("event"))["event"] for _ in range(2)]
        assert [(e["kind"], e["room"], e["user"]) for e in joins] == [
            ("join", "den", "alice"),
            ("join", "den", "bob"),
        ]
        assert all(e["time_unix_ms"] > 0 for e in joins)
        for n in range(5):
            await web.send({"send": {"text": f"web {n}", "client_msg_id": f"w{n}"}})
            await grpc.call.send(f"grpc {n}", f"g{n}")
        web_saw = [(await web.next_message()) for _ in range(10)]
        grpc_saw = [await grpc.next_message() for _ in range(10)]
        assert [(m["seq"], m["user"], m["text"]) for m in web_saw] == [
            (m.seq, m.user, m.text) for m in grpc_saw
        ]
        assert [m["seq"] for m in web_saw] == list(range(1, 11))
        ack = await web.say("* and an action", "w-act", action=True)
        assert ack == {"ack": {"client_msg_id": "w-act", "seq": 11, "duplicate": False}}
        again = await web.say("* and an action", "w-act", action=True)
        assert again["ack"]["duplicate"] is True and again["ack"]["seq"] == 11
        action = await grpc.next_message()
        assert (action.user, action.action) == ("alice", True)
        await web.close()
        leave = await grpc.next_of("event")
        assert (leave.event.kind, leave.event.user) == (leave.event.LEAVE, "alice")
    assert harness.server.hub.members_of("den") == ("bob",)
    assert "alice joined den from web 127.0.0.1:" in caplog.text
    assert "alice left den from web 127.0.0.1:" in caplog.text


async def test_a_web_member_and_a_grpc_go_member_see_one_order(
    web_server, connect, nursery: trio.Nursery, go_client: Path
) -> None:
    harness, port = await web_server()
    with trio.fail_after(30):
        web = await connect(port)
        await web.join("alice")
        go: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [str(go_client), f"127.0.0.1:{harness.port}", "GoClient"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                check=False,
            )
        )
        go_lines = Lines(go.stdout)
        await send_lines(go, "hi from go")
        web_saw = [await web.next_message()]
        await web.say("hi from a web page", "w1")
        web_saw.append(await web.next_message())
        await send_lines(go, "and back to the page")
        web_saw.append(await web.next_message())
        go_saw = [(await go_lines.next() or "").split("\t")[:2] for _ in range(3)]
        await send_lines(go, "exit")
        await go.wait()
    assert [(m["seq"], m["user"], m["text"]) for m in web_saw] == [
        (1, "GoClient", "hi from go"),
        (2, "alice", "hi from a web page"),
        (3, "GoClient", "and back to the page"),
    ]
    assert go_saw == [[m["user"], m["text"]] for m in web_saw]


async def test_a_page_over_the_rate_limit_is_paced_in_order_never_refused(
    web_server, connect, autojump_clock: trio.testing.MockClock
) -> None:
    _, port = await web_server(limits=Limits(rate_limit=5))  # bursts of 10
    with trio.fail_after(60):
        web = await connect(port)
        welcome = await web.join("alice")
        assert welcome["rate_limit"] == 5  # the page can say why it is slowed
        started = trio.current_time()
        for n in range(20):
            await web.send({"send": {"text": f"line {n}", "client_msg_id": f"c{n}"}})
        acks = [(await web.next_of("ack", "error")) for _ in range(20)]
        waited = trio.current_time() - started  # on the test's virtual clock
    assert [ack["ack"]["client_msg_id"] for ack in acks] == [f"c{n}" for n in range(20)]
    assert [ack["ack"]["seq"] for ack in acks] == list(range(1, 21))
    assert waited >= (20 - 10) / 5  # the ten past the burst waited their turn


async def test_a_page_asks_for_the_rooms_and_the_asks_are_paced_like_messages(
    web_server, connect, autojump_clock: trio.testing.MockClock
) -> None:
    harness, port = await web_server(limits=Limits(rate_limit=1))  # bursts of 2
    with trio.fail_after(60):
        await (await harness.v1("bob", "dev")).say("hello")
        await harness.v1("carol", "dev")
        web = await connect(port)
        await web.join("alice", "ops")
        started = trio.current_time()
        for _ in range(4):
            await web.send({"rooms": {}})
        answers = [(await web.next_of("rooms"))["rooms"]["rooms"] for _ in range(4)]
        waited = trio.current_time() - started
        assert "ack" in await web.say("the session goes on", "c1")
    assert answers[0] == [
        {"name": "dev", "members": 2, "last_seq": 1},
        {"name": "ops", "members": 1, "last_seq": 0},
    ]
    assert answers.count(answers[0]) == 4
    assert waited >= 2  # two past the burst of two waited their turn, as sends do


async def test_history_is_marked_and_a_resume_misses_nothing(web_server, connect) -> None:
    harness, port = await web_server()
    with trio.fail_after(10):
        grpc = await harness.v1("bob")
        for n in range(1, 6):
            await grpc.say(f"m{n}", f"g{n}")
        late = await connect(port)
        welcome = await late.join("carol", history=3)
        assert welcome["last_seq"] == 5
        history = [await late.next_message() for _ in range(3)]
        assert [(m["seq"], m["history"]) for m in history] == [(3, True), (4, True), (5, True)]
        resumed = await connect(port)
        await resumed.join("dave", after_seq=2, epoch=welcome["epoch"])
        missed = [await resumed.next_message() for _ in range(3)]
        assert [(m["seq"], m["history"]) for m in missed] == [(3, False), (4, False), (5, False)]
        lost = await connect(port)
        await lost.join("erin", after_seq=40, epoch="an-epoch-the-store-lost")
        reset = await lost.next_of("event")
        assert reset["event"]["kind"] == "reset" and reset["event"]["epoch"] == welcome["epoch"]
        assert [(await lost.next_message())["seq"] for _ in range(5)] == [1, 2, 3, 4, 5]


async def test_refused_sends_are_frames_and_the_session_goes_on(web_server, connect) -> None:
    _, port = await web_server(limits=Limits(rate_limit=0, max_text_bytes=10))
    with trio.fail_after(10):
        web = await connect(port)
        await web.join("alice")
        refused = await web.say("x" * 11, "long")
        assert refused == {
            "error": {
                "code": "TEXT_TOO_LONG",
                "message": "Message not sent: it is 11 bytes and the limit is 10 bytes.",
                "client_msg_id": "long",
            }
        }
        assert (await web.say("   ", "blank"))["error"]["code"] == "EMPTY_TEXT"
        await web.send({"join": {"name": "alice", "room": "elsewhere"}})
        misplaced = (await web.next_of("error"))["error"]
        assert misplaced["code"] == "BAD_FRAME"
        assert misplaced["message"] == "You are already in lobby; connect again to change rooms."
        assert "ack" in await web.say("still here", "ok")


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("not json", "a frame was not JSON"),
        ('["join"]', "a frame must be one object"),
        ('{"send": {"text": "\\ud800", "client_msg_id": "x"}}', "text is not valid Unicode"),
        ('{"send": {"text": 5}}', "text must be a string"),
        ('{"leave": {}}', "unknown frame 'leave'"),
        ("[" * 30_000 + "]" * 30_000, "a frame was not JSON"),
    ],
    ids=["not json", "not an object", "lone surrogate", "wrong type", "unknown kind", "deep"],
)
async def test_frames_that_are_not_the_protocol_end_the_session_with_a_sentence(
    web_server, connect, frame: str, why: str
) -> None:
    harness, port = await web_server()
    with trio.fail_after(10):
        watcher = await harness.v1("watcher")
        web = await connect(port)
        await web.join("alice")
        await web.send(frame)
        await web.until_closed()
        assert web.close_code == 4003  # INVALID_ARGUMENT
        assert web.end is not None and web.end["code"] == "INVALID_ARGUMENT"
        assert web.end["message"].startswith("could not decode a frame: ")
        assert why in web.end["message"]
        await watcher.say("the room goes on", "w1")
    assert harness.server.hub.members_of("lobby") == ("watcher",)


async def test_a_binary_frame_ends_the_session_with_a_sentence(web_server, connect) -> None:
    _, port = await web_server()
    with trio.fail_after(10):
        web = await connect(port)
        await web.join("alice")
        await web.sock.send_all(web.ws.send(BytesMessage(data=b"\x00\x01")))
        await web.until_closed()
    assert web.close_code == 4003
    assert web.end == {
        "code": "INVALID_ARGUMENT",
        "message": "binary frames are not part of the protocol: send JSON text",
    }


async def test_a_session_must_begin_with_a_join_in_time(
    web_server, connect, autojump_clock: trio.testing.MockClock
) -> None:
    _, port = await web_server(transport=TransportLimits(handshake_timeout=2.0))
    with trio.fail_after(30):
        sender = await connect(port)
        await sender.send({"send": {"text": "hi", "client_msg_id": "1"}})
        await sender.until_closed()
        assert sender.close_code == 4003
        assert sender.end == {
            "code": "INVALID_ARGUMENT",
            "message": "the first frame of a stream must be a Join",
        }
        silent = await connect(port)
        await silent.until_closed()
        assert silent.close_code == 4004  # DEADLINE_EXCEEDED
        assert silent.end is not None
        assert silent.end["message"] == "no join arrived within 2 seconds of connecting"
        async with await trio.open_tcp_stream("127.0.0.1", port) as idle:  # says nothing
            assert await idle.receive_some(100) == b""


async def test_a_refused_name_ends_the_session_with_the_rules_sentence(web_server, connect) -> None:
    harness, port = await web_server()
    with trio.fail_after(10):
        web = await connect(port)
        await web.send({"join": {"name": "al\u200bice", "room": "lobby"}})
        await web.until_closed()
        assert web.close_code == 4003
        assert web.end is not None and web.end["code"] == "INVALID_ARGUMENT"
        assert "invisible" in web.end["message"] or "character" in web.end["message"]
        assert len(web.close_reason.encode()) <= 123
    assert harness.server.hub.member_count() == 0


async def test_a_message_over_the_size_limit_ends_the_session(web_server, connect) -> None:
    _, port = await web_server(transport=TransportLimits(max_message_bytes=1024))
    with trio.fail_after(10):
        web = await connect(port)
        await web.join("alice")
        await web.send({"send": {"text": "x" * 2000, "client_msg_id": "big"}})
        await web.until_closed()
        assert web.close_code == 4008  # RESOURCE_EXHAUSTED
        assert web.end is not None
        assert web.end["message"] == "a message is larger than the limit of 1024 bytes"


# -- who may open a session --------------------------------------------------------------


async def test_a_page_of_another_origin_cannot_open_a_session(web_server, connect) -> None:
    harness, port = await web_server(web_origins=allowed_origins(["https://chat.example.org"]))
    with trio.fail_after(10):
        for foreign in ("http://evil.example", "null", f"http://127.0.0.1:{port + 1}"):
            with pytest.raises(Refused) as refused:
                await connect(port, origin=foreign)
            assert refused.value.status == 403
            assert refused.value.body == (
                f"A page from {foreign} may not open a chat session here: open the chat from "
                "this server's own page, or start the server with --web-origin for that page.\n"
            )
        # DNS rebinding: a foreign name pointed at 127.0.0.1 is not this loopback page.
        with pytest.raises(Refused):
            await connect(port, origin=f"http://evil.example:{port}", host=f"evil.example:{port}")
        for allowed in ("https://chat.example.org", f"http://localhost:{port}", None):
            host = f"localhost:{port}" if allowed and "localhost" in allowed else None
            web = await connect(port, origin=allowed, host=host)
            await web.join(f"member-{len(harness.server.hub.members_of('lobby'))}")
    assert harness.server.cut_offs["web_foreign_origin"] == 4


async def test_web_and_grpc_connections_count_against_one_per_address_limit(
    web_server, connect
) -> None:
    harness, port = await web_server(max_conns_per_addr=2)
    with trio.fail_after(10):
        await harness.v1("grpc")
        page = await connect(port)
        await page.join("page")
        with pytest.raises(Refused) as refused:
            await connect(port)
        assert (refused.value.status, refused.value.body) == (
            429,
            "Too many connections from your address (at most 2).\n",
        )
        assert (await page.say("still here", "p1"))["ack"]["client_msg_id"] == "p1"


def test_origins_compare_as_browsers_serialise_them() -> None:
    assert normalise("HTTPS://Chat.Example.org:443/") == "https://chat.example.org"
    assert normalise("http://[::1]:8080") == "http://[::1]:8080"
    for bad in ("chat.example.org", "ftp://x", "https://x/path", "https://u:p@x", "null"):
        assert normalise(bad) is None
    assert origin_allowed("http://chat.example.org", "chat.example.org:80", tls=False, allowed=())
    assert not origin_allowed("http://chat.example.org", "chat.example.org", tls=True, allowed=())
    with pytest.raises(Exception, match="is not an origin: give scheme://host"):
        allowed_origins(["chat.example.org"])


async def test_with_a_certificate_the_page_is_https_and_its_socket_wss(
    web_server, connect, tmp_path: Path
) -> None:
    ca = trustme.CA()
    pem = tmp_path / "server.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(pem)
    # As `purechat serve --tls-cert --tls-key --web-port` builds it: the same certificate.
    harness, port = await web_server(web_ssl_context=server_context(pem, pem, alpn="http/1.1"))
    browser_like = ssl.create_default_context()
    ca.configure_trust(browser_like)
    browser_like.set_alpn_protocols(["h2", "http/1.1"])  # a browser offers both
    with trio.fail_after(10):
        web = await connect(
            port,
            origin=f"https://localhost:{port}",
            host=f"localhost:{port}",
            ssl_context=browser_like,
        )
        assert isinstance(web.sock, trio.SSLStream)
        assert web.sock.selected_alpn_protocol() == "http/1.1"
        assert (await web.join("alice"))["name"] == "alice"
        assert "ack" in await web.say("over wss", "t1")
        with pytest.raises(Refused):  # the page over https is not the page over http
            await connect(
                port,
                origin=f"http://localhost:{port}",
                host=f"localhost:{port}",
                ssl_context=browser_like,
            )
    assert harness.server.hub.members_of("lobby") == ("alice",)


async def test_a_page_without_a_valid_token_is_refused_and_revocation_ends_its_session(
    web_server, connect, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    path.write_text("t-alice alice\nt-bob bob\n")
    book = TokenBook(path)
    _harness, port = await web_server(tokens=book)
    with trio.fail_after(10):
        for token in ({}, {"token": "wrong"}, {"token": "t-alic"}):
            web = await connect(port)
            await web.send({"join": {"name": "alice", "room": "lobby", **token}})
            await web.until_closed()
            assert web.close_code == 4016  # UNAUTHENTICATED
            assert web.end == {
                "code": "UNAUTHENTICATED",
                "message": "a valid token is required (enter the token you were given)",
            }
        alice = await connect(port)
        assert (await alice.join("mallory", token="t-alice"))["name"] == "alice"
        bob = await connect(port)
        await bob.join("bob", token="t-bob")
        path.write_text("t-bob bob\n")
        assert book.reload() == {b"t-alice"}
        await alice.until_closed()
        assert alice.end == {"code": "UNAUTHENTICATED", "message": "token revoked"}
        assert "ack" in await bob.say("still here", "b1")
    assert "alice (web 127.0.0.1:" in caplog.text and "token revoked; call ended" in caplog.text
    assert "t-alice" not in caplog.text


# -- slow, silent and leaving peers ------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        # the backlog passes its budget long before the end
        ({"slow_member_bytes": 256 * 1024}, "backlog"),
        # the backlog stays within its budget, but makes no progress for the stall timeout
        ({"slow_member_timeout": 0.5}, "stalled"),
    ],
    ids=["backlog over budget", "no progress"],
)
async def test_a_web_member_that_stops_reading_is_removed_and_the_rest_get_everything(
    web_server, connect, config: dict[str, float], reason: str
) -> None:
    harness, port = await web_server(**config)
    count, text = 1500, "x" * 4000  # 6 MB: past the kernel's buffers and the socket's
    with trio.fail_after(30):
        stalled = await connect(port)
        await stalled.join("stalled")  # never reads from here on
        sender = await harness.v1("sender")
        received: list[int] = []
        stalled_left = trio.Event()

        async def read_all() -> None:
            while len(received) < count or not stalled_left.is_set():
                event = (await sender.next_of("event")).event
                if event.kind == event.MESSAGE:
                    received.append(event.seq)
                elif event.kind == event.LEAVE and event.user == "stalled":
                    stalled_left.set()

        async def send_all() -> None:
            for n in range(count):
                await sender.call.send(text, f"m{n}")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_all)
            nursery.start_soon(send_all)
        assert received == list(range(1, count + 1))
        assert harness.server.hub.members_of("lobby") == ("sender",)
    assert dict(harness.server._services.evictions) == {reason: 1}


async def test_handshakes_that_are_not_websocket_13_get_a_status_and_a_sentence(
    web_server,
) -> None:
    _, port = await web_server()
    origin = f"http://127.0.0.1:{port}"
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "origin": origin}
    key = {"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="}
    cases = [
        ({**upgrade, **key, "sec-websocket-version": "8"}, 426,
         "Only WebSocket version 13 is supported."),
        ({**upgrade, "sec-websocket-version": "13"}, 400,
         "Not a WebSocket handshake: Sec-WebSocket-Key is missing."),
        ({"origin": origin}, 400,
         "Not a WebSocket handshake: it asks for no upgrade to websocket."),
    ]  # fmt: skip
    with trio.fail_after(10):
        for headers, code, sentence in cases:
            status, answer_headers, body = await http_get(port, "/ws", headers)
            assert (status, body.decode()) == (code, sentence + "\n")
            if code == 426:
                assert answer_headers["sec-websocket-version"] == "13"


async def test_a_silent_peer_is_dropped_by_keepalive(
    web_server, connect, autojump_clock: trio.testing.MockClock
) -> None:
    harness, port = await web_server()  # pinged after 30 s, dropped 20 s later
    with trio.fail_after(120):
        ghost = await connect(port)
        await ghost.join("ghost")  # never reads again, never answers a ping
        await settles(lambda: harness.server.hub.member_count() == 0)
        await ghost.sock.aclose()


async def test_shutdown_ends_web_sessions_with_a_sentence_and_leaves_nothing(
    web_server, connect, nursery: trio.Nursery
) -> None:
    store = MemoryStore()
    harness, port = await web_server(store=store)
    with trio.fail_after(10):
        web = await connect(port)
        await web.join("alice")
        async with await trio.open_tcp_stream("127.0.0.1", port) as lurker:  # keep-alive
            await lurker.send_all(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await lurker.receive_some(65536)).startswith(b"HTTP/1.1 200")
            harness.server.shutdown()
            frames = await web.until_closed()
            assert frames[-1] == {"end": {"code": "UNAVAILABLE", "message": "server shutting down"}}
            assert (web.close_code, web.close_reason) == (4014, "server shutting down")
            await harness.server.stopped()
            assert await lurker.receive_some(100) == b""
    assert harness.server.hub.member_count() == 0


def _task_count() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            count(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    return count(trio.lowlevel.current_root_task())


async def _settle(web: WebServer) -> None:
    """Wait, on the scheduler rather than a clock, until every web connection is over."""
    while web.connection_count:
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)


async def test_sessions_that_end_leave_no_member_no_connection_and_no_task(
    web_server, connect
) -> None:
    harness, port = await web_server()
    web = harness.server._web
    assert web is not None
    with trio.fail_after(10):
        await trio.testing.wait_all_tasks_blocked()
        tasks_before = _task_count()
        for n in range(20):
            client = await connect(port)
            await client.join(f"m{n}")
            await client.say("hello", f"c{n}")
            if n % 2:
                await client.close()  # leaves politely
            else:
                await client.sock.aclose()  # vanishes
        await _settle(web)
        await trio.testing.wait_all_tasks_blocked(cushion=0.01)
    assert _task_count() == tasks_before
    assert harness.server.hub.member_count() == 0
    assert b"\npurechat_members 0.0\n" in harness.server.metrics.scrape()
