"""Typists for bench/run.py's typing storm: purechat.v1 members that type, over raw HTTP/2.

Each member is bench/loadgen.py's (one connection, a huge receive window, messages
counted by their length prefixes, never decoded, so reading the fan-out costs little)
on /purechat.v1.Chat/Connect: it joins, and with --typing sends a TypingSignal every
--every seconds (the first ones spread over that time). Prints {"ready": true} once
every member is welcomed (and, typing, has typed once), then, when stdin gives a line,
one JSON line: signals sent, members whose stream ended.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
from loadgen import Member, Stats  # noqa: E402

from purechat.pb import purechat_v1_pb2 as v1  # noqa: E402


def grpc_message(message: v1.ClientFrame) -> bytes:
    body = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(body)) + body


async def connect(host: str, port: int) -> Member:
    """A loadgen Member whose stream is purechat.v1's Connect."""
    return await Member.connect(host, port, path="/purechat.v1.Chat/Connect")


async def typists(args: argparse.Namespace) -> None:
    stats = Stats(expected=args.members)
    never = [float("inf"), float("inf")]  # nothing is counted: only kept read
    signals = 0
    typed_once = trio.Event()
    typing = grpc_message(v1.ClientFrame(typing=v1.TypingSignal()))

    async def type_on(member: Member, first: float) -> None:
        nonlocal signals
        await trio.sleep(first)
        while True:
            await member.send(typing)
            signals += 1
            if signals == args.members:
                typed_once.set()
            await trio.sleep(args.every)

    async with trio.open_nursery() as nursery:
        members = []
        for n in range(args.members):
            member = await connect(args.host, args.port)
            join = v1.ClientFrame(join=v1.Join(name=f"typist{n}", room=args.room))
            await member.send(grpc_message(join))
            nursery.start_soon(member.receive, stats, never, False)
            members.append(member)
        await stats.all_reached.wait()  # every member welcomed
        if args.typing:
            for n, member in enumerate(members):
                nursery.start_soon(type_on, member, n * args.every / args.members)
            await typed_once.wait()
        print(json.dumps({"ready": True}), flush=True)
        await trio.to_thread.run_sync(sys.stdin.readline)
        ended = stats.ended
        nursery.cancel_scope.cancel()
    print(json.dumps({"signals": signals, "ended": ended}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--members", type=int, default=1)
    parser.add_argument("--typing", action="store_true", help="type (else only be there)")
    # The server takes a member's typing at most once every 3 s: a little over it.
    parser.add_argument("--every", type=float, default=3.1, help="seconds between signals")
    trio.run(typists, parser.parse_args())


if __name__ == "__main__":
    main()
