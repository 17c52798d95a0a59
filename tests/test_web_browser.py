"""The web page in a real browser (headless chromium), beside grpcio and purechat.v1 members.

The README's pictures are taken in tests/test_web_conversations.py. Each test groups
what one page load can show, as a browser test costs seconds.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import trio

from purechat.client.calls import V1Call, open_connection
from purechat.core import Limits
from purechat.server.auth import TokenBook
from tests.browser import JOINED, LOG, Browser, Page, messages_from
from tests.helpers import Harness
from tests.redis_server import free_port


async def web_harness(start_server: Any, **config: Any) -> tuple[Harness, str]:
    harness: Harness = await start_server(web_port=0, **config)
    return harness, f"http://127.0.0.1:{harness.server.web_port}/"


async def joined_page(pages: Browser, url: str, name: str, room: str = "lobby") -> Page:
    page = await pages.new_page()
    await page.open(url)
    await page.join(name, room)
    await page.wait_for(JOINED)
    return page


class GrpcioMember:
    """The tutorial's Python client (grpcio, chat.proto), in a thread of its own."""

    def __init__(self, port: int, stubs: tuple[ModuleType, ModuleType], user: str):
        self._port, self._stubs, self._user = port, stubs, user
        self._outgoing: queue.Queue[str | None] = queue.Queue()
        self.received: list[tuple[str, str]] = []
        self._arrived = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._call: Any = None

    def __enter__(self) -> GrpcioMember:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._outgoing.put(None)
        if self._call is not None:
            self._call.cancel()
        self._thread.join(10)

    def send(self, text: str) -> None:
        self._outgoing.put(text)

    async def wait_for(self, count: int) -> list[tuple[str, str]]:
        """Until it has received `count` messages; (user, text) of each."""

        def wait() -> None:
            with self._arrived:
                self._arrived.wait_for(lambda: len(self.received) >= count, timeout=20)

        await trio.to_thread.run_sync(wait)
        assert len(self.received) >= count, self.received
        return self.received[:count]

    def _run(self) -> None:
        pb, rpc = self._stubs
        with grpc.insecure_channel(f"127.0.0.1:{self._port}") as channel:

            def requests() -> Iterator[Any]:
                while (text := self._outgoing.get()) is not None:
                    yield pb.ChatMessage(user_id=self._user, text=text)

            self._call = rpc.ChatServiceStub(channel).JoinChat(requests(), timeout=60)
            try:
                for message in self._call:
                    with self._arrived:
                        self.received.append((message.user_id, message.text))
                        self._arrived.notify_all()
            except grpc.RpcError:
                pass  # cancelled at the end of the test


