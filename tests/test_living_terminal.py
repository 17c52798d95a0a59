"""Living messages in `purechat join` at a terminal (a pseudo-terminal read back through
a terminal emulator), and from scripts (`purechat edit|delete|react`, `post --reply-to`,
`join --json`) as child processes: what a person sees, and what a script is told."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import trio

from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.store import SqliteStore
from tests.accounts import PASSWORD, accounts_config, login, member, register
from tests.helpers import Harness, Member
from tests.polling import settles
from tests.processes import PURECHAT
from tests.test_interactive import _has, _idle_after, _in_a_terminal


async def _server(start_server: Any, tmp_path: Path) -> Harness:
    store = await SqliteStore.open(tmp_path / "chat.db")
    harness: Harness = await start_server(store=store, **accounts_config())
    await register(harness.server.directory, "alice", "bob")
    await settles(lambda: name_key("bob") in harness.server.auth.account_keys)
    return harness


async def _answered(who: Member, frame: v1.ClientFrame) -> v1.ServerFrame:
    await who.call.send_frame(frame)
    return await who.next_of_any("ack", "error")


async def test_reply_edit_react_delete_and_typing_at_the_terminal(
    start_server, nursery, tmp_path: Path
) -> None:
    harness = await _server(start_server, tmp_path)
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    with trio.fail_after(60):
        alice_token = await login(harness, "alice")
        bob = await member(harness, "bob", await login(harness, "bob"))
        async with _in_a_terminal(nursery, harness, "--token", alice_token, env=env) as (
            process,
            client,
        ):
            await _idle_after(client, "joined lobby as alice")
            await bob.say("alice, is the deploy done and are the dashboards all green?")
            await _idle_after(client, "bob: alice, is the deploy done")
            assert _has(client, "dashboards all green?  #1")  # its number, to answer it

            # Typing: alice's reaches bob; bob's shows on alice's status line until his
            # message comes.
            client.type("yes")
            assert list((await bob.next_of("typing")).typing.users) == ["alice"]
            client.type("\x15/re yes: v2.3 is out\r")
            await _idle_after(client, "alice: yes: v2.3 is out  #2")
            lines = client.lines()
            at = next(n for n, line in enumerate(lines) if "alice: yes: v2.3 is out" in line)
            assert "↳ bob #1: alice, is the deploy done and are the …" in lines[at - 1]
            await bob.call.send_frame(v1.ClientFrame(typing=v1.TypingSignal()))
            await client.until(lambda: _has(client, "bob is typing…"))
            await bob.say("thanks")
            await client.until(lambda: _has(client, "bob: thanks") and not _has(client, "typing…"))

            client.type("/edit yes: v2.4 is out\r")  # alice's last message
            await _idle_after(client, "* alice edited #2: yes: v2.4 is out (edited)")
            await _answered(bob, v1.ClientFrame(react=v1.ReactMessage(seq=2, emoji="🎉")))
            await _idle_after(client, "* bob reacted 🎉 on #2: 🎉 1 bob")
            client.type("/react 3 👍\r")
            await _idle_after(client, "* alice reacted 👍 on #3: 👍 1 alice")
            client.type("/react 3 -👍\r")
            await _idle_after(client, "* alice took back 👍 on #3: no reactions")

            # Refusals are the server's sentence, and the session goes on.
            client.type("/edit 1 not mine\r")
            await _idle_after(client, "! You can only edit your own messages.")
            client.type("/react 1 ok\r")
            await _idle_after(client, "! A reaction is one emoji, like 👍.")
            client.type("/delete two\r")
            await _idle_after(client, "! usage: /delete N")

            client.type("/reply 1 and the rollback plan\r")
            await _idle_after(client, "alice: and the rollback plan")
            client.type("/delete 2\r")
            await _idle_after(client, "* message #2 deleted")
            client.type("/reply 2 about that\r")
            await _idle_after(client, "alice: about that")
            assert _has(client, "↳ #2: (message deleted)")
            client.type("\x04")
            await process.wait()
    assert process.returncode == 0
    assert not _has(client, "Traceback")


async def test_a_person_who_does_not_want_it_never_sends_typing(
    start_server, nursery, tmp_path: Path
) -> None:
    harness = await _server(start_server, tmp_path)
    env = {"XDG_DATA_HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state")}
    with trio.fail_after(60):
        bob = await member(harness, "bob", await login(harness, "bob"))
        token = await login(harness, "alice")
        async with _in_a_terminal(nursery, harness, "--token", token, "--no-typing", env=env) as (
            process,
            client,
        ):
            await _idle_after(client, "joined lobby as alice")
            client.type("typing away\r")
            # The message arrives with nothing before it: no typing frame was sent.
            frame = await bob.call.receive()
            while frame is not None and frame.WhichOneof("frame") != "event":
                assert frame.WhichOneof("frame") != "typing"
                frame = await bob.call.receive()
            while frame is not None and frame.event.kind != v1.Event.MESSAGE:
                assert frame.WhichOneof("frame") != "typing"
                frame = await bob.call.receive()
            assert frame is not None and frame.event.text == "typing away"
            client.type("\x04")
            await process.wait()
    assert process.returncode == 0


async def _run(env: dict[str, str], *args: str, stdin: str = "") -> tuple[int, str, str]:
    done = await trio.run_process(
        [*PURECHAT, *args],
        stdin=stdin.encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env=env,
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_scripts_edit_delete_react_and_reply_with_the_saved_session(
    start_server, nursery, tmp_path: Path
) -> None:
    harness = await _server(start_server, tmp_path)
    server = f"127.0.0.1:{harness.port}"
    alice = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "alice"), "PURECHAT_SERVER": server}
    bob = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "bob"), "PURECHAT_SERVER": server}
    with trio.fail_after(90):
        assert (await _run(alice, "login", "alice", stdin=f"{PASSWORD}\n"))[0] == 0
        assert (await _run(bob, "login", "bob", stdin=f"{PASSWORD}\n"))[0] == 0
        assert await _run(alice, "post", "--room", "lobby", "typo here") == (0, "", "")
        assert await _run(bob, "post", "--reply-to", "1", "nice") == (0, "", "")
        listener = await trio.lowlevel.open_process(
            [*PURECHAT, "join", "--listen", "--json", "--history", "5", "--server", server],
            stdin=-1,
            stdout=-1,
            env=alice,
        )
        seen: list[dict[str, Any]] = []
        buffer = b""
        assert listener.stdout is not None

        async def until_seq(seq: int) -> None:
            nonlocal buffer
            assert listener.stdout is not None
            while not seen or seen[-1].get("seq") != seq:
                buffer += await listener.stdout.receive_some(65536)
                *whole, buffer = buffer.split(b"\n")
                seen.extend(json.loads(line) for line in whole if line)

        try:
            await until_seq(2)
            assert await _run(alice, "edit", "--room", "lobby", "1", "no typo") == (
                0,
                "lobby: edited #1 (#3)\n",
                "",
            )
            assert await _run(bob, "react", "1", "🎉") == (0, "lobby: reacted 🎉 on #1 (#4)\n", "")
            assert await _run(bob, "edit", "1", "mine") == (
                1,
                "",
                "purechat: You can only edit your own messages.\n",
            )
            assert await _run(bob, "react", "1", "🎉", "--remove") == (
                0,
                "lobby: took back 🎉 on #1 (#5)\n",
                "",
            )
            assert await _run(alice, "delete", "#1") == (0, "lobby: deleted #1 (#6)\n", "")
            assert await _run(bob, "react", "--dm", "alice", "1", "🎉") == (
                1,
                "",
                "purechat: There is no message #1 here.\n",
            )

            # A reply posted while the room is open on the server (a listener is in it).
            assert await _run(bob, "post", "--reply-to", "2", "and again") == (0, "", "")

            # A listener's --json carries each kind with its target, reaction, revision.
            await until_seq(7)
        finally:
            listener.kill()
            await listener.wait()
    by_seq = {event["seq"]: event for event in seen if event.get("seq")}
    assert by_seq[2]["reply_to"] == 1
    assert (by_seq[7]["reply_to"], by_seq[7]["text"]) == (2, "and again")
    assert (by_seq[3]["kind"], by_seq[3]["target"], by_seq[3]["text"]) == ("edit", 1, "no typo")
    assert by_seq[3]["revision"]["edited"]
    assert by_seq[4]["reaction"] == {"emoji": "🎉", "removed": False}
    assert by_seq[4]["revision"]["reactions"] == [{"emoji": "🎉", "users": ["bob"]}]
    assert by_seq[5]["reaction"]["removed"] and by_seq[5]["revision"]["reactions"] == []
    assert by_seq[6]["kind"] == "delete" and by_seq[6]["revision"]["deleted"]
