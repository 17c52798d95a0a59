"""Living messages on the web page, in a real browser (headless chromium), as
tests/test_web_browser.py drives it: replies, edits, deletes and reactions seen by two
pages in place and in one order, and the same after a reload (history gives messages
as they are now); refusals beside the box with the text kept; who is typing shown on
the other page and gone at that member's message; the page's setting that stops
sending it; the message actions and the picker from the keyboard alone, and scanned
with axe-core.
"""

from __future__ import annotations

from typing import Any

import trio

from purechat.store import SqliteStore
from tests.browser import JOINED, LOG, Browser, Page
from tests.test_web_conversations import logged_in, with_accounts

# What a person reads of each message: number, who, text, the quote it answers, the
# edited mark and the reactions (as their accessible names say them).
_SHOWN = """
return [...document.querySelectorAll(".log:not([hidden]) li.message")].map((li) => [
  Number(li.dataset.seq), li.dataset.user, li.querySelector(".text").textContent,
  li.querySelector(".quote")?.textContent ?? "",
  Boolean(li.querySelector(".edited")),
  [...li.querySelectorAll("button.reaction")].map((b) => b.getAttribute("aria-label")),
]);
"""


def message(seq: int) -> str:
    return f'{LOG} li.message[data-seq="{seq}"]'


async def shown(page: Page) -> list[list[Any]]:
    lines: list[list[Any]] = await page.script(_SHOWN)
    return lines


async def act(page: Page, seq: int, action: str) -> None:
    """Open message seq's actions (its ⋯ button) and choose one."""
    await page.click(f"{message(seq)} button.actions-toggle")
    await page.click(f"{message(seq)} .actions button[data-action={action}]")


async def newest(page: Page) -> int:
    seq: int = await page.script(
        f'return Number([...document.querySelectorAll("{LOG} li.message")].at(-1).dataset.seq)'
    )
    return seq


async def test_replies_edits_deletes_and_reactions_in_place_in_one_order_and_after_reload(
    start_server: Any, pages: Browser, tmp_path: Any
) -> None:
    _, url = await with_accounts(start_server, await SqliteStore.open(tmp_path / "chat.db"))
    with trio.fail_after(120):
        alice = await logged_in(pages, url, "alice")
        # The room's owner: an operator may delete anyone's message.
        await alice.type("/claim")
        bob = await logged_in(pages, url, "bob")
        await bob.type("the deploy is done", "teh notes are up")
        await alice.wait_for_messages(2)
        deploy, notes = await newest(alice) - 1, await newest(alice)

        # A reply from the message's actions: said over the box, drawn with a quote.
        await act(alice, deploy, "reply")
        assert await alice.text_of("#composing-what") == f"replying to bob #{deploy}"
        assert await alice.focused() == "line"
        await alice.type("great")
        await alice.wait_for("document.querySelector('#composing').hidden")
        # ... and typed.
        await bob.type(f"/reply {deploy} thanks")
        # Edits: typed (`/edit TEXT` alone: his last); someone else's is refused beside the box.
        await bob.type(f"/edit {notes} the notes are up")
        await alice.wait_for(f"document.querySelector('{message(notes)} .edited')")
        await alice.type(f"/edit {deploy} mine now")
        await alice.wait_for(
            "document.querySelector('#send-problem').textContent"
            " === 'You can only edit your own messages.'"
        )
        assert await alice.script("return document.querySelector('#line').value") == (
            f"/edit {deploy} mine now"
        )
        await alice.script("document.querySelector('#line').value = ''")
        # Reactions: from the picker, typed, and taken back by clicking one's own.
        await act(alice, deploy, "react")
        await alice.click(f"{message(deploy)} .picker button[data-emoji='👍']")
        await bob.type(f"/react {deploy} 👍", f"/react {deploy} 🎉")
        await bob.wait_for(
            f"document.querySelectorAll('{message(deploy)} button.reaction').length === 2"
        )
        await bob.click(f"{message(deploy)} button.reaction[data-emoji='🎉']")
        # Deletes: his own from the menu, and an operator's of his other one.
        await act(bob, deploy, "delete")
        await alice.wait_for(f"document.querySelector('{message(deploy)} .tombstone')")
        await act(alice, notes, "delete")

        expected = [
            [deploy, "bob", "message deleted", "", False, []],
            [notes, "bob", "message deleted by alice", "", False, []],
            [notes + 1, "alice", "great", f"↳ bob #{deploy}: message deleted", False, []],
            [notes + 2, "bob", "thanks", f"↳ bob #{deploy}: message deleted", False, []],
        ]
        for page in (alice, bob):
            await page.wait_for(f"document.querySelector('{message(notes)} .tombstone')")
            assert await shown(page) == expected

        # Before the deletes, both saw the edit and the reactions in place: a reload
        # shows what history gives now, and an edit and a reaction that stay.
        await bob.type(f"/edit {notes + 2} thanks a lot", f"/react {notes + 1} 👀")
        await alice.wait_for(f"document.querySelector('{message(notes + 2)} .edited')")
        await alice.wait_for(f"document.querySelector('{message(notes + 1)} button.reaction')")
        expected[3][2:5] = ["thanks a lot", f"↳ bob #{deploy}: message deleted", True]
        expected[2][5] = ["👀 1: bob"]
        assert await shown(alice) == expected
        again = await logged_in(pages, url, "alice")
        await again.wait_for(f"document.querySelector('{message(notes + 2)} .edited')")
        assert await shown(again) == expected


