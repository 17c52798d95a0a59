"""Every bad `purechat serve` option is one sentence on stderr and exit 1 (argparse's
own usage errors: exit 2), never a traceback."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import trio

from purechat.cli import _parser
from purechat.options import MAX_PORT, serve_problem
from tests.redis_server import free_port

SERVE = [sys.executable, "-m", "purechat", "serve", "--store", "memory://"]

# (options, exit code, words the one line must hold): run as processes.
BAD = [
    (["--port", "99999"], 1, "--port must be a port from 0 to 65535"),
    (["--metrics-port", "70000"], 1, "--metrics-port must be a port"),
    (["--rate-limit", "-3"], 1, "--rate-limit must be a number of messages a second"),
    (["--rate-limit", "nan"], 1, "a finite number), not nan."),
    (["--max-text", "-1"], 1, "--max-text must be a number of bytes, 1 or more, not -1."),
    (["--handshake-timeout", "0"], 1, "--handshake-timeout must be a number of seconds above 0"),
    (["--store", "redis://127.0.0.1:notaport/0"], 1, "the port must be a number from 1 to 65535"),
    (["--store", "redis://127.0.0.1:99999/0"], 1, "the port must be a number from 1 to 65535"),
    (["--store", "redis://:s3cret@[::1/0"], 1, "an IPv6 address goes in brackets"),
    (["--store", "bogus://x"], 1, "unknown store 'bogus://x'"),
    (["--store", "sqlite:////proc/purechat-test.db"], 1, "cannot open or create"),
    (["--store", "sqlite:////etc/passwd"], 1, "it is a file of another program"),
    (["--store", f"redis://127.0.0.1:{free_port()}/0"], 1, "cannot reach Redis at 127.0.0.1:"),
    (["--port", "abc"], 2, "argument --port: invalid int value: 'abc'"),
]

# The same checks for every option, in-process: (options, words of the sentence).
OUT_OF_RANGE = [
    (["--port", "-1"], "--port must be a port from 0 to 65535 (0 picks a free one), not -1."),
    (["--rate-limit", "inf"], "(a finite number), not inf."),
    (["--history", "0"], "--history must be a number of messages, 1 or more, not 0."),
    (["--max-message-bytes", "0"], "--max-message-bytes must be a number of bytes"),
    (["--max-members-per-room", "-5"], "--max-members-per-room must be a number of members"),
    (["--max-conns-per-addr", "-1"], "0 (no limit) or more, not -1."),
    (["--keepalive", "-1"], "--keepalive must be a number of seconds above 0, not -1."),
    (["--presence-ttl", "nan"], "--presence-ttl must be a number of seconds above 0"),
]


@pytest.mark.parametrize(("options", "words"), OUT_OF_RANGE)
def test_every_numeric_option_has_a_range(options: list[str], words: str) -> None:
    _, serve = _parser()
    problem = serve_problem(serve.parse_args(options))
    assert problem is not None and words in problem and problem.endswith(".")


async def test_each_bad_option_is_one_sentence_and_no_traceback(tmp_path: Path) -> None:
    results: dict[int, trio.CompletedProcess[bytes]] = {}
    limit = trio.CapacityLimiter(4)  # two cores, shared

    async def run(index: int, options: list[str]) -> None:
        async with limit:
            results[index] = await trio.run_process(
                [*SERVE, "--port", "0", *options],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
                cwd=tmp_path,
            )

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    cases = [*BAD, (["--metrics-port", str(port)], 1, f"cannot serve metrics on 127.0.0.1:{port}")]
    with taken, trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for index, (options, _, _) in enumerate(cases):
                nursery.start_soon(run, index, options)
    for index, (options, code, words) in enumerate(cases):
        result = results[index]
        said = result.stderr.decode()
        lines = said.splitlines()
        assert len(lines) == 1 and said.endswith("\n") and "\n\n" not in said, (options, said)
        assert "Traceback" not in said and words in lines[0], (options, said)
        assert result.returncode == code, (options, said)
        assert result.stdout == b"", (options, result.stdout)
        assert "s3cret" not in said  # the password in a Redis URL is never shown


@pytest.mark.parametrize("dest", ["port", "metrics_port"])
def test_the_port_range_is_inclusive(dest: str) -> None:
    _, serve = _parser()
    for good in (0, MAX_PORT):
        assert serve_problem(serve.parse_args([f"--{dest.replace('_', '-')}", str(good)])) is None
