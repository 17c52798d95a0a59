"""purechat.v1.Admin: what `purechat rooms` and `purechat who ROOM` ask a server."""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import DecodeError

from purechat import status as statuses
from purechat.core import Hub
from purechat.pb import purechat_v1_pb2 as v1
from purechat.status import Status
from purechat.store import StoreError
from purechat.transport import Stream, frame_message

ADMIN_SERVICE = "purechat.v1.Admin"


class Roster(Protocol):
    """Who is where: this server's hub, or a store shared by several servers."""

    async def rooms(self) -> list[tuple[str, int, int]]: ...

    async def members(self, room: str) -> tuple[str, ...]: ...


class HubRoster:
    """The rooms and members of this server alone."""

    def __init__(self, hub: Hub):
        self.hub = hub

    async def rooms(self) -> list[tuple[str, int, int]]:
        return self.hub.rooms()

    async def members(self, room: str) -> tuple[str, ...]:
        return tuple(sorted(self.hub.members_of(room)))


async def list_rooms(stream: Stream, roster: Roster) -> Status:
    if await stream.receive() is None:
        return statuses.undecodable("purechat.v1.ListRoomsRequest")
    try:
        rooms = await roster.rooms()
    except StoreError:
        return statuses.store_unreachable()
    response = v1.ListRoomsResponse()
    for name, members, last_seq in rooms:
        response.rooms.add(name=name, members=members, last_seq=last_seq)
    return await _answer(stream, response.SerializeToString())


async def list_members(stream: Stream, roster: Roster) -> Status:
    raw = await stream.receive()
    try:
        request = v1.ListMembersRequest.FromString(raw or b"")
    except DecodeError:
        return statuses.undecodable("purechat.v1.ListMembersRequest")
    try:
        members = await roster.members(request.room)
    except StoreError:
        return statuses.store_unreachable()
    return await _answer(stream, v1.ListMembersResponse(members=members).SerializeToString())


async def _answer(stream: Stream, response: bytes) -> Status:
    stream.start_response()
    await stream.send_frames(frame_message(response))
    return statuses.OK
