"""The reference peer: the original contract served by grpcio-asyncio, written plainly.

This is how a Python user would write the tutorial's broadcast server with grpcio's
asyncio API: a queue per member, a reader task per member that puts each message into
every queue, and the handler yielding from its queue. bench/run.py measures it beside
purechat under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_tools import protoc

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"


def _stubs(out: Path):  # type: ignore[no-untyped-def]
    protoc.main(
        [
            "grpc_tools.protoc",
            f"--proto_path={PROTO_DIR}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(PROTO_DIR / "chat.proto"),
        ]
    )
    sys.path.insert(0, str(out))
    return importlib.import_module("chat_pb2_grpc")


async def serve(port: int, rpc) -> None:  # type: ignore[no-untyped-def]
    class ChatService(rpc.ChatServiceServicer):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.queues: set[asyncio.Queue] = set()  # type: ignore[type-arg]

        async def JoinChat(self, request_iterator, context):  # type: ignore[no-untyped-def]
            queue: asyncio.Queue = asyncio.Queue()  # type: ignore[type-arg]
            self.queues.add(queue)

            async def read() -> None:
                async for message in request_iterator:
                    message.timestamp = int(time.time())
                    for member in self.queues:
                        member.put_nowait(message)

            reader = asyncio.create_task(read())
            try:
                while True:
                    yield await queue.get()
            finally:
                self.queues.discard(queue)
                reader.cancel()

    server = grpc.aio.server()
    rpc.add_ChatServiceServicer_to_server(ChatService(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(description="grpcio-asyncio chat server (reference)")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        rpc = _stubs(Path(out))
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.port, rpc))


if __name__ == "__main__":
    main()