async def test_two_pages_and_a_grpcio_member_see_one_order(
    start_server, pages: Browser, tutorial_stubs: tuple[ModuleType, ModuleType]
) -> None:
    harness, url = await web_harness(start_server)
    with trio.fail_after(60):
        alice = await joined_page(pages, url, "alice")
        bob = await joined_page(pages, url, "bob")
        with GrpcioMember(harness.port, tutorial_stubs, "grpcio") as member:
            member.send("hello from grpcio, the tutorial's Python client")
            await member.wait_for(1)
            await alice.type("hi! I am in a browser")
            await alice.wait_for_messages(2)
            # Alice looks at another tab (headless windows all count as in front, so
            # the page is told so as a browser would tell it), and back later.
            await alice.script(
                "window.titles = [];"
                "new MutationObserver(() => window.titles.push(document.title))"
                ".observe(document.querySelector('title'), {childList: true});"
                "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
                "document.dispatchEvent(new Event('visibilitychange'));"
            )
            member.send("one room, three ways in")
            await bob.type("/me waves from another window")
            await bob.wait_for_messages(3)
            await alice.type("and <b>markup</b> stays text")
            member.send("everyone sees the same order")
            await bob.type("numbered by the server, once")
            expected = 7
            alice_saw = await alice.wait_for_messages(expected)
            bob_saw = await bob.wait_for_messages(expected)
            grpcio_saw = await member.wait_for(expected)
            assert await bob.text_of("#members") == "alicebobgrpcio"
            # What others said while she looked elsewhere was counted in the title.
            await alice.wait_for("document.title === '(4) lobby — purechat'")
            await alice.script(
                "delete document.hidden; document.dispatchEvent(new Event('visibilitychange'));"
            )
            await alice.wait_for("document.title === 'lobby — purechat'")  # seen again
        assert alice_saw == bob_saw
        assert [seq for seq, _, _ in alice_saw] == list(range(1, expected + 1))
        # The original contract shows an action as "* name text", without numbers.
        as_grpcio_sees = [
            (user, f"* {user} {text}" if text.startswith("waves") else text)
            for _, user, text in alice_saw
        ]
        assert grpcio_saw == as_grpcio_sees
        # A phone-sized screen: one column, nothing wider than the screen.
        await alice.run(lambda driver: driver.set_window_size(390, 760))
        fits = "document.documentElement.scrollWidth <= window.innerWidth"
        await alice.wait_for(fits)
        assert await alice.script(
            "const r = document.querySelector('#line').getBoundingClientRect();"
            "return r.bottom <= window.innerHeight && r.width > 200"
        )


# A stand-in for the browser's Notification API (headless chromium has no desktop to
# show one on): it counts the asks for permission and keeps what would be raised.
_FAKE_NOTIFICATIONS = """
window.raised = [];
window.permissionAsked = 0;
class FakeNotification {
  constructor(title, options) { window.raised.push({ title, body: options.body }); }
  addEventListener() {}
}
FakeNotification.permission = "default";
FakeNotification.requestPermission = async () => {
  window.permissionAsked += 1;
  FakeNotification.permission = "granted";
  return "granted";
};
window.Notification = FakeNotification;
"""
_HIDE = (
    "Object.defineProperty(document, 'hidden', {value: true, configurable: true});"
    "document.dispatchEvent(new Event('visibilitychange'));"
)
_SHOW = "delete document.hidden; document.dispatchEvent(new Event('visibilitychange'));"


def _room_button(room: str) -> str:
    return f"document.querySelector('button.room[data-room={room}]')"


