"""`purechat join` in pipe mode, as a script uses it: exit codes, output, exactly-once."""

from __future__ import annotations

import json
import signal
from concurrent import futures

import grpc
import trio

from purechat.app import ChatServer
from purechat.core import Limits
from purechat.pb import chat_pb2
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from tests.helpers import Harness, Member
from tests.polling import settles
from tests.processes import Lines, send_lines, start


def _join_args(harness: Harness, *more: str) -> list[str]:
    return ["join", "--server", f"127.0.0.1:{harness.port}", "--history", "0", *more]


async def _messages(member: Member, count: int) -> list[v1.Event]:
    return [await member.next_message() for _ in range(count)]


async def test_piped_lines_are_delivered_once_each_and_the_exit_is_zero(
    start_server, nursery
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        watcher = await harness.v1("watcher", "ci")
        process = await start(nursery, *_join_args(harness, "--room", "ci", "--name", "bot"))
        lines = [f"build {n} passed" for n in range(50)]
        await send_lines(process, *lines, "", "   ", close=True)
        await process.wait()
        seen = await _messages(watcher, 50)
        await watcher.call.send("after", "after")
        assert (await watcher.next_message()).text == "after"  # nothing more from bot
    assert process.returncode == 0
    assert [(e.user, e.text) for e in seen] == [("bot", line) for line in lines]
    stdout = await Lines(process.stdout).rest()
    assert stdout[0] == "* bot joined"
    assert [line.split("] ", 1)[1] for line in stdout[1:]] == [f"bot: {line}" for line in lines]


_PACE = (
    "! the server takes at most 20 messages a second from one sender (its rate limit, "
    "with bursts of 40): lines wait their turn, none is lost or reordered"
)


async def test_a_pipe_the_server_slows_says_so_once_with_the_rate(start_server, nursery) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=20))
    said: dict[int, list[str]] = {}
    with trio.fail_after(30):
        for count in (40, 70):  # within the burst: nothing to say; past it: once
            process = await start(nursery, *_join_args(harness, "--name", f"bot{count}"))
            await send_lines(process, *(f"line {n}" for n in range(count)), close=True)
            await process.wait()
            assert process.returncode == 0
            said[count] = await Lines(process.stderr).rest()
    assert said == {40: [], 70: [_PACE]}


