"""Conversations, read markers, older history and search on the web page, in a real
browser (headless chromium), as tests/test_web_browser.py drives it.

PURECHAT_SCREENSHOTS=docs makes the first test save the README's pictures there
(`just web-screenshot`): two rooms and two conversations, with unread counts, and in
the room in front an edited message with reactions and a reply to it.

A conversation between two accounts started from the keyboard alone; two pages of one
account agreeing on what is unread, and a page that is not looked at marking nothing;
scrolling up through a room's log to its beginning, gaps said; a search whose result
opens the message in a room not open yet; a guest told why it has no conversations;
and axe-core scans of the new views.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import trio

from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.store import MemoryStore
from tests.accounts import PASSWORD, accounts_config, login, member, register
from tests.browser import JOINED, LOG, Browser, Page, messages_from
from tests.helpers import Harness
from tests.polling import settles

# Headless windows all count as in front and focused: a page is told otherwise as a
# browser would tell it.
# The person comes back to the tab (it had been in another window).
_BACK = "window.dispatchEvent(new Event('focus'));"
# Another window has the focus (the tab is visible, not looked at), and back.
_ELSEWHERE = "document.hasFocus = () => false; window.dispatchEvent(new Event('blur'));"
_LOOKING = "delete document.hasFocus; window.dispatchEvent(new Event('focus'));"


TITLED = "document.querySelector('#room-title').textContent === '%s'"


def conversation(peer: str) -> str:
    return f"document.querySelector('#conversations button[data-dm={peer}]')"


ROOT = Path(__file__).resolve().parent.parent


async def with_accounts(start_server: Any, store: Any = None) -> tuple[Harness, str]:
    harness: Harness = await start_server(store=store, web_port=0, **accounts_config())
    await register(harness.server.directory, "alice", "bob", "carol")
    await settles(lambda: name_key("carol") in harness.server.auth.account_keys)
    return harness, f"http://127.0.0.1:{harness.server.web_port}/"


async def logged_in(pages: Browser, url: str, name: str, room: str = "lobby") -> Page:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    page = await pages.new_page()
    await page.open(url)
    # A window webdriver opens copies its opener's sessionStorage (the page's session id,
    # kept per tab): a tab a person opens has its own, as this one now does.
    await page.script("sessionStorage.clear()")

    def fill(driver: Any) -> None:
        for field, value in (("name", name), ("room", room), ("password", PASSWORD)):
            element = driver.find_element(By.ID, field)
            element.clear()
            element.send_keys(value)
        driver.find_element(By.ID, "join").click()

    await page.run(fill)
    await page.wait_for(JOINED)
    return page


async def test_two_rooms_and_two_conversations_with_unread_counts_and_mention_marks(
    start_server, pages: Browser
) -> None:
    """PURECHAT_SCREENSHOTS=docs saves the README's pictures (light and dark) here."""
    harness, url = await with_accounts(start_server)
    with trio.fail_after(90):
        page = await logged_in(pages, url, "alice")
        await page.type("/join dev")
        await page.wait_for(TITLED % "dev")
        await page.wait_for(JOINED)
        bob_token, carol_token = await login(harness, "bob"), await login(harness, "carol")
        bob = await member(harness, "bob", bob_token)
        carol = await member(harness, "carol", carol_token, room="dev")
        notes = await carol.say("morning! teh deploy notes:\n- api: done\n- web: today")
        # Living messages in the picture: carol's edit, a reply, reactions.
        fixed = "morning! the deploy notes:\n- api: done\n- web: today"
        edit = v1.EditMessage(seq=notes.seq, text=fixed, client_msg_id="e1")
        await carol.call.send_frame(v1.ClientFrame(edit=edit))
        react = v1.ReactMessage(seq=notes.seq, emoji="🎉", client_msg_id="r1")
        await carol.call.send_frame(v1.ClientFrame(react=react))
        await page.wait_for(f"document.querySelector('{LOG} li.message .edited')")
        await page.type(f"/react {notes.seq} 👍", f"/reply {notes.seq} thanks, looks good")
        await page.wait_for(f"document.querySelectorAll('{LOG} button.reaction').length === 2")
        await bob.say("anyone around?")
        await bob.say("alice: the report https://example.org/q3 is up")
        to_alice = await member(harness, "bob", bob_token, dm="alice")
        await to_alice.say("are you free at three?")
        await to_alice.say("alice, bring the slides please")
        await (await member(harness, "carol", carol_token, dm="alice")).say(
            "thanks for the review!"
        )
        await carol.say("alice, can you check the web part? https://example.org/pr/42")
        await page.wait_for_messages(2)
        # Back from another window, the page asks what came in her conversations.
        await page.script(_BACK)
        lobby = "document.querySelector('button.room[data-room=lobby]')"
        await page.wait_for(
            f"{lobby}.dataset.unread === '2' && {lobby}.dataset.mentioned === 'true'"
        )
        await page.wait_for(
            f"{conversation('bob')}.dataset.unread === '2'"
            f" && {conversation('bob')}.dataset.mentioned === 'true'"
            f" && {conversation('carol')}.dataset.unread === '1'"
            f" && {conversation('carol')}.dataset.mentioned === 'false'"
        )
        await page.wait_for("document.title === '(5) dev — purechat'")
        await page.wait_for(f"document.querySelector('{LOG} li.message .quote')")
        if folder := os.environ.get("PURECHAT_SCREENSHOTS"):
            await page.screenshot(ROOT / folder / "web-light.png")
            await page.colour_scheme("dark")
            await page.screenshot(ROOT / folder / "web-dark.png")
            await page.colour_scheme("light")
        problems = await page.accessibility_problems()
    assert problems == []