async def test_two_rooms_in_one_tab_with_unread_counts_links_mentions_and_notifications(
    start_server, pages: Browser
) -> None:
    harness, url = await web_harness(start_server)
    with trio.fail_after(90):
        page = await pages.new_page()
        await page.open(url)
        await page.script(_FAKE_NOTIFICATIONS)
        await page.join("alice", "lobby")
        await page.wait_for(JOINED)
        await page.type("/join dev")
        await page.wait_for(f"{_room_button('dev')}.getAttribute('aria-current') === 'true'")
        await page.wait_for(JOINED)
        bob, carol = await harness.v1("bob", "lobby"), await harness.v1("carol", "dev")
        await carol.say("morning! the deploy notes:\n- api: done\n- web: today")
        await page.wait_for_messages(1)
        # Two rooms in one tab: what is said in the other one is counted on its button.
        await bob.say("anyone around?")
        await bob.say("alice: the report https://example.org/q3?x=1 (and javascript:alert(1))")
        lobby = _room_button("lobby")
        await page.wait_for(
            f"{lobby}.dataset.unread === '2' && {lobby}.dataset.mentioned === 'true'"
        )
        await page.wait_for("document.title === '(2) dev — purechat'")
        assert await page.script(f"return {_room_button('dev')}.dataset.unread") == "0"
        # A message of several lines keeps them, under its first.
        shown = await page.script(
            f"return document.querySelector('{LOG} li.message .text').innerText"
        )
        assert shown == "morning! the deploy notes:\n- api: done\n- web: today"
        announced = await page.text_of("#announcer")
        assert "carol: morning!" in announced and "bob mentioned you in lobby" in announced
        await carol.say("alice, can you check the web part? https://example.org/pr/42")
        await page.wait_for_messages(2)

        # Notifications: permission is asked for on a click only, never on load ...
        assert await page.script("return [window.permissionAsked, window.raised]") == [0, []]
        await page.click("#notify")
        await page.wait_for(
            "window.permissionAsked === 1 && document.querySelector('#notify').hidden"
        )
        # ... and, once given, a mention raises one while the tab is hidden, nothing else does.
        await page.script(_HIDE)
        await bob.say("nobody named here")
        await bob.say("lunch, Alice?")
        await page.wait_for(f"{lobby}.dataset.unread === '4'")
        await page.script(_SHOW)
        await carol.say("alice, seen while you look: no notification")
        await page.wait_for_messages(3)
        raised = await page.script("return window.raised")
        assert raised == [{"title": "bob in lobby", "body": "lunch, Alice?"}]

        # Opening the other room: its count goes, its log shows what was said, with a date.
        await page.click("button.room[data-room=lobby]")
        await page.wait_for(
            f"{lobby}.dataset.unread === '0' && {lobby}.dataset.mentioned === 'false'"
        )
        assert await page.text_of("#room-title") == "lobby"
        await page.wait_for("document.title === 'lobby — purechat'")
        assert (
            await page.script(f"return document.querySelector('{LOG} li.day').textContent")
            == "Today"
        )
        links = await page.script(
            f"return [...document.querySelectorAll('{LOG} a')]"
            ".map(a => [a.href, a.rel, a.textContent])"
        )
        assert links == [
            ["https://example.org/q3?x=1", "noopener noreferrer", "https://example.org/q3?x=1"]
        ]
        texts = [text for _, _, text in messages_from(await page.lines())]
        assert "javascript:alert(1)" in texts[1]  # shown, as text only
        marks = await page.script(
            f"return [...document.querySelectorAll('{LOG} li.mention mark')]"
            ".map(m => m.textContent)"
        )
        assert marks == ["alice", "Alice"]  # my name stands out where others say it

        # The terminal's commands: /rooms, /who, /nick in every open room, /me.
        await page.type("/rooms")
        await page.wait_for("/rooms: dev \\(2\\), lobby \\(2\\)/.test(document.body.innerText)")
        await page.type("/nick alicia")
        await page.wait_for(
            "document.querySelector('#status').textContent === 'connected as alicia'"
        )
        await page.type("/me waves", "/who")
        await page.wait_for("/here: alicia, bob/.test(document.body.innerText)")
        event = await bob.next_message()
        while event.user != "alicia":
            event = await bob.next_message()
        assert (event.text, event.action) == ("waves", True)
        await page.click("button.room[data-room=dev]")
        await page.wait_for(
            "document.querySelector('#status').textContent === 'connected as alicia'"
        )
        assert await page.text_of("#members") == "aliciacarol"