async def test_a_refused_line_makes_the_exit_non_zero_with_the_reason(
    start_server, nursery
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        process = await start(nursery, *_join_args(harness, "--name", "bot"))
        await send_lines(process, "fine", "x" * 5000, close=True)
        await process.wait()
        stderr = await Lines(process.stderr).rest()
    assert process.returncode == 1
    assert stderr[-1] == (
        "purechat: Message not sent: it is 5000 bytes and the limit is 4096 bytes."
    )


async def test_an_unreachable_server_is_one_line_and_a_non_zero_exit(nursery) -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with trio.fail_after(30):
            process = await start(
                nursery, "join", "--server", f"127.0.0.1:{port}", "--give-up-after", "3"
            )
            await send_lines(process, "hello", close=True)
            await process.wait()
            stderr = await Lines(process.stderr).rest()
    assert process.returncode == 1
    assert stderr == [  # one line when the trouble began (not one per retry), one at the end
        f"! cannot reach the server at 127.0.0.1:{port} (connection refused); reconnecting",
        f"purechat: 1 message(s) not delivered: cannot reach the server at "
        f"127.0.0.1:{port} (connection refused).",
    ]
    assert not any("Traceback" in line for line in stderr)


async def test_json_output_is_valid_whatever_people_send(start_server, nursery) -> None:
    harness: Harness = await start_server()
    hostile_texts = ['\x1b[2J"}{\\', "line\nbreak\r\x00", "日本語 🎉", "\u202eevil\x07"]
    with trio.fail_after(30):
        process = await start(nursery, *_join_args(harness, "--json", "--listen"))
        output = Lines(process.stdout)
        await settles(lambda: harness.server.hub.member_count() == 1)  # listening, seatless
        evil = await harness.v1("evil")
        first = await output.next()
        assert first is not None and json.loads(first)["kind"] == "join"
        for text in hostile_texts:
            await evil.say(text)
        events = []
        while len([e for e in events if e["kind"] == "message"]) < len(hostile_texts):
            line = await output.next()
            assert line is not None
            events.append(json.loads(line))
        process.send_signal(signal.SIGINT)
        await process.wait()
    assert process.returncode == 0
    assert [e["text"] for e in events if e["kind"] == "message"] == hostile_texts
    assert all(set(e) >= {"kind", "room", "seq", "user", "text", "time"} for e in events)


async def test_lines_typed_while_the_server_is_down_arrive_once_after_it_returns(
    nursery,
) -> None:
    async def serve(port: int) -> tuple[ChatServer, Harness]:
        server = ChatServer(ServerConfig(port=port, limits=Limits(rate_limit=0)))
        bound = await nursery.start(server.serve)
        return server, Harness(server, bound, nursery)

    with trio.fail_after(60):
        first, harness = await serve(0)
        watcher = await harness.v1("watcher")
        process = await start(nursery, *_join_args(harness, "--name", "bot"))
        errors = Lines(process.stderr)
        await send_lines(process, "before restart")
        assert (await watcher.next_message()).text == "before restart"

        first.shutdown()
        await first.stopped()
        assert "reconnecting" in (await errors.next() or "")
        await send_lines(process, "while down 1", "while down 2")

        _, harness = await serve(harness.port)
        watcher = await harness.v1("watcher")
        await send_lines(process, "after restart", close=True)
        seen = [e.text for e in await _messages(watcher, 3)]
        await process.wait()
        await watcher.call.send("end", "end")
        assert (await watcher.next_message()).text == "end"
    assert seen == ["while down 1", "while down 2", "after restart"]
    assert process.returncode == 0


class _EchoServicer:
    """A minimal server of the original contract: echoes each message with a timestamp."""

    def JoinChat(self, request_iterator, context):
        for request in request_iterator:
            yield chat_pb2.ChatMessage(user_id=request.user_id, text=request.text, timestamp=1)


async def test_falls_back_to_the_original_contract(nursery, tutorial_stubs) -> None:
    _, rpc = tutorial_stubs
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    rpc.add_ChatServiceServicer_to_server(_EchoServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with trio.fail_after(30):
            process = await start(nursery, "join", "--server", f"127.0.0.1:{port}", "--name", "go")
            await send_lines(process, "one", "two", close=True)
            await process.wait()
            stdout = await Lines(process.stdout).rest()
    finally:
        server.stop(None)
    assert process.returncode == 0
    assert [line.split("] ", 1)[1] for line in stdout] == ["go: one", "go: two"]


async def test_a_server_that_accepts_and_closes_is_tried_again_until_it_answers(
    nursery,
) -> None:
    """A balancer with no backend yet, or a server mid-restart: the client keeps trying
    (within --give-up-after) and delivers once a real server takes the port."""
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    turned_away = 0

    async def accept_and_close() -> None:
        nonlocal turned_away
        async with listener:
            while turned_away < 3:
                stream = await listener.accept()
                await stream.aclose()
                turned_away += 1

    with trio.fail_after(60):
        nursery.start_soon(accept_and_close)
        process = await start(
            nursery, "join", "--server", f"127.0.0.1:{port}", "--name", "bot", "--history", "0"
        )
        await send_lines(process, "hello after a restart", close=True)
        while turned_away < 3:  # noqa: ASYNC110
            await trio.sleep(0.05)
        server = ChatServer(ServerConfig(port=port, limits=Limits(rate_limit=0)))
        harness = Harness(server, await nursery.start(server.serve), nursery)
        watcher = await harness.v1("watcher", history=10)
        heard = await watcher.next_message()
        await process.wait()
    assert process.returncode == 0
    assert heard.text == "hello after a restart"


async def test_a_piped_sender_prints_no_history_and_a_listener_takes_no_seat(
    start_server, nursery
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        watcher = await harness.v1("watcher")
        await watcher.say("earlier")
        listener = await start(
            nursery, "join", "--server", f"127.0.0.1:{harness.port}", "--listen", "--json"
        )
        heard = Lines(listener.stdout)
        history = json.loads(await heard.next() or "{}")  # a listener is shown history
        assert (history["text"], history["history"]) == ("earlier", True)
        sender = await start(
            nursery, "join", "--server", f"127.0.0.1:{harness.port}", "--name", "bot"
        )
        await send_lines(sender, "from the pipe", close=True)
        await sender.wait()
        printed = await Lines(sender.stdout).rest()
        events = [(await watcher.next_of("event")).event for _ in range(5)]
        listened = [json.loads(await heard.next() or "{}") for _ in range(3)]
        members = harness.server.hub.members_of("lobby")
        listener.send_signal(signal.SIGINT)
        await listener.wait()
    assert sender.returncode == 0
    assert not any("earlier" in line for line in printed)  # no history for a pipe that sends
    # the watcher saw its own join, the bot come, speak and go: never the listener
    assert [(e.kind, e.user) for e in events] == [
        (v1.Event.JOIN, "watcher"),
        (v1.Event.MESSAGE, "watcher"),
        (v1.Event.JOIN, "bot"),
        (v1.Event.MESSAGE, "bot"),
        (v1.Event.LEAVE, "bot"),
    ]
    assert [(e["kind"], e["user"]) for e in listened] == [
        ("join", "bot"),
        ("message", "bot"),
        ("leave", "bot"),
    ]
    assert members == ("watcher",)
