"""Slowing down guessing: growing delays per address and per account.

Every failed login or wrong token counts against the address it came from and (for a
login) the account it tried; the next attempt from either waits before it is answered,
twice as long after each failure past the first few, up to a ceiling, and the count
fades after a quiet while. The wait is an `await`, not a blocked loop: a burst of
wrong guesses slows the guesser, never anyone else. Remembered keys are bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

# Failures answered at once before delays begin, the first delay, and the longest.
FREE_FAILURES = 3
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
# A key quiet this long starts afresh.
FORGET_AFTER = 15 * 60.0
# Keys remembered at most (the oldest forgotten first).
MAX_KEYS = 10_000


@dataclass
class _Count:
    failures: int
    last: float


class Throttle:
    def __init__(self, clock: Callable[[], float]):
        """clock: monotonic seconds (the event loop's, so tests can jump it)."""
        self._clock = clock
        self._counts: OrderedDict[str, _Count] = OrderedDict()

    def delay(self, *keys: str) -> float:
        """How long the next attempt of these keys (an address, an account) waits."""
        now = self._clock()
        worst = 0
        for key in keys:
            count = self._counts.get(key)
            if count is not None and now - count.last < FORGET_AFTER:
                worst = max(worst, count.failures)
        if worst < FREE_FAILURES:
            return 0.0
        return float(min(MAX_DELAY, FIRST_DELAY * 2.0 ** (worst - FREE_FAILURES)))

    def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            count = self._counts.pop(key, None)
            if count is None or now - count.last >= FORGET_AFTER:
                count = _Count(0, now)
            count.failures += 1
            count.last = now
            self._counts[key] = count
        while len(self._counts) > MAX_KEYS:
            self._counts.popitem(last=False)

    def count(self, key: str, window: float) -> int:
        """How many times key was counted, if the last was within window seconds."""
        found = self._counts.get(key)
        if found is None or self._clock() - found.last >= window:
            return 0
        return found.failures

    def succeeded(self, key: str) -> None:
        """A right answer for an account ends its count (an address's stays)."""
        self._counts.pop(key, None)
