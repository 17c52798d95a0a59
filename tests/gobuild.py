"""Build the Go programs of tests/go/ and bench/go/ offline, against Debian's grpc-go.

Each program is a `package main` importing `purechatcompat/chatpb`, generated here from
proto/chat.proto as the tutorial's Go users would (never committed). The build runs in
GOPATH mode with no module proxy, so it needs nothing but the Debian packages below:
CI installs them. Used by the pytest fixtures in tests/conftest.py and by bench/.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOCODE = Path("/usr/share/gocode")
DEBIAN_PACKAGES = (
    "golang-go golang-google-grpc-dev golang-google-protobuf-dev "
    "golang-github-golang-protobuf-1-5-dev protoc-gen-go-grpc protobuf-compiler"
)
PACKAGE = "purechatcompat"


class GoMissing(RuntimeError):
    """The Go toolchain or the protobuf generators are not installed."""


class GoBuildFailed(RuntimeError):
    """A build step failed; the message carries its stderr."""


def missing_tools() -> list[str]:
    """The commands a build needs that are not on PATH."""
    return [tool for tool in ("go", "protoc", "protoc-gen-go-grpc") if not shutil.which(tool)]


class GoBuilder:
    """Builds programs into one work directory (a GOPATH), generating the stubs once."""

    def __init__(self, work: Path) -> None:
        if missing := missing_tools():
            raise GoMissing(f"no {', '.join(missing)}: apt-get install {DEBIAN_PACKAGES}")
        self.work = work
        self.env = os.environ | {
            "GO111MODULE": "off",
            "GOPATH": f"{work}:{GOCODE}",
            "GOPROXY": "off",
            "GOFLAGS": "",
            "PATH": f"{work / 'bin'}:{os.environ['PATH']}",
        }
        self._built: dict[str, Path] = {}
        self._stubs = False

    def build(self, program: str) -> Path:
        """The binary of `program`, a directory of this repository such as tests/go/load."""
        if program not in self._built:
            self._generate_stubs()
            name = program.strip("/").replace("/", "_")
            source = self.work / "src" / PACKAGE / name
            shutil.rmtree(source, ignore_errors=True)
            shutil.copytree(ROOT / program, source)
            binary = self.work / "bin" / name
            self._run(["go", "build", "-o", str(binary), f"{PACKAGE}/{name}"])
            self._built[program] = binary
        return self._built[program]

    def _generate_stubs(self) -> None:
        if self._stubs:
            return
        stubs = self.work / "src" / PACKAGE / "chatpb"
        stubs.mkdir(parents=True, exist_ok=True)
        self._run(
            [
                "go",
                "build",
                "-o",
                str(self.work / "bin" / "protoc-gen-go"),
                "google.golang.org/protobuf/cmd/protoc-gen-go",
            ]
        )
        self._run(
            [
                "protoc",
                f"--proto_path={ROOT / 'proto'}",
                f"--go_out={stubs}",
                "--go_opt=paths=source_relative",
                f"--go-grpc_out={stubs}",
                "--go-grpc_opt=paths=source_relative",
                str(ROOT / "proto" / "chat.proto"),
            ]
        )
        self._stubs = True

    def _run(self, step: list[str]) -> None:
        done = subprocess.run(step, env=self.env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise GoBuildFailed(f"{' '.join(step[:2])} failed:\n{done.stderr}")
