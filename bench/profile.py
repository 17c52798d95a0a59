"""`just profile`: where purechat's server spends its time while grpc-go members receive.

The fan-out of bench/run.py at 100 members (tests/go/load, one connection per member,
one sender, flat out or at RATE messages/s) against purechat pinned to CPU 0, while
py-spy samples the server process; then prints the functions with the most samples
(self time) and the delivery rate of the run.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run

SECONDS = 4
WARMUP = 1.5


async def profile(
    go: run.GoPrograms, members: int, rate: float
) -> tuple[float, Counter[str], int, run.Summary]:
    out = Path(tempfile.mkdtemp()) / "profile.txt"
    summaries: list[run.Summary] = []
    async with run.serving("purechat", go) as server, trio.open_nursery() as nursery:

        async def load() -> None:
            send = ("-rate", str(rate)) if rate else ()
            summaries.append(
                await run.go_load(
                    go,
                    [server.address],
                    *("-members", str(members), "-messages", "0", *send),
                    *("-duration", f"{WARMUP + SECONDS + 0.5}s", "-warmup", f"{WARMUP}s"),
                )
            )

        nursery.start_soon(load)
        # Joining 100 members takes well under a second; then the warm-up.
        await trio.sleep(1.0 + WARMUP)
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
    samples: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples[stack.split(";")[-1]] += int(count)
        total += int(count)
    summary = summaries[0]
    return summary["deliveries_per_s"], samples, total, summary


def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with tempfile.TemporaryDirectory() as work:
        go = run.build_go(Path(work))
        deliveries, samples, total, summary = trio.run(profile, go, 100, rate)
    label = "flat out" if rate == 0 else f"{rate:g} messages/s"
    print(
        f"100 members, one sender {label}: {deliveries:,.0f} deliveries/s; "
        f"{total} samples at 200 Hz over {SECONDS}s"
    )
    for function, count in samples.most_common(20):
        print(f"{100 * count / total:5.1f}%  {function}")
    if summary["errors"] or summary["lost"]:
        print(f"(lost {summary['lost']:,}; streams ended: {summary['errors']})")


if __name__ == "__main__":
    main()
