"""A real redis-server for the scale-out tests, on a free loopback port."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from functools import partial
from pathlib import Path

import pytest
import trio

REDIS = shutil.which("redis-server") or shutil.which("valkey-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisProcess:
    """redis-server with an append-only file fsynced on every write, so it can restart
    without losing what it acknowledged."""

    def __init__(self, directory: Path, port: int, *options: str):
        self.directory = directory
        self.port = port
        self.options = options  # more redis-server options (TLS, a password)
        self.process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, nursery: trio.Nursery) -> None:
        if REDIS is None:
            if os.environ.get("PURECHAT_REQUIRE_REDIS"):
                pytest.fail("redis-server is required here (CI) and was not found")
            pytest.skip("no redis-server or valkey-server on this machine (.ci/run installs one)")
        command = [
            REDIS,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            *self.options,
        ]
        self.process = await nursery.start(
            partial(trio.run_process, command, stdout=subprocess.DEVNULL, check=False)
        )
        await self._until_answering()

    async def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()
        await self.process.wait()

    async def keys(self, pattern: str) -> list[str]:
        """KEYS pattern, over a plain socket (what is in Redis, not what purechat says)."""
        lines = (await self.command("KEYS", pattern)).split(b"\r\n")
        count = int(lines[0][1:])
        return sorted(line.decode() for line in lines[2 : 2 * count + 1 : 2])

    async def command(self, *args: str) -> bytes:
        """One command over a plain socket; its raw reply (read until complete)."""
        request = f"*{len(args)}\r\n".encode()
        for arg in args:
            request += f"${len(arg.encode())}\r\n{arg}\r\n".encode()
        async with await trio.open_tcp_stream("127.0.0.1", self.port) as stream:
            await stream.send_all(request)
            reply = b""
            while not _complete(reply):
                reply += await stream.receive_some(65536)
            return reply

    async def _until_answering(self) -> None:
        with trio.fail_after(10):
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                except OSError:
                    await trio.sleep(0.02)
                    continue
                async with stream:
                    await stream.send_all(b"PING\r\n")
                    # With a password it answers too, that one is needed.
                    if (await stream.receive_some(64)).startswith((b"+PONG", b"-NOAUTH")):
                        return


def _complete(reply: bytes) -> bool:
    """Whether a reply of the kinds the tests ask for (simple, integer, array of bulk
    strings) has arrived whole."""
    if not reply.endswith(b"\r\n"):
        return False
    if not reply.startswith(b"*"):
        return True
    lines = reply.split(b"\r\n")
    return len(lines) >= 2 * int(lines[0][1:]) + 2
