"""The web door: a web member's session, beside server/members.py's two gRPC doors.

A session's first frame is a join (within the handshake timeout), its token checked
like a gRPC call's `authorization` and watched for revocation while the member is in;
then sends, and asks for the room list. The session itself (membership, prelude,
pacing, the journal, asks, the end) is `server/session.py`'s, the same for every door:
errors about a send are frames and the session goes on; it ends (with an `end` frame
and a close code) only when the member is removed or sends what cannot be decoded.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import anyio

from purechat import status as statuses
from purechat.core import Member, Notice
from purechat.core.limits import DEFAULT_ROOM
from purechat.core.moderation import ModerationRefused, command_from
from purechat.errors import PurechatError, StoreError, Unauthenticated
from purechat.server.auth import Admitted
from purechat.server.identity import Admission, Authenticator
from purechat.server.reading import ConversationsAsk, HistoryAsk, MarkRead, SearchAsk
from purechat.server.services import Services
from purechat.server.session import (
    Change,
    JoinAsk,
    Misplaced,
    Moderate,
    Post,
    Request,
    RoomsAsk,
    TypingSignal,
    serve_member,
)
from purechat.server.wire import Encode
from purechat.status import Status
from purechat.web import codes
from purechat.web.frames import (
    AskRooms,
    BadFrame,
    ChangeFrame,
    Credentials,
    Join,
    ModerateFrame,
    Send,
    TypingFrame,
    decode,
    error_frame,
    registered_frame,
    session_frame,
)
from purechat.web.socket import WebSocket

# Logins (or registrations) one connection may try before its join.
MAX_LOGINS = 5


@dataclass(frozen=True)
class WebMembers:
    """What a web member's session needs from the server."""

    services: Services
    encode: Encode
    auth: Authenticator
    admitted: Admitted
    # How long a new session has to send its join (logins before it included).
    join_timeout: float


async def serve_web_member(socket: WebSocket, web: WebMembers) -> Status:
    """One web member, from its join to its end."""
    return await serve_member(WebDoor(socket, web), web.services)


class WebDoor:
    """JSON frames over a WebSocket (web/frames.py)."""

    def __init__(self, socket: WebSocket, web: WebMembers):
        self._socket = socket
        self._web = web
        self._admission: Admission | None = None

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
            first = await self._first_frame()
        if waiting.cancelled_caught:
            return codes.no_join_in_time(web.join_timeout)
        if not isinstance(first, Join):
            return first
        try:
            self._admission = await web.auth.identify(first.token, self._socket.address)
        except Unauthenticated as refused:
            # In the page's words: it has a token field and a login form.
            log_in = refused.missing and not web.auth.has_token_file
            return statuses.unauthenticated(
                "log in first" if log_in else "enter the token you were given"
            )
        except PurechatError as refused:
            if isinstance(refused, StoreError):
                web.services.store_failed(refused, "a page's session check")
            return statuses.for_error(refused)
        return JoinAsk(
            room=first.room or DEFAULT_ROOM,
            requested=self._admission.identity.account or first.name,
            session=first.session,
            history=first.history,
            after_seq=first.after_seq,
            epoch=first.epoch,
            identity=self._admission.identity,
            dm=first.dm,
        )

    async def _first_frame(self) -> Join | Status:
        """The join, after any logins before it (each answered); or how the session ends."""
        for _ in range(MAX_LOGINS + 1):
            raw = await self._socket.receive()
            if raw is None:
                return statuses.OK  # gone before joining
            try:
                frame = decode(raw)
            except BadFrame as bad:
                return codes.undecodable_frame(str(bad))
            if not isinstance(frame, Credentials):
                return frame if isinstance(frame, Join) else statuses.first_frame_not_join()
            await self._socket.send_frames(await self._log_in(frame))
        return codes.too_many_logins(MAX_LOGINS)

    async def _log_in(self, credentials: Credentials) -> bytes:
        """A login's or registration's answer frame."""
        auth, address = self._web.auth, self._socket.address
        try:
            if credentials.register:
                account = await auth.register(credentials.name, credentials.password, address)
                return registered_frame(account.name)
            token, session, account = await auth.login(
                credentials.name, credentials.password, address
            )
        except PurechatError as refused:
            if isinstance(refused, StoreError):
                self._web.services.store_failed(refused, "a page's login")
            return error_frame(statuses.for_error(refused).status_code.name, str(refused))
        return session_frame(token, account.name, session.expires_ms)

    def admitted(self) -> AbstractContextManager[object]:
        admission = self._admission
        assert admission is not None
        return self._web.admitted.holding(
            self._socket, admission.identity, admission.token, self._socket.peer
        )

    def begin(self) -> None:
        pass  # the WebSocket is open already

    def decode(self, raw: str, member: Member) -> Request | Status:
        try:
            frame = decode(raw)
        except BadFrame as bad:
            return codes.undecodable_frame(str(bad))
        if isinstance(frame, ModerateFrame):
            try:
                command = command_from(
                    frame.action, frame.target, frame.seconds, frame.reason, frame.text
                )
            except ModerationRefused as refused:
                return Misplaced(str(refused))
            return Moderate(command, frame.client_msg_id)
        if isinstance(frame, AskRooms):
            return RoomsAsk()
        if isinstance(frame, TypingFrame):
            return TypingSignal()
        if isinstance(frame, ChangeFrame):
            return Change(frame.ask, frame.client_msg_id)
        if isinstance(frame, MarkRead | HistoryAsk | SearchAsk | ConversationsAsk):
            return frame
        if not isinstance(frame, Send):
            return Misplaced(
                f"You are already in {member.room.name}; connect again to change rooms."
            )
        return Post(frame.text, frame.client_msg_id, frame.action, reply_to=frame.reply_to)

    def refusal_ends(self, notice: Notice) -> Status | None:
        return None  # told as an error frame
