"""Running `purechat` as a child process from trio tests."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import trio

PURECHAT = [sys.executable, "-m", "purechat"]


async def start(nursery: trio.Nursery, *args: str) -> trio.Process:
    """Start `purechat ARGS` with piped stdio, owned (and killed at the end) by nursery."""
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [*PURECHAT, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    )
    return process


class Lines:
    """Lines from a child's pipe, read as they come."""

    def __init__(self, stream: trio.abc.ReceiveStream | None):
        assert stream is not None
        self._stream = stream
        self._buffer = b""

    async def next(self) -> str | None:
        """The next line without its newline, or None at end of output."""
        while b"\n" not in self._buffer:
            chunk = await self._stream.receive_some(65536)
            if not chunk:
                if self._buffer:
                    line, self._buffer = self._buffer, b""
                    return line.decode()
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    async def rest(self) -> list[str]:
        lines = []
        while (line := await self.next()) is not None:
            lines.append(line)
        return lines


async def send_lines(process: trio.Process, *lines: str, close: bool = False) -> None:
    assert process.stdin is not None
    await process.stdin.send_all("".join(f"{line}\n" for line in lines).encode())
    if close:
        await process.stdin.aclose()
