"""Load generator: original-contract members over raw HTTP/2, one connection each.

The generator must not be the bottleneck, so a member here is a socket and a frame
parser written for speed, not a gRPC library: it opens one JoinChat stream with a
huge receive window, then counts gRPC messages by their 5-byte length prefixes
without decoding them (except where latency is measured, where the text carries the
send time). A worker process runs many members under trio and prints one JSON line
of results. bench/run.py starts the workers; `python bench/loadgen.py --help` too.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from dataclasses import dataclass, field

import hpack
import trio

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
ACK, END_STREAM, END_HEADERS = 0x1, 0x1, 0x4
MAX_WINDOW = 2**31 - 1
# The original contract's one method, the path every load member joins by default.
JOIN_CHAT = "/chat.ChatService/JoinChat"
# A frame header: 3-byte length and 1-byte type read as one int, flags, stream id.
FRAME = struct.Struct(">IBI")


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def chat_message(text: bytes) -> bytes:
    """A framed chat.ChatMessage{user_id: "bench", text}, encoded by hand."""
    body = b"\x0a\x05bench" + b"\x12" + _varint(len(text)) + text
    return b"\x00" + struct.pack(">I", len(body)) + body


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def text_of(message: bytes) -> bytes:
    """The text field of a serialised ChatMessage (enough protobuf for our own messages)."""
    i = 0
    while i < len(message):
        key = message[i]
        i += 1
        length = 0
        shift = 0
        if key & 7 == 0:  # varint field (timestamp)
            while message[i] & 0x80:
                i += 1
            i += 1
            continue
        while True:
            byte = message[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if key >> 3 == 2:
            return message[i : i + length]
        i += length
    return b""


@dataclass
class Stats:
    received: int = 0  # messages received inside the measuring window
    reached: int = 0  # members that received at least one message
    expected: int = 0
    all_reached: trio.Event = field(default_factory=trio.Event)
    latencies_ns: list[int] = field(default_factory=list)
    ended: int = 0  # members whose stream or connection ended


class Member:
    """One JoinChat stream on its own connection."""

    def __init__(self, sock: trio.SocketStream, *, window: int = MAX_WINDOW):
        self.sock = sock
        self.window = window
        self.send_window = 65535  # the server's, for our DATA
        self.stream_send_window = 65535
        self.peer_initial_window = 65535
        self.window_opened = trio.Event()
        self.writing = trio.Lock()  # the sender's data and the reader's replies share it

    async def write(self, data: bytes) -> None:
        async with self.writing:
            await self.sock.send_all(data)

    @classmethod
    async def connect(
        cls, host: str, port: int, *, window: int = MAX_WINDOW, path: str = JOIN_CHAT
    ) -> Member:
        sock = await trio.open_tcp_stream(host, port)
        member = cls(sock, window=window)
        settings = struct.pack(">HI", 0x2, 0) + struct.pack(">HI", 0x4, window)
        headers = hpack.Encoder().encode(
            [
                (":method", "POST"),
                (":scheme", "http"),
                (":path", path),
                (":authority", f"{host}:{port}"),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            ]
        )
        opening = PREFACE + frame(SETTINGS, 0, 0, settings)
        if window > 65535:
            opening += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", window - 65535))
        opening += frame(HEADERS, END_HEADERS, 1, headers)
        await sock.send_all(opening)
        return member

    async def send(self, payload: bytes) -> None:
        """Send framed gRPC bytes on the stream, within the server's windows."""
        view = memoryview(payload)
        while view:
            allowed = min(self.send_window, self.stream_send_window, 16384, len(view))
            if allowed <= 0:
                self.window_opened = trio.Event()
                await self.window_opened.wait()
                continue
            self.send_window -= allowed
            self.stream_send_window -= allowed
            await self.write(frame(DATA, 0, 1, bytes(view[:allowed])))
            view = view[allowed:]

    async def receive(self, stats: Stats, measure: list[float], latency: bool) -> None:
        """Read until the connection ends, counting messages received inside measure.

        measure is [from, until] in Unix time, filled in once the command arrives.
        """
        buffer = bytearray()
        grpc = bytearray()
        consumed = 0
        reached = False
        try:
            while True:
                data = await self.sock.receive_some(262144)
                if not data:
                    return
                buffer += data
                position = 0
                replies = bytearray()
                while len(buffer) - position >= 9:
                    word, flags, stream = FRAME.unpack_from(buffer, position)
                    length, kind = word >> 8, word & 0xFF
                    stream &= 0x7FFFFFFF
                    if len(buffer) - position - 9 < length:
                        break
                    body_at = position + 9
                    if kind == DATA:
                        grpc += buffer[body_at : body_at + length]
                        consumed += length
                    elif kind == HEADERS:
                        if flags & END_STREAM:
                            return
                    elif kind == SETTINGS and not flags & ACK:
                        replies += frame(SETTINGS, ACK, 0)
                        self._apply_settings(buffer[body_at : body_at + length])
                    elif kind == PING and not flags & ACK:
                        replies += frame(PING, ACK, 0, bytes(buffer[body_at : body_at + 8]))
                    elif kind == WINDOW_UPDATE:
                        increment = struct.unpack_from(">I", buffer, body_at)[0] & 0x7FFFFFFF
                        if stream == 0:
                            self.send_window += increment
                        else:
                            self.stream_send_window += increment
                        self.window_opened.set()
                    elif kind in (GOAWAY, RST_STREAM):
                        return
                    position = body_at + length
                del buffer[:position]
                now = time.time()
                counting = measure[0] <= now < measure[1]
                i = 0
                while len(grpc) - i >= 5:
                    size = int.from_bytes(grpc[i + 1 : i + 5], "big")
                    if len(grpc) - i - 5 < size:
                        break
                    if not reached:
                        reached = True
                        stats.reached += 1
                        if stats.reached == stats.expected:
                            stats.all_reached.set()
                    if counting:
                        stats.received += 1
                        if latency:
                            sent = text_of(bytes(grpc[i + 5 : i + 5 + size]))[:19]
                            if sent.isdigit():
                                stats.latencies_ns.append(time.time_ns() - int(sent))
                    i += 5 + size
                del grpc[:i]
                if consumed > self.window // 2:  # give the window back in large steps
                    update = struct.pack(">I", consumed)
                    replies += frame(WINDOW_UPDATE, 0, 0, update)
                    replies += frame(WINDOW_UPDATE, 0, 1, update)
                    consumed = 0
                if replies:
                    await self.write(bytes(replies))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return
        finally:
            stats.ended += 1

    def _apply_settings(self, payload: bytes) -> None:
        for at in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HI", payload, at)
            if key == 0x4:  # relative to the previous setting: grpc-go changes it (BDP)
                self.stream_send_window += value - self.peer_initial_window
                self.peer_initial_window = value
                self.window_opened.set()


