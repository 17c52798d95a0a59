"""The README's walk-through of accounts and moderation, run as written.

Every command of the section's `sh` blocks runs as a process, in the order written,
each block as the person its first comment names (a state directory of their own,
their password piped in where a terminal would ask for it); `… &` runs in the
background (the server); `# → TEXT` under a command is what it answers: on stdout,
or, for `# → purechat: …`, on stderr with exit status 1. The only liberties: the
server's port (PURECHAT_PORT and PURECHAT_SERVER, so the test takes a free one) and a
`purechat` on PATH that runs this checkout.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from tests.processes import Lines
from tests.redis_server import free_port

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Accounts and moderation"


@dataclass
class Step:
    person: str
    command: str
    expected: list[str] = field(default_factory=list)


def walk_through() -> list[Step]:
    """The section's commands, in order, with who runs them and what they answer."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    steps: list[Step] = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL):
        first, *lines = block.strip().splitlines()
        assert first.startswith("# "), f"a block starts with who runs it: {first!r}"
        person = first[2:].split()[0].strip(",:").lower()
        for line in lines:
            if line.startswith("# → "):
                steps[-1].expected.append(line.removeprefix("# → "))
            elif line.strip() and not line.startswith("#"):
                steps.append(Step(person, line))
    return steps


def _same(text: str) -> str:
    """What a ban says, whatever minute it is ("for 1h more", "for 59m more")."""
    return re.sub(r"for [0-9hm]+ more", "for … more", text.strip())


async def test_the_readme_walk_through_runs_as_written(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    steps = walk_through()
    assert [step.person for step in steps][:2] == ["root", "root"]
    assert any("mod ban" in step.command for step in steps)
    shim = tmp_path / "bin" / "purechat"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m purechat "$@"\n')
    shim.chmod(0o755)
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()

    def env(person: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}",
            "PURECHAT_PORT": str(port),
            "PURECHAT_SERVER": f"127.0.0.1:{port}",
            "XDG_STATE_HOME": str(tmp_path / "people" / person),
            "PYTHONPATH": os.pathsep.join(sys.path),
        }

    background: list[trio.Process] = []
    try:
        with trio.fail_after(120):
            for step in steps:
                words = shlex.split(step.command, comments=True)
                if words[-1] == "&":
                    process: trio.Process = await nursery.start(
                        partial(
                            trio.run_process,
                            [str(shim), *words[1:-1]],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env=env(step.person),
                            cwd=home,
                            check=False,
                        )
                    )
                    background.append(process)
                    said = await Lines(process.stdout).next()
                    assert said is not None and said.startswith("purechat listening on"), said
                    continue
                done = await trio.run_process(
                    ["sh", "-c", step.command],
                    stdin=f"the password of {step.person}\n".encode(),
                    capture_stdout=True,
                    capture_stderr=True,
                    env=env(step.person),
                    cwd=home,
                    check=False,
                )
                out, err = done.stdout.decode(), done.stderr.decode()
                failing = [line for line in step.expected if line.startswith("purechat: ")]
                where = f"{step.person}$ {step.command}\n{out}{err}"
                if failing:
                    assert done.returncode == 1, where
                    assert [_same(line) for line in err.splitlines()] == [_same(failing[0])], where
                    continue
                assert (done.returncode, err) == (0, ""), where
                if step.expected:
                    assert out.splitlines()[: len(step.expected)] == step.expected, where
                if "purechat audit" in step.command:
                    assert "spammer was banned by bob for 1h: spam" in out, where
    finally:
        for process in background:
            process.terminate()
            with trio.move_on_after(10):
                await process.wait()
    # The server stopped as it should, and people's sessions were kept for them alone.
    assert all(process.returncode == 0 for process in background)
    kept = sorted((tmp_path / "people").glob("*/purechat/sessions/*.json"))
    assert [path.parts[-4] for path in kept] == ["alice", "bob", "spammer"]
