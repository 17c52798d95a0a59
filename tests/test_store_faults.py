"""Store faults as inputs: reads of history and presence that fail, and a damaged file.

Whatever a store does while a member joins, joins with history or resumes, the member
hears UNAVAILABLE and a sentence (on purechat.v1, on the original contract and on the
web page), never INTERNAL, and the server logs a sentence, never a traceback. A
SQLite file that is damaged is said as such, naming the file, and purechat's clients
stop retrying: only the server's operator can repair it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from purechat import status as statuses
from purechat.app import ChatServer
from purechat.client.calls import LegacyCall, V1Call
from purechat.client.machine import GiveUp, Reconnect, SessionMachine
from purechat.core import Limits, Message
from purechat.errors import StoreDamaged, StoreUnavailable
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import ServerConfig
from purechat.status import STORE_DAMAGED, StatusCode
from purechat.store import MemoryStore, SqliteStore, Store
from purechat.store.redis import RedisStore
from purechat.transport import Status
from tests.fakes import FailingReads, damage_last_page, failing_reads
from tests.helpers import Harness
from tests.processes import Lines, start
from tests.redis_server import RedisProcess, free_port
from tests.webclient import WebClient

STATIC = Path(__file__).resolve().parent.parent / "purechat" / "web" / "static"
UNREACHABLE = statuses.store_unreachable().status_message
# Messages in the lobby before the store fails: enough for a history and a resume.
EARLIER = 5


def earlier(count: int = EARLIER, room: str = "lobby") -> list[Message]:
    return [
        Message(room, 0, "bob", f"earlier {n}", 1_700_000_000_000, False, "bob", f"e{n}")
        for n in range(count)
    ]


@dataclass
class Served:
    """A server on a store, started in the test's nursery; stopped, then its store
    closed, at the end."""

    harness: Harness
    store: Store

    @property
    def web_port(self) -> int:
        port = self.harness.server.web_port
        assert port is not None
        return port

    async def close(self) -> None:
        self.harness.server.shutdown()
        await self.harness.server.stopped()
        await self.store.aclose()


async def serve(nursery: trio.Nursery, store: Store) -> Served:
    config = ServerConfig(port=0, limits=Limits(rate_limit=0), web_port=0)
    server = ChatServer(config, store)
    return Served(Harness(server, await nursery.start(server.serve), nursery), store)


# -- how each door ends ------------------------------------------------------------


async def v1_ending(
    served: Served, *, history: int = 0, after_seq: int | None = None, epoch: str = ""
) -> Status:
    connection, _ = await served.harness.connection()
    call = V1Call(connection, authority="test")
    await call.join("alice", "lobby", history=history, after_seq=after_seq, epoch=epoch)
    while (frame := await call.receive()) is not None:
        assert frame.WhichOneof("frame") != "welcome", "joined, though the store failed"
    assert call.status is not None
    return call.status


async def listener_ending(served: Served) -> Status:
    """A purechat.v1 listener without a seat (`purechat join --listen`)."""
    connection, _ = await served.harness.connection()
    call = V1Call(connection, authority="test")
    await call.send_frame(v1.ClientFrame(join=v1.Join(room="lobby", observe=True)))
    while (frame := await call.receive()) is not None:
        assert frame.WhichOneof("frame") != "welcome", "joined, though the store failed"
    assert call.status is not None
    return call.status


async def legacy_ending(served: Served, say: str | None = None) -> Status:
    """An original-contract member: it hears the lobby's recent messages on arrival,
    before it says anything; what it says first (`say`) names it."""
    connection, _ = await served.harness.connection()
    call = LegacyCall(connection, authority="test")
    if say is not None:
        await call.send("alice", say)
    while await call.receive() is not None:
        pass
    assert call.status is not None
    return call.status


@dataclass
class WebEnding:
    close_code: int | None
    close_reason: str
    end: dict[str, str] | None


async def web_ending(served: Served, **join: object) -> WebEnding:
    port = served.web_port
    client = await WebClient.connect(port, origin=f"http://127.0.0.1:{port}")
    try:
        await client.send({"join": {"name": "alice", "room": "lobby", **join}})
        frames = await client.until_closed()
    finally:
        await client.sock.aclose()
    assert not [frame for frame in frames if "welcome" in frame], frames
    return WebEnding(client.close_code, client.close_reason, client.end)


def assert_told(status: Status, sentence: str) -> None:
    assert (status.status_code, status.status_message) == (StatusCode.UNAVAILABLE, sentence)


def assert_web_told(ending: WebEnding, sentence: str) -> None:
    assert ending.end == {"code": "UNAVAILABLE", "message": sentence}
    assert (ending.close_code, ending.close_reason) == (4014, sentence)


def assert_no_traceback(caplog: pytest.LogCaptureFixture, sentence: str) -> None:
    """The failure was logged as a sentence, and nothing was logged with a traceback."""
    assert not [r.getMessage() for r in caplog.records if r.exc_info], "a traceback was logged"
    assert any(sentence in record.getMessage() for record in caplog.records), [
        r.getMessage() for r in caplog.records
    ]


# -- reads that fail, on every store --------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def faulty(
    request: pytest.FixtureRequest, tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[tuple[Served, FailingReads]]:
    """A server whose store has EARLIER messages in the lobby, and whose reads fail
    when the test says so."""
    store: Store
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "sqlite":
        store = await SqliteStore.open(tmp_path / "chat.db")
    else:
        redis = RedisProcess(tmp_path, free_port())
        await redis.start(nursery)
        store = await RedisStore.open(redis.url, history=100)
    await store.append(earlier())
    wrapped = failing_reads(store)
    served = await serve(nursery, wrapped)
    try:
        yield served, wrapped
    finally:
        with trio.move_on_after(10):
            await served.close()


# A join reads where the room's log stands (a shared store: binds the name there).
JOINING = ("head", "join", "position", "members")


async def test_a_join_while_the_store_fails_is_unavailable_with_a_sentence(
    faulty: tuple[Served, FailingReads], caplog: pytest.LogCaptureFixture
) -> None:
    served, store = faulty
    store.fail(*JOINING)
    with trio.fail_after(20):
        assert_told(await v1_ending(served), UNREACHABLE)
        assert_told(await legacy_ending(served), UNREACHABLE)
        assert_web_told(await web_ending(served), UNREACHABLE)
    assert store.failed >= 3
    assert_no_traceback(caplog, str(store.error))


async def test_history_while_the_store_fails_is_unavailable_with_a_sentence(
    faulty: tuple[Served, FailingReads], caplog: pytest.LogCaptureFixture
) -> None:
    served, store = faulty
    store.fail("read")
    with trio.fail_after(20):
        assert_told(await v1_ending(served, history=3), UNREACHABLE)
        assert_told(await legacy_ending(served), UNREACHABLE)  # the lobby's recent lines
        assert_web_told(await web_ending(served, history=3), UNREACHABLE)
    assert store.failed >= 3
    assert_no_traceback(caplog, str(store.error))


async def test_a_resume_while_the_store_fails_is_unavailable_with_a_sentence(
    faulty: tuple[Served, FailingReads], caplog: pytest.LogCaptureFixture
) -> None:
    served, store = faulty
    epoch = (await store.store.head("lobby")).epoch
    store.fail("read")
    with trio.fail_after(20):
        assert_told(await v1_ending(served, after_seq=1, epoch=epoch), UNREACHABLE)
        assert_web_told(await web_ending(served, after_seq=1, epoch=epoch), UNREACHABLE)
    assert store.failed >= 2
    assert_no_traceback(caplog, str(store.error))


async def test_once_the_store_answers_again_the_same_join_gets_its_history(
    faulty: tuple[Served, FailingReads],
) -> None:
    served, store = faulty
    store.fail("read")
    with trio.fail_after(20):
        assert_told(await v1_ending(served, history=3), UNREACHABLE)
        store.fail()
        member = await served.harness.v1("alice", history=3)
        texts = [(await member.next_message()).text for _ in range(3)]
    assert texts == [f"earlier {n}" for n in range(EARLIER - 3, EARLIER)]


async def test_presence_failing_for_a_listener_or_a_naming_is_unavailable_with_a_sentence(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis, who is here is read from the store too: a listener's welcome, and the
    name an original-contract member's first message binds."""
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    store = failing_reads(await RedisStore.open(redis.url, history=100))
    store.fail("position", "members", "join")
    served = await serve(nursery, store)
    try:
        with trio.fail_after(20):
            assert_told(await listener_ending(served), UNREACHABLE)
            assert_told(await legacy_ending(served, say="hello"), UNREACHABLE)
    finally:
        with trio.move_on_after(10):
            await served.close()
    assert store.failed >= 2
    assert_no_traceback(caplog, str(store.error))


