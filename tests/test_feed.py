"""The feed alone, on a scripted shared log: what members hear of joins and leaves."""

from __future__ import annotations

import trio
import trio.testing

from purechat.core import BoundName, EventKind, Hub, Limits
from purechat.server.feed import Feed
from purechat.store.shared import LogEntry, Position, PresenceChange, PresenceId
from tests.fakes import FakeOutbox


class ScriptedLog:
    """Answers the feed's first read with `entries`, then has nothing more."""

    def __init__(self, entries: list[LogEntry]):
        self.entries = entries

    async def tail(self, positions: dict[str, Position], block_ms: int) -> list[LogEntry]:
        entries, self.entries = self.entries, []
        if not entries:
            await trio.sleep_forever()
        return entries

    async def position(self, room: str) -> Position:
        return Position(0, PresenceId(0, 0))

    async def epochs(self, rooms: list[str]) -> dict[str, str]:
        return dict.fromkeys(rooms, "")

    tail_count = 1000

    async def listen(self) -> None:
        pass


def change(order: int, kind: EventKind, user: str) -> PresenceChange:
    return PresenceChange("lobby", PresenceId(0, order), kind, user, 0)


async def test_a_join_that_raced_the_feed_hears_what_it_missed() -> None:
    hub = Hub(Limits(), shared_presence=True)
    log = ScriptedLog(
        [
            change(1, EventKind.JOIN, "alice"),
            change(2, EventKind.JOIN, "bob"),
            change(3, EventKind.LEAVE, "carol"),
        ]
    )
    feed = Feed(hub, log)  # type: ignore[arg-type]  # only what the feed reads
    alice_box, bob_box = FakeOutbox(), FakeOutbox()
    hub.join("lobby", "alice", alice_box, bound=BoundName("alice", ("alice", "carol"), (0, 0)))
    feed.opened("lobby", PresenceId(0, 0))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.run)
        await trio.testing.wait_all_tasks_blocked()
        # Bob's member list was taken when carol was still there (before entry 3), but
        # the feed announced entries 2 and 3 before bob was in the room here.
        bound = BoundName("bob", ("alice", "bob", "carol"), (0, 1))
        bob = hub.join("lobby", "bob", bob_box, bound=bound)
        feed.catch_up(bob)
        nursery.cancel_scope.cancel()
    heard = [(e.kind, e.user) for e in bob_box.events()]
    assert heard == [(EventKind.JOIN, "bob"), (EventKind.LEAVE, "carol")]
    assert [e.user for e in alice_box.events()] == ["alice", "bob", "carol"]