async def test_a_conversation_from_the_keyboard_and_two_pages_of_one_account_agree(
    start_server, pages: Browser
) -> None:
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

    _, url = await with_accounts(start_server)
    problems: dict[str, list[str]] = {}
    with trio.fail_after(120):
        bob_here = await logged_in(pages, url, "bob")
        # (One seat per room for an account: his other page is in another room.)
        bob_there = await logged_in(pages, url, "bob", "den")
        alice = await logged_in(pages, url, "alice")
        # Keyboard only: from the message box back to "Start a conversation", a name, Enter.
        assert await alice.focused() == "line"
        await alice.chord(Keys.SHIFT, Keys.TAB)  # the log
        await alice.chord(Keys.SHIFT, Keys.TAB)  # Search
        await alice.chord(Keys.SHIFT, Keys.TAB)  # the search box
        await alice.chord(Keys.SHIFT, Keys.TAB)  # Message
        await alice.chord(Keys.SHIFT, Keys.TAB)
        assert await alice.focused() == "dm-name"
        await alice.keys("bob", Keys.ENTER)
        await alice.wait_for(TITLED % "with bob")
        await alice.wait_for(JOINED)
        assert await alice.focused() == "line"
        await alice.type("hi bob, a word in private", "bob: lunch at one?")
        await alice.wait_for_messages(2)

        # Bob's first page, in the lobby, learns of it when he comes back to the tab.
        await bob_here.script(_BACK)
        await bob_here.wait_for(
            f"{conversation('alice')}.dataset.unread === '2'"
            f" && {conversation('alice')}.dataset.mentioned === 'true'"
        )
        await bob_here.wait_for("document.title === '(2) lobby — purechat'")
        problems["the conversation list"] = await bob_here.accessibility_problems()
        # His second page opens it while he looks at another window: shown, not read.
        await bob_there.script(_BACK)
        await bob_there.wait_for(f"{conversation('alice')}.dataset.unread === '2'")
        await bob_there.script(_ELSEWHERE)
        await bob_there.click("#conversations button[data-dm=alice]")
        await bob_there.wait_for(TITLED % "with alice")
        shown = await bob_there.wait_for_messages(2)
        assert [(user, text) for _, user, text in shown] == [
            ("alice", "hi bob, a word in private"),
            ("alice", "bob: lunch at one?"),
        ]
        assert await bob_there.script(f"return {conversation('alice')}.dataset.unread") == "2"
        # He looks: both pages of his account count nothing unread.
        await bob_there.script(_LOOKING)
        await bob_there.wait_for(f"{conversation('alice')}.dataset.unread === '0'")
        await bob_here.wait_for(
            f"{conversation('alice')}.dataset.unread === '0'"
            f" && {conversation('alice')}.dataset.mentioned === 'false'"
        )
        await bob_here.wait_for("document.title === 'lobby — purechat'")
        # A reply reaches alice in the conversation; the lobby never saw any of it.
        await bob_there.type("one is fine")
        await alice.wait_for_messages(3)
        await bob_here.click("#conversations button[data-dm=alice]")
        await bob_here.wait_for_messages(3)
        await bob_here.click("button.room[data-room=lobby]")
        assert messages_from(await bob_here.lines()) == []

        # The member menu's "Message NAME" opens the same conversation.
        await bob_here.click("button.member[data-user=alice]")
        await bob_here.wait_for("document.querySelector('.member-menu:not([hidden]) button')")
        problems["a member's menu with Message"] = await bob_here.accessibility_problems()
        await bob_here.click(".member-menu:not([hidden]) button[data-action=message]")
        await bob_here.wait_for(TITLED % "with alice")

        # A guest has no conversations, and is told why.
        guest = await pages.new_page()
        await guest.open(url)
        await guest.join("visitor", "lobby")
        await guest.wait_for(JOINED)
        await guest.wait_for("!document.querySelector('#no-conversations').hidden")
        assert await guest.script("return document.querySelector('#dm-form').hidden") is True
        await guest.type("/msg alice")
        await guest.wait_for("document.querySelector('#send-problem').textContent !== ''")
        assert await guest.text_of("#send-problem") == (
            "Conversations are between accounts: join with your account's password to have them."
        )
        assert await guest.script("return document.querySelector('#line').value") == "/msg alice"
    assert problems == {where: [] for where in problems}


