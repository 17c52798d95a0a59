"""A real Redis Cluster for the scale-out tests: six redis-server on loopback ports of
their own, three primaries with a replica each, made once per test session.

Synchronous (subprocess and plain sockets), so a session-scoped fixture can own it and
the benchmarks can use it too; the tests call its slow parts through a thread.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from purechat.store.redis_keys import key_slot, room_tag

REDIS = shutil.which("redis-server") or shutil.which("valkey-server")
REDIS_CLI = shutil.which("redis-cli") or shutil.which("valkey-cli")
# Short, so a failover takes a couple of seconds; long enough that a loaded machine does
# not fail a node over for a stall.
NODE_TIMEOUT_MS = 1500


class ClusterTrouble(RuntimeError):
    """The cluster did not get where it was asked to (with what redis said)."""


@dataclass(frozen=True)
class Node:
    id: str
    port: int
    primary: bool
    slots: tuple[tuple[int, int], ...]
    failed: bool
    replica_of: str  # the primary's id ("-" for a primary)

    def owns(self, slot: int) -> bool:
        return any(first <= slot <= last for first, last in self.slots)


def _ports(count: int) -> list[int]:
    """Loopback ports free for a node and for its cluster bus (port + 10000)."""
    found: list[int] = []
    rng = random.Random()
    while len(found) < count:
        port = rng.randrange(20000, 30000)
        if port in found or not (_free(port) and _free(port + 10000)):
            continue
        found.append(port)
    return found


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Tls:
    """The nodes serve TLS only (clients, cluster bus and replication alike)."""

    ca: Path
    cert: Path
    key: Path


class RedisCluster:
    def __init__(
        self,
        directory: Path,
        nodes: int = 6,
        replicas: int = 1,
        *,
        tls: Tls | None = None,
        password: str | None = None,
    ):
        self.directory = directory
        self.ports = _ports(nodes)
        self.replicas = replicas
        self.tls = tls
        self.password = password
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        # How redis-cli reaches the nodes.
        self._cli = [REDIS_CLI or "redis-cli"]
        if tls is not None:
            self._cli += ["--tls", "--cacert", str(tls.ca)]
        if password is not None:
            self._cli += ["-a", password, "--no-auth-warning"]

    def command(self, port: int, *args: str, timeout: float = 5.0) -> str:
        """One command through redis-cli (text reply, as redis-cli prints it)."""
        done = subprocess.run(
            [*self._cli, "-p", str(port), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return done.stdout.strip()

    @staticmethod
    def require() -> None:
        """Skip (fail in CI) without redis-server and redis-cli."""
        if REDIS is None or REDIS_CLI is None:
            if os.environ.get("PURECHAT_REQUIRE_REDIS"):
                pytest.fail("redis-server and redis-cli are required here (CI: redis-tools)")
            pytest.skip("no redis-server or redis-cli on this machine (.ci/run installs them)")

    def url(self, replicas: int = 0) -> str:
        """Two of the nodes (any finds the rest), and how many replicas a send waits for."""
        nodes = ",".join(f"127.0.0.1:{port}" for port in self.ports[:2])
        scheme = "rediss+cluster" if self.tls else "redis+cluster"
        credentials = f":{self.password}@" if self.password else ""
        options = [f"replicas={replicas}"] if replicas else []
        if self.tls is not None:
            options.append(f"ssl_ca_certs={self.tls.ca}")
        return f"{scheme}://{credentials}{nodes}" + ("?" + "&".join(options) if options else "")

    def start(self) -> None:
        for port in self.ports:
            self._spawn(port)
        for port in self.ports:
            self._until_answering(port)
        create = [*self._cli, "--cluster", "create"]
        create += [f"127.0.0.1:{port}" for port in self.ports]
        create += ["--cluster-replicas", str(self.replicas), "--cluster-yes"]
        done = subprocess.run(create, check=False, capture_output=True, text=True, timeout=60)
        if done.returncode:
            raise ClusterTrouble(f"redis-cli --cluster create: {done.stdout[-2000:]}")
        self.until_healthy()

    def stop(self) -> None:
        for process in self.processes.values():
            process.kill()
        for process in self.processes.values():
            process.wait()
        self.processes.clear()

    def _spawn(self, port: int) -> None:
        assert REDIS is not None
        where = self.directory / str(port)
        where.mkdir(exist_ok=True)
        listen = ["--port", str(port)]
        if self.tls is not None:
            listen = ["--port", "0", "--tls-port", str(port), "--tls-cluster", "yes",
                      "--tls-replication", "yes", "--tls-auth-clients", "no",
                      "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                      "--tls-ca-cert-file", str(self.tls.ca)]  # fmt: skip
        if self.password is not None:
            listen += ["--requirepass", self.password, "--masterauth", self.password]
        self.processes[port] = subprocess.Popen(
            [
                REDIS,
                *listen,
                "--bind", "127.0.0.1",
                "--dir", str(where),
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # A replica fails over however long it was away; the other shards serve
                # while one fails over.
                "--cluster-replica-validity-factor", "0",
                "--cluster-require-full-coverage", "no",
                "--appendonly", "no",
                "--save", "",
                # A replica (re)joining syncs at once, not after the default 5 s.
                "--repl-diskless-sync-delay", "0",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def _until_answering(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while self.command(port, "PING") != "PONG":
            if time.monotonic() > deadline:
                raise ClusterTrouble(f"redis-server on port {port} does not answer")
            time.sleep(0.02)

    # -- what the cluster looks like ---------------------------------------------------

    def nodes(self, asking: int | None = None) -> list[Node]:
        """CLUSTER NODES, as one live node sees it."""
        port = asking or next(p for p in self.ports if self.alive(p))
        found = []
        for line in self.command(port, "CLUSTER", "NODES").splitlines():
            fields = line.split()
            slots = []
            for part in fields[8:]:
                if part.startswith("["):  # a slot being moved
                    continue
                first, _, last = part.partition("-")
                slots.append((int(first), int(last or first)))
            found.append(
                Node(
                    fields[0],
                    int(fields[1].split("@")[0].rsplit(":", 1)[1]),
                    "master" in fields[2],
                    tuple(slots),
                    "fail" in fields[2],
                    fields[3],
                )
            )
        return found

    def alive(self, port: int) -> bool:
        process = self.processes.get(port)
        return process is not None and process.poll() is None

    def owner(self, room: str) -> Node:
        """The primary that holds room's slot."""
        slot = key_slot(room_tag(room, cluster=True))
        return next(n for n in self.nodes() if n.primary and not n.failed and n.owns(slot))

    def room_on(self, node: Node, prefix: str) -> str:
        """A room name whose slot is the first slot node holds (the one
        `redis-cli --cluster reshard` moves first)."""
        first = node.slots[0][0]
        number = 0
        while key_slot(f"{prefix}{number}") != first:
            number += 1
        return f"{prefix}{number}"

    # -- doing things to it ------------------------------------------------------------

    def replica(self, primary: Node) -> Node:
        return next(n for n in self.nodes() if n.replica_of == primary.id and not n.failed)

    def fail_over(self, room: str) -> None:
        """CLUSTER FAILOVER: room's primary's replica takes over (after catching up: an
        operator's failover, nothing lost) and the old primary becomes its replica."""
        replica = self.replica(self.owner(room))
        answer = self.command(replica.port, "CLUSTER", "FAILOVER")
        if answer != "OK":
            raise ClusterTrouble(f"CLUSTER FAILOVER: {answer}")
        deadline = time.monotonic() + 30
        while self.owner(room).id != replica.id:
            if time.monotonic() > deadline:
                raise ClusterTrouble(f"{replica.port} did not take over: {self.nodes()}")
            time.sleep(0.05)
        self.until_healthy()

    def kill(self, port: int) -> None:
        """kill -9 a node."""
        process = self.processes.pop(port)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def reshard(self, source: Node, target: Node, slots: int = 1) -> None:
        """redis-cli --cluster reshard: move source's first slots to target."""
        done = subprocess.run(
            [
                *self._cli, "--cluster", "reshard", f"127.0.0.1:{target.port}",
                "--cluster-from", source.id, "--cluster-to", target.id,
                "--cluster-slots", str(slots), "--cluster-yes",
            ],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if done.returncode:
            raise ClusterTrouble(f"redis-cli --cluster reshard: {done.stdout[-2000:]}")
        self.until_healthy()

    def to_the_front(self, room: str) -> Node:
        """Make room's slot the first its primary holds, so that `redis-cli --cluster
        reshard` of one slot moves it; the room must have no keys yet. Its primary."""
        slot = key_slot(room_tag(room, cluster=True))
        owner = self.owner(room)
        if owner.slots[0][0] == slot:
            return owner
        later = [n for n in self.nodes() if n.primary and not n.failed and n.slots[0][0] > slot]
        if not later:
            raise ClusterTrouble(f"no primary's slots start after slot {slot} of {room}")
        target = min(later, key=lambda n: n.slots[0][0])
        # What redis-cli does for a slot without keys.
        self.command(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", owner.id)
        self.command(owner.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target.id)
        for node in [target, owner, *(n for n in self.nodes() if n.primary and n.id not in
                                       (owner.id, target.id))]:  # fmt: skip
            self.command(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", target.id)
        self.until_healthy()
        return self.owner(room)

    def flush(self) -> None:
        """Empty every primary (a fresh store for the next test)."""
        for node in self.nodes():
            if node.primary and not node.failed:
                self.command(node.port, "FLUSHALL")

    def heal(self) -> None:
        """Restart nodes killed by a test (they come back as replicas) and wait until
        every slot is served and every primary has a replica in sync."""
        for port in self.ports:
            if not self.alive(port):
                self._until_failed_over(port)
                self._spawn(port)
                self._until_answering(port)
        self.until_healthy()

    def _until_failed_over(self, port: int) -> None:
        """A killed primary may restart only once its replica took over (it comes back
        empty, and would otherwise serve its slots empty)."""
        deadline = time.monotonic() + 30
        while True:
            nodes = self.nodes()
            dead = next(n for n in nodes if n.port == port)
            if not (dead.primary and dead.slots):
                return
            if time.monotonic() > deadline:
                raise ClusterTrouble(f"node {port} was never failed over: {nodes}")
            time.sleep(0.05)

    def until_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._healthy():
            if time.monotonic() > deadline:
                raise ClusterTrouble(f"the cluster did not settle: {self.nodes()}")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        for port in self.ports:
            if "cluster_state:ok" not in self.command(port, "CLUSTER", "INFO"):
                return False
        views = {
            tuple(sorted((n.id, n.primary, n.slots) for n in self.nodes(port)))
            for port in self.ports
        }
        if len(views) != 1:
            return False  # the nodes do not agree yet
        nodes = self.nodes()
        primaries = len(self.ports) // (self.replicas + 1)
        if any(n.failed for n in nodes) or sum(n.primary for n in nodes) != primaries:
            return False
        for node in nodes:
            replication = self.command(node.port, "INFO", "replication")
            synced = (
                f"connected_slaves:{self.replicas}" if node.primary else "master_link_status:up"
            )
            if synced not in replication:
                return False
        return True
