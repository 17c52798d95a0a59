"""A member's delivery alone, over a fake stream: order, budget, stalls, contained failures."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import trio
import trio.testing

from purechat.core import EndReason, Outgoing
from purechat.server.delivery import DELIVERY, DeliveryLimits, DeliveryState, MemberDelivery
from purechat.status import Status, StatusCode
from purechat.transitions import IllegalTransition
from purechat.transport import Flusher, Stalled


class FakeSink:
    """Takes at most `window` bytes without waiting; `send_frames` waits for `opened`."""

    def __init__(self, window: int = 1 << 30):
        self.window = window
        self.received = b""
        self.ended: Status | None = None
        self.opened = trio.Event()
        self.stall_after: float | None = None
        self.fail_on_try = False

    def try_send(self, blob: bytes) -> int:
        if self.fail_on_try:
            raise RuntimeError("h2 broke")
        taken = min(self.window, len(blob))
        self.window -= taken
        self.received += blob[:taken]
        return taken

    async def send_frames(self, blob: bytes, *, stall_timeout: float = math.inf) -> None:
        while blob:
            if not self.window:
                with trio.move_on_after(stall_timeout) as waited:
                    await self.opened.wait()
                if waited.cancelled_caught:
                    raise Stalled(stall_timeout, "stream's window")
                self.opened = trio.Event()
                continue
            taken = self.try_send(blob)
            blob = blob[taken:]

    def end(self, status: Status) -> None:
        if self.ended is None:
            self.ended = status

    def open(self, size: int) -> None:
        self.window += size
        self.opened.set()


def encode(item: Outgoing) -> bytes:
    assert isinstance(item, str)
    return item.encode()


Make = Callable[..., MemberDelivery]


@pytest.fixture
def make() -> Iterator[Make]:
    """Deliveries for a test, discarded at its end as their memberships would."""
    made: list[MemberDelivery] = []

    def new(
        sink: FakeSink, code: Callable[[Outgoing], bytes] = encode, **kw: object
    ) -> MemberDelivery:
        delivery = MemberDelivery(sink, code, **kw)  # type: ignore[arg-type]
        made.append(delivery)
        return delivery

    yield new
    for delivery in made:
        delivery.discard()


async def _nothing() -> list[Outgoing]:
    return []


async def started(delivery: MemberDelivery, nursery: trio.Nursery) -> None:
    delivery.start(nursery, _nothing)  # type: ignore[arg-type]
    await trio.testing.wait_all_tasks_blocked()
    assert delivery.state is DeliveryState.DIRECT


async def test_the_direct_path_and_the_task_deliver_in_offer_order(make: Make, nursery) -> None:
    flusher = Flusher()
    nursery.start_soon(flusher.run)
    sink = FakeSink(window=25)
    delivery = make(sink, flusher=flusher)
    await started(delivery, nursery)
    for n in range(10):
        assert delivery.offer(f"m{n:02d}|")  # type: ignore[arg-type]
    await trio.testing.wait_all_tasks_blocked()
    assert delivery.state is DeliveryState.SENDING  # the window took 25 of 40 bytes
    for n in range(10, 20):
        assert delivery.offer(f"m{n:02d}|")  # type: ignore[arg-type]
    sink.open(1000)
    await trio.testing.wait_all_tasks_blocked()
    assert sink.received.decode() == "".join(f"m{n:02d}|" for n in range(20))
    assert delivery.state is DeliveryState.DIRECT and delivery.backlog == 0


async def test_an_offer_past_the_byte_budget_is_refused_and_counted(make: Make) -> None:
    evictions: Counter[str] = Counter()
    sink = FakeSink(window=0)
    limits = DeliveryLimits(budget=1000)
    delivery = make(sink, limits=limits, evictions=evictions)
    assert delivery.offer("x" * 600)  # type: ignore[arg-type]
    assert not delivery.offer("y" * 600)  # type: ignore[arg-type]
    assert evictions == Counter(backlog=1)
    delivery.end(EndReason.TOO_SLOW)
    assert sink.ended is not None and sink.ended.status_code is StatusCode.RESOURCE_EXHAUSTED
    assert delivery.offer("z")  # type: ignore[arg-type]  # dropped quietly once ended


async def test_no_progress_for_the_stall_timeout_calls_it_stalled(
    make: Make, nursery, autojump_clock: trio.testing.MockClock
) -> None:
    sink = FakeSink(window=0)
    stalled = trio.Event()
    delivery = make(sink, limits=DeliveryLimits(stall_timeout=5))
    delivery.on_stalled = stalled.set
    delivery.offer("waiting")  # type: ignore[arg-type]
    delivery.start(nursery, _nothing)  # type: ignore[arg-type]
    started_at = trio.current_time()
    await stalled.wait()
    assert trio.current_time() - started_at == pytest.approx(5)


async def test_progress_keeps_a_slow_reader_in(
    make: Make, nursery, autojump_clock: trio.testing.MockClock
) -> None:
    sink = FakeSink(window=0)
    stalled = trio.Event()
    delivery = make(sink, limits=DeliveryLimits(stall_timeout=5))
    delivery.on_stalled = stalled.set
    delivery.offer("x" * 100)  # type: ignore[arg-type]
    delivery.start(nursery, _nothing)  # type: ignore[arg-type]
    for _ in range(25):  # 4 bytes every 4 seconds: slow, but never stalled for 5
        await trio.sleep(4)
        sink.open(4)
    await trio.testing.wait_all_tasks_blocked()
    assert not stalled.is_set() and sink.received == b"x" * 100


async def test_lagging_is_reported_with_hysteresis(make: Make, nursery) -> None:
    sink = FakeSink(window=0)
    heard: list[bool] = []
    delivery = make(sink, limits=DeliveryLimits(budget=8 * 64 * 1024))
    delivery.on_lagging = heard.append
    mark = delivery.limits.lagging_mark
    delivery.offer("a" * mark)  # type: ignore[arg-type]
    assert heard == []
    delivery.offer("b")  # type: ignore[arg-type]
    assert heard == [True]
    delivery.start(nursery, _nothing)  # type: ignore[arg-type]
    sink.open(mark // 4)
    await trio.testing.wait_all_tasks_blocked()
    assert heard == [True]  # still over half the mark
    sink.open(mark)
    await trio.testing.wait_all_tasks_blocked()
    assert heard == [True, False]


def test_an_item_that_cannot_be_encoded_ends_that_member_only(make: Make) -> None:
    sink = FakeSink()

    def broken(item: Outgoing) -> bytes:
        raise TypeError("cannot encode")

    delivery = make(sink, broken)
    assert delivery.offer("anything")  # type: ignore[arg-type]  # no exception for the publisher
    assert sink.ended is not None and sink.ended.status_code is StatusCode.INTERNAL
    assert delivery.state is DeliveryState.ENDED


async def test_a_hand_over_that_fails_ends_that_member_only(make: Make, nursery) -> None:
    flusher = Flusher()
    nursery.start_soon(flusher.run)
    broken, healthy = FakeSink(), FakeSink()
    broken.fail_on_try = True
    deliveries = [make(sink, flusher=flusher) for sink in (broken, healthy)]
    for delivery in deliveries:
        await started(delivery, nursery)
        delivery.offer("hello")  # type: ignore[arg-type]
    await trio.testing.wait_all_tasks_blocked()
    assert broken.ended is not None and broken.ended.status_code is StatusCode.INTERNAL
    assert healthy.received == b"hello" and healthy.ended is None


async def test_closing_sends_what_is_queued_then_returns(make: Make, nursery) -> None:
    sink = FakeSink(window=0)
    delivery = make(sink)
    done = trio.Event()

    async def call() -> None:  # as the member's call does: it reads, then closes
        async with trio.open_nursery() as group:
            delivery.start(group, _nothing)  # type: ignore[arg-type]
            await trio.testing.wait_all_tasks_blocked()
            assert delivery.state is DeliveryState.DIRECT  # an idle member runs no task
            delivery.offer("last words")  # type: ignore[arg-type]
            delivery.close()
            assert delivery.offer("too late")  # type: ignore[arg-type]
        done.set()

    nursery.start_soon(call)
    await trio.testing.wait_all_tasks_blocked()
    assert not done.is_set()  # the call waits for its last words to go out
    sink.open(100)
    await done.wait()
    assert sink.received == b"last words"


def test_a_delivery_never_leaves_closing_except_to_end() -> None:
    for state in (DeliveryState.DIRECT, DeliveryState.SENDING, DeliveryState.PRELUDE):
        with pytest.raises(IllegalTransition):
            DELIVERY.move(DeliveryState.CLOSING, state)
    with pytest.raises(IllegalTransition):
        DELIVERY.move(DeliveryState.ENDED, DeliveryState.DIRECT)