# -- Redis failing for real -----------------------------------------------------------


@pytest.fixture
async def on_redis(
    tmp_path: Path, nursery: trio.Nursery
) -> AsyncIterator[tuple[Served, RedisProcess]]:
    redis = RedisProcess(tmp_path, free_port())
    await redis.start(nursery)
    store = await RedisStore.open(redis.url, history=100)
    await store.append(earlier())
    served = await serve(nursery, store)
    try:
        yield served, redis
    finally:
        with trio.move_on_after(10):
            await served.close()


async def test_redis_refusing_a_rooms_log_is_unavailable_with_a_sentence(
    on_redis: tuple[Served, RedisProcess], caplog: pytest.LogCaptureFixture
) -> None:
    """The room's log is not a stream (another program wrote the key): reading its
    history fails in Redis itself (WRONGTYPE)."""
    served, redis = on_redis
    await redis.command("DEL", "purechat:room:lobby:log")
    await redis.command("SET", "purechat:room:lobby:log", "not a stream")
    with trio.fail_after(20):
        assert_told(await v1_ending(served, history=3), UNREACHABLE)
        assert_web_told(await web_ending(served, after_seq=1), UNREACHABLE)
        assert_told(await legacy_ending(served), UNREACHABLE)
    assert_no_traceback(caplog, "WRONGTYPE")


