"""Flood control: a token bucket per member, spent by reservation so senders are paced."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    """Allows `rate` messages a second on average, and bursts of up to `burst`."""

    rate: float
    burst: float
    tokens: float
    # When tokens was last brought up to date; None until the first message.
    updated: float | None = None

    @classmethod
    def full(cls, rate: float) -> TokenBucket:
        return cls(rate, 2 * rate, 2 * rate)

    def reserve(self, now: float) -> float:
        """Spend one token, borrowing it if there is none; seconds until it is earned.

        A sender that waits that long before its message is handled keeps to the rate
        without any message being refused, so its messages keep their order.
        """
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1
        return max(0.0, -self.tokens / self.rate)
