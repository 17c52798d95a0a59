"""`just profile`: where purechat's server spends its time in the fan-out scenario.

Runs the 100-member flat-out fan-out of bench/run.py against purechat while py-spy
samples the server process, then prints the functions with the most samples (self
time) and the delivery rate of the run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

SECONDS = 4


async def profile(members: int, rate: float) -> tuple[float, Counter[str], int]:
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    async with trio.open_nursery() as nursery:
        server = await run.start_server(nursery, "purechat")
        receivers = [
            await run.Worker.start(nursery, server.port, n) for n in run._spread(members - 1, 2)
        ]
        sender = await run.Worker.start(nursery, server.port, 1)
        start = time.time() + 0.2
        window = (start + 1.5, start + 1.5 + SECONDS + 1)
        for worker in receivers:
            await worker.go(*window)
        await sender.go(*window, send_rate=rate)
        await trio.sleep(window[0] - time.time())
        await trio.run_process(
            [
                "py-spy",
                "record",
                "-p",
                str(server.process.pid),
                "-d",
                str(SECONDS),
                "-r",
                "200",
                "-f",
                "raw",
                "-o",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        results = [await w.result() for w in [*receivers, sender]]
        await run.stop_server(server)
        nursery.cancel_scope.cancel()
    samples: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples[stack.split(";")[-1]] += int(count)
        total += int(count)
    return sum(r["received"] for r in results) / (SECONDS + 1), samples, total


def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    deliveries, samples, total = trio.run(profile, 100, rate)
    label = "flat out" if rate == 0 else f"{rate:g} messages/s"
    print(
        f"100 members, one sender {label}: {deliveries:,.0f} deliveries/s; "
        f"{total} samples at 200 Hz over {SECONDS}s"
    )
    for function, count in samples.most_common(20):
        print(f"{100 * count / total:5.1f}%  {function}")


if __name__ == "__main__":
    main()