async def test_redis_refusing_a_rooms_members_is_unavailable_with_a_sentence(
    on_redis: tuple[Served, RedisProcess], caplog: pytest.LogCaptureFixture
) -> None:
    """The join script meets a member list that is not a hash: Redis refuses the join."""
    served, redis = on_redis
    await redis.command("SET", "purechat:room:lobby:members", "not a hash")
    with trio.fail_after(20):
        assert_told(await v1_ending(served), UNREACHABLE)
        assert_web_told(await web_ending(served), UNREACHABLE)
    assert_no_traceback(caplog, "WRONGTYPE")


# -- a damaged SQLite file --------------------------------------------------------------


async def lobby_file(path: Path, count: int = 300) -> None:
    """A store whose last page holds the lobby's newest messages, as one room's log
    grows (each line with a client id, as purechat's clients send them)."""
    store = await SqliteStore.open(path)
    for start_at in range(0, count, 20):
        await store.append(earlier(count)[start_at : start_at + 20])
    await store.aclose()


@pytest.fixture
async def damaged(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[tuple[Served, Path]]:
    """A server on a SQLite file whose last page went bad after the server opened it."""
    path = tmp_path / "chat.db"
    await lobby_file(path)
    served = await serve(nursery, await SqliteStore.open(path))
    assert damage_last_page(path) == "messages"
    try:
        yield served, path
    finally:
        with trio.move_on_after(10):
            await served.close()


async def test_a_join_with_history_on_a_damaged_file_says_the_store_is_damaged(
    damaged: tuple[Served, Path], caplog: pytest.LogCaptureFixture
) -> None:
    served, path = damaged
    told = f"{STORE_DAMAGED} ({path})"
    with trio.fail_after(20):
        assert_told(await v1_ending(served, history=50), told)
        assert_told(await legacy_ending(served), told)
        assert_web_told(await web_ending(served, history=50), told)
    assert_no_traceback(caplog, f"the message store {path} is damaged")
    logged = [r.getMessage() for r in caplog.records if "is damaged" in r.getMessage()]
    assert len(logged) == 1, logged  # once, not once per member


async def test_purechat_join_stops_on_a_damaged_store_and_says_why(
    damaged: tuple[Served, Path], nursery: trio.Nursery
) -> None:
    served, path = damaged
    port = served.harness.port
    with trio.fail_after(30):
        join = await start(
            nursery, "join", "--server", f"127.0.0.1:{port}", "--name", "bot", "--history", "5"
        )
        await join.wait()  # by itself: stdin is still open, and nothing was typed
        problems = await Lines(join.stderr).rest()
    assert join.returncode == 1
    assert problems == [
        f"purechat: The server's message store is damaged ({path}): its operator must repair it; "
        "retrying cannot help."
    ]


async def test_purechat_serve_refuses_a_damaged_file_with_one_sentence(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    path = tmp_path / "chat.db"
    await lobby_file(path)
    assert damage_last_page(path) == "messages"
    with trio.fail_after(30):
        server = await start(nursery, "serve", "--port", "0", "--store", f"sqlite:///{path}")
        await server.wait()
        problems = await Lines(server.stderr).rest()
    assert server.returncode == 1
    assert len(problems) == 1, problems
    assert re.fullmatch(
        rf"purechat: the message store {re.escape(str(path))} is damaged \(SQLite: database "
        r"disk image is malformed\); keep a copy of it, then repair it .*",
        problems[0],
    ), problems


# -- what the client makes of it -----------------------------------------------------------


def test_a_client_told_the_store_is_damaged_gives_up_at_once_and_says_why() -> None:
    machine = SessionMachine("alice", "lobby", give_up_after=None)
    machine.connected(0.0)
    machine.send("deploy done", 0.0)
    actions = machine.ended(statuses.for_error(StoreDamaged("…", "/srv/chat.db")), 1.0)
    assert actions == [
        GiveUp(
            "1 message(s) not delivered: the server's message store is damaged "
            "(/srv/chat.db): its operator must repair it; retrying cannot help."
        )
    ]
    assert machine.tick(100.0) == [] and machine.deadline() is None


def test_a_client_told_the_store_is_away_tries_again() -> None:
    machine = SessionMachine("alice", "lobby", rng=lambda: 0.5)
    machine.connected(0.0)
    actions = machine.ended(statuses.for_error(StoreUnavailable("the disk is full")), 1.0)
    assert isinstance(actions[-1], Reconnect)


def test_only_a_damaged_store_is_said_to_be_damaged() -> None:
    damaged = statuses.for_error(StoreDamaged("the message store x is damaged", "/srv/chat.db"))
    assert (damaged.status_code, damaged.status_message) == (
        StatusCode.UNAVAILABLE,
        "the server's message store is damaged (/srv/chat.db)",
    )
    away = statuses.for_error(StoreUnavailable("the disk is full"))
    assert (away.status_code, away.status_message) == (StatusCode.UNAVAILABLE, UNREACHABLE)


def test_the_page_knows_the_servers_sentence_for_a_damaged_store() -> None:
    session = (STATIC / "session.mjs").read_text()
    assert f'export const STORE_DAMAGED = "{STORE_DAMAGED}";' in session


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


class DamagedOnWrite(MemoryStore):
    """A store that reads fine and finds itself damaged when it writes."""

    async def append(self, messages):  # type: ignore[no-untyped-def]
        raise StoreDamaged("the message store /srv/chat.db is damaged", where="/srv/chat.db")


async def test_a_send_to_a_damaged_store_ends_the_sender_saying_why(
    nursery: trio.Nursery,
) -> None:
    """Not STORE_UNAVAILABLE, which purechat's clients retry until they give up: a
    damaged store ends the sender's stream with the sentence its client stops on."""
    served = await serve(nursery, DamagedOnWrite())
    with trio.fail_after(10):
        sender = await served.harness.v1("alice")
        await sender.call.send("hello", "c1")
        await sender.until_end()
        status = sender.call.status
        assert status is not None and status.status_code is StatusCode.UNAVAILABLE
        assert status.status_message.startswith(STORE_DAMAGED)
        assert isinstance(SessionMachine(name="a", room="r").ended(status, 0.0)[-1], GiveUp)
        await served.close()
