"""Sending and receiving on anyio byte streams without leaving reference cycles.

anyio's trio backend turns socket errors into its own in `_convert_socket_error(exc)`,
and re-raises a cancellation from inside it (`raise exc`), so the exception's traceback
holds that frame and the frame holds the exception (anyio 4.16): every socket send or
receive that is cancelled, which is how a connection usually ends, leaves a cycle that
only the collector frees. The collector runs rarely in a server (cli.py), so these
wrappers clear the finished frames of whatever such a call raises as it passes, and
re-raise it unchanged. Every send and receive of purechat's listeners goes through them.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import Any

import anyio.abc


async def send(stream: anyio.abc.ByteSendStream, data: bytes) -> None:
    try:
        await stream.send(data)
    except BaseException as error:
        _forget_frames(error)
        raise


async def receive(stream: anyio.abc.ByteReceiveStream, max_bytes: int) -> bytes:
    try:
        return await stream.receive(max_bytes)
    except BaseException as error:
        _forget_frames(error)
        raise


async def send_eof(stream: anyio.abc.ByteStream) -> None:
    try:
        await stream.send_eof()
    except BaseException as error:
        _forget_frames(error)
        raise


class AcyclicStream(anyio.abc.ByteStream):
    """A byte stream whose every send and receive goes through the functions above:
    for listeners that hand the stream to code that is not theirs (TLS, h11, wsproto)."""

    def __init__(self, inner: anyio.abc.ByteStream):
        self._inner = inner

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await receive(self._inner, max_bytes)

    async def send(self, item: bytes) -> None:
        await send(self._inner, item)

    async def send_eof(self) -> None:
        await send_eof(self._inner)

    async def aclose(self) -> None:
        await self._inner.aclose()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return self._inner.extra_attributes


def _forget_frames(error: BaseException) -> None:
    """Clear the locals of the finished frames error passed through (and those of the
    errors it was raised from): the frames stay for the traceback, the cycles go."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        traceback.clear_frames(current.__traceback__)
        current = current.__cause__ or current.__context__
