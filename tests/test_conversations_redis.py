"""A direct message to an account that is away, on two servers sharing one Redis: sent
on one (twice, by a client that did not hear the answer), read on the other at the
account's next login through `purechat join --dm`, once, and unread until then."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from tests.accounts import PASSWORD, login, register, unary
from tests.helpers import Harness
from tests.polling import settles
from tests.processes import PURECHAT
from tests.test_moderation_redis import Pair

CHAT = "purechat.v1.Chat"


@pytest.fixture
async def pair(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    setup = Pair(nursery, tmp_path)
    await setup.redis.start(nursery)
    one, two = await setup.server(), await setup.server()
    await register(one.server.directory, "alice", "bob")
    for harness in (one, two):
        await settles(lambda h=harness: name_key("bob") in h.server.auth.account_keys)
    try:
        yield one, two
    finally:
        with trio.move_on_after(10):
            await setup.close()


async def _purechat(home: Path, *args: str, stdin: str = "") -> tuple[int, str, str]:
    done = await trio.run_process(
        [*PURECHAT, *args],
        stdin=stdin.encode(),
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "XDG_STATE_HOME": str(home)},
    )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


async def test_an_offline_message_is_delivered_once_at_the_next_login_on_another_server(
    pair: tuple[Harness, Harness], tmp_path: Path
) -> None:
    one, two = pair
    with trio.fail_after(60):
        alice = await login(one, "alice")
        post = v1.PostRequest(to="bob", text="are you there, bob?", client_msg_id="ask-1")
        sent = await unary(one, CHAT, "Post", post, v1.PostResponse, token=alice)
        # The same message again, through the other server: stored once.
        again = await unary(two, CHAT, "Post", post, v1.PostResponse, token=alice)
        assert (again.seq, again.duplicate) == (sent.seq, True)

        # bob logs in on the other server, and joins the conversation from a script.
        server = f"127.0.0.1:{two.port}"
        said = await _purechat(tmp_path, "login", "bob", "--server", server, stdin=PASSWORD)
        assert said[0] == 0, said
        code, out, problem = await _purechat(
            tmp_path, "join", "--dm", "alice", "--server", server, "--history", "10", stdin="yes\n"
        )
        assert code == 0, problem
        lines = out.splitlines()
        assert sum("alice: are you there, bob?" in line for line in lines) == 1, lines
        assert sum(line.endswith("bob: yes") for line in lines) == 1, lines
        # A pipe marks nothing read: alice's message is still unread for bob; bob's own
        # answer is unread for alice, on either server.
        bob = await login(one, "bob")
        for harness, token, peer in ((one, bob, "alice"), (two, alice, "bob")):
            listed = await unary(
                harness,
                CHAT,
                "Conversations",
                v1.ConversationsRequest(),
                v1.ConversationsResponse,
                token=token,
            )
            assert [(e.peer, e.unread) for e in listed.entries] == [(peer, 1)]
