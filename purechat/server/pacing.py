"""Pacing senders instead of refusing or evicting anyone.

Two reasons to hold a sender's next message, both by not reading its stream for a
while, so HTTP/2 flow control slows the client down and nothing is refused or
reordered:

- its own rate: over `--rate-limit` a member's messages wait until its token bucket
  has earned them (IRC servers call this fakelag). A client that keeps pushing while
  more than FLOOD_SECONDS' worth of its messages already wait is cut off.
- its room: when most members of a room are lagging (their backlogs are large), the
  room as a whole cannot keep up, and its senders wait until it has caught up, rather
  than the readers being evicted for the senders' speed.
"""

from __future__ import annotations

from typing import Protocol

import anyio

from purechat import status as statuses
from purechat.core import Hub, Member
from purechat.status import Status

# A sender with more than this many seconds' worth of messages waiting is flooding.
FLOOD_SECONDS = 30.0
# ... and never fewer messages than this (purechat join keeps at most 64 in flight).
FLOOD_MIN_MESSAGES = 256


class Paced(Protocol):
    """A member's way in, as the pacer sees it: a gRPC stream, or a web member's socket."""

    @property
    def queued(self) -> int:
        """Messages received and not yet taken."""
        ...

    def end(self, status: Status) -> None:
        """End the member's session with status."""
        ...


class Pacer:
    def __init__(self, hub: Hub):
        self.hub = hub
        # Rooms that are behind and have a sender waiting for them.
        self._caught_up: dict[str, anyio.Event] = {}

    def caught_up(self, room: str) -> None:
        """The hub's word that room is no longer behind: its senders may go on."""
        waiting = self._caught_up.pop(room, None)
        if waiting is not None:
            waiting.set()

    async def pace(self, member: Member, stream: Paced) -> bool:
        """Wait until member's next message may be handled; False when it is flooding
        (its stream is then ended)."""
        hub = self.hub
        delay = hub.rate_delay(member, anyio.current_time())
        if delay > 0:
            rate = hub.limits.rate_limit
            if stream.queued > max(FLOOD_MIN_MESSAGES, rate * FLOOD_SECONDS):
                stream.end(statuses.flooding(rate))
                return False
            await anyio.sleep(delay)
        while member.present and member.room.behind:
            event = self._caught_up.setdefault(member.room.name, anyio.Event())
            await event.wait()
        return member.present