async def test_keyboard_only_a_refused_line_kept_and_no_serious_accessibility_problem(
    start_server, pages: Browser
) -> None:
    """Joining and sending with the keyboard alone; a line over the limit stays in the
    box with the sentence beside it; axe-core finds nothing serious or critical on the
    join page, a busy room, a refused line, a phone, and in the dark theme."""
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

    harness, url = await web_harness(start_server, limits=Limits(rate_limit=0, max_text_bytes=100))
    problems: dict[str, list[str]] = {}
    fits = (
        "document.documentElement.scrollHeight <= window.innerHeight"
        " && document.documentElement.scrollWidth <= window.innerWidth"
    )
    focus_shows = "getComputedStyle(document.activeElement).outlineStyle !== 'none'"
    with trio.fail_after(90):
        page = await pages.new_page()
        await page.open(url)
        # The join page: placeholders, not values; nothing to scroll, so no scrollbar.
        assert await page.script(
            "return [...document.querySelectorAll('#join-form input')]"
            ".map(i => [i.id, i.value, i.placeholder, i.labels.length])"
        ) == [
            ["name", "", "alice", 1],
            ["room", "", "lobby", 1],
            ["password", "", "", 1],
            ["token", "", "", 1],
        ]
        assert await page.script(f"return {fits}")
        problems["the join page"] = await page.accessibility_problems()
        # Keyboard only: the name has the focus; Tab moves, visibly; Enter presses Join.
        assert await page.focused() == "name"
        await page.keys("kim", Keys.TAB, "ops", Keys.TAB, Keys.TAB, Keys.TAB)
        assert await page.focused() == "join"  # past the password and token: Join
        assert (
            await page.script(f"return document.activeElement.textContent + ({focus_shows})")
            == "Jointrue"
        )
        await page.keys(Keys.ENTER)
        await page.wait_for(JOINED)
        assert await page.focused() == "line"  # ready to type
        await page.keys("hello from the keyboard", Keys.ENTER)
        await page.keys("two")
        await page.chord(Keys.SHIFT, Keys.ENTER)
        await page.keys("lines", Keys.ENTER)
        said = await page.wait_for_messages(2)
        assert [text for _, _, text in said] == ["hello from the keyboard", "two\nlines"]
        assert await page.text_of("#room-title") == "ops"

        # A line over the limit: refused before it is sent, kept, marked, said beside.
        await page.keys("x" * 101, Keys.ENTER)
        await page.wait_for("document.querySelector('#send-problem').textContent !== ''")
        kept = await page.script(
            "const box = document.querySelector('#line');"
            "return [box.value, box.getAttribute('aria-invalid'),"
            " document.querySelector('#send-problem').textContent]"
        )
        assert kept == [
            "x" * 101,
            "true",
            "Message not sent: it is 101 bytes and the limit is 100 bytes.",
        ]
        problems["a refused line"] = await page.accessibility_problems()
        await page.keys(Keys.BACKSPACE, Keys.ENTER)  # 100 bytes: taken
        await page.wait_for("document.querySelector('#line').value === ''")
        assert (
            await page.script("return document.querySelector('#line').getAttribute('aria-invalid')")
            is None
        )

        # A busy room: members, links, mentions, actions, several rooms, a date.
        others = [await harness.v1(name, "ops") for name in ("ana", "bo", "cy")]
        await page.keys("/join dev", Keys.ENTER)
        await page.wait_for(JOINED)
        for _ in range(10):  # back from the box to the room list, by Shift+Tab
            await page.chord(Keys.SHIFT, Keys.TAB)
            if await page.script("return document.activeElement.dataset.room === 'ops'"):
                break
        assert await page.script(f"return {focus_shows}")
        await page.keys(Keys.ENTER)
        await page.wait_for("document.querySelector('#room-title').textContent === 'ops'")
        for n in range(30):
            member = others[n % 3]
            await member.say(
                f"kim, see https://example.org/{n}" if n % 7 == 0 else f"line {n} of a busy room"
            )
        await page.wait_for_messages(32)
        assert await page.script(f"return {fits}")
        problems["a busy room"] = await page.accessibility_problems()
        await page.colour_scheme("dark")
        assert (
            await page.script("return getComputedStyle(document.body).backgroundColor")
            == "rgb(22, 25, 28)"
        )
        problems["a busy room, dark"] = await page.accessibility_problems()
        await page.colour_scheme("light")
        assert (
            await page.script("return getComputedStyle(document.body).backgroundColor")
            == "rgb(251, 251, 250)"
        )

        # A phone: one column, nothing wider than the screen, the box in reach.
        await page.run(lambda driver: driver.set_window_size(390, 760))
        await page.wait_for(fits)
        assert await page.script(
            "const r = document.querySelector('#line').getBoundingClientRect();"
            "return r.bottom <= window.innerHeight && r.width > 200"
        )
        problems["a phone"] = await page.accessibility_problems()
    assert problems == {where: [] for where in problems}


