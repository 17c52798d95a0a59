"""Conversations, read markers, history by position and search, on the server.

Privacy is tried through every door a third party has: joining or listening to the
conversation's room by its name, its history, a search, the room lists, the member
list, the page, a post; an admin is refused too. Then: an offline message found on the
next login (on another server sharing Redis, once); two sessions of one account
agreeing on what is read; paging back through 10,000 messages; search on every store.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from purechat.client.calls import V1Call
from purechat.core import Message
from purechat.core.conversations import conversation_room
from purechat.core.names import name_key
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import StatusCode
from purechat.store import MemoryStore, SqliteStore, Store
from purechat.store.redis import RedisStore
from tests.accounts import (
    accounts_config,
    login,
    member,
    refused_join,
    register,
    unary,
)
from tests.helpers import Harness
from tests.polling import settles
from tests.redis_server import RedisProcess, free_port
from tests.webclient import WebClient

CHAT = "purechat.v1.Chat"


async def _with_accounts(start_server, store: Store | None = None, **config: object) -> Harness:
    harness: Harness = await start_server(
        store=store, web_port=0, **accounts_config(admins=["root"]), **config
    )
    await register(harness.server.directory, "alice", "bob", "mallory", "root")
    await settles(lambda: name_key("root") in harness.server.auth.account_keys)
    return harness


async def _post(harness: Harness, token: str, to: str, text: str, msg_id: str) -> v1.PostResponse:
    request = v1.PostRequest(to=to, text=text, client_msg_id=msg_id)
    return await unary(harness, CHAT, "Post", request, v1.PostResponse, token=token)


async def _history(harness: Harness, token: str, **fields: object) -> v1.HistoryResponse:
    request = v1.HistoryRequest(**fields)
    return await unary(harness, CHAT, "History", request, v1.HistoryResponse, token=token)


async def _search(harness: Harness, token: str, **fields: object) -> v1.SearchResponse:
    request = v1.SearchRequest(**fields)
    return await unary(harness, CHAT, "Search", request, v1.SearchResponse, token=token)


async def _conversations(harness: Harness, token: str) -> v1.ConversationsResponse:
    return await unary(
        harness,
        CHAT,
        "Conversations",
        v1.ConversationsRequest(),
        v1.ConversationsResponse,
        token=token,
    )


async def test_a_conversation_is_private_through_every_door(start_server) -> None:
    harness = await _with_accounts(start_server)
    with trio.fail_after(30):
        alice, bob, mallory, root = [
            await login(harness, name) for name in ("alice", "bob", "mallory", "root")
        ]
        await _post(harness, alice, "bob", "the secret is 42", "s1")
        room = conversation_room("alice", "bob")
        for token in (mallory, root, ""):  # another account, an admin, a guest
            status = await refused_join(harness, "x", token, room=room)
            assert status.status_code is StatusCode.PERMISSION_DENIED, token
            with pytest.raises(Exception, match=r"not yours|between accounts"):
                await _history(harness, token, room=room)
            found = await _search(harness, token, text="secret") if token else None
            assert found is None or not found.found
            with pytest.raises(Exception, match=r"not yours|between accounts"):
                await unary(
                    harness,
                    "purechat.v1.Admin",
                    "ListMembers",
                    v1.ListMembersRequest(room=room),
                    v1.ListMembersResponse,
                    token=token,
                )
        # Listening without a seat, by the room's name: refused as well.
        connection, scope = await harness.connection()
        listen = V1Call(connection, authority="x", token=mallory)
        await listen.send_frame(v1.ClientFrame(join=v1.Join(room=room, observe=True)))
        while (frame := await listen.receive()) is not None:
            assert frame.WhichOneof("frame") != "welcome"
        assert listen.status is not None
        assert listen.status.status_code is StatusCode.PERMISSION_DENIED
        scope.cancel()
        # The page, by name: refused; the room lists never show it.
        assert harness.server.web_port is not None
        web = await WebClient.connect(harness.server.web_port)
        await web.send({"join": {"name": "m", "room": room, "token": mallory}})
        await web.until_closed()
        await web.sock.aclose()
        assert web.end is not None and web.end["code"] == "PERMISSION_DENIED"
        rooms = await unary(
            harness, "purechat.v1.Admin", "ListRooms", v1.ListRoomsRequest(), v1.ListRoomsResponse
        )
        assert all(not r.name.startswith("@dm:") for r in rooms.rooms)
        # Its two accounts read it.
        page = await _history(harness, bob, dm="alice")
        assert [e.text for e in page.events] == ["the secret is 42"] and page.peer == "alice"
        assert (await _search(harness, bob, text="SECRET")).found[0].peer == "alice"


async def test_an_offline_message_waits_unread_and_two_sessions_agree_on_what_is_read(
    start_server,
) -> None:
    harness = await _with_accounts(start_server)
    with trio.fail_after(30):
        alice = await login(harness, "alice")
        first = await _post(harness, alice, "bob", "are you there, bob?", "o1")
        await _post(harness, alice, "bob", "call me", "o2")
        bob = await login(harness, "bob")
        listed = {e.peer: e for e in (await _conversations(harness, bob)).entries}
        assert (listed["alice"].unread, listed["alice"].read_seq) == (2, 0)
        # Two sessions of bob: one in the conversation, one in the lobby.
        here = await member(harness, "bob", bob, dm="alice", history=10)
        assert here.welcome.peer == "alice"
        elsewhere = await member(harness, "bob", await login(harness, "bob"))
        mark = v1.MarkRead(room=here.welcome.room, seq=first.seq + 1)
        await here.call.send_frame(v1.ClientFrame(mark_read=mark))
        for session in (here, elsewhere):
            read = (await session.next_of("read")).read
            assert (read.room, read.seq) == (here.welcome.room, first.seq + 1)
        listed = {e.peer: e for e in (await _conversations(harness, bob)).entries}
        assert (listed["alice"].unread, listed["alice"].read_seq) == (0, first.seq + 1)
        # A retried direct message is stored once.
        again = await _post(harness, alice, "bob", "call me", "o2")
        assert again.duplicate and again.seq == first.seq + 1


async def test_paging_back_through_ten_thousand_messages_misses_and_doubles_nothing(
    start_server, tmp_path: Path
) -> None:
    store = await SqliteStore.open(tmp_path / "chat.db")
    harness = await _with_accounts(start_server, store)
    for start in range(0, 10_000, 1000):
        await store.append(
            [Message("lobby", 0, "a", f"m{n}", n) for n in range(start, start + 1000)]
        )
    with trio.fail_after(60):
        token = await login(harness, "alice")
        seen: list[int] = []
        page = await _history(harness, token, room="lobby", limit=500)
        while True:
            seen = [e.seq for e in page.events] + seen
            if not page.more_before:
                break
            page = await _history(
                harness, token, room="lobby", before=page.events[0].seq, limit=500
            )
        assert seen == list(range(1, 10_001))
        around = await _history(harness, token, room="lobby", around=5000, limit=10)
        assert [e.seq for e in around.events] == list(range(4996, 5006))


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def any_store(request, nursery: trio.Nursery, tmp_path: Path):  # type: ignore[no-untyped-def]
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "sqlite":
        store = await SqliteStore.open(tmp_path / "chat.db")
        yield store
        await store.aclose()
    else:
        redis = RedisProcess(tmp_path, free_port())
        await redis.start(nursery)
        store = await RedisStore.open(redis.url, history=1000)
        yield store
        await store.aclose()


async def test_search_finds_words_in_any_script_and_lines_newest_first(
    start_server, any_store: Store
) -> None:
    harness = await _with_accounts(start_server, any_store)
    with trio.fail_after(30):
        alice = await member(harness, "alice", await login(harness, "alice"))
        await alice.say("deploy went fine", "a1")
        await alice.say("first line\nthe Déploy of friday\nlast line", "a2")
        await alice.say("Привет, мир: деплой завтра", "a3")
        await alice.say("nothing to see", "a4")
        token = await login(harness, "bob")
        found = (await _search(harness, token, text="deploy")).found
        assert [f.event.text for f in found] == [
            "first line\nthe Déploy of friday\nlast line",
            "deploy went fine",
        ]
        text, marks = found[0].event.text, list(found[0].marks)
        assert text[marks[0] : marks[1]] == "Déploy"
        russian = (await _search(harness, token, text="деплой", room="lobby")).found
        assert [f.event.seq for f in russian] == [3]
        first_page = await _search(harness, token, text="deploy", limit=1)
        assert first_page.next
        older = await _search(harness, token, text="deploy", limit=1, page=first_page.next)
        assert [f.event.text for f in older.found] == ["deploy went fine"]
