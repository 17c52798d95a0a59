"""The web door: a web member's session, beside server/members.py's two gRPC doors.

A session's first frame is a join (within the handshake timeout), its token checked
like a gRPC call's `authorization` and watched for revocation while the member is in;
then sends, and asks for the room list. The session itself (membership, prelude,
pacing, the journal, asks, the end) is `server/session.py`'s, the same for every door:
errors about a send are frames and the session goes on; it ends (with an `end` frame
and a close code) only when the member is removed or sends what cannot be decoded.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import anyio

from purechat import status as statuses
from purechat.core import Member, Notice
from purechat.core.limits import DEFAULT_ROOM
from purechat.server.auth import Bearers, TokenBook
from purechat.server.services import Services
from purechat.server.session import JoinAsk, Misplaced, Post, Request, RoomsAsk, serve_member
from purechat.server.wire import Encode
from purechat.status import Status
from purechat.web import codes
from purechat.web.frames import AskRooms, BadFrame, Join, Send, decode
from purechat.web.socket import WebSocket


@dataclass(frozen=True)
class WebMembers:
    """What a web member's session needs from the server."""

    services: Services
    encode: Encode
    tokens: TokenBook | None
    bearers: Bearers
    # How long a new session has to send its join.
    join_timeout: float


async def serve_web_member(socket: WebSocket, web: WebMembers) -> Status:
    """One web member, from its join to its end."""
    return await serve_member(WebDoor(socket, web), web.services)


class WebDoor:
    """JSON frames over a WebSocket (web/frames.py)."""

    def __init__(self, socket: WebSocket, web: WebMembers):
        self._socket = socket
        self._web = web
        # The token the join came with and the name it stands for, when tokens are on.
        self._bearer: tuple[bytes, str] | None = None

    @property
    def channel(self) -> WebSocket:
        return self._socket

    @property
    def encode(self) -> Encode:
        return self._web.encode

    @property
    def peer(self) -> str:
        return self._socket.peer

    async def join(self) -> JoinAsk | Status:
        web = self._web
        with anyio.move_on_after(web.join_timeout) as waiting:
            raw = await self._socket.receive()
        if waiting.cancelled_caught:
            return codes.no_join_in_time(web.join_timeout)
        if raw is None:
            return statuses.OK  # gone before joining
        try:
            join = decode(raw)
        except BadFrame as bad:
            return codes.undecodable_frame(str(bad))
        if not isinstance(join, Join):
            return statuses.first_frame_not_join()
        if web.tokens is not None:
            self._bearer = web.tokens.lookup(join.token)
            if self._bearer is None:
                return statuses.unauthenticated("enter the token you were given")
        return JoinAsk(
            room=join.room or DEFAULT_ROOM,
            requested=self._bearer[1] if self._bearer else join.name,
            session=join.session,
            history=join.history,
            after_seq=join.after_seq,
            epoch=join.epoch,
        )

    def admitted(self) -> AbstractContextManager[object]:
        if self._bearer is None:
            return nullcontext()
        return self._web.bearers.holding(self._socket, self._bearer, self._socket.peer)

    def begin(self) -> None:
        pass  # the WebSocket is open already

    def decode(self, raw: str, member: Member) -> Request | Status:
        try:
            frame = decode(raw)
        except BadFrame as bad:
            return codes.undecodable_frame(str(bad))
        if isinstance(frame, AskRooms):
            return RoomsAsk()
        if not isinstance(frame, Send):
            return Misplaced(
                f"You are already in {member.room.name}; connect again to change rooms."
            )
        return Post(frame.text, frame.client_msg_id, frame.action)

    def refusal_ends(self, notice: Notice) -> Status | None:
        return None  # told as an error frame