async def test_markup_in_messages_and_names_is_shown_as_text_and_never_run(
    start_server, pages: Browser
) -> None:
    harness, url = await web_harness(start_server)
    with trio.fail_after(60):
        watcher = await joined_page(pages, url, "watcher")
        await watcher.script(
            "window.violations = [];"
            "document.addEventListener('securitypolicyviolation',"
            " (e) => window.violations.push(e.violatedDirective));"
        )
        mallory = await joined_page(pages, url, "<b>mallory</b>")
        await mallory.type("<img src=x onerror=alert(1)>", "<script>alert(2)</script>")
        grpc_member = await harness.v1("rtl")
        await grpc_member.say("evil\u202etxt.exe", "r1")
        look_alike = await harness.v1("\u0430lice")  # a Cyrillic a
        await look_alike.say("send me your password", "l1")
        shown = await watcher.wait_for_messages(4)
    assert shown == [
        (1, "<b>mallory</b>", "<img src=x onerror=alert(1)>"),
        (2, "<b>mallory</b>", "<script>alert(2)</script>"),
        (3, "rtl", "evil\\u202etxt.exe"),  # a bidi override is shown, not obeyed
        (4, "\u0430lice", "send me your password"),
    ]
    senders = await watcher.script(
        "return [...document.querySelectorAll('.log li.message .user')].map(e => e.textContent)"
    )
    # The look-alike is shown with its Cyrillic a escaped, as purechat join shows it.
    assert senders == ["<b>mallory</b>", "<b>mallory</b>", "rtl", "\\u0430lice"]
    assert await watcher.text_of("#members") == "<b>mallory</b>rtlwatcher\\u0430lice"
    elements = await watcher.script(
        "return document.querySelectorAll('.log img, .log script, .log b, #members b').length"
    )
    assert elements == 0
    assert await watcher.script("return window.violations") == []
    from selenium.common.exceptions import NoAlertPresentException  # noqa: PLC0415

    def no_alert(driver: Any) -> bool:
        try:
            driver.switch_to.alert  # noqa: B018 -- raises when there is none
        except NoAlertPresentException:
            return True
        return False

    assert await watcher.run(no_alert)


async def _start_process(
    nursery: trio.Nursery, web_port: int, store: Path
) -> tuple[trio.Process, int]:
    """`purechat serve` with its web page on web_port; the gRPC port it reports."""
    command = [sys.executable, "-m", "purechat", "serve", "--port", "0"]
    command += ["--web-port", str(web_port), "--store", f"sqlite:///{store}"]
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    )
    assert process.stdout is not None
    output = b""
    while b"purechat web page at" not in output or not output.endswith(b"\n"):
        chunk = await process.stdout.receive_some(4096)
        assert chunk, f"the server exited: {output!r}"
        output += chunk
    listening = re.search(rb"listening on 127\.0\.0\.1:(\d+)", output)
    assert listening is not None and f":{web_port}/".encode() in output
    return process, int(listening[1])


async def _stop(process: trio.Process) -> None:
    process.send_signal(signal.SIGTERM)
    with trio.fail_after(10):
        await process.wait()
    assert process.returncode == 0


async def _v1_member(nursery: trio.Nursery, port: int, name: str, history: int = 0) -> V1Call:
    call = V1Call(await open_connection(nursery, "127.0.0.1", port), authority="test")
    await call.join(name, "lobby", history=history)
    frame = await call.receive()
    assert frame is not None and frame.WhichOneof("frame") == "welcome"
    return call


