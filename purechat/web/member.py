"""The web member: a third way in, beside server/members.py's two contracts.

A session's first frame is a join (within the handshake timeout), its token checked
like a gRPC call's `authorization`; then sends, each through the same steps as
purechat.v1's: `Hub.post` validates, the pacer holds a sender over its rate (by not
reading its socket), the journal stores, the hub publishes to every member of the room
whatever its way in. Errors about a send are frames and the session goes on; the
session ends (with an `end` frame and a close code) only when the member is removed.
The reader runs in the session's task, its delivery beside it when it has to send
(as serve_v1's), inside its `Membership`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import anyio

from purechat import status as statuses
from purechat.core import ErrorCode, Member, Message, Notice
from purechat.core.limits import DEFAULT_ROOM
from purechat.errors import Refusal, StoreError
from purechat.server.auth import Bearers, TokenBook
from purechat.server.journal import InFlight
from purechat.server.members import (
    ReadBurst,
    join_refused,
    resume_prelude,
    run_member,
    send_paced,
)
from purechat.server.membership import Membership
from purechat.server.services import Services
from purechat.server.wire import Encode
from purechat.status import Status
from purechat.web import codes
from purechat.web.frames import BadFrame, Join, Send, decode
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
    with anyio.move_on_after(web.join_timeout) as waiting:
        raw = await socket.receive()
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
    bearer = None
    if web.tokens is not None:
        bearer = web.tokens.lookup(join.token)
        if bearer is None:
            return statuses.unauthenticated("enter the token you were given")
    services = web.services
    delivery = services.delivery(socket, web.encode)
    membership = Membership(
        services,
        delivery,
        peer=socket.peer,
        room=join.room or DEFAULT_ROOM,
        requested=bearer[1] if bearer else join.name,
        session=join.session,
    )
    with web.bearers.holding(socket, bearer, socket.peer) if bearer else nullcontext():
        try:
            async with membership as member:
                read = _reader(socket, services, membership)
                prelude = resume_prelude(
                    services,
                    member,
                    history=join.history,
                    after_seq=join.after_seq,
                    epoch=join.epoch,
                )
                return await run_member(delivery, read, prelude)
        except (Refusal, StoreError) as refusal:
            return join_refused(refusal)


def _reader(
    socket: WebSocket, services: Services, membership: Membership
) -> Callable[[], Coroutine[Any, Any, None]]:
    hub, member, delivery = services.hub, membership.member, membership.delivery
    assert member is not None
    in_flight = InFlight()

    burst = ReadBurst()

    async def read() -> None:
        while (raw := await socket.receive()) is not None:
            await burst.tick(len(raw))
            try:
                frame = decode(raw)
            except BadFrame as bad:
                socket.end(codes.undecodable_frame(str(bad)))
                return
            if not isinstance(frame, Send):
                delivery.offer(Notice(ErrorCode.BAD_FRAME, _misplaced(member)))
                continue
            posted = hub.post(member, frame.text, frame.client_msg_id, action=frame.action)
            if posted is None:
                return
            if isinstance(posted, Message) and not await send_paced(
                services, member, socket, in_flight, posted
            ):
                return
        await in_flight.wait_idle()  # acks for what it sent come before the end
        membership.leave()
        delivery.close()

    return read


def _misplaced(member: Member) -> str:
    return f"You are already in {member.room.name}; connect again to change rooms."
