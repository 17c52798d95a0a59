"""The values `purechat serve` options may take, checked before anything starts.

A value out of range used to reach the socket layer as an OverflowError, or quietly
turn a protection off (a negative rate limit); each is now one sentence naming the
option and what it takes. `purechat serve --help` shows the same ranges (`RANGES`).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from purechat.core.moderation import MAX_SECONDS, ModerationRefused, format_duration, parse_duration

MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class Range:
    """What one numeric option takes: low..high (high None: no upper bound)."""

    low: float
    high: float | None
    # What a person is told it must be, and what --help says, e.g. "a port from 0 to 65535".
    what: str
    # The low end itself is refused (timeouts: 0 seconds makes no sense).
    above_low: bool = False

    def problem(self, flag: str, value: float | None) -> str | None:
        """A sentence when value is out of range (None, for an unset option, is fine)."""
        if value is None:
            return None
        fine = (
            math.isfinite(value)
            and (value > self.low if self.above_low else value >= self.low)
            and (self.high is None or value <= self.high)
        )
        if fine:
            return None
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        finite = "" if math.isfinite(value) else " (a finite number)"
        return f"{flag} must be {self.what}{finite}, not {shown}."


PORT = Range(0, MAX_PORT, f"a port from 0 to {MAX_PORT} (0 picks a free one)")

# dest -> what it takes, for every numeric option of `purechat serve`.
RANGES: dict[str, Range] = {
    "port": PORT,
    "metrics_port": PORT,
    "web_port": PORT,
    "max_text": Range(1, None, "a number of bytes, 1 or more"),
    "history": Range(1, None, "a number of messages, 1 or more"),
    "rate_limit": Range(0, None, "a number of messages a second, 0 (off) or more"),
    "max_message_bytes": Range(1, None, "a number of bytes, 1 or more"),
    "max_members_per_room": Range(1, None, "a number of members, 1 or more"),
    "max_conns_per_addr": Range(0, None, "a number of connections, 0 (no limit) or more"),
    "handshake_timeout": Range(0, None, "a number of seconds above 0", above_low=True),
    "keepalive": Range(0, None, "a number of seconds above 0", above_low=True),
    "presence_ttl": Range(0, None, "a number of seconds above 0", above_low=True),
}


def serve_problem(args: argparse.Namespace) -> str | None:
    """The first `purechat serve` option out of range, as a sentence, or None."""
    for dest, allowed in RANGES.items():
        flag = "--" + dest.replace("_", "-")
        if problem := allowed.problem(flag, getattr(args, dest, None)):
            return problem
    return None


def takes(dest: str) -> str:
    """For --help: what an option takes, e.g. "a port from 0 to 65535"."""
    return RANGES[dest].what


# What --session-ttl (and every DURATION of the client's commands) takes, for --help.
DURATIONS = f"a duration from 1s to a year ({format_duration(MAX_SECONDS)}), like 30m, 12h or 30d"


def duration(text: str) -> float:
    """An option's DURATION ("12h", "30d"; a bare number is seconds) in seconds; for
    argparse, whose message for a bad one is then this sentence."""
    given = text.strip()
    try:
        if given.replace(".", "", 1).isdigit():
            seconds = float(given)
            if not 1 <= seconds <= MAX_SECONDS:
                raise ModerationRefused(f"{given!r} is not {DURATIONS}.")
            return seconds
        return parse_duration(given)
    except ModerationRefused as refused:
        raise argparse.ArgumentTypeError(str(refused)) from None
