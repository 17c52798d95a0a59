"""`just bench`: purechat beside a grpcio-asyncio server of the same contract, same load.

Each scenario starts a fresh server, drives it with bench/loadgen.py worker processes
(raw HTTP/2 members, one connection each), and stops it; purechat and the reference
run one after the other in the same run. The server is pinned to one core and the
load generator to the other, so they do not steal each other's time. Results go to
BENCHMARKS.md (and bench/fanout.png); `--smoke` is a seconds-long run for CI that
checks the machinery, not the speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("purechat", "grpcio-asyncio")
SERVER_CPU, LOAD_CPUS = {0}, {1}


@dataclass(frozen=True)
class Scale:
    warmup: float
    measure: float
    sizes: tuple[int, ...]
    idle_members: int
    latency_rate: float
    stall_size: int
    # The two-server fan-out runs four busy processes on two cores and varies a lot
    # from run to run: it is repeated, and the median reported with the range.
    shared_repeats: int = 5


FULL = Scale(
    warmup=2.0,
    measure=5.0,
    sizes=(10, 100, 1000),
    idle_members=10_000,
    latency_rate=500.0,
    stall_size=20,
)
SMOKE = Scale(
    warmup=0.3,
    measure=0.7,
    sizes=(10,),
    idle_members=40,
    latency_rate=50.0,
    stall_size=5,
    shared_repeats=1,
)


def _pin(pid: int, cpus: set[int]) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > max(cpus):
        os.sched_setaffinity(pid, cpus)


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found[1]) if found else 0


class Lines:
    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = b""

    async def next(self) -> str:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                raise RuntimeError(f"process ended early: {self.buffer[-500:]!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


@dataclass
class Server:
    kind: str
    process: trio.Process
    port: int


async def start_server(
    nursery: trio.Nursery, kind: str, store: str = "memory://", cpus: set[int] = SERVER_CPU
) -> Server:
    if kind == "purechat":
        command = [
            sys.executable,
            "-m",
            "purechat",
            "serve",
            "--port",
            "0",
            "--store",
            store,
            "--log-level",
            "warning",
            # all the load comes from one address, and floods on purpose
            "--rate-limit",
            "0",
            "--max-conns-per-addr",
            "0",
        ]
    else:
        command = [sys.executable, str(ROOT / "bench" / "reference_server.py"), "--port", "0"]
    process = await _spawn(nursery, command, cpus, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    line = await Lines(process.stdout).next()
    port = int(re.search(r":(\d+)", line)[1])  # type: ignore[index]
    return Server(kind, process, port)


async def _spawn(
    nursery: trio.Nursery, command: list[str], cpus: set[int], *, stdin: int
) -> trio.Process:
    """A child process owned by nursery, stdout piped, pinned to cpus."""
    process: trio.Process = await nursery.start(
        partial(trio.run_process, command, stdin=stdin, stdout=subprocess.PIPE, check=False)
    )
    _pin(process.pid, cpus)
    return process


async def stop_server(server: Server) -> None:
    server.process.terminate()
    with trio.move_on_after(10):
        await server.process.wait()
    server.process.kill()


class Worker:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self.lines = Lines(process.stdout)

    @classmethod
    async def start(cls, nursery: trio.Nursery, port: int, members: int, *flags: str) -> Worker:
        command = [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            "--port",
            str(port),
            "--members",
            str(members),
            *flags,
        ]
        worker = cls(await _spawn(nursery, command, LOAD_CPUS, stdin=subprocess.PIPE))
        ready = json.loads(await worker.lines.next())
        worker.connect_seconds = ready["connect_seconds"]
        return worker

    connect_seconds: float = 0.0

    async def go(
        self, measure_from: float, measure_until: float, send_rate: float | None = None
    ) -> None:
        assert self.process.stdin is not None
        command = {
            "measure_from": measure_from,
            "measure_until": measure_until,
            "send_rate": send_rate,
        }
        await self.process.stdin.send_all((json.dumps(command) + "\n").encode())

    async def result(self) -> dict:  # type: ignore[type-arg]
        return json.loads(await self.lines.next())  # type: ignore[no-any-return]


def _spread(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def room_run(
    kind: str,
    size: int,
    scale: Scale,
    *,
    rate: float = 0.0,
    latency: bool = False,
    stalled: bool = False,
) -> dict[str, float]:
    """One sender and size-1 other members; deliveries/s and latency over the window."""
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, kind)
        flags = ("--latency",) if latency else ()
        receivers = [
            await Worker.start(nursery, server.port, n, *flags) for n in _spread(size - 1, 2)
        ]
        extra = []
        if stalled:
            extra.append(
                await Worker.start(nursery, server.port, 1, "--stalled", "--window", "65535")
            )
        sender = await Worker.start(nursery, server.port, 1, *flags)
        start = time.time() + 0.2
        window = (start + scale.warmup, start + scale.warmup + scale.measure)
        for worker in [*receivers, *extra]:
            await worker.go(*window)
        await sender.go(*window, send_rate=rate)
        results = [await w.result() for w in [*receivers, sender]]
        await stop_server(server)
        nursery.cancel_scope.cancel()
    return _outcome(results, scale)  # the stalled member's (nothing) is not counted


async def shared_run(size: int, scale: Scale, *, rate: float = 0.0) -> dict[str, float]:
    """Two purechat servers on one redis-server; members split between them, the sender
    on the first. Each server pinned to a core of its own; Redis and the load share them."""
    redis = shutil.which("redis-server") or shutil.which("valkey-server")
    assert redis is not None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        redis_port = probe.getsockname()[1]
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                trio.run_process,
                [redis, "--port", str(redis_port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL,
                check=False,
            )
        )
        await trio.sleep(0.5)
        url = f"redis://127.0.0.1:{redis_port}/0"
        first = await start_server(nursery, "purechat", url, {0})
        second = await start_server(nursery, "purechat", url, {1})
        flags = ("--latency",) if rate else ()
        halves = _spread(size - 1, 2)
        receivers = [
            await Worker.start(nursery, first.port, halves[0], *flags),
            await Worker.start(nursery, second.port, halves[1], *flags),
        ]
        sender = await Worker.start(nursery, first.port, 1, *flags)
        start = time.time() + 0.2
        window = (start + scale.warmup, start + scale.warmup + scale.measure)
        for worker in receivers:
            await worker.go(*window)
        await sender.go(*window, send_rate=rate)
        results = [await w.result() for w in [*receivers, sender]]
        for server in (first, second):
            await stop_server(server)
        nursery.cancel_scope.cancel()
    return _outcome(results, scale)


def _outcome(results: list[dict], scale: Scale) -> dict[str, float]:  # type: ignore[type-arg]
    """Deliveries a second over the window, and latency percentiles where measured."""
    received = sum(r["received"] for r in results)
    latencies = sorted(n for r in results for n in r["latencies_ns"])
    outcome = {"deliveries_per_s": received / scale.measure}
    if latencies:
        outcome |= {
            "p50_ms": latencies[len(latencies) // 2] / 1e6,
            "p99_ms": latencies[int(len(latencies) * 0.99)] / 1e6,
            "max_ms": latencies[-1] / 1e6,
        }
    return outcome


async def idle_run(kind: str, members: int, scale: Scale) -> dict[str, float]:
    """members idle members: how fast they join, and server memory per member.

    A member has joined when a message sent to the room reaches it: a probe member
    sends two a second, and the join rate is members over the time until all have one.
    """
    async with trio.open_nursery() as nursery:
        server = await start_server(nursery, kind)
        await trio.sleep(0.5)
        before = rss_kib(server.process.pid)
        started = time.monotonic()
        probe = await Worker.start(nursery, server.port, 1)
        await probe.go(time.time(), time.time() + 300, send_rate=2.0)
        async with trio.open_nursery() as joining:
            workers: list[Worker] = []
            for n in _spread(members, 4):
                joining.start_soon(_append_worker, workers, nursery, server.port, n)
        for worker in workers:
            await worker.go(time.time(), time.time() + 120)
        results = [await w.result() for w in workers]
        join_seconds = time.monotonic() - started
        after = rss_kib(server.process.pid)
        await stop_server(server)
        nursery.cancel_scope.cancel()
    return {
        "joins_per_s": members / join_seconds,
        "kib_per_member": (after - before) / members,
        "reached": sum(r["members_reached"] for r in results),
    }


async def _append_worker(workers: list[Worker], nursery: trio.Nursery, port: int, n: int) -> None:
    workers.append(await Worker.start(nursery, port, n, "--until-reached"))


async def measure_all(scale: Scale) -> dict[str, dict]:  # type: ignore[type-arg]
    results: dict[str, dict] = {kind: {} for kind in SERVERS}  # type: ignore[type-arg]
    for kind in SERVERS:
        for size in scale.sizes:
            print(f"{kind}: fan-out, {size} members", file=sys.stderr, flush=True)
            results[kind][f"fanout_{size}"] = await room_run(kind, size, scale)
            print(f"{kind}: latency, {size} members", file=sys.stderr, flush=True)
            results[kind][f"latency_{size}"] = await room_run(
                kind, size, scale, rate=scale.latency_rate, latency=True
            )
        print(f"{kind}: {scale.idle_members} idle members", file=sys.stderr, flush=True)
        results[kind]["idle"] = await idle_run(kind, scale.idle_members, scale)
        print(f"{kind}: stalled member", file=sys.stderr, flush=True)
        results[kind]["stall_without"] = await room_run(kind, scale.stall_size, scale)
        results[kind]["stall_with"] = await room_run(kind, scale.stall_size, scale, stalled=True)
    if shutil.which("redis-server") or shutil.which("valkey-server"):
        size = scale.sizes[-1] if len(scale.sizes) == 1 else 100
        print(f"purechat: two servers on one Redis, {size} members", file=sys.stderr, flush=True)
        runs = [await shared_run(size, scale) for _ in range(scale.shared_repeats)]
        runs.sort(key=lambda run: run["deliveries_per_s"])
        results["shared"] = {
            "size": size,
            "fanout": runs[len(runs) // 2],
            "fanout_runs": [run["deliveries_per_s"] for run in runs],
            "latency": await shared_run(size, scale, rate=scale.latency_rate),
        }
    return results


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and (found := re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text())):
        model = found[1].strip()
    memory = Path("/proc/meminfo").read_text().split()[1] if Path("/proc/meminfo").exists() else "?"
    return (
        f"{os.cpu_count()} cores ({model}), {int(memory) // 1024 // 1024} GiB, "
        f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )


def report(results: dict[str, dict], scale: Scale, command: str) -> str:  # type: ignore[type-arg]
    ours, peer = results["purechat"], results["grpcio-asyncio"]

    def ratio(key: str, field: str) -> str:
        a, b = ours[key].get(field), peer[key].get(field)
        return f"{a / b:.1f}x" if a and b else "n/a"

    lines = [
        "# Benchmarks",
        "",
        f"Made by `{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        f"Machine: {machine()}. Server pinned to one core, load generator to the other.",
        "Load: bench/loadgen.py, raw HTTP/2 members of the original `chat.ChatService` "
        "contract, one connection each, 64-byte texts; "
        "purechat with `--store memory:// --rate-limit 0 --max-conns-per-addr 0`.",
        "",
        "## Fan-out: one sender as fast as the server accepts",
        "",
        "| members | purechat deliveries/s | grpcio-asyncio deliveries/s | ratio |",
        "|---:|---:|---:|---:|",
    ]
    for size in scale.sizes:
        key = f"fanout_{size}"
        lines.append(
            f"| {size} | {ours[key]['deliveries_per_s']:,.0f} | "
            f"{peer[key]['deliveries_per_s']:,.0f} | {ratio(key, 'deliveries_per_s')} |"
        )
    lines += [
        "",
        f"## Latency: {scale.latency_rate:.0f} messages/s into the room",
        "",
        "| members | server | deliveries/s | p50 ms | p99 ms | max ms |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for size in scale.sizes:
        for kind in SERVERS:
            r = results[kind][f"latency_{size}"]
            lines.append(
                f"| {size} | {kind} | {r['deliveries_per_s']:,.0f} | "
                f"{r.get('p50_ms', float('nan')):.1f} | {r.get('p99_ms', float('nan')):.1f} | "
                f"{r.get('max_ms', float('nan')):.1f} |"
            )
    lines += [
        "",
        f"## {scale.idle_members:,} idle members",
        "",
        "| server | joins/s | server memory per member | reached by a message |",
        "|---|---:|---:|---:|",
    ]
    for kind in SERVERS:
        r = results[kind]["idle"]
        lines.append(
            f"| {kind} | {r['joins_per_s']:,.0f} | {r['kib_per_member']:.1f} KiB | "
            f"{r['reached']:,} of {scale.idle_members:,} |"
        )
    lines += [
        "",
        f"## One member stops reading, among {scale.stall_size}",
        "",
        "| server | deliveries/s without | with a stalled member | change |",
        "|---|---:|---:|---:|",
    ]
    for kind in SERVERS:
        without = results[kind]["stall_without"]["deliveries_per_s"]
        with_stall = results[kind]["stall_with"]["deliveries_per_s"]
        change = (with_stall - without) / without * 100 if without else float("nan")
        lines.append(f"| {kind} | {without:,.0f} | {with_stall:,.0f} | {change:+.0f}% |")
    if "shared" in results:
        shared = results["shared"]
        fanout, latency = shared["fanout"], shared["latency"]
        low, high = shared["fanout_runs"][0], shared["fanout_runs"][-1]
        repeats = len(shared["fanout_runs"])
        lines += [
            "",
            f"## Two servers on one Redis, {shared['size']} members split between them",
            "",
            "Each server on a core of its own; redis-server (no persistence) and the load",
            "generator share the two cores. The sender is on the first server; every delivery",
            "on either server comes from the room's Redis Stream. Flat out, the four busy",
            f"processes contend for the two cores: median of {repeats} runs, which ranged from",
            f"{low:,.0f} to {high:,.0f} deliveries/s.",
            "",
            "| scenario | deliveries/s | p50 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|---:|",
            f"| fan-out, one sender flat out | {fanout['deliveries_per_s']:,.0f} | | | |",
            f"| {scale.latency_rate:.0f} messages/s | {latency['deliveries_per_s']:,.0f} | "
            f"{latency.get('p50_ms', float('nan')):.1f} | {latency.get('p99_ms', float('nan')):.1f}"
            f" | {latency.get('max_ms', float('nan')):.1f} |",
        ]
    lines += ["", "![deliveries/s and p99 latency against room size](bench/fanout.png)", ""]
    return "\n".join(lines)


def plot(results: dict[str, dict], scale: Scale, path: Path) -> None:  # type: ignore[type-arg]
    import matplotlib  # noqa: PLC0415 -- only the full run draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for kind in SERVERS:
        left.plot(
            scale.sizes,
            [results[kind][f"fanout_{s}"]["deliveries_per_s"] for s in scale.sizes],
            marker="o",
            label=kind,
        )
        right.plot(
            scale.sizes,
            [results[kind][f"latency_{s}"].get("p99_ms", float("nan")) for s in scale.sizes],
            marker="o",
            label=kind,
        )
    left.set(
        xscale="log",
        yscale="log",
        xlabel="members",
        ylabel="deliveries/s",
        title="fan-out, one sender flat out",
    )
    right.set(
        xscale="log",
        yscale="log",
        xlabel="members",
        ylabel="p99 latency, ms",
        title=f"{scale.latency_rate:.0f} messages/s",
    )
    for axes in (left, right):
        axes.grid(True, which="both", alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long check for CI")
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    results = trio.run(measure_all, scale)
    command = "just bench" if not args.smoke else "just bench-smoke"
    text = report(results, scale, command)
    if args.smoke:
        print(text)
        for kind in SERVERS:
            assert results[kind][f"fanout_{scale.sizes[0]}"]["deliveries_per_s"] > 0, kind
            assert results[kind]["idle"]["reached"] == scale.idle_members, kind
        return
    (ROOT / "BENCHMARKS.md").write_text(text)
    plot(results, scale, ROOT / "bench" / "fanout.png")
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
