"""Other people's names and texts cannot drive your terminal, and JSON stays JSON."""

from __future__ import annotations

import json

import pytest

from purechat.client.display import Shown, json_line, neutralise, plain_line

HOSTILE = [
    "\x1b[2J\x1b[H",  # clear screen, home cursor
    "\x1b]0;pwned\x07",  # set window title, with a bell
    "\x1b[10A",  # cursor up
    "abc\rdef",  # carriage return overwrites
    "back\x08\x08space",
    "\u202eevil",  # right-to-left override
    "\x9b31m",  # 8-bit CSI
    "\x00nul",
    "zero\u200bwidth",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_control_characters_are_shown_not_obeyed(text: str) -> None:
    for line in (
        plain_line(Shown("message", "lobby", text, user=text, time_ms=1)),
        plain_line(Shown("message", "lobby", text, user=text, time_ms=1), colour=True),
        plain_line(Shown("join", "lobby", "", user=text)),
    ):
        body = line.replace("\x1b[0m", "").replace("\x1b[38;5;", "")
        assert all(ch.isprintable() for ch in body), repr(line)


def test_only_our_own_colour_codes_reach_the_terminal() -> None:
    line = plain_line(Shown("message", "lobby", "\x1b[31mred", user="bob", time_ms=1), colour=True)
    assert line.count("\x1b") == 2  # the colour around the name, and its reset
    assert "\\x1b[31mred" in line


def test_plain_text_is_left_alone() -> None:
    assert neutralise("héllo wörld 🎉 — ok") == "héllo wörld 🎉 — ok"


@pytest.mark.parametrize("text", [*HOSTILE, '"quoted" \\ back', "\ud7ff\ue000", "日本語"])
def test_json_lines_are_valid_json_and_keep_the_text(text: str) -> None:
    line = json_line(Shown("message", "lobby", text, user=text, seq=7, time_ms=1_700_000_000_123))
    assert "\n" not in line
    decoded = json.loads(line)
    assert decoded["text"] == text and decoded["user"] == text
    assert decoded["seq"] == 7 and decoded["time"] == "2023-11-14T22:13:20.123Z"
    assert decoded["kind"] == "message" and decoded["room"] == "lobby"
