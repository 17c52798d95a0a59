"""The page's session machine (purechat/web/static/session.mjs) and its text shaping
(text.mjs) under node's test runner.

The rules are client/machine.py's; tests/web/session.test.mjs checks them, and a model
server that refuses and drops, in half a second; tests/web/text.test.mjs checks links,
mentions and date separators. The browser tests run the same files inside the page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = [
    Path(__file__).resolve().parent / "web" / name
    for name in (
        "session.test.mjs",
        "text.test.mjs",
        "moderation.test.mjs",
        "reading.test.mjs",
        "living.test.mjs",
    )
]


def test_the_pages_session_keeps_the_rules_of_purechat_join() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("PURECHAT_REQUIRE_BROWSER"):
            pytest.fail("the page's session tests need node (apt-get install nodejs)")
        pytest.skip("no node: apt-get install nodejs")
    result = subprocess.run(
        [node, "--test", *map(str, TESTS)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
