"""A member's session cancelled at every await it makes leaves every count at zero.

trio runs a task in steps, one between two awaits. `CancelAtStep` cancels the
session's scope right after its n-th step (of any of its tasks: the reader, the
delivery), so the tasks are parked at an await when the cancellation lands there;
running the session once for every n covers every await of the session, the journal's
`submit`, the pacer, the delivery and the membership. Whatever n, afterwards: nobody
in the hub, nothing queued for the store or counted against its byte budget, no
backlog, no waiting sender, no task left over.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext

import pytest
import trio
import trio.lowlevel
import trio.testing

from purechat.core import Hub, Limits, Member, Notice
from purechat.server import journal as journal_module
from purechat.server.delivery import MemberDelivery, Sink
from purechat.server.journal import Journal
from purechat.server.pacing import Pacer
from purechat.server.services import Services
from purechat.server.session import JoinAsk, Post, Request, serve_member
from purechat.server.wire import Encode, v1_encoder
from purechat.status import Status
from purechat.store import MemoryStore
from tests.polling import task_count

TEXTS = [f"message {n}" for n in range(6)]


class SlowStore(MemoryStore):
    """Takes a few scheduler passes per append, so the journal's queue fills up."""

    async def append(self, messages):  # type: ignore[no-untyped-def]
        for _ in range(3):
            await trio.lowlevel.checkpoint()
        return await super().append(messages)


class Channel:
    """A member's channel without a network: frames in from a list, bytes out counted."""

    def __init__(self, frames: list[bytes], scope: trio.CancelScope):
        self._frames = frames
        self._scope = scope
        self.ended: Status | None = None

    @property
    def queued(self) -> int:
        return len(self._frames)

    async def receive(self) -> bytes | None:
        await trio.lowlevel.checkpoint()
        return self._frames.pop(0) if self._frames else None

    def try_send(self, blob: bytes) -> int:
        return len(blob)

    async def send_frames(self, blob: bytes, *, stall_timeout: float = math.inf) -> None:
        await trio.lowlevel.checkpoint()

    def end(self, status: Status) -> None:
        if self.ended is None:
            self.ended = status
            self._scope.cancel()


class Door:
    def __init__(self, channel: Channel):
        self._channel = channel
        self._encode = v1_encoder()

    @property
    def channel(self) -> Channel:
        return self._channel

    @property
    def encode(self) -> Encode:
        return self._encode

    @property
    def peer(self) -> str:
        return "test"

    async def join(self) -> JoinAsk:
        await trio.lowlevel.checkpoint()
        return JoinAsk("lobby", "alice", history=3)

    def admitted(self) -> AbstractContextManager[object]:
        return nullcontext()

    def begin(self) -> None:
        pass

    def decode(self, raw: bytes, member: Member) -> Request | Status:
        return Post(raw.decode(), client_msg_id=raw.decode())

    def refusal_ends(self, notice: Notice) -> Status | None:
        return None


class Recorded(Services):
    """Services that keep every delivery they make, to look at them afterwards."""

    made: list[MemberDelivery]

    def delivery(self, sink: Sink, encode: Encode) -> MemberDelivery:
        made = super().delivery(sink, encode)
        self.made.append(made)
        return made


class CancelAtStep(trio.abc.Instrument):
    """Cancels `scope` right after the n-th step of a task under `nursery`."""

    def __init__(self, nursery: trio.Nursery, scope: trio.CancelScope, n: int):
        self._nursery, self._scope, self._n = nursery, scope, n
        self.steps = 0

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._inside(task):
            self.steps += 1
            if self.steps == self._n:
                self._scope.cancel()

    def _inside(self, task: trio.lowlevel.Task | None) -> bool:
        while task is not None:
            parent = task.parent_nursery
            if parent is self._nursery:
                return True
            task = parent.parent_task if parent is not None else None
        return False


@pytest.fixture(params=["by count", "by bytes"])
def small_journal(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """A journal whose queue two messages fill (by their number, or by their bytes),
    so senders wait for room."""
    if request.param == "by count":
        monkeypatch.setattr(journal_module, "QUEUE_SIZE", 2)
    else:
        monkeypatch.setattr(journal_module, "QUEUE_BYTES", 12)
    yield


@pytest.mark.parametrize("rate_limit", [0, 2], ids=["unpaced", "paced"])
async def test_a_session_cancelled_at_any_await_leaves_every_count_at_zero(
    small_journal: None, rate_limit: float, autojump_clock: trio.testing.MockClock
) -> None:
    store = SlowStore()
    hub = Hub(Limits(rate_limit=rate_limit))
    pacer = Pacer(hub)
    hub.on_caught_up = pacer.caught_up
    journal = Journal(hub, store)
    services = Recorded(
        hub=hub,
        store=store,
        journal=journal,
        pacer=pacer,
        legacy_history=0,
        observe_catch_up=lambda count: None,
    )
    services.made = []
    await store.append([])  # the store is open
    with journal:
        async with trio.open_nursery() as background:
            background.start_soon(journal.run)
            await trio.testing.wait_all_tasks_blocked()
            baseline = task_count()
            steps = await _run(services, cancel_at=None)  # to the end: how many steps?
            assert (await store.head("lobby")).seq == len(TEXTS)  # all of them stored
            for n in range(1, steps + 1):
                await _run(services, cancel_at=n)
                await trio.testing.wait_all_tasks_blocked()  # the journal catches up
                assert hub.member_count() == 0, n
                assert journal.queued_bytes == 0, n
                assert pacer._caught_up == {}, n
                assert all(d.backlog == 0 for d in services.made), n
                assert task_count() == baseline, n
            background.cancel_scope.cancel()


async def _run(services: Services, cancel_at: int | None) -> int:
    """One session of TEXTS, cancelled after its cancel_at-th step (None: never); how
    many steps its tasks took."""
    async with trio.open_nursery() as session:
        channel = Channel([text.encode() for text in TEXTS], session.cancel_scope)
        instrument = CancelAtStep(session, session.cancel_scope, cancel_at or 0)
        trio.lowlevel.add_instrument(instrument)
        try:
            session.start_soon(serve_member, Door(channel), services)
            with trio.fail_after(60):
                while session.child_tasks:
                    await trio.testing.wait_all_tasks_blocked()
                    if cancel_at is not None:
                        break
                    await trio.sleep(1)
        finally:
            trio.lowlevel.remove_instrument(instrument)
        session.cancel_scope.cancel()
    return instrument.steps
