"""`just bench`: purechat beside the tutorial's grpc-go server and a grpcio-asyncio server.

The load is tests/go/load: grpc-go members of the original chat.ChatService contract,
one connection each, as the tutorial's Go client connects (BDP pings and window
updates on). Every scenario runs on a fresh server process, for each of the three
servers in turn, several times; each figure is the median with the range. Servers
are pinned to CPU 0 and the load to CPU 1 (before exec, so every thread inherits it).
bench/loadgen.py (raw HTTP/2, nothing decoded) drives a second, smaller series, and
bench/typists.py (purechat.v1 over the same raw members) the typing storm.
Results go to BENCHMARKS.md, bench/fanout.png and bench/results.json; `--smoke` is a
seconds-long run for CI that checks the machinery (and fails loudly when the Go
programs do not build or the load client miscounts), not the speed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The repository root is not on sys.path before the line above.
from tests.gobuild import GoBuilder  # noqa: E402
from tests.redis_cluster import REDIS_CLI, RedisCluster  # noqa: E402

SERVERS = ("purechat", "grpc-go", "grpcio-asyncio")
SERVER_CPU, LOAD_CPUS = {0}, {1}
PURECHAT_FLAGS = (
    "--store memory:// --rate-limit 0 --max-conns-per-addr 0 --port 0 --log-level warning"
)

Summary = dict[str, Any]  # one JSON summary of tests/go/load


@dataclass(frozen=True)
class Scale:
    repeats: int
    fanout_sizes: tuple[int, ...]
    # tests/go/load flags for the flat-out sender: a window, or (smoke) a count.
    fanout_send: tuple[str, ...]
    latency_members: int
    latency_rate: float
    latency_send: tuple[str, ...]
    join_members: int
    idle_members: int
    stall_members: int
    shared_size: int
    # The two-server run has four busy processes on two cores and varies a lot.
    shared_repeats: int
    raw_sizes: tuple[int, ...]
    raw_warmup: float
    raw_measure: float
    # Churn: per round this many members join, hear and leave, and as many more are
    # killed mid-stream (their client process is); the server's RSS after each round.
    churn_members: int = 500
    churn_rounds: int = 10
    # One churn run per server: it measures growth over its rounds, not a rate that
    # varies from run to run (and ten rounds of 1,000 members take minutes).
    churn_repeats: int = 1
    # The typing storm (purechat only): the flat-out fan-out into this many grpc-go
    # members, with as many more purechat.v1 members in the room, quiet or typing.
    storm_members: int = 500
    storm_typists: int = 500


FULL = Scale(
    repeats=3,
    fanout_sizes=(100, 1000),
    fanout_send=("-messages", "0", "-duration", "7s", "-warmup", "2s", "-drain", "5s"),
    latency_members=100,
    latency_rate=500.0,
    latency_send=("-messages", "0", "-duration", "6s", "-warmup", "1s"),
    join_members=2000,
    idle_members=10_000,
    stall_members=100,
    shared_size=100,
    shared_repeats=5,
    raw_sizes=(100, 1000),
    raw_warmup=1.0,
    raw_measure=3.0,
)
SMOKE = Scale(
    repeats=1,
    fanout_sizes=(10,),
    fanout_send=("-messages", "200"),
    latency_members=10,
    latency_rate=100.0,
    latency_send=("-messages", "30"),
    join_members=20,
    idle_members=40,
    stall_members=10,
    shared_size=10,
    shared_repeats=1,
    raw_sizes=(10,),
    raw_warmup=0.3,
    raw_measure=0.7,
    churn_members=20,
    churn_rounds=2,
    storm_members=10,
    storm_typists=10,
)


def _pin_before_exec(cpus: set[int]) -> Callable[[], None] | None:
    """A preexec_fn pinning the child, so every thread it starts inherits the core."""
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) <= max(cpus):
        return None
    return partial(os.sched_setaffinity, 0, cpus)


async def _spawn(
    nursery: trio.Nursery,
    command: list[str],
    cpus: set[int],
    *,
    stdin: int | None = subprocess.DEVNULL,
    stderr: Any = None,
) -> trio.Process:
    """A child process owned by nursery, stdout piped, pinned to cpus from its start."""
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            command,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=stderr,
            check=False,
            # Only a system call runs between fork and exec: safe with threads around.
            preexec_fn=_pin_before_exec(cpus),
        )
    )
    return process


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(found[1]) if found else 0


class Lines:
    def __init__(self, stream: trio.abc.ReceiveStream | None) -> None:
        assert stream is not None
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


@dataclass(frozen=True)
class GoPrograms:
    load: Path
    server: Path


def build_go(work: Path) -> GoPrograms:
    """The load client and the tutorial's server, built offline (tests/gobuild.py)."""
    builder = GoBuilder(work)
    return GoPrograms(builder.build("tests/go/load"), builder.build("bench/go/server"))


@dataclass
class Server:
    kind: str
    process: trio.Process
    address: str
    # What it logged, once stopped: purechat's warnings, one key per kind.
    log: dict[str, int] = field(default_factory=dict)


