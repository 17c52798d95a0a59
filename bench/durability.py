"""`python bench/durability.py`: what `?replicas=1` costs a send, measured.

A local Redis Cluster (tests/redis_cluster.py: three primaries with a replica each, on
loopback) and purechat's Redis store alone, no server around it: one message appended
at a time, one after another, so each figure is the time from asking the store to its
answer. With `?replicas=1` that answer waits for WAIT 1 (the replica has the message)
and the move from the staged stream into the log. Prints a table (milliseconds).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The repository root is not on sys.path before the line above.
from purechat.core import Message  # noqa: E402
from purechat.store.redis import RedisStore  # noqa: E402
from tests.redis_cluster import RedisCluster  # noqa: E402

WARMUP, MEASURED = 200, 3000


async def appends(url: str) -> list[float]:
    """Seconds each of MEASURED single-message appends took."""
    store = await RedisStore.open(url, history=1000)
    took = []
    try:
        for n in range(WARMUP + MEASURED):
            message = Message("lobby", 0, "bench", f"message {n}", 0, False, "bench", f"id-{n}")
            started = time.perf_counter()
            await store.append([message])
            if n >= WARMUP:
                took.append(time.perf_counter() - started)
    finally:
        await store.aclose()
    return took


def row(label: str, took: list[float]) -> str:
    ms = sorted(1000 * t for t in took)
    p99 = ms[int(len(ms) * 0.99)]
    return f"| {label} | {statistics.median(ms):.2f} | {p99:.2f} | {statistics.fmean(ms):.2f} |"


async def main(cluster: RedisCluster) -> None:
    print(f"{MEASURED} appends of one message each, one after another, after {WARMUP} more")
    print("| store | p50 ms | p99 ms | mean ms |\n|---|---:|---:|---:|")
    for label, replicas in (("redis+cluster://", 0), ("redis+cluster://...?replicas=1", 1)):
        print(row(label, await appends(cluster.url(replicas))), flush=True)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory:
        local = RedisCluster(Path(directory))
        local.start()
        try:
            trio.run(main, local)
        finally:
            local.stop()