async def test_scrolling_up_pages_back_to_the_beginning_and_search_opens_a_result(
    start_server, pages: Browser
) -> None:
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

    # The store keeps the newest 100 messages of a room: older ones are a gap.
    harness: Harness = await start_server(store=MemoryStore(history=100), web_port=0)
    url = f"http://127.0.0.1:{harness.server.web_port}/"
    with trio.fail_after(120):
        # dev first: what is said later is newer, by many messages.
        dave = await harness.v1("dave", "dev")
        for n in range(1, 101):
            await dave.say("deploy в dev готов" if n == 5 else f"dev {n}")
        carol = await harness.v1("carol", "lobby")
        for n in range(1, 131):
            text = {40: "the deploy went fine", 120: "<b>deploy</b> again"}.get(n, f"line {n}")
            await carol.say(text)
        page = await pages.new_page()
        await page.open(url)
        await page.join("erin", "lobby")
        await page.wait_for(JOINED)
        shown = await page.wait_for_messages(50)
        assert [seq for seq, _, _ in shown] == list(range(81, 131))

        # Scrolled to the top: the page before is drawn above, the line read stays put.
        log = f"document.querySelector('{LOG}')"
        where = f"{log}.querySelector('li[data-seq=\"81\"]').getBoundingClientRect().top"
        before = await page.script(f"{log}.scrollTop = 0; return {where}")
        await page.wait_for(f"{log}.querySelector('li[data-seq=\"31\"]')")
        assert abs(await page.script(f"return {where}") - before) < 1
        await page.script(f"{log}.scrollTop = 0")
        await page.wait_for(f"{log}.querySelector('li.gap')")
        lines = await page.lines()
        assert [seq for seq, _, _ in messages_from(lines)] == list(range(31, 131))
        assert [line["text"] for line in lines if line["kind"] in ("gap", "divider")][:3] == [
            "earlier messages",
            "the beginning of this room",
            "messages 1 to 30 are no longer kept",
        ]

        # Search from the keyboard: back from the message box to the search box.
        await page.script("document.querySelector('#line').focus()")
        await page.chord(Keys.SHIFT, Keys.TAB)  # the newest message's actions
        await page.chord(Keys.SHIFT, Keys.TAB)
        await page.chord(Keys.SHIFT, Keys.TAB)
        await page.chord(Keys.SHIFT, Keys.TAB)
        assert await page.focused() == "search-text"
        await page.keys("deploy", Keys.ENTER)
        await page.wait_for("document.querySelectorAll('#found button.result').length === 3")
        results = await page.script(
            "return [...document.querySelectorAll('#found button.result')].map((b) => ["
            "b.querySelector('.place').textContent, b.querySelector('.user').textContent,"
            "b.querySelector('.text').textContent,"
            "[...b.querySelectorAll('mark')].map((m) => m.textContent),"
            "b.querySelectorAll('b').length])"
        )
        # Newest first; matched words marked; markup in a message stays text.
        assert results == [
            ["lobby #120", "carol", "<b>deploy</b> again", ["deploy"], 0],
            ["lobby #40", "carol", "the deploy went fine", ["deploy"], 0],
            ["dev #5", "dave", "deploy в dev готов", ["deploy"], 0],
        ]
        problems = await page.accessibility_problems()
        # The first result has the focus; the third opens dev, not open yet, around #5.
        assert await page.script("return document.activeElement.dataset.seq") == "120"
        await page.keys(Keys.TAB, Keys.TAB, Keys.ENTER)
        await page.wait_for("document.querySelector('#room-title').textContent === 'dev'")
        await page.wait_for(f"document.querySelector('{LOG} li.found[data-seq=\"5\"]')")
        assert await page.script("return document.activeElement.dataset.seq") == "5"
        texts = [line["text"] for line in await page.lines()]
        assert "messages 31 to 50 are not shown here" in texts
        # Back in the lobby, a result already in the log is scrolled to.
        await page.click("#found button.result[data-seq='40']")
        await page.wait_for(f"document.querySelector('{LOG} li.found[data-seq=\"40\"]')")
    assert problems == []


async def test_a_page_in_a_room_hears_at_once_that_someone_wrote_to_it(
    start_server, pages: Browser
) -> None:
    """No coming back to the tab, no wait for the list's next refresh (30 s): the
    server's conversation notice updates the list and is said in the live region."""
    harness, url = await with_accounts(start_server)
    with trio.fail_after(20):
        page = await logged_in(pages, url, "bob")
        alice = await member(harness, "alice", await login(harness, "alice"), dm="bob")
        await alice.say("lunch at one?")
        await page.wait_for(f"{conversation('alice')}?.dataset.unread === '1'")
        await page.wait_for(
            "[...document.querySelectorAll('#announcer p')]"
            ".some((p) => p.textContent === 'alice wrote to you')"
        )
        # The room in front is as it was: the message is in the conversation only.
        assert (
            await page.script(f"return document.querySelectorAll('{LOG} li.message').length") == 0
        )