def _log_kinds(log: Path) -> dict[str, int]:
    """Lines of a log counted by kind: timestamps dropped, peer addresses folded."""
    kinds: Counter[str] = Counter()
    for line in log.read_text(errors="replace").splitlines():
        untimed = re.sub(r"^\d{4}-\d\d-\d\d \S+ ", "", line)
        kinds[re.sub(r"\d+\.\d+\.\d+\.\d+:\d+", "PEER", untimed)[:300]] += 1
    return dict(kinds)


def _server_command(kind: str, go: GoPrograms, store: str) -> list[str]:
    if kind == "purechat":
        flags = PURECHAT_FLAGS.replace("memory://", store).split()
        return [sys.executable, "-m", "purechat", "serve", *flags]
    if kind == "grpc-go":
        return [str(go.server), "127.0.0.1:0"]
    return [sys.executable, str(ROOT / "bench" / "reference_server.py"), "--port", "0"]


@asynccontextmanager
async def serving(
    kind: str, go: GoPrograms, *, store: str = "memory://", cpus: set[int] = SERVER_CPU
) -> AsyncIterator[Server]:
    """A fresh server of kind, ready, stopped on exit; its stderr kept in a file."""
    with tempfile.TemporaryDirectory() as logs:
        log = Path(logs) / "server.log"
        async with trio.open_nursery() as nursery:
            command = _server_command(kind, go, store)
            with log.open("wb") as stderr:
                process = await _spawn(nursery, command, cpus, stderr=stderr)
            try:
                with trio.fail_after(30):
                    line = await Lines(process.stdout).next()
            except (RuntimeError, trio.TooSlowError):
                process.kill()
                raise RuntimeError(f"{kind} did not start: {log.read_text()[-2000:]}") from None
            found = re.search(r"(\d+\.\d+\.\d+\.\d+):(\d+)", line)
            assert found is not None, line
            server = Server(kind, process, f"{found[1]}:{found[2]}")
            try:
                yield server
            finally:
                with trio.CancelScope(shield=True):
                    process.terminate()
                    with trio.move_on_after(10):
                        await process.wait()
                    process.kill()
                nursery.cancel_scope.cancel()
                if kind == "purechat":  # the others log every message or nothing useful
                    server.log = _log_kinds(log)


async def go_load(
    go: GoPrograms,
    addresses: list[str],
    *flags: str,
    paused: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    bound: float = 300.0,
) -> Summary:
    """Run tests/go/load on the load core and return its summary.

    With `paused`, the client stops after joining and `paused` runs meanwhile with the
    client's joined event (the memory measurement). A client that exits non-zero fails
    the run, loudly.
    """
    command = [str(go.load), "-json", "-addr", ",".join(addresses), "-timeout", f"{bound}s"]
    command += [*flags, *(("-pause",) if paused else ())]
    with tempfile.TemporaryFile() as stderr, trio.fail_after(bound + 60):
        async with trio.open_nursery() as nursery:
            process = await _spawn(
                nursery, command, LOAD_CPUS, stdin=subprocess.PIPE, stderr=stderr
            )
            lines = Lines(process.stdout)
            try:
                if paused:
                    assert process.stdin is not None
                    await paused(json.loads(await lines.next()))
                    await process.stdin.send_all(b"\n")
                summary: Summary = json.loads(await lines.next())
            except RuntimeError:
                summary = {}
            await process.wait()
        if process.returncode or not summary:
            stderr.seek(0)
            said = stderr.read().decode(errors="replace")[-3000:]
            raise RuntimeError(
                f"load client exited {process.returncode}: {' '.join(command)}\n{said}"
            )
    return summary


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# Scenarios: each returns the load client's summary, with the server's log added.


async def fanout(kind: str, go: GoPrograms, members: int, send: tuple[str, ...]) -> Summary:
    """One sender flat out into members (the sender included)."""
    async with serving(kind, go) as server:
        summary = await go_load(go, [server.address], "-members", str(members), *send)
    return summary | {"server_log": server.log}


async def stalled(kind: str, go: GoPrograms, members: int, send: tuple[str, ...]) -> Summary:
    """The fan-out with one more member that never reads."""
    async with serving(kind, go) as server:
        summary = await go_load(
            go, [server.address], "-members", str(members), "-nonreaders", "1", *send
        )
    return summary | {"server_log": server.log}


async def latency(kind: str, go: GoPrograms, scale: Scale) -> Summary:
    """One sender at a steady rate; latency of every delivery."""
    async with serving(kind, go) as server:
        summary = await go_load(
            go,
            [server.address],
            *("-members", str(scale.latency_members), "-rate", str(scale.latency_rate)),
            *scale.latency_send,
        )
    return summary | {"server_log": server.log}


async def joins(kind: str, go: GoPrograms, members: int, concurrency: int) -> Summary:
    """members joining (concurrency 1: one after another; 0: all at once), no data."""
    async with serving(kind, go) as server:
        summary = await go_load(
            go,
            [server.address],
            *("-members", str(members), "-senders", "0", "-join-concurrency", str(concurrency)),
            *("-join-timeout", "240s"),
        )
    return summary | {"server_log": server.log}


