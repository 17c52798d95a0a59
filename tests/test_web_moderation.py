"""Accounts and moderation on the web page, in a real browser (headless chromium).

The login form, the same slash commands as `purechat join`, a member's menu for an
operator, moderation events and the topic shown in place, refusals as sentences; and
the accessibility scans of the page with them (axe-core, as tests/test_web_browser.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import StatusCode
from purechat.store import SqliteStore
from tests.accounts import (
    PASSWORD,
    accounts_config,
    login,
    member,
    next_moderation,
    refused_join,
    register,
)
from tests.browser import JOINED, Browser, Page
from tests.helpers import Harness
from tests.polling import settles


async def community(
    start_server: Any, path: Path, *, registration: bool = False
) -> tuple[Harness, str]:
    """A server on SQLite with a web port and accounts alice, bob, spammer (root admin)."""
    store = await SqliteStore.open(path)
    config = accounts_config(admins=["root"], registration=registration)
    harness: Harness = await start_server(store=store, web_port=0, **config)
    await register(harness.server.directory, "alice", "bob", "spammer", "root")
    await settles(lambda: name_key("spammer") in harness.server.auth.account_keys)
    return harness, f"http://127.0.0.1:{harness.server.web_port}/"


async def fill(page: Page, **fields: str) -> None:
    """Type into the join form's fields (name, room, password, token)."""
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    def typing(driver: Any) -> None:
        for field, value in fields.items():
            element = driver.find_element(By.ID, field)
            element.clear()
            element.send_keys(value)

    await page.run(typing)


async def logged_in_page(
    pages: Browser, url: str, name: str, room: str = "lobby", password: str = PASSWORD
) -> Page:
    page = await pages.new_page()
    await page.open(url)
    await fill(page, name=name, room=room, password=password)
    await page.click("#join")
    await page.wait_for(JOINED)
    return page


def moderation_lines(selector: str = ".log:not([hidden]) li.moderation .text") -> str:
    return f"[...document.querySelectorAll('{selector}')].map((text) => text.textContent)"


async def test_log_in_claim_op_and_ban_from_the_page_and_a_non_operator_is_refused(
    start_server, pages: Browser, tmp_path: Path
) -> None:
    harness, url = await community(start_server, tmp_path / "chat.db")
    problems: dict[str, list[str]] = {}
    with trio.fail_after(90):
        # A wrong password is a sentence on the form; the form stays.
        page = await pages.new_page()
        await page.open(url)
        await fill(page, name="alice", room="den", password="not the password")
        problems["the login form"] = await page.accessibility_problems()
        await page.click("#join")
        await page.wait_for("document.querySelector('#join-error').textContent !== ''")
        assert await page.text_of("#join-error") == "Wrong name or password."
        assert await page.script("return document.querySelector('#join-view').hidden") is False
        await fill(page, password=PASSWORD)
        await page.click("#join")
        await page.wait_for(JOINED)
        alice = page
        # The password left the form; the page is alice's account, whatever it asked.
        assert await alice.script("return document.querySelector('#password').value") == ""
        assert await alice.text_of("#status") == "connected as alice"

        spammer = await logged_in_page(pages, url, "spammer", "den")
        bob = await member(harness, "bob", await login(harness, "bob"), room="den")

        # Not an operator: refused with the sentence, the command kept in the box.
        await spammer.type("/ban alice 1h")
        await spammer.wait_for("document.querySelector('#send-problem').textContent !== ''")
        assert await spammer.script(
            "return [document.querySelector('#line').value,"
            " document.querySelector('#send-problem').textContent]"
        ) == ["/ban alice 1h", "Only an operator of this room may ban."]
        # A bad duration never leaves the page.
        await spammer.script("document.querySelector('#line').value = ''")
        await spammer.type("/mute alice 3y")
        await spammer.wait_for(
            "document.querySelector('#send-problem').textContent.includes('not a duration')"
        )

        await alice.type("/claim", "/topic plans, not spam", "/op bob")
        await alice.wait_for(f"{moderation_lines()}.length === 3")
        assert await alice.script(f"return {moderation_lines()}") == [
            "* alice claimed the room and owns it now",
            "* alice set the topic: plans, not spam",
            "* alice made bob an operator",
        ]
        await alice.wait_for("document.querySelector('#topic').textContent === 'plans, not spam'")
        await spammer.wait_for("document.querySelector('#topic').textContent === 'plans, not spam'")
        # A purechat.v1 member sees the same events, in the same places.
        seen = [await next_moderation(bob) for _ in range(3)]
        assert [(e.seq, e.moderation.action) for e in seen] == [
            (1, "claim"),
            (2, "topic"),
            (3, "op"),
        ]

        # The owner's menu on the spammer's name: ban for an hour.
        # A member's menu offers a non-operator a conversation only, never moderation.
        assert await spammer.script(
            "return [...document.querySelectorAll('.member-menu button')]"
            ".map((b) => b.dataset.action)"
        ) == ["message", "message"]
        await alice.click("button.member[data-user=spammer]")
        await alice.wait_for("document.querySelector('.member-menu:not([hidden]) button')")
        problems["a member's menu"] = await alice.accessibility_problems()
        await alice.click(".member-menu:not([hidden]) button[data-action=ban]")
        await alice.wait_for(f"{moderation_lines()}.length === 4")
        assert (await alice.script(f"return {moderation_lines()}"))[3] == (
            "* spammer was banned by alice for 1h"
        )
        # The spammer's page is back at the form, saying why; its rejoin is refused.
        await spammer.wait_for("document.querySelector('#join-view').hidden === false")
        assert (await spammer.text_of("#join-error")).startswith(
            "You were banned from den by alice for "
        )
        await fill(spammer, name="spammer", room="den", password=PASSWORD)
        await spammer.click("#join")
        await spammer.wait_for(
            "document.querySelector('#join-error').textContent.startsWith("
            "'You are banned from this room (by alice')"
        )
        problems["a refused rejoin"] = await spammer.accessibility_problems()
        status = await refused_join(harness, "x", await login(harness, "spammer"), room="den")
        assert status.status_code is StatusCode.PERMISSION_DENIED
    assert problems == {where: [] for where in problems}