async def test_an_edit_and_reactions_are_seen_in_place_live(
    start_server: Any, pages: Browser
) -> None:
    _, url = await with_accounts(start_server)
    with trio.fail_after(90):
        alice = await logged_in(pages, url, "alice")
        bob = await logged_in(pages, url, "bob")
        await bob.type("teh deploy is done")
        await alice.wait_for_messages(1)
        seq = await newest(alice)
        await bob.type(f"/edit {seq} the deploy is done")
        await alice.wait_for(f"document.querySelector('{message(seq)} .edited')")
        await act(alice, seq, "react")
        await alice.click(f"{message(seq)} .picker button[data-emoji='🎉']")
        await bob.wait_for(f"document.querySelector('{message(seq)} button.reaction')")
        said = [seq, "bob", "the deploy is done", "", True]
        assert (await shown(alice))[-1] == [*said, ["🎉 1: you (press to take yours back)"]]
        assert (await shown(bob))[-1] == [*said, ["🎉 1: alice"]]
        label = await bob.script(
            f"return document.querySelector('{message(seq)} button.reaction').title"
        )
        assert label == "🎉 1: alice"
        # Her own, clicked, is taken back on both pages.
        await alice.click(f"{message(seq)} button.reaction")
        await bob.wait_for(f"!document.querySelector('{message(seq)} button.reaction')")


async def test_typing_is_shown_to_the_other_page_until_the_message_and_can_be_turned_off(
    start_server: Any, pages: Browser
) -> None:
    from selenium.webdriver.common.by import By  # noqa: PLC0415

    _, url = await with_accounts(start_server)
    with trio.fail_after(90):
        alice = await logged_in(pages, url, "alice")
        bob = await logged_in(pages, url, "bob")
        await alice.run(lambda driver: driver.find_element(By.ID, "line").send_keys("hel"))
        await bob.wait_for("document.querySelector('#typing').textContent === 'alice is typing…'")
        assert (
            await bob.script("return document.querySelector('#typing').getAttribute('aria-live')")
            == "polite"
        )
        await alice.run(lambda driver: driver.find_element(By.ID, "line").send_keys("lo\n"))
        await bob.wait_for_messages(1)
        assert await bob.text_of("#typing") == ""

        # Turned off, and remembered: her next page sends none (its first would go at once).
        await alice.click("#send-typing")
        assert await alice.script("return localStorage.getItem('purechat-typing')") == "off"
        await bob.script(
            "window.sawTyping = false; new MutationObserver(() => {"
            " if (document.querySelector('#typing').textContent) window.sawTyping = true;"
            "}).observe(document.querySelector('#typing'),"
            " {childList: true, characterData: true, subtree: true});"
        )
        again = await logged_in(pages, url, "alice", "lobby")
        assert await again.script("return document.querySelector('#send-typing').checked") is False
        await again.run(lambda driver: driver.find_element(By.ID, "line").send_keys("quietly"))
        await again.type(" typed")
        await bob.wait_for_messages(2)
        assert await bob.script("return window.sawTyping") is False


async def test_message_actions_and_picker_from_the_keyboard_alone_and_scanned(
    start_server: Any, pages: Browser
) -> None:
    from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

    _, url = await with_accounts(start_server)
    with trio.fail_after(90):
        bob = await logged_in(pages, url, "bob")
        alice = await logged_in(pages, url, "alice")
        await bob.type("are we shipping today?")
        await alice.wait_for_messages(1)
        seq = await newest(alice)
        # From the box, back to the newest message's ⋯ button; Enter opens its actions.
        assert await alice.focused() == "line"
        await alice.chord(Keys.SHIFT, Keys.TAB)
        assert await alice.script("return document.activeElement.className") == "actions-toggle"
        await alice.keys(Keys.ENTER)
        assert await alice.script("return document.activeElement.dataset.action") == "reply"
        await alice.keys(Keys.TAB, Keys.ENTER)  # React: the picker, on its first emoji
        assert await alice.script("return document.activeElement.dataset.emoji") == "👍"
        problems = await alice.accessibility_problems()
        await alice.keys(Keys.ENTER)
        await bob.wait_for(f"document.querySelector('{message(seq)} button.reaction')")
        # One ⋯ button is a tab stop; Up and Down move among them.
        stops = f"document.querySelectorAll('{LOG} button.actions-toggle[tabindex=\"0\"]').length"
        assert await alice.script(f"return {stops}") == 1
        # Back on the ⋯ button; open again and reply, from the keyboard.
        assert await alice.script("return document.activeElement.className") == "actions-toggle"
        await alice.keys(Keys.ENTER, Keys.ENTER)
        assert await alice.focused() == "line"
        await alice.keys("yes, at five", Keys.ENTER)
        await bob.wait_for_messages(2)
        assert (await shown(bob))[-1][3] == f"↳ bob #{seq}: are we shipping today?"
        # Up in the empty box edits her last message; Escape would cancel.
        await alice.keys(Keys.ARROW_UP)
        assert await alice.text_of("#composing-what") == f"editing #{seq + 2}"
        await alice.chord(Keys.CONTROL, "a")
        await alice.keys("yes, at six", Keys.ENTER)
        await bob.wait_for(f"document.querySelector('{message(seq + 2)} .edited')")
        assert (await shown(bob))[-1][2] == "yes, at six"
        problems += await alice.accessibility_problems()
        await alice.wait_for(JOINED)
    assert problems == []
