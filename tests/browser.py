"""A real browser for the web page's tests: Debian's headless chromium, driven by selenium.

Selenium talks to /usr/bin/chromedriver (never a driver or browser it would download).
Its calls block, so each runs in a worker thread while the test's trio loop serves the
page; one lock keeps them one at a time, as a WebDriver session needs. Waiting for the
page is done in the page, on its own events: a MutationObserver answers as soon as a
condition holds, so nothing polls or sleeps.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEBIAN_PACKAGES = "chromium chromium-driver"
# Debian's chromium must not try to reach the network (it hangs without one) and has no
# sandbox or GPU in a container.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Windows that are not in front keep their timers: the page reconnects on time.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
# How long one wait in the page may take before the test fails saying what it waited for.
WAIT_SECONDS = 20.0

T = TypeVar("T")


def require_browser() -> None:
    """Skip without chromium (fail instead where CI says the browser must be there)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if not missing:
        return
    message = f"the browser tests need {DEBIAN_PACKAGES} (missing {', '.join(missing)})"
    if os.environ.get("PURECHAT_REQUIRE_BROWSER"):
        pytest.fail(f"{message}; CI installs them")
    pytest.skip(f"{message}: apt-get install {DEBIAN_PACKAGES}")


class Browser:
    """One chromium for the whole test session; pages are its windows."""

    def __init__(self, profile: Path):
        from selenium import webdriver  # noqa: PLC0415 -- only where a browser is there
        from selenium.webdriver.chrome.service import Service  # noqa: PLC0415

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in [*FLAGS, f"--user-data-dir={profile}", "--window-size=1000,640"]:
            options.add_argument(flag)
        self.driver = webdriver.Chrome(
            service=Service(executable_path=CHROMEDRIVER), options=options
        )
        self.driver.set_script_timeout(WAIT_SECONDS)
        self._first_window: str | None = self.driver.current_window_handle
        self._lock = trio.Lock()

    def quit(self) -> None:
        self.driver.quit()

    async def run(self, handle: str, action: Callable[[Any], T]) -> T:
        """action(driver) in a worker thread, with window `handle` in front."""

        def in_window() -> T:
            if self.driver.current_window_handle != handle:
                self.driver.switch_to.window(handle)
            return action(self.driver)

        async with self._lock:
            return await trio.to_thread.run_sync(in_window)

    async def new_page(self) -> Page:
        """A fresh window (the first time, the one the browser opened with)."""

        def open_window(driver: Any) -> str:
            if self._first_window is not None:
                handle, self._first_window = self._first_window, None
                return handle
            driver.switch_to.new_window("window")
            return str(driver.current_window_handle)

        async with self._lock:
            handle = await trio.to_thread.run_sync(lambda: open_window(self.driver))
        return Page(self, handle)

    async def close_pages(self) -> None:
        """Close every window but one, left blank, for the next test."""

        def close(driver: Any) -> None:
            handles = list(driver.window_handles)
            for handle in handles[1:]:
                driver.switch_to.window(handle)
                driver.close()
            driver.switch_to.window(handles[0])
            driver.get("about:blank")
            driver.set_window_size(1000, 640)
            self._first_window = handles[0]

        async with self._lock:
            await trio.to_thread.run_sync(lambda: close(self.driver))


# The log of the room in front (each room of the tab has its own).
LOG = ".log:not([hidden])"
# The page's log as data: what a person reads, line by line.
_LINES = """
return [...document.querySelectorAll(".log:not([hidden]) li.line")].map((li) => ({
  kind: li.dataset.kind,
  seq: Number(li.dataset.seq || 0),
  user: li.dataset.user || "",
  text: (li.querySelector(".text") || li).textContent,
  history: li.classList.contains("history"),
}));
"""
_WAIT = """
const done = arguments[arguments.length - 1];
const holds = () => { try { return Boolean(%s); } catch (error) { return false; } };
if (holds()) { done(true); return; }
const observer = new MutationObserver(() => {
  if (holds()) { observer.disconnect(); done(true); }
});
observer.observe(document, { subtree: true, childList: true, characterData: true,
                             attributes: true });
"""
# JavaScript expressions over the page, for `wait_for`.
JOINED = "document.querySelector('#status').dataset.phase === 'joined'"


