"""Real grpcio clients, generated from proto/chat.proto as a tutorial user would."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from types import ModuleType

import grpc
import pytest
import trio

from tests.helpers import Harness

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"
# The original contract, byte for byte as the tutorial shipped it: changing it breaks
# every client generated from it.
ORIGINAL_CHAT_PROTO_SHA256 = "c097d6c28e2fd1b8713dad46521ab3c627056b855abf56fc2726b4fc7ab0c67e"


def test_the_original_contract_is_unchanged() -> None:
    digest = hashlib.sha256((PROTO_DIR / "chat.proto").read_bytes()).hexdigest()
    assert digest == ORIGINAL_CHAT_PROTO_SHA256


def _chat(
    port: int, stubs: tuple[ModuleType, ModuleType], user: str, texts: list[str], expect: int
):
    """What the tutorial's Python client does: stream messages, print what comes back."""
    pb, rpc = stubs
    received = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = rpc.ChatServiceStub(channel)
        done_sending = threading.Event()

        def requests():
            for text in texts:
                yield pb.ChatMessage(user_id=user, text=text)
            done_sending.wait(10)

        responses = stub.JoinChat(requests(), timeout=10)
        for response in responses:
            received.append((response.user_id, response.text, response.timestamp))
            if len(received) == expect:
                done_sending.set()
                responses.cancel()
                break
    return received


async def test_grpcio_client_sees_its_own_message_with_the_server_time(
    start_server, tutorial_stubs
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        before = int(time.time())
        received = await trio.to_thread.run_sync(
            _chat, harness.port, tutorial_stubs, "PythonClient", ["hello", "again"], 2
        )
        after = int(time.time())
    assert [(user, text) for user, text, _ in received] == [
        ("PythonClient", "hello"),
        ("PythonClient", "again"),
    ]
    assert all(before <= stamp <= after for _, _, stamp in received)


async def test_two_grpcio_clients_with_one_name_both_chat(start_server, tutorial_stubs) -> None:
    harness: Harness = await start_server()
    watcher = await harness.v1("watcher")
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            for n in range(2):
                nursery.start_soon(
                    trio.to_thread.run_sync,
                    _chat,
                    harness.port,
                    tutorial_stubs,
                    "GoClient",
                    [f"from {n}"],
                    2,  # stays until both have spoken, so neither name is free again
                )
            seen = {(await watcher.next_message()).user for _ in range(2)}
    assert seen == {"GoClient", "GoClient-2"}


async def test_grpcio_client_gets_invalid_argument_naming_the_limit(
    start_server, tutorial_stubs
) -> None:
    harness: Harness = await start_server()
    pb, rpc = tutorial_stubs

    def too_long() -> grpc.RpcError:
        with grpc.insecure_channel(f"127.0.0.1:{harness.port}") as channel:
            responses = rpc.ChatServiceStub(channel).JoinChat(
                iter([pb.ChatMessage(user_id="big", text="x" * 5000)]), timeout=10
            )
            with pytest.raises(grpc.RpcError) as failure:
                list(responses)
            return failure.value

    with trio.fail_after(20):
        error = await trio.to_thread.run_sync(too_long)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "4096 bytes" in error.details()
