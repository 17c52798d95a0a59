"""Test clients for in-process servers; each member gets its own connection, as real clients do."""

from __future__ import annotations

from dataclasses import dataclass, field

import trio

from purechat.app import ChatServer
from purechat.client.calls import LegacyCall, V1Call, open_connection
from purechat.pb import purechat_v1_pb2 as v1
from purechat.transport import Connection, Status, Stream


@dataclass
class Harness:
    server: ChatServer
    port: int
    nursery: trio.Nursery

    async def connection(self) -> tuple[Connection, trio.CancelScope]:
        """A client connection in its own cancel scope; cancelling it drops the connection."""
        box: list[Connection] = []

        async def own(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    box.append(await open_connection(nursery, "127.0.0.1", self.port))
                    task_status.started(scope)
                    await trio.sleep_forever()

        scope = await self.nursery.start(own)
        return box[0], scope

    async def v1(
        self,
        name: str,
        room: str = "lobby",
        *,
        history: int = 0,
        after_seq: int | None = None,
        session: str = "",
        epoch: str = "",
    ) -> Member:
        connection, scope = await self.connection()
        call = V1Call(connection, authority=f"127.0.0.1:{self.port}")
        await call.join(
            name, room, history=history, after_seq=after_seq, session=session, epoch=epoch
        )
        frame = await call.receive()
        assert frame is not None, call.status
        assert frame.WhichOneof("frame") == "welcome", frame
        return Member(call, frame.welcome, scope)

    async def legacy(self) -> tuple[LegacyCall, trio.CancelScope]:
        connection, scope = await self.connection()
        return LegacyCall(connection, authority=f"127.0.0.1:{self.port}"), scope


@dataclass
class Member:
    call: V1Call
    welcome: v1.Welcome
    scope: trio.CancelScope
    unread: list[v1.ServerFrame] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.welcome.name

    async def next_of(self, kind: str) -> v1.ServerFrame:
        """The next frame of one oneof kind ("event", "ack", "error").

        Frames of other kinds read on the way are kept for later calls, so waiting for
        an ack does not lose the message event that came before it.
        """
        for frame in self.unread:
            if frame.WhichOneof("frame") == kind:
                self.unread.remove(frame)
                return frame
        while True:
            frame = await self.call.receive()
            assert frame is not None, f"call ended: {self.call.status}"
            if frame.WhichOneof("frame") == kind:
                return frame
            self.unread.append(frame)

    async def next_of_any(self, *kinds: str) -> v1.ServerFrame:
        """The next frame of any of these kinds (others are kept, as in next_of)."""
        while True:
            frame = await self.call.receive()
            assert frame is not None, f"call ended: {self.call.status}"
            if frame.WhichOneof("frame") in kinds:
                return frame
            self.unread.append(frame)

    async def next_message(self) -> v1.Event:
        """The next MESSAGE event, skipping presence, acks and errors."""
        while True:
            frame = await self.next_of("event")
            if frame.event.kind == v1.Event.MESSAGE:
                return frame.event

    async def say(self, text: str, client_msg_id: str = "") -> v1.Ack:
        """Send and wait for the ack (consuming frames before it)."""
        await self.call.send(text, client_msg_id)
        return (await self.next_of("ack")).ack

    async def until_end(self) -> None:
        """Read until the server ends the call; call.status is then set."""
        while await self.call.receive() is not None:
            pass
        self.unread.clear()

    def drop(self) -> None:
        """Vanish abruptly: close the connection without ending the call."""
        self.scope.cancel()


async def still_served(member: Member, text: str) -> None:
    """The well-behaved member can still talk and hear itself, promptly."""
    with trio.fail_after(5):
        await member.say(text)
        while (await member.next_message()).text != text:
            pass


async def final_status(stream: Stream) -> Status:
    """Read a call to its end; the status the server ended it with."""
    while await stream.receive() is not None:
        pass
    assert stream.status is not None
    return stream.status
