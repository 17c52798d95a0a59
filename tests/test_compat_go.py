"""A real grpc-go client, generated from proto/chat.proto as the tutorial's Go users would.

Built offline from Debian's Go packages (GOPATH mode, no module proxy): .ci/run installs
them, and these tests fail rather than skip there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from functools import partial
from pathlib import Path

import pytest
import trio

from tests.helpers import Harness
from tests.processes import Lines, send_lines

ROOT = Path(__file__).resolve().parent.parent
GOCODE = Path("/usr/share/gocode/src")
DEBIAN_PACKAGES = (
    "golang-go golang-google-grpc-dev golang-google-protobuf-dev "
    "golang-github-golang-protobuf-1-5-dev protoc-gen-go-grpc protobuf-compiler"
)


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tutorial's Go client, with code generated from proto/chat.proto now."""
    if not (shutil.which("go") and shutil.which("protoc") and shutil.which("protoc-gen-go-grpc")):
        if os.environ.get("PURECHAT_REQUIRE_GO"):
            pytest.fail(f"the Go client tests need {DEBIAN_PACKAGES} (CI installs them)")
        pytest.skip(f"no Go toolchain: apt-get install {DEBIAN_PACKAGES}")
    work = tmp_path_factory.mktemp("go")
    package = work / "src" / "purechatcompat"
    (package / "chatpb").mkdir(parents=True)
    (package / "client").mkdir()
    shutil.copy(ROOT / "tests" / "go" / "client" / "main.go", package / "client")
    env = os.environ | {
        "GO111MODULE": "off",
        "GOPATH": f"{work}:{GOCODE.parent}",
        "GOPROXY": "off",
        "GOFLAGS": "",
        "PATH": f"{work / 'bin'}:{os.environ['PATH']}",
    }
    steps = [
        ["go", "build", "-o", str(work / "bin" / "protoc-gen-go"),
         "google.golang.org/protobuf/cmd/protoc-gen-go"],
        ["protoc", f"--proto_path={ROOT / 'proto'}",
         f"--go_out={package / 'chatpb'}", "--go_opt=paths=source_relative",
         f"--go-grpc_out={package / 'chatpb'}", "--go-grpc_opt=paths=source_relative",
         str(ROOT / "proto" / "chat.proto")],
        ["go", "build", "-o", str(work / "bin" / "chat-client"), "purechatcompat/client"],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            pytest.fail(f"{' '.join(step[:2])} failed:\n{done.stderr}")
    return work / "bin" / "chat-client"


async def _go(nursery: trio.Nursery, client: Path, harness: Harness, name: str) -> trio.Process:
    process: trio.Process = await nursery.start(
        partial(
            trio.run_process,
            [str(client), f"127.0.0.1:{harness.port}", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            check=False,
        )
    )
    return process


async def test_go_client_sees_its_own_message_with_the_server_time(
    start_server, nursery, go_client: Path
) -> None:
    harness: Harness = await start_server()
    before = int(time.time())
    with trio.fail_after(20):
        go = await _go(nursery, go_client, harness, "GoClient")
        await send_lines(go, "hello from go", "exit")
        received = await Lines(go.stdout).rest()
        await go.wait()
    user, text, timestamp = received[0].split("\t")
    assert (user, text) == ("GoClient", "hello from go")
    assert before <= int(timestamp) <= int(time.time())
    assert go.returncode == 0  # the server ended the stream with OK after the echo


async def test_go_client_and_a_purechat_member_talk(start_server, nursery, go_client: Path) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        alice = await harness.v1("alice")
        go = await _go(nursery, go_client, harness, "GoClient")
        go_lines = Lines(go.stdout)
        await send_lines(go, "hi alice")
        heard_by_alice = await alice.next_message()
        await alice.say("hi go")
        heard_by_go = [await go_lines.next() for _ in range(2)]
        await send_lines(go, "exit")
        await go.wait()
    assert (heard_by_alice.user, heard_by_alice.text) == ("GoClient", "hi alice")
    assert [line.split("\t")[:2] for line in heard_by_go if line] == [
        ["GoClient", "hi alice"],
        ["alice", "hi go"],
    ]
    assert go.returncode == 0


async def test_go_client_gets_invalid_argument_naming_the_limit(
    start_server, nursery, go_client: Path
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(20):
        go = await _go(nursery, go_client, harness, "GoClient")
        await send_lines(go, "x" * 5000, close=True)
        said = await Lines(go.stderr).rest()
        await go.wait()
    assert said == ["InvalidArgument\tmessage text is longer than the limit of 4096 bytes"]
    assert go.returncode == 1
