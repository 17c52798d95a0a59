"""`purechat post`: lines into a room without a seat, each stored once, in order."""

from __future__ import annotations

import trio

from purechat.core import Limits
from purechat.pb import purechat_v1_pb2 as v1
from tests.helpers import Harness, Member
from tests.processes import Lines, send_lines, start


def _post(harness: Harness, *args: str) -> list[str]:
    return ["post", "--server", f"127.0.0.1:{harness.port}", *args]


async def _events(member: Member, count: int) -> list[v1.Event]:
    return [(await member.next_of("event")).event for _ in range(count)]


async def test_a_post_is_stored_once_and_nobody_sees_a_join_or_a_leave(
    start_server, nursery
) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        watcher = await harness.v1("watcher", "ci")
        assert (await watcher.next_of("event")).event.user == "watcher"  # its own join
        process = await start(
            nursery, *_post(harness, "--room", "ci", "--name", "bot", "build passed")
        )
        await process.wait()
        event = (await watcher.next_of("event")).event
        await watcher.say("after")
        following = (await watcher.next_of("event")).event
    assert process.returncode == 0
    assert (event.kind, event.user, event.text, event.seq) == (
        v1.Event.MESSAGE,
        "bot",
        "build passed",
        1,
    )
    assert (following.kind, following.text) == (v1.Event.MESSAGE, "after")  # nothing between
    assert harness.server.hub.members_of("ci") == ("watcher",)


async def test_lines_from_stdin_are_posted_in_order_and_a_taken_name_is_not_borrowed(
    start_server, nursery
) -> None:
    harness: Harness = await start_server(limits=Limits(rate_limit=20))
    lines = [f"step {n}" for n in range(50)]  # over the rate: paced, not refused
    with trio.fail_after(30):
        alice = await harness.v1("alice")
        process = await start(nursery, *_post(harness, "--name", "alice"))
        await send_lines(process, *lines, close=True)
        await process.wait()
        seen = [await alice.next_message() for _ in lines]
    assert process.returncode == 0
    assert [e.text for e in seen] == lines
    assert {e.user for e in seen} == {"alice-2"}  # a post cannot pass for a member
    # Slowed by the server past its burst: said once, with the rate and why.
    assert await Lines(process.stderr).rest() == [
        "! the server takes at most 20 messages a second from one sender (its rate limit, "
        "with bursts of 40): lines wait their turn, none is lost or reordered"
    ]


async def test_a_post_refused_for_good_is_one_sentence_and_exit_1(start_server, nursery) -> None:
    harness: Harness = await start_server()
    with trio.fail_after(30):
        process = await start(nursery, *_post(harness, "x" * 5000))
        await process.wait()
        said = await Lines(process.stderr).rest()
    assert process.returncode == 1
    assert said == ["purechat: Message not sent: it is 5000 bytes and the limit is 4096 bytes."]


async def test_a_post_to_an_unreachable_server_gives_up_and_says_nothing_was_stored(
    nursery,
) -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        with trio.fail_after(30):
            process = await start(
                nursery, "post", "--server", f"127.0.0.1:{port}", "--give-up-after", "1", "hi"
            )
            await process.wait()
            said = await Lines(process.stderr).rest()
    assert process.returncode == 1
    assert said == [
        f"purechat: 1 message(s) not stored: cannot reach the server at 127.0.0.1:{port} "
        "(connection refused)."
    ]