async def test_a_muted_page_reads_on_and_its_lines_are_refused(
    start_server, pages: Browser, tmp_path: Path
) -> None:
    harness, url = await community(start_server, tmp_path / "chat.db")
    with trio.fail_after(60):
        alice = await member(harness, "alice", await login(harness, "alice"))
        await alice.call.send_frame(
            v1.ClientFrame(moderate=v1.ModerationCommand(action=v1.ModerationCommand.CLAIM))
        )
        page = await pages.new_page()
        await page.open(url)
        await fill(page, name="noisy", room="lobby", password="")
        await page.click("#join")
        await page.wait_for(JOINED)
        mute = v1.ModerationCommand(
            action=v1.ModerationCommand.MUTE, target="noisy", seconds=600, client_msg_id="m"
        )
        await alice.call.send_frame(v1.ClientFrame(moderate=mute))
        await page.wait_for(f"{moderation_lines()}.length === 2")
        await page.type("can you hear me")
        await page.wait_for("document.querySelector('#send-problem').textContent !== ''")
        assert (await page.text_of("#send-problem")).startswith(
            "Message not sent: you are muted in this room (by alice"
        )
        assert await page.script("return document.querySelector('#line').value") == (
            "can you hear me"
        )
        await alice.say("still reading?", "a1")
        await page.wait_for_messages(1)


async def test_registering_from_the_page_where_the_server_lets_people(
    start_server, pages: Browser, tmp_path: Path
) -> None:
    _, url = await community(start_server, tmp_path / "chat.db", registration=True)
    _, closed = await community(start_server, tmp_path / "closed.db")
    with trio.fail_after(60):
        page = await pages.new_page()
        await page.open(closed)
        await fill(page, name="carol", password=PASSWORD)
        await page.click("#register")
        await page.wait_for("document.querySelector('#join-error').textContent !== ''")
        assert await page.text_of("#join-error") == (
            "This server does not let people register: ask its admin for an account."
        )
        await page.open(url)
        await fill(page, name="carol", password="short")
        await page.click("#register")
        await page.wait_for("document.querySelector('#join-error').textContent !== ''")
        assert await page.text_of("#join-error") == "A password is at least 8 characters."
        await fill(page, password=PASSWORD)
        await page.click("#register")
        await page.wait_for(JOINED)
        assert await page.text_of("#status") == "connected as carol"
