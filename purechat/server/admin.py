"""purechat.v1.Admin: what `purechat rooms` and `purechat who ROOM` ask a server."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from purechat.core import Hub
from purechat.pb import purechat_v1_pb2 as v1
from purechat.server import errors
from purechat.transport import Status, Stream, frame_message

ADMIN_SERVICE = "purechat.v1.Admin"


async def list_rooms(stream: Stream, hub: Hub) -> Status:
    if await stream.receive() is None:
        return errors.undecodable("purechat.v1.ListRoomsRequest")
    response = v1.ListRoomsResponse()
    for name, members, last_seq in hub.rooms():
        response.rooms.add(name=name, members=members, last_seq=last_seq)
    stream.start_response()
    await stream.send_frames(frame_message(response.SerializeToString()))
    return errors.OK


async def list_members(stream: Stream, hub: Hub) -> Status:
    raw = await stream.receive()
    try:
        request = v1.ListMembersRequest.FromString(raw or b"")
    except DecodeError:
        return errors.undecodable("purechat.v1.ListMembersRequest")
    response = v1.ListMembersResponse(members=sorted(hub.members_of(request.room)))
    stream.start_response()
    await stream.send_frames(frame_message(response.SerializeToString()))
    return errors.OK
