"""The grpc-go load client (tests/go/load) that bench/run.py drives, checked on small rooms.

The benchmark trusts its counts (lost, order, duplicates, errors); these tests show they
are right where the answer is known: a handful of members, every message delivered.
Against purechat and against the tutorial's grpc-go server (bench/go/server), which
the benchmark measures purechat beside.
"""

from __future__ import annotations

import json
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import trio

from tests.helpers import Harness
from tests.processes import Lines

FLAGS = ("-members", "5", "-senders", "2", "-messages", "40", "-hello", "-json")


async def _load(client: Path, address: str, *flags: str) -> dict[str, Any]:
    done = await trio.run_process(
        [str(client), "-addr", address, *flags], capture_stdout=True, capture_stderr=True
    )
    summary: dict[str, Any] = json.loads(done.stdout)
    return summary


def _assert_everything_arrived(summary: dict[str, Any]) -> None:
    assert summary["join"]["confirmed"] == 5
    assert summary["hello"]["complete_members"] == 5
    assert summary["sent"] == 80
    assert (summary["received"], summary["expected"], summary["lost"]) == (400, 400, 0)
    assert summary["complete_members"] == 5
    assert (summary["order_violations"], summary["duplicates"]) == (0, 0)
    assert summary["errors"] == {}
    assert summary["latency"]["count"] == 400


async def test_load_client_counts_every_message_on_purechat(
    start_server, go_load_client: Path
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(60):
        summary = await _load(go_load_client, f"127.0.0.1:{harness.port}", *FLAGS)
    _assert_everything_arrived(summary)


async def test_load_client_counts_every_message_on_the_tutorial_server(
    nursery: trio.Nursery, go_load_client: Path, go_tutorial_server: Path
) -> None:
    with trio.fail_after(60):
        server: trio.Process = await nursery.start(
            partial(
                trio.run_process,
                [str(go_tutorial_server), "127.0.0.1:0"],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                check=False,
            )
        )
        ready = await Lines(server.stdout).next()
        assert ready is not None and ready.startswith("listening on 127.0.0.1:")
        summary = await _load(go_load_client, ready.removeprefix("listening on "), *FLAGS)
    _assert_everything_arrived(summary)


async def test_load_client_reports_what_ended_a_stream(start_server, go_load_client: Path) -> None:
    """A text over purechat's limit ends the sender's stream: the summary names the status."""
    harness: Harness = await start_server()
    with trio.fail_after(60):
        summary = await _load(
            go_load_client,
            f"127.0.0.1:{harness.port}",
            *("-members", "2", "-messages", "1", "-size", "5000", "-idle", "500ms", "-json"),
        )
    assert summary["errors"] == {
        "InvalidArgument: message text is longer than the limit of 4096 bytes": 1
    }
    assert summary["ended_members"] == 1
