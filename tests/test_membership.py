"""A membership's lifetime alone: whatever ends it, and wherever, nothing is left behind."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio
import trio.lowlevel
import trio.testing

from purechat.core import EndReason, Hub, Limits
from purechat.errors import OutcomeUnknown
from purechat.server.delivery import DeliveryState, MemberDelivery
from purechat.server.feed import Feed
from purechat.server.journal import Journal
from purechat.server.membership import Membership, Services
from purechat.server.pacing import Pacer
from purechat.server.presence import Presence
from purechat.server.wire import v1_encoder
from purechat.status import Status
from tests.fakes import SharedMemoryStore
from tests.polling import task_count


class Sink:
    def __init__(self) -> None:
        self.ended: Status | None = None

    def try_send(self, blob: bytes) -> int:
        return len(blob)

    async def send_frames(self, blob: bytes, *, stall_timeout: float = math.inf) -> None:
        await trio.lowlevel.checkpoint()

    def end(self, status: Status) -> None:
        self.ended = status


@dataclass
class Room:
    store: SharedMemoryStore
    services: Services

    @property
    def hub(self) -> Hub:
        return self.services.hub

    def membership(self, name: str | None) -> tuple[Membership, MemberDelivery]:
        delivery = MemberDelivery(Sink(), v1_encoder())  # type: ignore[arg-type]
        membership = Membership(self.services, delivery, peer="test", room="lobby", requested=name)
        return membership, delivery


async def _room(nursery: trio.Nursery, *, shared: bool) -> Room:
    store = SharedMemoryStore()
    hub = Hub(Limits(rate_limit=0), shared_presence=shared)
    presence = Presence(hub, store, ttl=15) if shared else None
    feed = Feed(hub, store) if shared else None
    if presence is not None:
        await nursery.start(presence.run)
    services = Services(
        hub=hub,
        store=store,
        journal=Journal(hub, store, feed=feed),
        pacer=Pacer(hub),
        legacy_history=0,
        observe_catch_up=lambda count: None,
        feed=feed,
        presence=presence,
    )
    return Room(store, services)


@pytest.fixture(params=["shared store", "own store"])
async def room(request: pytest.FixtureRequest, nursery: trio.Nursery) -> AsyncIterator[Room]:
    made = await _room(nursery, shared=request.param == "shared store")
    with made.services.journal:
        yield made


@pytest.fixture
async def shared_room(nursery: trio.Nursery) -> AsyncIterator[Room]:
    made = await _room(nursery, shared=True)
    with made.services.journal:
        yield made


async def _live(room: Room, name: str | None, then_name: str | None) -> None:
    """Join (and, for an original-contract member, take a name), then stay."""
    membership, _ = room.membership(name)
    async with membership:
        if then_name is not None:
            await membership.name(then_name)
        await trio.sleep_forever()


@pytest.mark.parametrize(
    ("name", "then_name"), [("alice", None), (None, "bob")], ids=["purechat.v1", "original"]
)
async def test_cancelled_at_any_await_a_membership_leaves_nothing_behind(
    room: Room, name: str | None, then_name: str | None
) -> None:
    await trio.testing.wait_all_tasks_blocked()
    baseline = task_count()
    # A run to the end first: how many times does a membership wait on the store?
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_live, room, name, then_name)
        await trio.testing.wait_all_tasks_blocked()
        assert room.hub.member_count() == 1
        nursery.cancel_scope.cancel()
    awaits = room.store.awaits
    assert awaits >= 1
    for cancel_at in range(1, awaits + 2):  # each await, then in the body after the last
        room.store.awaits, room.store.cancel_at = 0, cancel_at
        async with trio.open_nursery() as nursery:
            room.store.scope = nursery.cancel_scope
            nursery.start_soon(_live, room, name, then_name)
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()  # in the body, if no await was cancelled
        await trio.testing.wait_all_tasks_blocked()
        assert room.hub.member_count() == 0, cancel_at
        assert room.store.seats == {}, cancel_at
        assert task_count() == baseline, cancel_at


async def test_a_member_removed_while_its_name_is_bound_leaves_no_ghost_name(
    shared_room: Room,
) -> None:
    room = shared_room  # alone, a name is bound without waiting: there is no window
    membership, delivery = room.membership(None)
    room.store.joining = trio.Event()  # the store's answer to the name is slow
    async with membership as member, trio.open_nursery() as nursery:
        named: list[str | None] = []

        async def name_it() -> None:
            named.append(await membership.name("bob"))

        nursery.start_soon(name_it)
        await trio.testing.wait_all_tasks_blocked()
        room.hub.evict(member, EndReason.TOO_SLOW)  # removed meanwhile
        room.store.joining.set()
    assert named == [None] and delivery.state is DeliveryState.ENDED
    await trio.testing.wait_all_tasks_blocked()
    assert room.hub.members_of("lobby") == () and room.store.seats == {}
    room.store.joining = None
    room.hub.remove_named("lobby", "bob", EndReason.REPLACED)  # no ghost to trip over
    again, _ = room.membership("bob")
    async with again as bob:
        assert bob.name == "bob"  # not bob-2


async def test_a_name_bound_without_an_answer_is_given_back(shared_room: Room) -> None:
    room = shared_room  # only a shared store binds names on a round trip
    room.store.lose_answers = True
    membership, delivery = room.membership("alice")
    with pytest.raises(OutcomeUnknown):
        async with membership:
            pass
    await trio.testing.wait_all_tasks_blocked()
    assert room.store.seats == {} and delivery.state is DeliveryState.ENDED
    room.store.lose_answers = False
    again, _ = room.membership("alice")
    async with again as alice:
        assert alice.name == "alice"
