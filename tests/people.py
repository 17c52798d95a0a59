"""People at a shell for the command tests: each runs `purechat` commands as a
subprocess with a state directory of its own (its saved sessions), as two people on
two machines would."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from tests.accounts import PASSWORD
from tests.processes import PURECHAT


class Person:
    """Someone at a terminal: `purechat` commands with their own state directory."""

    def __init__(self, home: Path, server: str, cwd: Path):
        self.state = home / "state"
        self.server = server
        self.cwd = cwd

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "XDG_STATE_HOME": str(self.state), "PURECHAT_SERVER": self.server}

    async def run(self, *args: str, stdin: str = "") -> tuple[int, str, str]:
        """The command's exit status, stdout and stderr (stdin: what is piped in)."""
        done = await trio.run_process(
            [*PURECHAT, *args],
            stdin=stdin.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=self.env,
            cwd=self.cwd,
        )
        return done.returncode, done.stdout.decode(), done.stderr.decode()

    def session_files(self) -> list[Path]:
        folder = self.state / "purechat" / "sessions"
        return sorted(folder.iterdir()) if folder.exists() else []

    async def login(self, name: str) -> None:
        code, _, problem = await self.run("login", name, stdin=f"{PASSWORD}\n")
        assert code == 0, problem