def messages_from(lines: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """(seq, user, text) of every message line."""
    return [
        (line["seq"], line["user"], line["text"]) for line in lines if line["kind"] == "message"
    ]


class Page:
    """One window: what a person does on the page, and what it shows."""

    def __init__(self, browser: Browser, handle: str):
        self.browser = browser
        self.handle = handle

    async def run(self, action: Callable[[Any], T]) -> T:
        return await self.browser.run(self.handle, action)

    async def script(self, source: str, *args: Any) -> Any:
        return await self.run(lambda driver: driver.execute_script(source, *args))

    async def open(self, url: str) -> None:
        await self.run(lambda driver: driver.get(url))

    async def join(self, name: str, room: str = "lobby", token: str = "") -> None:
        """Fill in the form and press Join (the result is the test's to wait for)."""
        from selenium.webdriver.common.by import By  # noqa: PLC0415

        def fill(driver: Any) -> None:
            for field, value in (("name", name), ("room", room), ("token", token)):
                element = driver.find_element(By.ID, field)
                element.clear()
                element.send_keys(value)
            driver.find_element(By.CSS_SELECTOR, "#join-form button").click()

        await self.run(fill)

    async def type(self, *lines: str) -> None:
        """Type each line into the message box and press Enter."""
        from selenium.webdriver.common.by import By  # noqa: PLC0415
        from selenium.webdriver.common.keys import Keys  # noqa: PLC0415

        def typing(driver: Any) -> None:
            box = driver.find_element(By.ID, "line")
            for line in lines:
                box.send_keys(line + Keys.ENTER)

        await self.run(typing)

    async def wait_for(self, condition: str) -> None:
        """Until the JavaScript expression `condition` holds in the page, as it changes."""
        from selenium.common.exceptions import TimeoutException  # noqa: PLC0415

        try:
            await self.run(lambda driver: driver.execute_async_script(_WAIT % condition))
        except TimeoutException:
            state = await self.script("return document.body.innerText")
            raise AssertionError(f"page never showed {condition}; it shows:\n{state}") from None

    async def wait_for_messages(self, count: int) -> list[tuple[int, str, str]]:
        """Until the log holds `count` messages; (seq, user, text) of each."""
        await self.wait_for(f"document.querySelectorAll('{LOG} li.message').length >= {count}")
        return messages_from(await self.lines())

    async def lines(self) -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = await self.script(_LINES)
        return lines

    async def text_of(self, selector: str) -> str:
        text: str = await self.script(
            "return document.querySelector(arguments[0]).textContent", selector
        )
        return text

    async def click(self, selector: str) -> None:
        """Click the element (as a person with a mouse would)."""
        from selenium.webdriver.common.by import By  # noqa: PLC0415

        await self.run(lambda driver: driver.find_element(By.CSS_SELECTOR, selector).click())

    async def keys(self, *keys: str) -> None:
        """Press keys where the focus is, as a person at the keyboard only would (no
        element is clicked or picked: Tab moves, Enter and Space act)."""
        from selenium.webdriver.common.action_chains import ActionChains  # noqa: PLC0415

        await self.run(lambda driver: ActionChains(driver).send_keys(*keys).perform())

    async def chord(self, modifier: str, key: str) -> None:
        """Press key while holding modifier (Shift+Enter, Shift+Tab) where the focus is."""
        from selenium.webdriver.common.action_chains import ActionChains  # noqa: PLC0415

        await self.run(
            lambda driver: (
                ActionChains(driver).key_down(modifier).send_keys(key).key_up(modifier).perform()
            )
        )

    async def focused(self) -> str:
        """The id of the element that has the focus ("" for none with an id)."""
        focused: str = await self.script("return document.activeElement.id")
        return focused

    async def colour_scheme(self, scheme: str) -> None:
        """Make the page see the system's colour scheme as "light" or "dark"."""
        features = [{"name": "prefers-color-scheme", "value": scheme}]
        await self.run(
            lambda driver: driver.execute_cdp_cmd(
                "Emulation.setEmulatedMedia", {"features": features}
            )
        )

    async def accessibility_problems(self) -> list[str]:
        """What axe-core (bundled by axe-selenium-python: no network) finds serious or
        critical on the page as it is now, one line per rule broken."""
        from axe_selenium_python import Axe  # noqa: PLC0415

        def scan(driver: Any) -> Any:
            axe = Axe(driver)
            axe.inject()
            return axe.run()

        results = await self.run(scan)
        return [
            f"{violation['id']} ({violation['impact']}): {violation['help']} at "
            + ", ".join(" ".join(node["target"]) for node in violation["nodes"])
            for violation in results["violations"]
            if violation["impact"] in ("serious", "critical")
        ]

    async def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        await self.run(lambda driver: driver.save_screenshot(str(path)))