async def worker(args: argparse.Namespace) -> None:
    """Connect, report ready, then follow one command from stdin and report results.

    The command is a JSON line: {"measure_from", "measure_until"} (Unix times) and
    optionally "send_rate" (messages/s from this worker's first member; 0 = flat out).
    """
    stats = Stats(expected=args.members)
    window: list[float] = [float("inf"), float("inf")]
    started = time.monotonic()
    async with trio.open_nursery() as nursery:
        members = []
        for _ in range(args.members):
            member = await Member.connect(args.host, args.port, window=args.window)
            members.append(member)
            if not args.stalled:
                nursery.start_soon(member.receive, stats, window, args.latency)
        print(
            json.dumps({"ready": True, "connect_seconds": time.monotonic() - started}), flush=True
        )
        command = json.loads(await trio.to_thread.run_sync(sys.stdin.readline))
        window[:] = [command["measure_from"], command["measure_until"]]
        if command.get("send_rate") is not None:
            nursery.start_soon(_send, members[0], command["send_rate"], window[1])
        with trio.move_on_after(max(0.0, window[1] - time.time()) + 0.3):
            if args.until_reached:
                await stats.all_reached.wait()
            else:
                await trio.sleep_forever()
        nursery.cancel_scope.cancel()
    result = {
        "received": stats.received,
        "members_reached": stats.reached,
        "latencies_ns": stats.latencies_ns,
        "ended": stats.ended - (0 if args.stalled else args.members),
    }
    print(json.dumps(result), flush=True)


async def _send(member: Member, rate: float, deadline: float) -> None:
    """Send until the deadline (or the server closes: the idle run's probe outlives its
    server); flat out (rate 0) or at a steady rate."""
    try:
        await _send_until(member, rate, deadline)
    except trio.BrokenResourceError:
        print("sender: the server closed the connection", file=sys.stderr, flush=True)


async def _send_until(member: Member, rate: float, deadline: float) -> None:
    filler = b"x" * 64
    if rate == 0:
        batch = chat_message(filler) * 64
        while time.time() < deadline:
            await member.send(batch)
        return
    interval = 1.0 / rate
    next_at = time.time()
    while next_at < deadline:
        now = time.time()
        if now < next_at:
            await trio.sleep(next_at - now)
        stamp = str(time.time_ns()).encode()
        await member.send(chat_message(stamp + filler[len(stamp) :]))
        next_at += interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--window", type=int, default=MAX_WINDOW)
    parser.add_argument("--stalled", action="store_true", help="never read (a stuck member)")
    parser.add_argument("--latency", action="store_true", help="decode send times")
    parser.add_argument(
        "--until-reached", action="store_true", help="finish once every member got a message"
    )
    trio.run(worker, parser.parse_args())


if __name__ == "__main__":
    main()
