"""What operators rely on: health probes, reflection, metrics, logs, settings, admin."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import anyio
import grpc
import pytest
import trio
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from purechat.cli import _parser
from purechat.client.calls import V1Call
from purechat.core import Message
from purechat.ops.standard import message_class
from purechat.server.auth import TokenBook
from purechat.settings import SettingsError, defaults_from
from purechat.store import Appended, MemoryStore, StoreError
from purechat.transport import frame_message
from tests.helpers import Harness
from tests.processes import Lines, start


def _health(port: int, service: str = "") -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


async def test_a_healthy_server_is_serving_to_the_standard_health_client(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        for service in ("", "chat.ChatService", "purechat.v1.Chat"):
            status = await trio.to_thread.run_sync(_health, harness.port, service)
            assert status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            await trio.to_thread.run_sync(_health, harness.port, "no.Such")
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


class FlakyStore(MemoryStore):
    broken = False

    async def append(self, drafts: Sequence[Message]) -> list[Appended]:
        if self.broken:
            raise StoreError("the disk went away")
        return await super().append(drafts)


async def test_not_serving_while_the_store_fails_and_serving_once_it_answers(
    start_server,
) -> None:
    store = FlakyStore()
    harness: Harness = await start_server(store=store)
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        store.broken = True
        await alice.call.send("lost?", "x")
        await alice.next_of("error")
        status = await trio.to_thread.run_sync(_health, harness.port)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        store.broken = False
        await alice.say("lost?", "x")  # sent again, as the error asks: stored now
        status = await trio.to_thread.run_sync(_health, harness.port)
        assert status == health_pb2.HealthCheckResponse.SERVING


async def test_watch_hears_not_serving_when_the_server_shuts_down(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        connection, _ = await harness.connection()
        stream = connection.start_call("grpc.health.v1.Health", "Watch", authority="test")
        request = message_class("grpc.health.v1.HealthCheckRequest")(service="")
        await stream.send_frames(frame_message(request.SerializeToString()))
        response = message_class("grpc.health.v1.HealthCheckResponse")
        first = await stream.receive()
        assert first is not None and response.FromString(first).status == 1  # SERVING
        harness.server.shutdown()
        second = await stream.receive()
        assert second is not None and response.FromString(second).status == 2  # NOT_SERVING


def _reflect(port: int) -> tuple[list[str], list[str]]:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(database)
        services = list(database.get_services())
        fields = []
        for name in (
            "chat.ChatMessage",
            "purechat.v1.ServerFrame",
            "grpc.health.v1.HealthCheckRequest",
        ):
            message = pool.FindMessageTypeByName(name)
            fields.append(f"{name}:{','.join(f.name for f in message.fields)}")
        method = pool.FindServiceByName("chat.ChatService").FindMethodByName("JoinChat")
        fields.append(f"JoinChat:{method.input_type.full_name}->{method.output_type.full_name}")
        return services, fields


async def test_reflection_lists_the_services_and_resolves_their_types(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        services, fields = await trio.to_thread.run_sync(_reflect, harness.port)
    assert set(services) >= {
        "chat.ChatService",
        "purechat.v1.Chat",
        "purechat.v1.Admin",
        "purechat.v1.Accounts",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    }
    assert fields == [
        "chat.ChatMessage:user_id,text,timestamp",
        "purechat.v1.ServerFrame:welcome,event,ack,error,read,typing,conversation",
        "grpc.health.v1.HealthCheckRequest:service",
        "JoinChat:chat.ChatMessage->chat.ChatMessage",
    ]


async def test_reflection_v1_answers_too(start_server) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(10):
        connection, _ = await harness.connection()
        stream = connection.start_call(
            "grpc.reflection.v1.ServerReflection", "ServerReflectionInfo", authority="test"
        )
        request = message_class("grpc.reflection.v1.ServerReflectionRequest")(
            file_containing_symbol="purechat.v1.Chat"
        )
        await stream.send_frames(frame_message(request.SerializeToString()))
        raw = await stream.receive()
        assert raw is not None
        answer = message_class("grpc.reflection.v1.ServerReflectionResponse").FromString(raw)
        assert answer.WhichOneof("message_response") == "file_descriptor_response"
        assert len(answer.file_descriptor_response.file_descriptor_proto) == 1


async def _scrape(port: int) -> str:
    async with await anyio.connect_tcp("127.0.0.1", port) as sock:
        await sock.send(b"GET /metrics HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            try:
                data += await sock.receive()
            except anyio.EndOfStream:
                break
    return data.decode()


async def test_metrics_count_what_happens(start_server) -> None:
    harness: Harness = await start_server(metrics_port=0)
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        bob = await harness.v1("bob", "ops")
        await alice.say("one")
        await alice.call.send("", "empty")
        await alice.next_of("error")
        await bob.say("two")
        await harness.v1("carol", after_seq=0)
        assert harness.server.metrics_port is not None
        text = await _scrape(harness.server.metrics_port)
    lines = set(text.splitlines())
    assert text.startswith("HTTP/1.1 200 ")
    assert "purechat_members 3.0" in lines
    assert "purechat_rooms 2.0" in lines
    assert "purechat_messages_received_total 2.0" in lines
    assert 'purechat_rejected_messages_total{reason="empty_text"} 1.0' in lines
    assert "purechat_store_write_seconds_count 2.0" in lines
    assert "purechat_resume_catch_up_messages_count 1.0" in lines
    assert any(line.startswith("purechat_deliveries_total") for line in lines)
    assert any(line.startswith("purechat_evictions_total 0.0") for line in lines)


async def test_json_logs_say_who_joined_from_where_and_never_what_was_said(
    nursery,
) -> None:
    with trio.fail_after(30):
        server = await start(
            nursery, "serve", "--port", "0", "--store", "memory://", "--log-format", "json"
        )
        port = int((await Lines(server.stdout).next() or "").split(":")[1].split(";")[0])
        client = await start(nursery, "join", "--server", f"127.0.0.1:{port}", "--name", "spy")
        assert client.stdin is not None
        await client.stdin.send_all(b"the secret plan\n")
        await client.stdin.aclose()
        await client.wait()
        server.send_signal(15)
        await server.wait()
        log = await Lines(server.stderr).rest()
    entries = [json.loads(line) for line in log]
    messages = [entry["message"] for entry in entries]
    assert any(m.startswith("spy joined lobby from 127.0.0.1:") for m in messages)
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    assert not any("secret" in line for line in log)


def test_settings_come_from_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "purechat.toml"
    config.write_text('port = 6000\nrate-limit = 3\nstore = "memory://"\n')
    parser, serve = _parser()
    serve.set_defaults(
        **defaults_from(serve, config, {"PURECHAT_RATE_LIMIT": "7", "PURECHAT_LOG_FORMAT": "json"})
    )
    args = parser.parse_args(["serve", "--store", "sqlite:///x.db"])
    assert (args.port, args.rate_limit, args.log_format) == (6000, 7.0, "json")
    assert args.store == "sqlite:///x.db"


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("colour = 'red'\n", {}, "unknown setting 'colour'"),
        ("port = 'high'\n", {}, "'high' is not a valid value"),
        ("", {"PURECHAT_LOG_FORMAT": "xml"}, "PURECHAT_LOG_FORMAT: 'xml' is not one of"),
        ("port = \n", {}, "is not valid TOML"),
    ],
)
def test_bad_settings_are_sentences(tmp_path: Path, text: str, environ: dict, message: str) -> None:
    config = tmp_path / "purechat.toml"
    config.write_text(text)
    _, serve = _parser()
    with pytest.raises(SettingsError, match=message):
        defaults_from(serve, config, environ)


async def test_rooms_and_who_ask_a_running_server_with_a_token(
    start_server, nursery, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("admin-token root\nuser-token alice\n")
    harness: Harness = await start_server(tokens=TokenBook(tokens))
    with trio.fail_after(30):
        connection, _ = await harness.connection()
        call = V1Call(connection, authority="test", token="user-token")
        await call.join("ignored", "ops")
        assert await call.receive() is not None
        where = ["--server", f"127.0.0.1:{harness.port}"]
        rooms = await start(nursery, "rooms", *where, "--token", "admin-token")
        who = await start(nursery, "who", "ops", *where, "--token", "admin-token")
        refused = await start(nursery, "rooms", *where)
        outputs = []
        for process in (rooms, who, refused):
            await process.wait()
            outputs.append((process.returncode, await Lines(process.stdout).rest()))
        refused_error = await Lines(refused.stderr).rest()
    assert outputs[0] == (0, ["ops\t1 members\tlast message #0"])
    assert outputs[1] == (0, ["alice"])
    assert outputs[2][0] == 1
    assert refused_error == [
        "purechat: The server requires a token: pass one with --token or PURECHAT_TOKEN."
    ]


def test_every_just_recipe_is_listed_with_a_sentence_of_its_own() -> None:
    """`just --list` shows a recipe's comment line above it: a comment of several lines
    showed its last line, a fragment ("one sender flat out.")."""
    just = shutil.which("just")
    assert just is not None, "just comes with the test extras (rust-just)"
    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run(
        [just, "--list", "--unsorted"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    descriptions = {line.split()[0]: line.partition(" # ")[2] for line in listed}
    assert {"serve", "test", "lint", "bench", "profile", "web-screenshot"} <= set(descriptions)
    fragments = {
        recipe: said
        for recipe, said in descriptions.items()
        if not (said[:1].isupper() and said.endswith("."))
    }
    assert fragments == {}