async def idle_memory(kind: str, go: GoPrograms, members: int) -> Summary:
    """Server RSS growth per member, members idle, on a fresh process (Python does not
    give freed memory back, so nothing else may have run on it)."""
    async with serving(kind, go) as server:
        await trio.sleep(0.5)
        before = rss_kib(server.process.pid)
        after: list[int] = []
        held: list[int] = []

        async def measure(joined: dict[str, Any]) -> None:
            await trio.sleep(1.0)  # let the last joins settle
            after.append(rss_kib(server.process.pid))
            held.append(joined["held"])

        summary = await go_load(
            go,
            [server.address],
            *("-members", str(members), "-senders", "0", "-join-concurrency", "100"),
            *("-probe-interval", "1s", "-join-timeout", "240s"),
            paused=measure,
        )
    summary["rss_kib"] = {"before": before, "after": after[0]}
    summary["held"] = held[0]  # members in the room when measured (not ended by the server)
    summary["kib_per_member"] = (after[0] - before) / held[0] if held[0] else math.nan
    return summary | {"server_log": server.log}


async def churn(kind: str, go: GoPrograms, members: int, rounds: int) -> Summary:
    """RSS of a fresh server after each round of members joining and leaving cleanly and
    as many killed mid-stream: a server people join and leave all day must not grow."""
    async with serving(kind, go) as server:
        await trio.sleep(0.5)
        rss: list[int] = []
        for _ in range(rounds):
            await go_load(
                go,
                [server.address],
                *("-members", str(members), "-messages", "20", "-join-concurrency", "100"),
            )

            async def kill_when_joined(joined: dict[str, Any]) -> None:
                raise _Killed

            try:
                await go_load(
                    go,
                    [server.address],
                    *("-members", str(members), "-senders", "0", "-join-concurrency", "100"),
                    paused=kill_when_joined,
                )
            except* _Killed:
                pass  # its nursery killed the client, members and all
            await trio.sleep(1.0)  # the server notices the killed connections
            rss.append(rss_kib(server.process.pid))
    first, last = rss[0], rss[-1]
    return {
        "rss_kib": rss,
        "first_mib": first / 1024,
        "last_mib": last / 1024,
        "growth_percent": 100 * (last - first) / first if first else math.nan,
        "server_log": server.log,
    }


async def typing_storm(
    go: GoPrograms, members: int, typists: int, typing: bool, send: tuple[str, ...]
) -> Summary:
    """The flat-out fan-out into members (grpc-go, the original contract: told nothing
    of typing) with typists in the room: purechat.v1 members (bench/typists.py, on the
    load core) that read everything and, typing, each send a TypingSignal every 3.1 s."""
    async with serving("purechat", go) as server, trio.open_nursery() as nursery:
        command = [sys.executable, str(ROOT / "bench" / "typists.py")]
        command += ["--port", server.address.rpartition(":")[2], "--members", str(typists)]
        command += ["--typing"] if typing else []
        process = await _spawn(nursery, command, LOAD_CPUS, stdin=subprocess.PIPE)
        lines = Lines(process.stdout)
        with trio.fail_after(120):
            json.loads(await lines.next())  # all welcomed (and typing)
        summary = await go_load(go, [server.address], "-members", str(members), *send)
        assert process.stdin is not None
        await process.stdin.send_all(b"stop\n")
        with trio.fail_after(30):
            typed: dict[str, int] = json.loads(await lines.next())
        await process.wait()
    return summary | {"typists": typed, "server_log": server.log}


# The typing storm's two runs: (key, whether the typists type).
STORM = (("typing_storm_quiet", False), ("typing_storm", True))


class _Killed(Exception):
    """Ends a paused load client's run by killing it (its nursery cancels the process)."""


# Where the two-server runs keep the rooms: one redis-server, or a Redis Cluster of
# three primaries with a replica each (acknowledged on the primary, or with replicas=1
# once a replica has it too).
SHARED_STORES = ("redis", "cluster", "cluster_replicas")


async def shared(go: GoPrograms, members: int, flags: tuple[str, ...], store: str) -> Summary:
    """Two purechat servers on one store, members on both, the sender on the first.
    Each server on a core of its own; Redis and the load client share them."""
    async with (
        _shared_store(store) as url,
        serving("purechat", go, store=url, cpus={0}) as first,
        serving("purechat", go, store=url, cpus={1}) as second,
    ):
        summary = await go_load(
            go, [first.address, second.address], "-members", str(members), *flags
        )
    return summary | {"server_log": _merged(first.log, second.log)}


@asynccontextmanager
async def _shared_store(store: str) -> AsyncIterator[str]:
    """A fresh store of that kind (no persistence), its URL for `--store`."""
    if store == "redis":
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
            yield f"redis://127.0.0.1:{redis_port}/0"
            nursery.cancel_scope.cancel()
        return
    with tempfile.TemporaryDirectory() as directory:
        cluster = RedisCluster(Path(directory))
        try:
            await trio.to_thread.run_sync(cluster.start)
            yield cluster.url(replicas=1 if store == "cluster_replicas" else 0)
        finally:
            cluster.stop()


