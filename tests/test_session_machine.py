"""The client's session machine against a model server that refuses, answers late or
twice, loses connections and does not know whether it stored things: every line is
stored exactly once, in the order typed, and the outcome the client reports is true;
the same in a conversation (joined by the other account's name on every stream, resumed
in its log), where what the person read is marked forward only, never past what was
received."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from purechat.client.machine import (
    Action,
    Backoff,
    Finished,
    GiveUp,
    HalfClose,
    Phase,
    Reconnect,
    SessionMachine,
    Settled,
    Show,
    Transmit,
)
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import Status, StatusCode

_END = "end of stream"


@dataclass
class ModelServer:
    """One room of purechat.v1 as the real server keeps it (hub, journal, store)."""

    log: list[str] = field(default_factory=list)  # stored client message ids, in order
    texts: dict[str, str] = field(default_factory=dict)
    seqs: dict[str, int] = field(default_factory=dict)
    to_client: deque[v1.ServerFrame | str] = field(default_factory=deque)
    # The journal: (id, text, the sender's generation when it posted it).
    queued: list[tuple[str, str, int]] = field(default_factory=list)
    generation: int = 0
    awaiting: str | None = None
    half_closed: bool = False
    # A conversation with this account ("" for the room lobby), and the marks read.
    dm: str = ""
    marks: list[int] = field(default_factory=list)

    @property
    def room(self) -> str:
        return "@dm:alice:bot" if self.dm else "lobby"

    def new_stream(self) -> None:
        self.to_client.clear()
        self.generation, self.awaiting, self.half_closed = 0, None, False

    def handle(self, frame: v1.ClientFrame | None) -> None:
        if frame is None:
            self.half_closed = True
            self._maybe_end()
            return
        kind = frame.WhichOneof("frame")
        if kind == "join":
            # A conversation is named by its other account on every join, resumes included.
            assert (frame.join.dm, frame.join.room or "lobby") == (
                self.dm,
                (self.dm and "") or "lobby",
            )
            welcome = v1.Welcome(
                room=self.room,
                name="bot",
                members=["bot"],
                last_seq=len(self.log),
                account="bot" if self.dm else "",
                peer=self.dm,
            )
            self.to_client.append(v1.ServerFrame(welcome=welcome))
            if frame.join.HasField("after_seq"):
                for seq in range(frame.join.after_seq + 1, len(self.log) + 1):
                    self.to_client.append(self._event(seq))
            return
        if kind == "mark_read":
            assert self.dm, "a guest marked something read"
            self.marks.append(frame.mark_read.seq)
            marker = v1.ReadMarker(room=self.room, seq=frame.mark_read.seq)
            self.to_client.append(v1.ServerFrame(read=marker))
            return
        send = frame.send
        if self.awaiting is not None:
            if send.client_msg_id != self.awaiting:
                self._error(v1.Error.STORE_UNAVAILABLE, send.client_msg_id)
                return
            self.awaiting = None
        self.queued.append((send.client_msg_id, send.text, self.generation))

    def commit(self, fault: str) -> None:
        """One journal batch: "ok", "refused", "unknown (stored)", "unknown (lost)"."""
        batch, self.queued = self.queued, []
        for client_msg_id, text, generation in batch:
            if generation != self.generation:
                self._error(v1.Error.STORE_UNAVAILABLE, client_msg_id)
                continue
            if fault == "ok":
                self._store(client_msg_id, text, answer=True)
                continue
            if fault == "unknown (stored)":
                self._store(client_msg_id, text, answer=False)
            self.generation += 1
            self.awaiting = client_msg_id
            unknown = fault.startswith("unknown")
            code = v1.Error.OUTCOME_UNKNOWN if unknown else v1.Error.STORE_UNAVAILABLE
            self._error(code, client_msg_id)
        self._maybe_end()

    def dropped(self, stored: bool) -> None:
        """The connection is gone; what the journal held is committed or not, unheard."""
        batch, self.queued = self.queued, []
        if stored:
            for client_msg_id, text, generation in batch:
                if generation == self.generation:
                    self._store(client_msg_id, text, answer=False)
        self.new_stream()

    def _store(self, client_msg_id: str, text: str, *, answer: bool) -> None:
        duplicate = client_msg_id in self.seqs
        if not duplicate:
            self.log.append(client_msg_id)
            self.texts[client_msg_id] = text
            self.seqs[client_msg_id] = len(self.log)
            if answer:
                self.to_client.append(self._event(len(self.log)))
        if answer:
            ack = v1.Ack(client_msg_id=client_msg_id, seq=self.seqs[client_msg_id])
            ack.duplicate = duplicate
            self.to_client.append(v1.ServerFrame(ack=ack))

    def _event(self, seq: int) -> v1.ServerFrame:
        client_msg_id = self.log[seq - 1]
        event = v1.Event(
            kind=v1.Event.MESSAGE,
            room=self.room,
            seq=seq,
            user="bot",
            text=self.texts[client_msg_id],
        )
        return v1.ServerFrame(event=event)

    def _error(self, code: int, client_msg_id: str) -> None:
        error = v1.Error(code=code, message="not now", client_msg_id=client_msg_id)  # type: ignore[arg-type]
        self.to_client.append(v1.ServerFrame(error=error))

    def _maybe_end(self) -> None:
        if self.half_closed and not self.queued:
            self.to_client.append(_END)


class SessionAgainstAModelServer(RuleBasedStateMachine):
    dm = ""

    def __init__(self) -> None:
        super().__init__()
        ids = (f"id{n}" for n in range(10_000))
        self.client = SessionMachine(
            name="bot",
            room="lobby",
            dm=self.dm,
            backoff=Backoff(first=0.5, cap=2.0),
            rng=random.Random(0).random,
            new_id=lambda: next(ids),
        )
        self.server = ModelServer(dm=self.dm)
        # The newest number the person has been shown (what the client received).
        self.shown = 0
        self.now = 0.0
        self.connected = False
        self.in_flight: deque[v1.ClientFrame | None] = deque()
        self.typed: list[str] = []
        self.outcome: Finished | GiveUp | None = None

    # -- plumbing ---------------------------------------------------------------------

    def act(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                assert self.connected, "transmitted without a stream"
                assert isinstance(action.frame, v1.ClientFrame)
                self.in_flight.append(action.frame)
            elif isinstance(action, HalfClose):
                self.in_flight.append(None)
            elif isinstance(action, Reconnect):
                assert action.at >= self.now
            elif isinstance(action, Finished | GiveUp):
                self.outcome = action
            elif isinstance(action, Show):
                if action.item.kind == "message":
                    self.shown = max(self.shown, action.item.seq)
            else:
                assert isinstance(action, Settled)

    def drop(self, stored: bool) -> None:
        self.connected = False
        self.in_flight.clear()
        self.server.dropped(stored)
        self.act(self.client.ended(None, self.now))

    # -- what happens ---------------------------------------------------------------------

    @precondition(lambda self: not self.client.finishing)
    @rule(count=st.integers(1, 80))
    def type_lines(self, count: int) -> None:
        for _ in range(count):
            text = f"line {len(self.typed)}"
            self.typed.append(text)
            self.act(self.client.send(text, self.now))

    @precondition(lambda self: not self.connected and self.outcome is None)
    @rule()
    def connect(self) -> None:
        self.now = max(self.now, self.client.reconnect_at)
        self.connected = True
        self.server.new_stream()
        self.act(self.client.connected(self.now))

    @precondition(lambda self: self.connected and self.in_flight)
    @rule(count=st.integers(1, 100))
    def frames_reach_the_server(self, count: int) -> None:
        for _ in range(min(count, len(self.in_flight))):
            self.server.handle(self.in_flight.popleft())

    @precondition(lambda self: self.connected and self.server.to_client)
    @rule(count=st.integers(1, 100), twice=st.booleans())
    def frames_reach_the_client(self, count: int, twice: bool) -> None:
        for _ in range(min(count, len(self.server.to_client))):
            frame = self.server.to_client.popleft()
            if frame == _END:
                self.connected = False
                self.act(self.client.ended(Status(StatusCode.OK), self.now))
                return
            assert isinstance(frame, v1.ServerFrame)
            self.act(self.client.received(frame, self.now))
            if twice and frame.WhichOneof("frame") == "ack":
                self.act(self.client.received(frame, self.now))  # answered twice

    @precondition(lambda self: self.connected and self.server.queued)
    @rule(
        fault=st.sampled_from(["ok", "ok", "refused", "unknown (stored)", "unknown (not stored)"])
    )
    def the_store_answers(self, fault: str) -> None:
        self.server.commit(fault)

    @precondition(lambda self: self.connected)
    @rule(stored=st.booleans())
    def the_connection_drops(self, stored: bool) -> None:
        self.drop(stored)

    @rule(seconds=st.floats(0.01, 5))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        self.act(self.client.tick(self.now))

    @rule(behind=st.integers(0, 3))
    def the_person_reads(self, behind: int) -> None:
        """What was shown is read (or a little less: an older screen)."""
        self.act(self.client.mark_read(max(0, self.shown - behind), self.now))

    @precondition(lambda self: not self.client.finishing)
    @rule()
    def input_ends(self) -> None:
        self.act(self.client.finish(self.now))

    # -- what must hold -----------------------------------------------------------------

    @invariant()
    def stored_once_each_in_the_order_typed(self) -> None:
        texts = [self.server.texts[i] for i in self.server.log]
        assert len(set(texts)) == len(texts), "a line was stored twice"
        positions = [self.typed.index(text) for text in texts]
        assert positions == sorted(positions), "lines were stored out of order"

    @invariant()
    def marked_read_forward_only_and_only_what_was_shown(self) -> None:
        marks = self.server.marks
        assert marks == sorted(set(marks)), "a mark went back, or was sent twice"
        assert all(mark <= self.shown for mark in marks), "marked what was never shown"

    @invariant()
    def never_more_than_the_window_in_flight(self) -> None:
        assert len([f for f in self.in_flight if f is not None]) <= 64 + 64

    def teardown(self) -> None:
        """The faults stop: the client must finish, with every line stored once."""
        if not self.client.finishing:
            self.act(self.client.finish(self.now))
        for _ in range(10_000):
            if self.outcome is not None:
                break
            if not self.connected:
                self.connect()
            elif self.in_flight:
                self.frames_reach_the_server(100)
            elif self.server.queued:
                self.the_store_answers("ok")
            elif self.server.to_client:
                self.frames_reach_the_client(100, twice=False)
            else:
                self.time_passes(1.0)
        assert isinstance(self.outcome, Finished), self.outcome
        assert self.client.phase is Phase.DONE and not self.client.pending
        assert [self.server.texts[i] for i in self.server.log] == self.typed


SessionAgainstAModelServer.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_every_line_is_stored_exactly_once_in_order = SessionAgainstAModelServer.TestCase


class ConversationAgainstAModelServer(SessionAgainstAModelServer):
    """The same, in the conversation with alice, as an account that marks what it reads."""

    dm = "alice"


ConversationAgainstAModelServer.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_a_conversation_is_stored_exactly_once_in_order_and_read_forward = (
    ConversationAgainstAModelServer.TestCase
)


def test_giving_up_tells_never_sent_from_perhaps_stored() -> None:
    client = SessionMachine(name="bot", room="lobby", address="s:1", give_up_after=30)
    client.send("typed while away", 0.0)
    assert client.connect_failed("connection refused", 0.0)[-1] == Reconnect(client.reconnect_at)
    actions = client.tick(30.0)
    assert actions == [
        GiveUp("1 message(s) not delivered: cannot reach the server at s:1 (connection refused).")
    ]

    client = SessionMachine(name="bot", room="lobby", address="s:1", give_up_after=30)
    client.connected(0.0)
    client.received(v1.ServerFrame(welcome=v1.Welcome(room="lobby", name="bot")), 0.0)
    client.send("sent, then the connection went", 0.0)
    client.ended(None, 1.0)
    assert client.tick(31.0) == [
        GiveUp(
            "1 message(s) may or may not have been stored: cannot reach the server at s:1 "
            "(connection lost)."
        )
    ]


def test_give_up_comes_on_time_not_after_a_long_backoff() -> None:
    client = SessionMachine(
        name="bot", room="lobby", give_up_after=30, backoff=Backoff(first=10, cap=10)
    )
    now = 0.0
    while client.phase is not Phase.DONE:
        actions = client.connect_failed("connection refused", now)
        if any(isinstance(a, GiveUp) for a in actions):
            break
        now = client.reconnect_at
    assert now == 30.0


def _shown(actions: list[Action]) -> list[str]:
    return [action.item.text for action in actions if isinstance(action, Show)]


def test_trouble_is_told_when_it_begins_not_per_retry_nor_per_server() -> None:
    """A store outage on two servers: the client goes back and forth between them, and
    says one line, not one per attempt (until it is back in the room)."""
    client = SessionMachine(name="bot", room="lobby", address="a:1")
    client.connected(0.0)
    client.received(v1.ServerFrame(welcome=v1.Welcome(room="lobby", name="bot")), 0.0)
    said: list[str] = []
    said += _shown(client.ended(Status(StatusCode.UNAVAILABLE, "store unreachable"), 1.0))
    for attempt in range(6):
        client.address = ("b:1", "a:1")[attempt % 2]
        client.connected(2.0 + attempt)
        said += _shown(client.ended(Status(StatusCode.UNAVAILABLE, "store unreachable"), 2.0))
        said += _shown(client.connect_failed("connection refused", 2.5 + attempt))
    assert said == ["cannot reach the server at a:1 (store unreachable); reconnecting"]
    assert client.trouble == "cannot reach the server at a:1 (connection refused)"  # in place
    # Back in the room, then new trouble: told again, once.
    client.connected(10.0)
    client.received(v1.ServerFrame(welcome=v1.Welcome(room="lobby", name="bot")), 10.0)
    again = _shown(client.ended(None, 11.0)) + _shown(client.ended(None, 12.0))
    assert again == ["cannot reach the server at a:1 (connection lost); reconnecting"]


def test_a_sender_past_the_servers_rate_is_told_once_and_never_without_one() -> None:
    welcome = v1.ServerFrame(welcome=v1.Welcome(room="lobby", name="bot", rate_limit=5))
    client = SessionMachine(name="bot", room="lobby")
    client.connected(0.0)
    client.received(welcome, 0.0)
    said = [_shown(client.send(f"line {n}", 0.0)) for n in range(12)]
    # The burst (twice the rate) goes at once; the next is the first the server holds.
    assert said[:10] == [[]] * 10
    assert said[10] == [
        "the server takes at most 5 messages a second from one sender (its rate limit, "
        "with bursts of 10): lines wait their turn, none is lost or reordered"
    ]
    assert said[11] == []
    unlimited = SessionMachine(name="bot", room="lobby")
    unlimited.connected(0.0)
    unlimited.received(v1.ServerFrame(welcome=v1.Welcome(room="lobby", name="bot")), 0.0)
    assert all(not _shown(unlimited.send(f"line {n}", 0.0)) for n in range(100))
