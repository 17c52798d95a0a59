"""Pacing senders instead of refusing or evicting anyone.

Two reasons to hold a sender's next message, both by not reading its stream for a
while, so HTTP/2 flow control slows the client down and nothing is refused or
reordered:

- its own rate: over `--rate-limit` a member's messages wait until its token bucket
  has earned them (IRC servers call this fakelag). A client that keeps pushing while
  more than FLOOD_SECONDS' worth of its messages already wait is cut off.
- its room: when most members of a room are lagging (their backlogs are large), the
  room as a whole cannot keep up, and its senders wait until it has caught up, rather
  than the readers being evicted for the senders' speed. With servers sharing a store
  the same holds across them: while another server says its members in the room are
  behind (the feed's `keep_pace` tells this one), the room's senders here wait too.
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
        # Rooms another server sharing the store is behind in.
        self.held: set[str] = set()

    def caught_up(self, room: str) -> None:
        """The hub's word that room is no longer behind: its senders may go on."""
        waiting = self._caught_up.pop(room, None)
        if waiting is not None:
            waiting.set()

    def hold(self, room: str) -> None:
        """Another server is behind in room: its senders here wait too."""
        self.held.add(room)

    def release(self, room: str) -> None:
        """No other server is behind in room any more."""
        self.held.discard(room)
        if not self.hub.room_behind(room):
            self.caught_up(room)

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
        room = member.room
        while member.present and (room.behind or room.name in self.held):
            event = self._caught_up.setdefault(room.name, anyio.Event())
            await event.wait()
        return member.present