def _merged(*logs: dict[str, int]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for log in logs:
        total.update(log)
    return dict(total)


# The second series: bench/loadgen.py's raw HTTP/2 members (nothing decoded, no BDP pings).


class Worker:
    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines = Lines(process.stdout)

    @classmethod
    async def start(cls, nursery: trio.Nursery, address: str, members: int) -> Worker:
        command = [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            *("--port", address.rpartition(":")[2], "--members", str(members)),
        ]
        worker = cls(await _spawn(nursery, command, LOAD_CPUS, stdin=subprocess.PIPE))
        json.loads(await worker.lines.next())  # connected
        return worker

    async def go(self, window: tuple[float, float], send_rate: float | None = None) -> None:
        assert self.process.stdin is not None
        command = {"measure_from": window[0], "measure_until": window[1], "send_rate": send_rate}
        await self.process.stdin.send_all((json.dumps(command) + "\n").encode())

    async def result(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(await self.lines.next())
        return result


def _spread(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def raw_fanout(kind: str, go: GoPrograms, members: int, scale: Scale) -> Summary:
    """The flat-out fan-out with bench/loadgen.py members: deliveries/s over the window."""
    async with serving(kind, go) as server, trio.open_nursery() as nursery:
        receivers = [
            await Worker.start(nursery, server.address, n) for n in _spread(members - 1, 2)
        ]
        sender = await Worker.start(nursery, server.address, 1)
        start = time.time() + 0.2
        window = (start + scale.raw_warmup, start + scale.raw_warmup + scale.raw_measure)
        for worker in receivers:
            await worker.go(window)
        await sender.go(window, send_rate=0.0)
        results = [await w.result() for w in [*receivers, sender]]
        nursery.cancel_scope.cancel()
    received = sum(r["received"] for r in results)
    return {"deliveries_per_s": received / scale.raw_measure}


# Figures: the median of the runs, with the range.


@dataclass(frozen=True)
class Figure:
    median: float
    low: float
    high: float
    runs: list[float]


def figure(values: list[float]) -> Figure:
    """Median and range of the runs that measured something (NaN: not measured)."""
    ordered = sorted(v for v in values if not math.isnan(v))
    if not ordered:
        return Figure(math.nan, math.nan, math.nan, values)
    return Figure(statistics.median(ordered), ordered[0], ordered[-1], values)


Extract = Callable[[Summary], float]


def _latency(summary: Summary, which: str) -> float:
    measured: dict[str, float] = summary["latency"]
    return measured[which] if measured["count"] else math.nan


# What each scenario reports: (row label, value from a summary, format, whether
# purechat / grpc-go means something for it).
ROWS: dict[str, list[tuple[str, Extract, str, bool]]] = {
    "fanout": [
        ("deliveries/s", lambda s: s["deliveries_per_s"], "{:,.0f}", True),
        ("lost", lambda s: s["lost"], "{:,.0f}", False),
        ("members whose stream ended", lambda s: s["ended_members"], "{:,.0f}", False),
        ("load client CPU", lambda s: 100 * s["client_cpu_share"], "{:.0f}%", False),
    ],
    "latency": [
        ("p50 ms", lambda s: _latency(s, "p50_ms"), "{:.1f}", True),
        ("p99 ms", lambda s: _latency(s, "p99_ms"), "{:.1f}", True),
        ("max ms", lambda s: _latency(s, "max_ms"), "{:.1f}", True),
        ("messages sent", lambda s: s["sent"], "{:,.0f}", False),
        ("deliveries/s", lambda s: s["deliveries_per_s"], "{:,.0f}", True),
        ("lost", lambda s: s["lost"], "{:,.0f}", False),
        ("members whose stream ended", lambda s: s["ended_members"], "{:,.0f}", False),
    ],
    "joins": [
        ("joins/s", lambda s: s["join"]["joins_per_s"] or math.nan, "{:,.0f}", True),
        ("seconds until all joined", lambda s: s["join"]["joined_seconds"], "{:.2f}", True),
        ("members joined", lambda s: s["join"]["confirmed"], "{:,.0f}", False),
    ],
    "memory": [
        ("KiB per member", lambda s: s["kib_per_member"], "{:.1f}", True),
        ("members in the room when measured", lambda s: s["held"], "{:,.0f}", False),
    ],
    "raw": [("deliveries/s", lambda s: s["deliveries_per_s"], "{:,.0f}", True)],
    "storm": [
        ("deliveries/s", lambda s: s["deliveries_per_s"], "{:,.0f}", True),
        ("lost", lambda s: s["lost"], "{:,.0f}", False),
        ("members whose stream ended", lambda s: s["ended_members"], "{:,.0f}", False),
        ("load client CPU", lambda s: 100 * s["client_cpu_share"], "{:.0f}%", False),
        ("typing signals sent", lambda s: s["typists"]["signals"], "{:,.0f}", False),
        ("typists whose stream ended", lambda s: s["typists"]["ended"], "{:,.0f}", False),
    ],
    "churn": [
        ("RSS after the first round, MiB", lambda s: s["first_mib"], "{:.1f}", True),
        ("RSS after the last round, MiB", lambda s: s["last_mib"], "{:.1f}", True),
        ("growth from the first round", lambda s: s["growth_percent"], "{:+.1f}%", False),
    ],
}


Scenario = Callable[[str], Awaitable[Summary]]  # run for one server kind


def _each_kind(scenario: Callable[..., Awaitable[Summary]], *args: Any) -> Scenario:
    return lambda kind: scenario(kind, *args)


async def measure_all(scale: Scale, go: GoPrograms) -> dict[str, Any]:
    """Every scenario for every server, scale.repeats times each.

    Returns {"runs": {scenario: {kind: [summary, ...]}}, "figures": {scenario: {kind:
    {row: Figure}}}}.
    """
    plan: list[tuple[str, str, Scenario]] = [
        (f"fanout_{size}", "fanout", _each_kind(fanout, go, size, scale.fanout_send))
        for size in scale.fanout_sizes
    ]
    plan += [
        ("latency", "latency", _each_kind(latency, go, scale)),
        ("joins_one_by_one", "joins", _each_kind(joins, go, scale.join_members, 1)),
        ("joins_all_at_once", "joins", _each_kind(joins, go, scale.join_members, 0)),
        ("memory", "memory", _each_kind(idle_memory, go, scale.idle_members)),
        ("stall", "fanout", _each_kind(stalled, go, scale.stall_members, scale.fanout_send)),
        ("churn", "churn", _each_kind(churn, go, scale.churn_members, scale.churn_rounds)),
    ]
    plan += [
        (f"raw_{size}", "raw", _each_kind(raw_fanout, go, size, scale)) for size in scale.raw_sizes
    ]
    runs: dict[str, dict[str, list[Summary]]] = {}
    rows = {key: row_kind for key, row_kind, _ in plan}
    for key, _, scenario in plan:
        runs[key] = {kind: [] for kind in SERVERS}
        for kind in SERVERS:
            repeats = scale.churn_repeats if key == "churn" else scale.repeats
            for repeat in range(repeats):
                _log(f"{key}: {kind}, run {repeat + 1} of {repeats}")
                runs[key][kind].append(await scenario(kind))
    for key, _ in STORM:
        rows[key] = "storm"
        runs[key] = {"purechat": []}
    for repeat in range(scale.repeats):  # quiet and typing in turn, so drift hits both
        for key, typing in STORM:
            _log(f"{key}: purechat, run {repeat + 1} of {scale.repeats}")
            runs[key]["purechat"].append(
                await typing_storm(
                    go, scale.storm_members, scale.storm_typists, typing, scale.fanout_send
                )
            )
    if shutil.which("redis-server") or shutil.which("valkey-server"):
        for key, row_kind, store, repeats, flags in _shared_plan(scale):
            rows[key] = row_kind
            runs[key] = {"purechat": []}
            for repeat in range(repeats):
                _log(f"{key}: two purechat servers on {store}, run {repeat + 1} of {repeats}")
                runs[key]["purechat"].append(await shared(go, scale.shared_size, flags, store))
    figures = {
        key: {
            kind: {
                label: asdict(figure([extract(s) for s in summaries]))
                for label, extract, _, _ in ROWS[rows[key]]
            }
            for kind, summaries in by_kind.items()
        }
        for key, by_kind in runs.items()
    }
    return {"runs": runs, "figures": figures}


async def measure_shared(scale: Scale, go: GoPrograms) -> None:
    """Only the two-server runs, each printed as it ends (`--shared`: nothing written)."""
    for key, _, store, repeats, flags in _shared_plan(scale):
        for repeat in range(repeats):
            s = await shared(go, scale.shared_size, flags, store)
            latency = s["latency"]
            print(
                f"{key} run {repeat + 1}/{repeats}: {s['deliveries_per_s']:,.0f} deliveries/s, "
                f"lost {s['lost']:,}, sent {s['sent']:,}"
                + (
                    f", p50 {latency['p50_ms']:.1f} ms, p99 {latency['p99_ms']:.1f} ms"
                    if latency["count"]
                    else ""
                ),
                flush=True,
            )


def _shared_plan(scale: Scale) -> list[tuple[str, str, str, int, tuple[str, ...]]]:
    """(key, rows, store, repeats, load flags) of the two-server runs: one Redis, and a
    cluster when redis-cli is there to make one."""
    latency = ("-rate", str(scale.latency_rate), *scale.latency_send)
    stores = SHARED_STORES if REDIS_CLI else SHARED_STORES[:1]
    plan = []
    for store in stores:
        prefix = "shared" if store == "redis" else store
        if store != "cluster_replicas":  # flat out, the WAIT shows in latency only
            plan.append(
                (f"{prefix}_fanout", "fanout", store, scale.shared_repeats, scale.fanout_send)
            )
        plan.append((f"{prefix}_latency", "latency", store, scale.repeats, latency))
    return plan


# The report.


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


def _versions() -> str:
    go = subprocess.run(["go", "version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"go(\d+\.\d+(\.\d+)?)", go)
    grpc_go = "?"
    version_go = Path("/usr/share/gocode/src/google.golang.org/grpc/version.go")
    if version_go.exists() and (v := re.search(r'Version = "([^"]+)"', version_go.read_text())):
        grpc_go = v[1]
    import grpc  # noqa: PLC0415 -- only for its version

    return f"grpc-go {grpc_go} (Go {found[1] if found else '?'}), grpcio {grpc.__version__}"


def _commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "?"


def _cell(f: dict[str, Any], form: str) -> str:
    if math.isnan(f["median"]):  # not measured
        return "n/a"
    text = form.format(f["median"])
    if f["low"] != f["high"]:
        text += f" ({form.format(f['low'])} to {form.format(f['high'])})"
    return text


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if not (math.isnan(a) or math.isnan(b)) and b else "n/a"


def _table(results: dict[str, Any], key: str, rows: str, prefix: str = "") -> list[str]:
    """Rows of one scenario: the three servers side by side, and purechat / grpc-go."""
    figures = results["figures"][key]
    lines = []
    for label, _, form, compare in ROWS[rows]:
        cells = [_cell(figures[kind][label], form) for kind in SERVERS]
        ratio = ""
        if compare:
            ours, theirs = figures["purechat"][label]["median"], figures["grpc-go"][label]["median"]
            ratio = _ratio(ours, theirs)
        lines.append(f"| {prefix}{label} | {' | '.join(cells)} | {ratio} |")
    return lines


HEADER = [
    "| | purechat | grpc-go (tutorial) | grpcio-asyncio | purechat / grpc-go |",
    "|---|---:|---:|---:|---:|",
]


def _what_ended_streams(results: dict[str, Any]) -> list[str]:
    """Every status that ended a stream, GOAWAY the client logged, purechat warning."""
    lines = []
    for key, by_kind in results["runs"].items():
        if key.startswith("raw_"):
            continue
        for kind, summaries in by_kind.items():
            seen: Counter[str] = Counter()
            for s in summaries:
                for group in ("errors", "send_errors", "grpc_log", "server_log"):
                    for what, count in (s.get(group) or {}).items():
                        seen[f"{group.replace('_', ' ')}: {what}"] += count
                for what, count in (s.get("nonreader_outcomes") or {}).items():
                    seen[f"the member that never reads: {what}"] += count
            runs = len(summaries)
            for what, count in sorted(seen.items()):
                lines.append(f"| {key} | {kind} | {count:,} in {runs} runs | `{what}` |")
    return lines


def report(results: dict[str, Any], scale: Scale, command: str) -> str:
    meta = results["meta"]
    lines = [
        "# Benchmarks",
        "",
        f"Made by `{command}` on {meta['date']} at commit {meta['commit']}.",
        f"Machine: {meta['machine']}. Each server process is pinned to CPU 0 and the load "
        "to CPU 1 (`os.sched_setaffinity` before exec, so every thread of theirs stays "
        "there); a fresh server for every run.",
        "",
        "Servers: **purechat** (`purechat serve "
        f"{PURECHAT_FLAGS}`); **grpc-go (tutorial)**: the tutorial's Go server as written "
        "(bench/go/server: one broadcaster holding a lock while it sends to each member); "
        "**grpcio-asyncio**: bench/reference_server.py, the same server written plainly with "
        f"grpcio's asyncio API. {meta['versions']}.",
        "",
        "Load: tests/go/load, grpc-go members of the original `chat.ChatService/JoinChat` "
        "contract in one process, one connection per member, default dial options as the "
        "tutorial's client (BDP pings and window updates on), 64-byte texts. Every figure "
        f"is the median of {scale.repeats} runs with the range in brackets; the last column "
        "divides purechat's median by grpc-go's. *lost*: messages a member that had joined "
        "did not receive before the run ended (nothing arrived for 3 s, or 5 s after the "
        "last send for fan-out, 15 s otherwise), summed over members: still queued in a "
        "server that fell behind, or never sent to a member whose stream had ended (the last "
        "table says why streams ended). *load client CPU*: "
        "the load process's CPU use over the measured window; near 100% the client, not the "
        "server, sets the pace.",
    ]
    for size in scale.fanout_sizes:
        lines += [
            "",
            f"## Fan-out: one sender flat out, {size:,} members",
            "",
            "The sender is a member too; deliveries/s counts messages received by all "
            f"members over the measured window (`{' '.join(scale.fanout_send)}`).",
            "",
            *HEADER,
            *_table(results, f"fanout_{size}", "fanout"),
        ]
    lines += [
        "",
        f"## Latency: {scale.latency_rate:,.0f} messages/s into {scale.latency_members} members",
        "",
        "From the send (the time is in the text) to the receipt, every delivery of the "
        f"messages sent in the measured window (`{' '.join(scale.latency_send)}`).",
        "",
        *HEADER,
        *_table(results, "latency", "latency"),
        "",
        f"## Joins: {scale.join_members:,} members",
        "",
        "From the first connection until every member has received something: once all "
        "streams are open, member 0 sends a probe every 50 ms, each only after the previous "
        "one reached every member then present (so probes do not pile up in a slow server). "
        "One after another: each member opens its connection and stream when the previous "
        "one's stream is open; all at once: every member at the same time. joins/s: members "
        "joined over that time.",
        "",
        *HEADER,
        *_table(results, "joins_one_by_one", "joins", "one after another: "),
        *_table(results, "joins_all_at_once", "joins", "all at once: "),
        "",
        f"## Server memory per idle member, {scale.idle_members:,} members",
        "",
        "RSS of a fresh server once all have joined (100 joining at a time) or the server "
        "ended their streams, minus its RSS before the first, divided by the members whose "
        "streams it still held.",
        "",
        *HEADER,
        *_table(results, "memory", "memory"),
        "",
        f"## One member stops reading, among {scale.stall_members}",
        "",
        "The flat-out fan-out again with one more member (a connection of its own) that "
        "never calls Recv; the figures are the readers'. What happened to the non-reader is "
        "in the last table.",
        "",
        *HEADER,
        *_table(results, "stall", "fanout"),
        "",
        f"## Memory under churn, {scale.churn_rounds} rounds of {scale.churn_members:,} + "
        f"{scale.churn_members:,} members",
        "",
        f"Each round {scale.churn_members:,} grpc-go members join, hear 20 messages and "
        f"leave, then {scale.churn_members:,} more join and their client is killed before "
        "they leave; the fresh server's RSS a second after each round. A server that frees "
        "what departed members held stays flat. "
        f"{scale.churn_repeats} run(s) per server: each measures growth over its rounds.",
        "",
        *HEADER,
        *_table(results, "churn", "churn"),
    ]
    if "shared_fanout" in results["figures"]:
        lines += [
            "",
            f"## Two purechat servers on one store, {scale.shared_size} members",
            "",
            "Members alternate between the servers, the sender is on the first; every "
            "delivery on either server comes from the room's Redis Stream. Each server on a "
            "core of its own; the store (no persistence) and the load client float, so four "
            "busy processes (nine with the cluster's six redis-server) share two cores: "
            f"fan-out median of {scale.shared_repeats} runs. *lost* after a flat-out run is "
            "what was still owed when the drain ended: a server whose members fall behind "
            "slows the senders on the other (see the README), so it should be 0. One "
            "Redis: `redis://`; a Redis Cluster of three primaries with a replica each: "
            "`redis+cluster://` (acknowledged on the primary), and with `?replicas=1` "
            "(acknowledged once a replica has it: the WAIT is in the latency).",
            "",
            "| store | scenario | deliveries/s | lost | p50 ms | p99 ms | max ms |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for key, _, store, _, _ in _shared_plan(scale):
            if key not in results["figures"]:
                continue
            f = results["figures"][key]["purechat"]
            if key.endswith("_fanout"):
                lines.append(
                    f"| {store} | one sender flat out | {_cell(f['deliveries/s'], '{:,.0f}')} | "
                    f"{_cell(f['lost'], '{:,.0f}')} | | | |"
                )
            else:
                lines.append(
                    f"| {store} | {scale.latency_rate:,.0f} messages/s | "
                    f"{_cell(f['deliveries/s'], '{:,.0f}')} | {_cell(f['lost'], '{:,.0f}')} | "
                    f"{_cell(f['p50 ms'], '{:.1f}')} | {_cell(f['p99 ms'], '{:.1f}')} | "
                    f"{_cell(f['max ms'], '{:.1f}')} |"
                )
    quiet, storm = (results["figures"][key]["purechat"] for key, _ in STORM)
    lines += [
        "",
        f"## Typing storm: one sender flat out into {scale.storm_members:,} members, "
        f"{scale.storm_typists:,} more typing",
        "",
        "purechat only (typing is purechat.v1's). The flat-out fan-out into grpc-go members "
        f"(the original contract, told nothing of typing), with {scale.storm_typists:,} "
        "purechat.v1 members more in the room (bench/typists.py, on the load core, reading "
        "everything without decoding it): quiet, then each typing every 3.1 s (the server "
        "takes a member's typing at most once every 3 s), the first signals spread over "
        "3.1 s and all sent "
        "before the load starts. The server tells the room who typed once a second, one "
        "frame per purechat.v1 member. Figures are the grpc-go members' "
        f"(`{' '.join(scale.fanout_send)}`); the last column divides typing by quiet.",
        "",
        "| | quiet | typing | typing / quiet |",
        "|---|---:|---:|---:|",
    ]
    for label, _, form, compare in ROWS["storm"]:
        ratio = _ratio(storm[label]["median"], quiet[label]["median"]) if compare else ""
        lines.append(
            f"| {label} | {_cell(quiet[label], form)} | {_cell(storm[label], form)} | {ratio} |"
        )
    lines += [
        "",
        "## Second series: raw HTTP/2 members (bench/loadgen.py)",
        "",
        "The flat-out fan-out with members that count messages by their length prefixes "
        "without decoding them and send no BDP pings (two load processes and the sender's), "
        f"over {scale.raw_measure:g} s after {scale.raw_warmup:g} s: what the servers do when "
        "the clients cost little.",
        "",
        *HEADER,
    ]
    for size in scale.raw_sizes:
        lines += _table(results, f"raw_{size}", "raw", f"{size:,} members: ")
    lines += [
        "",
        "## What ended streams",
        "",
        "Summed over the runs: statuses that ended members' streams (`errors`), failed "
        "sends, the GOAWAYs grpc-go logged, what became of the member that never reads, and "
        "purechat's own warnings (its log at `--log-level warning`; peers and times folded).",
        "",
        "| scenario | server | count | what |",
        "|---|---|---:|---|",
        *(_what_ended_streams(results) or ["| | | | nothing |"]),
        "",
        "![deliveries/s against room size, and latency](bench/fanout.png)",
        "",
    ]
    return "\n".join(lines)


def plot(results: dict[str, Any], scale: Scale, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 -- only the full run draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figures = results["figures"]
    chart, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for kind in SERVERS:
        values = [figures[f"fanout_{s}"][kind]["deliveries/s"] for s in scale.fanout_sizes]
        medians = [v["median"] for v in values]
        errors = [
            [m - v["low"] for m, v in zip(medians, values, strict=True)],
            [v["high"] - m for m, v in zip(medians, values, strict=True)],
        ]
        left.errorbar(scale.fanout_sizes, medians, yerr=errors, marker="o", capsize=3, label=kind)
    left.set(
        xscale="log",
        yscale="log",
        xlabel="members",
        ylabel="deliveries/s",
        title="fan-out, one sender flat out (grpc-go members)",
    )
    left.grid(True, which="both", alpha=0.3)
    left.legend()
    labels = ["p50 ms", "p99 ms", "max ms"]
    width = 0.25
    for i, kind in enumerate(SERVERS):
        values = [figures["latency"][kind][label]["median"] for label in labels]
        right.bar([x + (i - 1) * width for x in range(len(labels))], values, width, label=kind)
    right.set(
        yscale="log",
        xticks=range(len(labels)),
        xticklabels=labels,
        ylabel="ms",
        title=f"latency, {scale.latency_rate:,.0f} messages/s into {scale.latency_members}",
    )
    right.grid(True, axis="y", which="both", alpha=0.3)
    right.legend()
    chart.tight_layout()
    chart.savefig(path, dpi=100)


def check_smoke(results: dict[str, Any], scale: Scale) -> list[str]:
    """What must hold even on a loaded CI machine: the machinery counts right."""
    problems = []
    runs = results["runs"]
    for kind in SERVERS:
        for s in runs[f"fanout_{scale.fanout_sizes[0]}"][kind]:
            wrong = s["lost"] or s["errors"] or s["order_violations"] or s["duplicates"]
            if wrong or not s["sent"]:
                problems.append(f"{kind} fan-out: {json.dumps(s)[:1500]}")
        for key in ("joins_one_by_one", "joins_all_at_once"):
            for s in runs[key][kind]:
                if s["join"]["confirmed"] != scale.join_members:
                    problems.append(f"{kind} {key}: {s['join']}")
        for s in runs["memory"][kind]:
            if s["held"] != scale.idle_members or not s["rss_kib"]["after"]:
                problems.append(f"{kind} memory: {s['join']} {s['rss_kib']}")
        for s in runs["churn"][kind]:
            if len(s["rss_kib"]) != scale.churn_rounds:
                problems.append(f"{kind} churn: {s['rss_kib']}")
        for s in runs["latency"][kind]:
            if not s["latency"]["count"]:
                problems.append(f"{kind} latency: nothing measured")
        for s in runs[f"raw_{scale.raw_sizes[0]}"][kind]:
            if not s["deliveries_per_s"]:
                problems.append(f"{kind} raw HTTP/2 fan-out: nothing delivered")
    for key, typing in STORM:
        if not runs.get(key, {}).get("purechat"):
            problems.append(f"typing storm: {key} did not run")
        for s in runs.get(key, {}).get("purechat", []):
            typed = s["typists"]
            wrong = s["lost"] or s["errors"] or typed["ended"]
            if wrong or not s["sent"] or (typing and typed["signals"] < scale.storm_typists):
                problems.append(f"typing storm ({key}): {json.dumps(s)[:1500]}")
    for key in ("shared_fanout", "cluster_fanout"):
        for s in runs.get(key, {}).get("purechat", []):
            if s["lost"] or not s["sent"]:
                problems.append(f"two servers ({key}): {json.dumps(s)[:1500]}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long check for CI")
    parser.add_argument(
        "--shared",
        action="store_true",
        help="only the two-server runs (one Redis, a cluster), printed; nothing written",
    )
    args = parser.parse_args()
    scale = SMOKE if args.smoke else FULL
    command = "just bench-smoke" if args.smoke else "just bench"
    started = time.monotonic()
    if args.shared:
        with tempfile.TemporaryDirectory() as work:
            trio.run(measure_shared, scale, build_go(Path(work)))
        return
    with tempfile.TemporaryDirectory() as work:
        go = build_go(Path(work))
        results = trio.run(measure_all, scale, go)
    results["meta"] = {
        "command": command,
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "commit": _commit(),
        "machine": machine(),
        "versions": _versions(),
        "scale": asdict(scale),
        "seconds": round(time.monotonic() - started),
    }
    text = report(results, scale, command)
    if args.smoke:
        print(text)
        if problems := check_smoke(results, scale):
            print("\nSMOKE RUN FAILED:", *problems, sep="\n", file=sys.stderr)
            sys.exit(1)
        _log(f"smoke run passed in {results['meta']['seconds']} s")
        return
    (ROOT / "BENCHMARKS.md").write_text(text)
    plot(results, scale, ROOT / "bench" / "fanout.png")
    (ROOT / "bench" / "results.json").write_text(json.dumps(results, indent=1))
    print(text)


if __name__ == "__main__":
    main()
