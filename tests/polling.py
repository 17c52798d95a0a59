"""Waiting on what gives no event to wait on: another process, or a server's own timer.

Everywhere else tests wait on events. Here the change happens in another process (a
token file reloaded on SIGHUP) or on a timer inside the server (keepalive), so the
only way to see it is to look again; the enclosing trio.fail_after bounds the wait.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.lowlevel

POLL_SECONDS = 0.05


async def eventually(probe: Callable[[], Awaitable[object]], expected: object) -> None:
    while await probe() != expected:  # noqa: ASYNC110
        await trio.sleep(POLL_SECONDS)


async def settles(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110
        await trio.sleep(POLL_SECONDS)


def task_count() -> int:
    """Every task of the run: a test that ends what it started comes back to its count."""

    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(
            count(child) for nursery in task.child_nurseries for child in nursery.child_tasks
        )

    return count(trio.lowlevel.current_root_task())
