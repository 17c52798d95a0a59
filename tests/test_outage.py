"""Backoff with jitter while the store is away (purechat/server/outage.py)."""

from __future__ import annotations

import itertools
import random

import pytest
import trio

from purechat.server.outage import RETRY_FIRST, RETRY_MOST, Outage


def test_pauses_double_up_to_a_cap_and_start_again_after_a_recovery() -> None:
    outage = Outage("delivery", rng=lambda: 1.0)  # no jitter taken off
    delays = [outage.next_delay() for _ in range(8)]
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0])
    outage.recovered()
    assert outage.next_delay() == pytest.approx(RETRY_FIRST)


def test_jitter_takes_up_to_half_of_each_pause_off() -> None:
    least = Outage("delivery", rng=lambda: 0.0)
    assert [least.next_delay() for _ in range(7)] == pytest.approx(
        [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, RETRY_MOST / 2]
    )


def test_servers_that_lost_the_store_together_do_not_retry_in_step() -> None:
    """Ten servers whose store went away at the same moment: their retries spread out
    instead of arriving together, every round."""
    servers = [Outage("delivery", rng=random.Random(n).random) for n in range(10)]
    times = [0.0] * len(servers)
    for _ in range(6):
        times = [t + outage.next_delay() for t, outage in zip(times, servers, strict=True)]
        assert len({round(t, 6) for t in times}) == len(servers)


async def test_a_pause_waits_the_drawn_delay(autojump_clock: trio.abc.Clock) -> None:
    draws = itertools.cycle([0.0, 1.0])
    outage = Outage("presence", rng=lambda: next(draws))
    started = trio.current_time()
    await outage.pause()  # 0.1 s with half taken off
    await outage.pause()  # 0.2 s, none taken off
    assert trio.current_time() - started == pytest.approx(0.05 + 0.2)