async def test_a_page_typing_through_a_server_restart_resumes_without_gap_or_duplicate(
    pages: Browser, nursery: trio.Nursery, tmp_path: Path
) -> None:
    web_port, store = free_port(), tmp_path / "chat.db"
    url = f"http://127.0.0.1:{web_port}/"
    mine = [f"{when} {n}" for when in ("before", "during", "away") for n in (1, 2, 3)]
    with trio.fail_after(60):
        server, _ = await _start_process(nursery, web_port, store)
        page = await joined_page(pages, url, "alice")
        await page.type(*mine[:3])
        await page.wait_for_messages(3)
        await page.type(*mine[3:6])  # some of these are in flight as the server stops
        await _stop(server)
        await page.wait_for("document.querySelector('#status').dataset.phase === 'away'")
        await page.type(*mine[6:])  # typed while there is no server at all
        # Those, and whichever "during" lines the server did not answer before it stopped.
        waiting = "(/(\\d+) waiting to be sent/.exec(document.body.innerText) || [0, 0])[1] >= 3"
        await page.wait_for(waiting)
        status = "document.querySelector('#status').textContent"
        await page.wait_for(f"/reconnecting in \\d+ s/.test({status})")  # counting down
        server, grpc_port = await _start_process(nursery, web_port, store)
        bob = await _v1_member(nursery, grpc_port, "bob")
        for n in (1, 2):  # said while the page is still away, or as it comes back
            await bob.send(f"while you were away {n}", f"b{n}")
        shown = await page.wait_for_messages(len(mine) + 2)
        await page.wait_for(JOINED)
        await page.wait_for("!/waiting to be sent/.test(document.body.innerText)")
        reader = await _v1_member(nursery, grpc_port, "reader", history=50)
        stored = []
        while len(stored) < len(mine) + 2:
            frame = await reader.receive()
            assert frame is not None
            if frame.WhichOneof("frame") == "event" and frame.event.kind == frame.event.MESSAGE:
                stored.append((frame.event.seq, frame.event.user, frame.event.text))
        await _stop(server)
    assert [seq for seq, _, _ in shown] == list(range(1, len(mine) + 3))  # no gap, no repeat
    assert shown == stored
    assert [text for _, user, text in shown if user == "alice"] == mine  # once, in order
    assert [text for _, user, text in shown if user == "bob"] == [
        "while you were away 1",
        "while you were away 2",
    ]


async def test_a_page_of_another_site_cannot_open_a_session(start_server, pages: Browser) -> None:
    harness, url = await web_harness(start_server, metrics_port=0)
    with trio.fail_after(60):
        own = await joined_page(pages, url, "alice")
        foreign = await pages.new_page()
        # Another origin (the metrics port): a page there tries the member's chat.
        await foreign.open(f"http://127.0.0.1:{harness.server.metrics_port}/metrics")
        outcome = await foreign.run(
            lambda driver: driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "const ws = new WebSocket(arguments[0]);"
                "ws.onopen = () => done('opened');"
                "ws.onclose = (event) => done('closed ' + event.code);",
                f"ws://127.0.0.1:{harness.server.web_port}/ws",
            )
        )
        assert outcome == "closed 1006"  # the handshake was refused
        assert harness.server.cut_offs["web_foreign_origin"] == 1
        await own.type("still here")
        assert await own.wait_for_messages(1) == [(1, "alice", "still here")]


async def test_a_page_without_a_valid_token_is_refused_with_a_sentence(
    start_server, pages: Browser, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret alice\n")
    _, url = await web_harness(start_server, tokens=TokenBook(tokens))
    with trio.fail_after(60):
        page = await pages.new_page()
        await page.open(url)
        refused = "A valid token is required (enter the token you were given)."
        for token in ("", "wrong"):
            await page.join("mallory", token=token)
            await page.wait_for(
                f"document.querySelector('#join-error').textContent === {refused!r}"
            )
            assert await page.script("return document.querySelector('#join-view').hidden") is False
        await page.join("mallory", token="s3cret")
        await page.wait_for(JOINED)
        assert await page.text_of("#status") == "connected as alice"
        await page.type("the name comes from the token")
        assert (await page.wait_for_messages(1))[0][1] == "alice"
